//! `[[outputs]]` with `type = "file"`: the keys as written, their defaults,
//! and their resolution into the archive's settings and the engine's.

use super::super::batch::{BatchLimits, Compression};
use super::super::config::build_threads;
use super::super::context::EngineSettings;
use super::super::routing::{EventsRoute, Routing};
use crate::rollup::config::RollupSettings;
use crate::setting::Invalid;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `rotate_bytes` default.
pub const ROTATE_BYTES: u64 = 256 << 20;
/// `rotate_interval` default.
pub const ROTATE_INTERVAL: Duration = Duration::from_secs(3600);
/// Events per archive batch (one fsync each).
pub const BATCH_EVENTS: usize = 10_000;
/// Bytes per archive batch.
pub const BATCH_BYTES: u64 = 8 << 20;
/// How long a partial batch waits for more events.
pub const LINGER: Duration = Duration::from_millis(200);
/// First wait after a failed write.
pub const RETRY_INITIAL: Duration = Duration::from_millis(500);
/// Longest wait after failed writes.
pub const RETRY_MAX: Duration = Duration::from_secs(30);

/// The name of the embedded default output (a file archive under the data dir).
pub const DEFAULT_NAME: &str = "archive";

/// One `type = "file"` output as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Name used in metrics, logs and release markers.
    pub name: String,
    /// Directory of the NDJSON files; default `<data_dir>/archive`.
    pub path: Option<PathBuf>,
    /// Start a new file at this size.
    pub rotate_bytes: Option<u64>,
    /// Start a new file after this long.
    #[serde(default, with = "humantime_serde")]
    pub rotate_interval: Option<Duration>,
    /// `gzip` (default, one member per batch) or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// Threads building batches; default: the number of cores.
    pub build_threads: Option<usize>,
    /// Which events go: `all` (default), `drops`, `none`.
    #[serde(default)]
    pub events: EventsRoute,
    /// Whether each record's rollups go, as metric events.
    #[serde(default)]
    pub rollups: bool,
}

/// A resolved `file` output.
#[derive(Debug, Clone)]
pub struct FileOutput {
    /// How the engine drives it.
    pub engine: EngineSettings,
    /// Directory of the files.
    pub path: PathBuf,
    /// Rotation size.
    pub rotate_bytes: u64,
    /// Rotation age.
    pub rotate_interval: Duration,
    /// File compression (per batch, by the archive).
    pub compression: Compression,
}

impl FileConfig {
    /// The embedded default: `archive` under the data dir, gzip.
    pub fn embedded_default() -> FileConfig {
        FileConfig {
            name: DEFAULT_NAME.into(),
            ..FileConfig::default()
        }
    }

    /// Applies defaults and checks values; `key` is the table's key (`outputs[0]`).
    pub fn resolve(
        &self,
        key: &str,
        data_dir: &Path,
        rollup: &Arc<RollupSettings>,
    ) -> Result<FileOutput, Invalid> {
        let k = |name: &str| format!("{key}.{name}");
        let rotate_bytes = self.rotate_bytes.unwrap_or(ROTATE_BYTES);
        if rotate_bytes < 4096 {
            return Err(Invalid::new(k("rotate_bytes"), "must be at least 4096"));
        }
        let rotate_interval = self.rotate_interval.unwrap_or(ROTATE_INTERVAL);
        if rotate_interval < Duration::from_secs(1) {
            return Err(Invalid::new(k("rotate_interval"), "must be at least 1s"));
        }
        Ok(FileOutput {
            engine: EngineSettings {
                name: self.name.clone(),
                routing: Routing::resolve(key, self.events, self.rollups, rollup)?,
                // The archive compresses each batch itself; a body is plain NDJSON.
                limits: BatchLimits {
                    max_events: BATCH_EVENTS,
                    max_bytes: BATCH_BYTES,
                    max_compressed_bytes: u64::MAX,
                    compression: Compression::None,
                },
                overrides: [None, None, None, None],
                concurrency: 1,
                linger: LINGER,
                // Nothing is acknowledged later: a write is delivered.
                ack_poll_interval: Duration::from_secs(10),
                ack_timeout: Duration::from_secs(300),
                retry_initial: RETRY_INITIAL,
                retry_max: RETRY_MAX,
                // Stats are for Splunk; the archive is the data alone.
                stats_interval: None,
                dead_letter_after: None,
                build_threads: build_threads(&k("build_threads"), self.build_threads)?,
            },
            path: self
                .path
                .clone()
                .unwrap_or_else(|| data_dir.join("archive")),
            rotate_bytes,
            rotate_interval,
            compression: self.compression,
        })
    }
}
