//! Indexer-acknowledgement bookkeeping for the Splunk output, without I/O:
//! which ack ids each indexer still owes, which batches they cover, which
//! timed out (resend), and when a record's events are all delivered.

use crate::hec::ack::AckReply;
use crate::queue::RecordId;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Identifies a batch the output sent (its events are remembered by the caller).
pub type BatchId = u64;

/// Ack ids pending per indexer (indexers are numbered by their URL's position).
#[derive(Debug, Default)]
pub struct AckTracker {
    pending: HashMap<usize, BTreeMap<u64, Sent>>,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    batch: BatchId,
    at: Instant,
}

/// A batch whose ack did not come in time: to be sent again (possibly a duplicate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut {
    /// The indexer it was sent to.
    pub indexer: usize,
    /// The batch.
    pub batch: BatchId,
}

impl AckTracker {
    /// An empty tracker.
    pub fn new() -> AckTracker {
        AckTracker::default()
    }

    /// Records that `indexer` answered `ack_id` for `batch`. An id already
    /// pending means the indexer started its ids over (a restart lost what
    /// it owed): the batch that held it is returned, to be sent again.
    #[must_use]
    pub fn sent(
        &mut self,
        indexer: usize,
        ack_id: u64,
        batch: BatchId,
        at: Instant,
    ) -> Option<BatchId> {
        self.pending
            .entry(indexer)
            .or_default()
            .insert(ack_id, Sent { batch, at })
            .map(|displaced| displaced.batch)
    }

    /// The ids to poll on `indexer`, oldest first.
    pub fn to_poll(&self, indexer: usize) -> Vec<u64> {
        self.pending
            .get(&indexer)
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Pending ids on `indexer` (for the `sluice_output_pending_acks` gauge).
    pub fn pending(&self, indexer: usize) -> usize {
        self.pending.get(&indexer).map_or(0, BTreeMap::len)
    }

    /// Applies a parsed `/ack` reply; returns the batches now delivered with
    /// their send time. Ids the reply does not mention, or marks false, stay.
    pub fn acked(&mut self, indexer: usize, reply: &AckReply) -> Vec<(BatchId, Instant)> {
        let Some(p) = self.pending.get_mut(&indexer) else {
            return Vec::new();
        };
        let mut done = Vec::new();
        for (id, ok) in &reply.acks {
            if !ok {
                continue;
            }
            if let Some(sent) = id.parse::<u64>().ok().and_then(|id| p.remove(&id)) {
                done.push((sent.batch, sent.at));
            }
        }
        done
    }

    /// Removes and returns every batch whose ack is older than `timeout`.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<TimedOut> {
        let mut out = Vec::new();
        for (&indexer, p) in &mut self.pending {
            p.retain(|_, s| {
                let keep = now.saturating_duration_since(s.at) < timeout;
                if !keep {
                    out.push(TimedOut {
                        indexer,
                        batch: s.batch,
                    });
                }
                keep
            });
        }
        out.sort_by_key(|t| t.batch);
        out
    }

    /// Forgets an indexer's pending ids (its channel was reset); returns their batches to resend.
    pub fn forget_indexer(&mut self, indexer: usize) -> Vec<BatchId> {
        self.pending
            .remove(&indexer)
            .map(|p| p.into_values().map(|s| s.batch).collect())
            .unwrap_or_default()
    }
}

/// Counts delivered events per record, so a record is released exactly when
/// all its events are delivered, whichever batches carried them. With
/// rollups, a record's events also include its rollups, which are known
/// only once a builder has read it: until then it cannot complete.
#[derive(Debug, Default)]
pub struct DeliveryLedger {
    records: BTreeMap<RecordId, Entry>,
    rollups: bool,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    events: u64,
    /// Rollup events (`None`: not yet known).
    rollups: Option<u64>,
    done: u64,
}

impl Entry {
    fn total(&self) -> u64 {
        self.events + self.rollups.unwrap_or(0)
    }

    fn complete(&self) -> bool {
        self.rollups.is_some() && self.done == self.total()
    }
}

impl DeliveryLedger {
    /// An empty ledger; `rollups`: records also carry rollup events.
    pub fn new(rollups: bool) -> DeliveryLedger {
        DeliveryLedger {
            records: BTreeMap::new(),
            rollups,
        }
    }

    /// Starts tracking a record of `events` events (idempotent).
    pub fn track(&mut self, record: RecordId, events: u64) {
        let rollups = (!self.rollups).then_some(0);
        self.records.entry(record).or_insert(Entry {
            events,
            rollups,
            done: 0,
        });
    }

    /// `record` also has `n` rollup events (once: a repeat changes
    /// nothing); true when that completes it.
    pub fn add_rollups(&mut self, record: RecordId, n: u64) -> bool {
        let Some(e) = self.records.get_mut(&record) else {
            return false;
        };
        e.rollups.get_or_insert(n);
        self.finish_if_complete(record)
    }

    /// A record given up before its rollups were known has none.
    pub fn settle_rollups(&mut self, record: RecordId) {
        if let Some(e) = self.records.get_mut(&record) {
            e.rollups.get_or_insert(0);
        }
    }

    /// Counts `n` more events of `record` as delivered; true when the record is complete.
    pub fn delivered(&mut self, record: RecordId, n: u64) -> bool {
        let Some(e) = self.records.get_mut(&record) else {
            return false;
        };
        e.done = (e.done + n).min(e.total());
        self.finish_if_complete(record)
    }

    fn finish_if_complete(&mut self, record: RecordId) -> bool {
        if self.records.get(&record).is_some_and(Entry::complete) {
            self.records.remove(&record);
            true
        } else {
            false
        }
    }

    /// Events of a tracked record not yet counted (rollups as far as known).
    pub fn remaining(&self, record: RecordId) -> Option<u64> {
        self.records.get(&record).map(|e| e.total() - e.done)
    }

    /// Events of a tracked record (rollups as far as known).
    pub fn events_of(&self, record: RecordId) -> Option<u64> {
        self.records.get(&record).map(Entry::total)
    }

    /// The oldest record not yet complete.
    pub fn oldest(&self) -> Option<RecordId> {
        self.records.keys().next().copied()
    }

    /// Records in progress.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing is in progress.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_deliver_batches_once() {
        let mut t = AckTracker::new();
        let t0 = Instant::now();
        assert_eq!(t.sent(0, 0, 100, t0), None);
        assert_eq!(t.sent(0, 1, 101, t0), None);
        assert_eq!(t.sent(1, 0, 102, t0), None);
        assert_eq!(t.to_poll(0), vec![0, 1]);
        let reply = AckReply::from_pairs([(0, true), (1, false), (7, true)]);
        assert_eq!(
            t.acked(0, &reply).iter().map(|d| d.0).collect::<Vec<_>>(),
            vec![100]
        );
        // A repeated true (Splunk forgets after true; a buggy proxy may not) counts once.
        assert!(t.acked(0, &reply).is_empty());
        assert_eq!((t.pending(0), t.pending(1)), (1, 1));
    }

    #[test]
    fn unanswered_acks_time_out_for_resend() {
        let mut t = AckTracker::new();
        let t0 = Instant::now();
        assert_eq!(t.sent(0, 0, 1, t0), None);
        assert_eq!(t.sent(0, 1, 2, t0 + Duration::from_secs(200)), None);
        let late = t0 + Duration::from_secs(301);
        assert_eq!(
            t.expire(late, Duration::from_secs(300)),
            vec![TimedOut {
                indexer: 0,
                batch: 1
            }]
        );
        assert_eq!(t.to_poll(0), vec![1]);
        // A late true for the expired id no longer counts.
        assert!(t.acked(0, &AckReply::from_pairs([(0, true)])).is_empty());
        assert_eq!(t.forget_indexer(0), vec![2]);
    }

    #[test]
    fn a_repeated_ack_id_gives_back_the_batch_that_held_it() {
        let mut t = AckTracker::new();
        let t0 = Instant::now();
        assert_eq!(t.sent(0, 7, 1, t0), None);
        // The indexer restarted and counts from its old ids again.
        assert_eq!(t.sent(0, 7, 2, t0), Some(1));
        let done = t.acked(0, &AckReply::from_pairs([(7, true)]));
        assert_eq!(done.iter().map(|d| d.0).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn records_complete_across_batches() {
        let mut l = DeliveryLedger::new(false);
        l.track(5, 3);
        l.track(6, 1);
        assert!(!l.delivered(5, 2));
        assert_eq!(l.oldest(), Some(5));
        assert!(l.delivered(6, 1));
        assert!(l.delivered(5, 1));
        assert!(!l.delivered(5, 1), "already released");
        assert!(l.is_empty());
    }

    #[test]
    fn with_rollups_a_record_completes_only_once_they_are_known_and_delivered() {
        let mut l = DeliveryLedger::new(true);
        l.track(1, 3);
        assert!(!l.delivered(1, 3), "rollups not known yet");
        assert_eq!(l.remaining(1), Some(0));
        assert!(!l.add_rollups(1, 2));
        assert_eq!(l.remaining(1), Some(2));
        assert!(!l.add_rollups(1, 5), "a repeat changes nothing");
        assert!(l.delivered(1, 2));
        // No samples, no rollups: known as none completes it.
        l.track(2, 4);
        assert!(!l.delivered(2, 4));
        assert!(l.add_rollups(2, 0));
        // Given up before it was read through.
        l.track(3, 4);
        l.settle_rollups(3);
        assert!(l.delivered(3, 4));
        assert!(l.is_empty());
    }
}
