//! The `file` output's transport: every batch is appended to the archive
//! (`archive.rs`) and fsynced on a blocking thread; a batch counts as
//! delivered once it is on disk. One destination, labelled `file`; no acks
//! to poll and nothing to probe, so a failed write is simply tried again
//! after the breaker's backoff.

pub mod archive;
pub mod config;

use super::transport::{Answer, Request, SendOutcome, Transport, TransportError};
use crate::hec::ack::AckReply;
use archive::ArchiveWriter;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// The label of a file output's one destination in metrics.
pub const DESTINATION: &str = "file";

/// Writes batches to an archive directory.
pub struct FileTransport {
    writer: Arc<Mutex<ArchiveWriter>>,
    destinations: [String; 1],
}

impl FileTransport {
    /// Wraps an opened archive.
    pub fn new(writer: ArchiveWriter) -> FileTransport {
        FileTransport {
            writer: Arc::new(Mutex::new(writer)),
            destinations: [DESTINATION.to_string()],
        }
    }
}

impl Transport for FileTransport {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn destinations(&self) -> &[String] {
        &self.destinations
    }

    /// An archive holds HEC JSON only: it must be replayable as `/event`.
    fn allows_raw(&self) -> bool {
        false
    }

    fn send(&self, _dest: usize, request: Request) -> impl Future<Output = Answer> + Send {
        let writer = Arc::clone(&self.writer);
        async move {
            let written = tokio::task::spawn_blocking(move || {
                writer
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .write_batch(&request.body)
            })
            .await;
            match written {
                Ok(Ok(())) => Answer {
                    outcome: SendOutcome::Delivered,
                    code: "ok".into(),
                    detail: None,
                },
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "archive write failed");
                    failed(format!("archive write failed: {e}"))
                }
                Err(e) => {
                    tracing::error!(error = %e, "archive writer thread failed");
                    failed(format!("archive writer thread failed: {e}"))
                }
            }
        }
    }

    fn poll_acks(
        &self,
        _dest: usize,
        _ids: Vec<u64>,
    ) -> impl Future<Output = Result<AckReply, TransportError>> + Send {
        std::future::ready(Ok(AckReply::from_pairs(std::iter::empty())))
    }

    fn healthy(&self, _dest: usize) -> impl Future<Output = bool> + Send {
        std::future::ready(true)
    }

    fn close(&self) -> Result<(), TransportError> {
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .close()
            .map_err(TransportError::from)
    }
}

fn failed(detail: String) -> Answer {
    Answer {
        outcome: SendOutcome::Retry { after: None },
        code: "error".into(),
        detail: Some(detail),
    }
}
