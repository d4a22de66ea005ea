//! The one seam between the forwarding engine and a destination: an output
//! type is a [`Transport`] (plus its config), so the engine never asks which
//! kind of output it drives. The engine decides what to send, where and when;
//! a transport only carries a request and says what became of it.

use super::source::Route;
use crate::hec::ack::AckReply;
use std::future::Future;
use std::time::Duration;

/// One request body ready for the wire.
#[derive(Debug, Clone)]
pub struct Request {
    /// The body (gzip when the output compresses).
    pub body: bytes::Bytes,
    /// Which endpoint it belongs to.
    pub route: Route,
    /// `/raw` only: the events' metadata as a query string.
    pub query: Option<String>,
}

/// What a destination made of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Stored; nothing to wait for.
    Delivered,
    /// Accepted; delivered once this indexer ack id turns true.
    AckPending(u64),
    /// Accepted without an ackId although acks are on (Splunk Cloud tokens).
    AckUnavailable,
    /// Refused naming the first bad event: the events before it were stored.
    InvalidEvent {
        /// Index of the bad event in the request.
        number: u64,
        /// The destination's answer, for the dead letter.
        reason: String,
    },
    /// Refused for its content or size: split, or dead-letter a single event.
    Rejected {
        /// HTTP status.
        status: u16,
        /// The destination's answer.
        reason: String,
    },
    /// The credentials are refused: pause the output, keep everything.
    Unauthorized {
        /// HTTP status.
        status: u16,
    },
    /// Transient (429, 503, 5xx, timeout, reset, a failed write): try again later.
    Retry {
        /// `Retry-After`, when given.
        after: Option<Duration>,
    },
}

/// A request's outcome and the `code` label it is counted under
/// (`sluice_output_requests_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// What became of it.
    pub outcome: SendOutcome,
    /// HTTP status, or `error` when there was no answer, `ok` for a file.
    pub code: String,
    /// What went wrong, for the status page's last errors (`None`: nothing did).
    pub detail: Option<String>,
}

/// A transport operation other than a send failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No answer (connection, timeout).
    #[error("request failed: {0}")]
    Http(#[source] reqwest::Error),
    /// An answer other than 200.
    #[error("answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The body, as sent.
        body: String,
    },
    /// An answer that does not parse; never counted as delivered.
    #[error("unparseable ack reply: {0}")]
    Parse(#[source] serde_json::Error),
    /// The archive could not be written or closed.
    #[error(transparent)]
    Archive(#[from] super::file::archive::ArchiveError),
}

/// An output type: where batches go and how their delivery is confirmed.
/// Destinations are numbered by position (a `splunk` output's indexer URLs;
/// a `file` output has one).
pub trait Transport: Send + Sync + 'static {
    /// The output type as configured (`type = "…"`), for the status page.
    fn kind(&self) -> &'static str;

    /// Each destination's label in metrics and logs (the `indexer` label).
    fn destinations(&self) -> &[String];

    /// Whether events that are not samples may go to Splunk's `/raw`
    /// (else every event is written as HEC JSON).
    fn allows_raw(&self) -> bool;

    /// Sends one request to destination `dest`.
    fn send(&self, dest: usize, request: Request) -> impl Future<Output = Answer> + Send;

    /// Asks `dest` which of its ack ids are true.
    fn poll_acks(
        &self,
        dest: usize,
        ids: Vec<u64>,
    ) -> impl Future<Output = Result<AckReply, TransportError>> + Send;

    /// Whether `dest` takes requests again (the breaker's half-open probe).
    fn healthy(&self, dest: usize) -> impl Future<Output = bool> + Send;

    /// Finishes what is open (the file output closes its file). Called once,
    /// after the last send.
    fn close(&self) -> Result<(), TransportError>;

    /// Sends one `sluice:stats` event (HEC JSON, `stats.rs`) to `dest`,
    /// outside the queue and without waiting for an ack. Output types that
    /// take no stats keep this default, which sends nothing.
    fn send_stats(
        &self,
        _dest: usize,
        _event: bytes::Bytes,
    ) -> impl Future<Output = Result<(), TransportError>> + Send {
        std::future::ready(Ok(()))
    }
}
