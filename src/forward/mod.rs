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
pub mod config;
pub mod context;
pub mod engine;
pub mod event;
pub mod file;
pub mod output_metrics;
pub mod read_failures;
pub mod rollups;
pub mod routing;
pub mod s3;
pub mod source;
pub mod splunk;
pub mod stats;
pub mod status;
pub mod stream;
pub mod transport;
pub mod verify;

use config::Output;
use context::ForwardContext;
use engine::Engine;
use std::path::Path;
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
    /// The bucket client could not be built.
    #[error(transparent)]
    S3(#[from] s3::S3SetupError),
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
            Engine::spawn(
                f.engine.clone(),
                ctx,
                file::FileTransport::new(writer),
                shutdown,
            )
        }
        Output::Splunk(o) => {
            let client = splunk::SplunkClient::new(o, data_dir)?;
            Engine::spawn(o.engine.clone(), ctx, client, shutdown)
        }
        Output::S3(o) => s3::spawn(o, ctx, shutdown)?,
    })
}
