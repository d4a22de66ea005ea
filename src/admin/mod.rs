//! The admin API contract: a Unix socket in the data dir (mode 0600, the
//! service user only), never on the network. The running Sluice serves it
//! (`ingest::serve_admin`); the CLI asks it (`client`) because sled lets only
//! one process open the queue. These paths and JSON shapes are public: the
//! CLI of one version talks to the server of the same version.

pub mod client;

use crate::queue::DeadLetter;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The socket's file name in the data dir.
pub const SOCKET_FILE: &str = "admin.sock";

/// `GET`: queue totals ([`crate::queue::QueueStats`]).
pub const QUEUE_STATS_PATH: &str = "/admin/queue/stats";
/// `GET`: read every record back ([`crate::forward::verify::VerifyReport`]).
pub const QUEUE_VERIFY_PATH: &str = "/admin/queue/verify";
/// `GET ?seq=&output=`: dead letters (`[SeqLetter]`).
pub const DEAD_PATH: &str = "/admin/dead";
/// `POST ?seq=&output=`: replay dead letters ([`Replayed`]).
pub const DEAD_REPLAY_PATH: &str = "/admin/dead/replay";
/// `POST ?seq=&output=`: delete dead letters ([`Purged`]).
pub const DEAD_PURGE_PATH: &str = "/admin/dead/purge";

/// `POST`: read the config again and put what can change live in force
/// ([`Reloaded`]; HTTP 500 with [`ApiError`] when it was refused).
pub const RELOAD_PATH: &str = "/admin/reload";
/// `POST ?wait_seconds=`: start the drain phase and wait up to that long
/// for the queue to empty ([`Drained`]); the node exits once it is empty.
pub const DRAIN_PATH: &str = "/admin/drain";

/// The admin socket of a data dir.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// A dead letter with its sequence number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeqLetter {
    /// Sequence number (for `show`, `replay`, `purge`).
    pub seq: u64,
    /// The letter.
    #[serde(flatten)]
    pub letter: DeadLetter,
}

/// Which dead letters a request is about (`None`: any).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Select {
    /// One dead letter.
    pub seq: Option<u64>,
    /// One output's dead letters.
    pub output: Option<String>,
}

impl Select {
    /// The query string (with its `?`), empty when nothing is selected.
    pub fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(s) = self.seq {
            q.append_pair("seq", &s.to_string());
        }
        if let Some(o) = &self.output {
            q.append_pair("output", o);
        }
        let q = q.finish();
        if q.is_empty() {
            q
        } else {
            format!("?{q}")
        }
    }
}

/// Answer of [`DEAD_REPLAY_PATH`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Replayed {
    /// Dead letters queued again.
    pub replayed: u64,
}

/// Answer of [`DEAD_PURGE_PATH`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Purged {
    /// Dead letters deleted.
    pub purged: u64,
}

/// Answer of any admin path that failed (HTTP 500).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong.
    pub error: String,
}

/// Answer of [`RELOAD_PATH`]: what the reload changed. Token names only,
/// never values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reloaded {
    /// Tokens in force now (including disabled ones).
    pub tokens: usize,
    /// Token names that are new.
    pub tokens_added: Vec<String>,
    /// Token names that are gone: their requests now answer 403 code 4.
    pub tokens_removed: Vec<String>,
    /// Token names whose settings or value changed (`disabled` included).
    pub tokens_changed: Vec<String>,
    /// Whether the HEC certificate and key were read again.
    pub tls_reloaded: bool,
    /// Unix time at which the certificate in force expires.
    pub tls_cert_expiry: Option<i64>,
    /// Whether enrichment is on after the reload.
    pub enrichment: bool,
    /// Networks of the asset table in force.
    pub asset_networks: usize,
    /// Networks of `server.allow_cidrs` in force (0: any peer).
    pub allow_cidrs: usize,
    /// Changed keys that take effect only after a restart (they are not
    /// applied; the running values stay).
    pub restart_needed: Vec<String>,
}

/// Answer of [`DRAIN_PATH`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Drained {
    /// Whether the queue was empty when answering: the node is stopping.
    pub empty: bool,
    /// Records still queued.
    pub records: u64,
    /// Events still queued.
    pub events: u64,
    /// Age of the oldest queued record.
    pub oldest_age_seconds: f64,
}
