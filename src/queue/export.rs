//! `sluice queue export` / `import`: the backlog as NDJSON, because sled's
//! on-disk format is not stable across versions (export with the old build,
//! import with the new one).

use super::{Queue, QueueError, RecordMeta};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};

/// One exported record.
#[derive(Serialize, Deserialize)]
struct Line {
    /// Id in the exporting queue (informational; import assigns new ids).
    id: u64,
    meta: RecordMeta,
    /// The stored body, base64.
    body: String,
}

/// Export or import failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Writing or reading the NDJSON stream failed.
    #[error("{what}: {source}")]
    Io {
        /// Which stream.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not an exported record.
    #[error("line {line}: {message}")]
    Format {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

impl Queue {
    /// Writes every queued record as one NDJSON line; returns how many.
    pub fn export(&self, out: &mut dyn Write, what: &str) -> Result<u64, ExportError> {
        let io = |source| ExportError::Io {
            what: what.to_string(),
            source,
        };
        let mut n = 0;
        for id in self.ids_from(0) {
            let Some(rec) = self.get(id)? else {
                continue;
            };
            let line = Line {
                id,
                meta: rec.meta,
                body: base64::engine::general_purpose::STANDARD.encode(&rec.body),
            };
            serde_json::to_writer(&mut *out, &line).map_err(|e| io(e.into()))?;
            out.write_all(b"\n").map_err(io)?;
            n += 1;
        }
        out.flush().map_err(io)?;
        Ok(n)
    }

    /// Appends every record of an export, durably; returns how many.
    pub async fn import(&self, input: &mut dyn BufRead, what: &str) -> Result<u64, ExportError> {
        let mut n = 0;
        let mut last = None;
        for (i, line) in input.lines().enumerate() {
            let line = line.map_err(|source| ExportError::Io {
                what: what.to_string(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let format = |message: String| ExportError::Format {
                line: i as u64 + 1,
                message,
            };
            let rec: Line = serde_json::from_str(&line).map_err(|e| format(e.to_string()))?;
            let body = base64::engine::general_purpose::STANDARD
                .decode(rec.body)
                .map_err(|e| format(e.to_string()))?;
            last = Some(self.append(&rec.meta, &body)?);
            n += 1;
        }
        if let Some(p) = last {
            self.commit(p).await?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BodyEncoding, DataEndpoint, QueueLimits};
    use super::*;

    #[tokio::test]
    async fn export_then_import_keeps_every_record() {
        let limits = QueueLimits::roomy();
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let src = Queue::open(a.path(), limits).unwrap();
        for i in 0..5u8 {
            let meta = RecordMeta {
                endpoint: DataEndpoint::Raw,
                token: "t".into(),
                channel: None,
                sourcetype: Some("st".into()),
                source: None,
                host: None,
                index: None,
                received_ms: 1,
                events: 1,
                encoding: BodyEncoding::Gzip,
                decoded_bytes: 3,
            };
            let p = src.append(&meta, &[i, 0, 255]).unwrap();
            src.commit(p).await.unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(src.export(&mut out, "test").unwrap(), 5);
        let dst = Queue::open(b.path(), limits).unwrap();
        assert_eq!(dst.import(&mut &out[..], "test").await.unwrap(), 5);
        assert_eq!(dst.stats().records, 5);
        assert_eq!(dst.get(4).unwrap().unwrap(), src.get(4).unwrap().unwrap());
        let err = dst
            .import(&mut &b"{\"x\":1}\n"[..], "test")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
