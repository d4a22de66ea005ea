//! The `file` output's writer: NDJSON archive files of HEC event objects,
//! gzip (one member per batch) or plain, rotated by size and age, fsynced
//! before a batch counts as delivered. A file being written ends in `.open`;
//! one left by a crash is cut back to its last whole batch and closed at start.

use super::super::batch::Compression;
use flate2::write::GzEncoder;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// An archive I/O failure, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("archive {path}: {source}")]
pub struct ArchiveError {
    /// The file or directory.
    pub path: PathBuf,
    /// The I/O error.
    pub source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError {
        path: path.to_path_buf(),
        source,
    }
}

const OPEN_SUFFIX: &str = ".open";

struct OpenFile {
    path: PathBuf,
    file: File,
    written: u64,
    opened: Instant,
}

/// Appends batches to rotating archive files.
pub struct ArchiveWriter {
    dir: PathBuf,
    rotate_bytes: u64,
    rotate_interval: Duration,
    compression: Compression,
    current: Option<OpenFile>,
    seq: u64,
}

impl ArchiveWriter {
    /// Opens the archive directory, closing files a crash left open.
    pub fn open(
        dir: &Path,
        rotate_bytes: u64,
        rotate_interval: Duration,
        compression: Compression,
    ) -> Result<ArchiveWriter, ArchiveError> {
        crate::private_fs::create_dir(dir).map_err(err(dir))?;
        for entry in std::fs::read_dir(dir).map_err(err(dir))? {
            let path = entry.map_err(err(dir))?.path();
            if path.to_string_lossy().ends_with(OPEN_SUFFIX) {
                recover(&path)?;
            }
        }
        Ok(ArchiveWriter {
            dir: dir.to_path_buf(),
            rotate_bytes,
            rotate_interval,
            compression,
            current: None,
            seq: 0,
        })
    }

    fn new_file(&mut self) -> Result<OpenFile, ArchiveError> {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        self.seq += 1;
        let ext = match self.compression {
            Compression::Gzip => "ndjson.gz",
            Compression::None => "ndjson",
        };
        let path = self.dir.join(format!(
            "sluice-{stamp}-{}-{}.{ext}{OPEN_SUFFIX}",
            std::process::id(),
            self.seq
        ));
        let file = crate::private_fs::options()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(err(&path))?;
        Ok(OpenFile {
            path,
            file,
            written: 0,
            opened: Instant::now(),
        })
    }

    /// Appends one batch of NDJSON (each line a HEC event object) and fsyncs it.
    pub fn write_batch(&mut self, ndjson: &[u8]) -> Result<(), ArchiveError> {
        if self.current.as_ref().is_some_and(|f| {
            f.written >= self.rotate_bytes || f.opened.elapsed() >= self.rotate_interval
        }) {
            self.close()?;
        }
        if self.current.is_none() {
            self.current = Some(self.new_file()?);
        }
        let compression = self.compression;
        let Some(f) = self.current.as_mut() else {
            return Ok(());
        };
        let compressed;
        let bytes = match compression {
            Compression::Gzip => {
                let mut e = GzEncoder::new(
                    Vec::with_capacity(ndjson.len() / 4),
                    flate2::Compression::fast(),
                );
                compressed = e
                    .write_all(ndjson)
                    .and_then(|_| e.finish())
                    .map_err(err(&f.path))?;
                &compressed[..]
            }
            // Written as it is: a copy of a megabytes body cost a sixth of a drain.
            Compression::None => ndjson,
        };
        f.file.write_all(bytes).map_err(err(&f.path))?;
        f.file.sync_data().map_err(err(&f.path))?;
        f.written += bytes.len() as u64;
        Ok(())
    }

    /// Closes the current file (renaming it without `.open`).
    pub fn close(&mut self) -> Result<(), ArchiveError> {
        if let Some(f) = self.current.take() {
            f.file.sync_all().map_err(err(&f.path))?;
            drop(f.file);
            finish_name(&f.path)?;
        }
        Ok(())
    }
}

fn finish_name(path: &Path) -> Result<(), ArchiveError> {
    let name = path.to_string_lossy();
    let done = PathBuf::from(name.trim_end_matches(OPEN_SUFFIX));
    std::fs::rename(path, &done).map_err(err(path))
}

/// Cuts a crashed file back to its last complete batch, then closes it.
fn recover(path: &Path) -> Result<(), ArchiveError> {
    let data = std::fs::read(path).map_err(err(path))?;
    let keep = if path.to_string_lossy().contains(".gz") {
        whole_gzip_members(&data)
    } else {
        data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
    };
    if keep < data.len() {
        tracing::warn!(path = %path.display(), kept = keep, dropped = data.len() - keep, "archive file cut back to its last whole batch after a crash");
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(err(path))?;
        f.set_len(keep as u64).map_err(err(path))?;
        f.sync_all().map_err(err(path))?;
    }
    if keep == 0 {
        return std::fs::remove_file(path).map_err(err(path));
    }
    finish_name(path)
}

/// Length of the prefix made of complete gzip members.
fn whole_gzip_members(data: &[u8]) -> usize {
    let mut at = 0;
    while at < data.len() {
        let mut d = flate2::bufread::GzDecoder::new(&data[at..]);
        if io::copy(&mut d.by_ref().take(u64::MAX), &mut io::sink()).is_err() {
            break;
        }
        let rest = d.into_inner().len();
        let used = data.len() - at - rest;
        if used == 0 {
            break;
        }
        at += used;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn read_all(dir: &Path) -> String {
        let mut out = String::new();
        for name in files(dir) {
            let data = std::fs::read(dir.join(&name)).unwrap();
            if name.contains(".gz") {
                flate2::read::MultiGzDecoder::new(&data[..])
                    .read_to_string(&mut out)
                    .unwrap();
            } else {
                out.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
        out
    }

    #[test]
    fn rotates_by_size_and_keeps_every_batch() {
        for compression in [Compression::Gzip, Compression::None] {
            let dir = tempfile::tempdir().unwrap();
            let mut w =
                ArchiveWriter::open(dir.path(), 4096, Duration::from_secs(3600), compression)
                    .unwrap();
            let mut expect = String::new();
            for i in 0..200 {
                let line = format!("{{\"event\":\"batch {i} {}\"}}\n", "x".repeat(i % 50));
                w.write_batch(line.as_bytes()).unwrap();
                expect.push_str(&line);
            }
            w.close().unwrap();
            let names = files(dir.path());
            assert!(names.len() > 1, "{names:?}");
            assert!(names.iter().all(|n| !n.ends_with(OPEN_SUFFIX)));
            assert_eq!(read_all(dir.path()), expect);
        }
    }

    #[test]
    fn a_crashed_file_is_cut_to_whole_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ArchiveWriter::open(
            dir.path(),
            1 << 20,
            Duration::from_secs(3600),
            Compression::Gzip,
        )
        .unwrap();
        w.write_batch(b"{\"event\":1}\n").unwrap();
        w.write_batch(b"{\"event\":2}\n").unwrap();
        let path = w.current.as_ref().unwrap().path.clone();
        std::mem::forget(w);
        // A torn third batch.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
        drop(f);
        let plain = dir.path().join("sluice-1-1-1.ndjson.open");
        std::fs::write(&plain, b"{\"event\":3}\n{\"event\":").unwrap();
        ArchiveWriter::open(
            dir.path(),
            1 << 20,
            Duration::from_secs(3600),
            Compression::Gzip,
        )
        .unwrap();
        assert!(files(dir.path()).iter().all(|n| !n.ends_with(OPEN_SUFFIX)));
        // Exactly the whole batches: the torn gzip member and the torn
        // plain line are gone, every line left is a complete event.
        let all = read_all(dir.path());
        let mut lines: Vec<&str> = all.lines().collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            ["{\"event\":1}", "{\"event\":2}", "{\"event\":3}"],
            "{all:?}"
        );
        assert!(all.ends_with('\n'), "{all:?}");
    }
}
