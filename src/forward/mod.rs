//! Outputs: from queued records to delivered events. An output is an
//! [`engine::Engine`] (the one loop, the same for every type) driving a
//! [`transport::Transport`] (what differs: `splunk/`, `file/`). Around the
//! engine, units that each do one thing and are tested alone: `build/`
//! (records → batches on blocking threads), `breaker` (which destination),
//! `acks` (indexer acks, per-record delivery), `splunk/classify` (what an
//! answer means), `stream`/`source`/`event`/`batch` (a record's events,
//! their metadata and wire form, request bodies).

pub mod acks;
pub mod batch;
pub mod breaker;
pub mod build;
pub mod context;
pub mod engine;
pub mod event;
pub mod file;
pub mod output_metrics;
pub mod read_failures;
pub mod source;
pub mod splunk;
pub mod stream;
pub mod transport;
pub mod verify;

use crate::config::outputs::{Compression, Output};
use batch::BatchLimits;
use context::{EngineSettings, ForwardContext};
use engine::Engine;
use std::path::Path;
use std::time::Duration;
use tokio::sync::watch;

/// An output could not start.
#[derive(Debug, thiserror::Error)]
pub enum ForwardSetupError {
    /// The archive directory could not be opened.
    #[error(transparent)]
    Archive(#[from] file::archive::ArchiveError),
    /// The Splunk client could not be built.
    #[error(transparent)]
    Splunk(#[from] splunk::SplunkSetupError),
}

/// Starts the loop of one output; it ends when `shutdown` turns true.
pub fn spawn(
    output: &Output,
    ctx: ForwardContext,
    data_dir: &Path,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, ForwardSetupError> {
    Ok(match output {
        Output::File(f) => {
            let writer = file::archive::ArchiveWriter::open(
                &f.path,
                f.rotate_bytes,
                f.rotate_interval,
                f.compression,
            )?;
            let s = EngineSettings {
                name: f.name.clone(),
                limits: BatchLimits {
                    max_events: 10_000,
                    max_bytes: 8 << 20,
                    max_compressed_bytes: u64::MAX,
                    // The archive compresses per batch itself.
                    compression: Compression::None,
                },
                overrides: [None, None, None, None],
                concurrency: 1,
                linger: Duration::from_millis(200),
                ack_poll_interval: Duration::from_secs(10),
                ack_timeout: Duration::from_secs(300),
                retry_initial: Duration::from_millis(500),
                retry_max: Duration::from_secs(30),
                dead_letter_after: None,
                build_threads: f.build_threads,
            };
            Engine::spawn(s, ctx, file::FileTransport::new(writer), shutdown)
        }
        Output::Splunk(o) => {
            let client = splunk::SplunkClient::new(o, data_dir)?;
            let s = EngineSettings {
                name: o.name.clone(),
                limits: BatchLimits {
                    max_events: o.max_events,
                    max_bytes: o.max_bytes,
                    max_compressed_bytes: o.max_compressed_bytes,
                    compression: o.compression,
                },
                overrides: [
                    o.index.clone(),
                    o.sourcetype.clone(),
                    o.source.clone(),
                    o.host.clone(),
                ],
                concurrency: o.concurrency,
                linger: o.linger,
                ack_poll_interval: o.ack_poll_interval,
                ack_timeout: o.ack_timeout,
                retry_initial: o.retry_initial,
                retry_max: o.retry_max,
                dead_letter_after: o.dead_letter_after,
                build_threads: o.build_threads,
            };
            Engine::spawn(s, ctx, client, shutdown)
        }
    })
}
