//! What each output shows on the status page (`GET /`, `/api/status`): a
//! snapshot its engine publishes every second, with its last errors. The
//! keys are those of the `sluice:stats` event where the two say the same
//! thing (public: README, "Status page").

use super::stats::IndexerStats;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// Errors kept per output.
pub const LAST_ERRORS: usize = 10;

/// One thing that went wrong.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorNote {
    /// Unix time, seconds.
    pub time: f64,
    /// The destination concerned, when there is one.
    pub indexer: Option<String>,
    /// What happened (an indexer's answer is cut to 200 bytes).
    pub error: String,
}

/// The last errors of an output, newest first.
#[derive(Debug, Default, Clone)]
pub struct LastErrors(VecDeque<ErrorNote>);

impl LastErrors {
    /// Notes an error now.
    pub fn note(&mut self, indexer: Option<&str>, error: impl Into<String>) {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.0.push_front(ErrorNote {
            time,
            indexer: indexer.map(str::to_string),
            error: error.into(),
        });
        self.0.truncate(LAST_ERRORS);
    }

    /// Newest first.
    pub fn to_vec(&self) -> Vec<ErrorNote> {
        self.0.iter().cloned().collect()
    }
}

/// One output as its engine last saw it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutputStatus {
    /// The output's name.
    pub output: String,
    /// `splunk`, `file` or `s3`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Events delivered since start.
    pub events_out: u64,
    /// Events sent again since start.
    pub resent: u64,
    /// Events dead-lettered since start.
    pub dead_lettered: u64,
    /// Dead letters of this output held now.
    pub dead_letters: u64,
    /// Records this output gave up as unreadable since start.
    pub corrupt_records: u64,
    /// Age of the oldest event this output has not delivered, seconds.
    pub oldest_undelivered_age_s: f64,
    /// Whether the output is paused (the indexer refused its token).
    pub paused: bool,
    /// Destinations whose circuit is closed.
    pub indexers_up: usize,
    /// Destinations configured.
    pub indexers_total: usize,
    /// Each destination.
    pub indexers: Vec<IndexerStats>,
    /// The last errors, newest first.
    pub last_errors: Vec<ErrorNote>,
}

/// Every output's latest snapshot, by name.
#[derive(Debug, Default)]
pub struct OutputBoard(Mutex<BTreeMap<String, OutputStatus>>);

impl OutputBoard {
    /// Replaces the output's snapshot.
    pub fn publish(&self, status: OutputStatus) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(status.output.clone(), status);
    }

    /// Every output's snapshot, by name.
    pub fn all(&self) -> Vec<OutputStatus> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_errors_keep_the_newest_ten() {
        let mut e = LastErrors::default();
        for i in 0..15 {
            e.note(Some("https://ix"), format!("e{i}"));
        }
        let v = e.to_vec();
        assert_eq!(v.len(), LAST_ERRORS);
        assert_eq!(v[0].error, "e14");
        assert_eq!(v[9].error, "e5");
    }
}
