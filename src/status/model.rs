//! `GET /api/status`: the node's state as JSON. Its keys are public (README,
//! "Status page") and are those of the `sluice:stats` event wherever the
//! two say the same thing.

use super::history::Point;
use crate::forward::status::OutputStatus;
use serde::Serialize;

/// The whole answer.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Sluice's version.
    pub version: &'static str,
    /// The node's hostname.
    pub node: String,
    /// Unix time of this answer.
    pub time: f64,
    /// Seconds since the node started.
    pub uptime_s: f64,
    /// Whether the node is draining (503 code 23 to new requests and `/health`).
    pub draining: bool,
    /// Where it listens.
    pub listeners: Vec<ListenerView>,
    /// Accepted tokens: names and settings, never values.
    pub tokens: Vec<TokenView>,
    /// Events accepted since start, all tokens.
    pub events_in: u64,
    /// Events accepted per second over the last step.
    pub events_in_per_s: f64,
    /// Records in the queue.
    pub queue_records: u64,
    /// Events in the queue.
    pub queue_events: u64,
    /// Stored bytes of the queue.
    pub queue_bytes: u64,
    /// Age of the oldest queued record, seconds.
    pub queue_oldest_age_s: f64,
    /// Whether the queue accepts writes.
    pub queue_writable: bool,
    /// Free bytes on the queue's file system (when known).
    pub queue_free_bytes: Option<u64>,
    /// Records given up as unreadable since start, all outputs.
    pub corrupt_records: u64,
    /// Unix time at which the HEC certificate expires (when TLS is on).
    pub tls_cert_expiry: Option<i64>,
    /// Whether the last configuration reload succeeded.
    pub config_last_reload_successful: bool,
    /// Unix time of the last successful configuration load.
    pub config_last_reload_success_timestamp_seconds: f64,
    /// Client ack channels with state.
    pub client_ack_channels: u64,
    /// Client ack ids handed out and not yet reported true.
    pub client_acks_pending: u64,
    /// Each output.
    pub outputs: Vec<OutputView>,
    /// The charts' points over the last hour.
    pub history: HistoryView,
}

/// What the HEC side knows and the status page shows.
#[derive(Debug, Clone, Default)]
pub struct HecView {
    /// The tokens in force.
    pub tokens: Vec<TokenView>,
    /// Whether the node is draining.
    pub draining: bool,
    /// Client ack channels with state.
    pub client_ack_channels: u64,
    /// Client ack ids not yet reported true.
    pub client_acks_pending: u64,
}

/// A listener.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ListenerView {
    /// `hec` or `metrics`.
    pub name: &'static str,
    /// The bound address.
    pub address: String,
    /// Whether it speaks TLS.
    pub tls: bool,
    /// How callers are authenticated: `token` (HEC), `none`, `basic`,
    /// `client_certificate`.
    pub auth: String,
}

/// A token, without its value.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenView {
    /// Its name.
    pub name: String,
    /// `none`, `durable` or `delivered`.
    pub ack: &'static str,
    /// Whether requests with it are refused (code 1).
    pub disabled: bool,
}

/// An output with its delivery rate.
#[derive(Debug, Clone, Serialize)]
pub struct OutputView {
    /// What its engine published.
    #[serde(flatten)]
    pub status: OutputStatus,
    /// Events delivered per second over the last step.
    pub events_out_per_s: f64,
}

/// The charts.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryView {
    /// Seconds between points.
    pub step_s: f64,
    /// Seconds the charts span.
    pub span_s: f64,
    /// Oldest first.
    pub points: Vec<Point>,
}
