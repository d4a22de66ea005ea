//! The batches an output has built and not yet finished with: which events
//! each carries (as segments of queued records; their bytes only while a
//! send is out, so a resend rebuilds the body from the queue and memory does
//! not grow with batches waiting for acks), and the pure arithmetic of
//! cutting them.

use super::super::source::{Route, Segment};
use super::super::transport::Request;
use crate::queue::RecordId;
use std::collections::HashMap;
use std::time::Instant;

pub use super::super::acks::BatchId;

/// One batch's events.
#[derive(Debug, Clone)]
pub struct BatchState {
    /// Its endpoint.
    pub route: Route,
    /// Its events.
    pub segments: Vec<Segment>,
    /// How many.
    pub events: u64,
    /// When it was first sent.
    pub first_sent: Option<Instant>,
    /// The request while a send of it is out (the transport holds its body
    /// meanwhile anyway): an invalid-event-number answer is cut from it.
    pub sent: Option<Request>,
}

impl BatchState {
    /// A batch of these segments, not sent yet.
    pub fn new(route: Route, segments: Vec<Segment>) -> BatchState {
        BatchState {
            route,
            events: count(&segments),
            segments,
            first_sent: None,
            sent: None,
        }
    }

    /// Takes `record`'s segments out.
    pub fn strip(&mut self, record: RecordId) -> Vec<Segment> {
        let (taken, kept): (Vec<Segment>, Vec<Segment>) =
            self.segments.iter().partition(|s| s.record == record);
        self.segments = kept;
        self.events = count(&self.segments);
        taken
    }

    /// Events of `record` in it.
    pub fn events_of(&self, record: RecordId) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.record == record)
            .map(|s| s.count)
            .sum()
    }
}

/// Events in segments.
pub fn count(segments: &[Segment]) -> u64 {
    segments.iter().map(|s| s.count).sum()
}

/// Splits segments at event offset `at` (counted over all of them).
pub fn split(segments: &[Segment], at: u64) -> (Vec<Segment>, Vec<Segment>) {
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut seen = 0;
    for s in segments {
        if seen + s.count <= at {
            before.push(*s);
        } else if seen >= at {
            after.push(*s);
        } else {
            let k = at - seen;
            before.push(Segment { count: k, ..*s });
            after.push(Segment {
                first: s.first + k,
                count: s.count - k,
                ..*s
            });
        }
        seen += s.count;
    }
    (before, after)
}

/// Batches by id.
#[derive(Debug, Default)]
pub struct Batches {
    map: HashMap<BatchId, BatchState>,
    next: BatchId,
}

impl Batches {
    /// Adds a batch; returns its id.
    pub fn insert(&mut self, state: BatchState) -> BatchId {
        let id = self.next;
        self.next += 1;
        self.map.insert(id, state);
        id
    }

    /// A batch.
    pub fn get(&self, id: BatchId) -> Option<&BatchState> {
        self.map.get(&id)
    }

    /// A batch, to change.
    pub fn get_mut(&mut self, id: BatchId) -> Option<&mut BatchState> {
        self.map.get_mut(&id)
    }

    /// Takes a batch out.
    pub fn remove(&mut self, id: BatchId) -> Option<BatchState> {
        self.map.remove(&id)
    }

    /// Events of `record` in any batch.
    pub fn events_of(&self, record: RecordId) -> u64 {
        self.map.values().map(|b| b.events_of(record)).sum()
    }

    /// Forgets every batch (ids keep growing, so late answers match nothing).
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(record: RecordId, first: u64, count: u64) -> Segment {
        Segment {
            record,
            first,
            count,
        }
    }

    #[test]
    fn segments_split_at_event_offsets() {
        let segs = vec![seg(1, 5, 3), seg(2, 0, 2)];
        let (a, b) = split(&segs, 4);
        assert_eq!(a, vec![seg(1, 5, 3), seg(2, 0, 1)]);
        assert_eq!(b, vec![seg(2, 1, 1)]);
        let (a, b) = split(&segs, 1);
        assert_eq!(a, vec![seg(1, 5, 1)]);
        assert_eq!(b, vec![seg(1, 6, 2), seg(2, 0, 2)]);
        assert_eq!(split(&segs, 0), (vec![], segs.clone()));
        assert_eq!(split(&segs, 5), (segs.clone(), vec![]));
    }

    #[test]
    fn stripping_a_record_recounts() {
        let mut b = BatchState::new(Route::Event, vec![seg(1, 0, 3), seg(2, 0, 2), seg(1, 7, 1)]);
        assert_eq!(b.events, 6);
        assert_eq!(b.events_of(1), 4);
        assert_eq!(b.strip(1), vec![seg(1, 0, 3), seg(1, 7, 1)]);
        assert_eq!((b.events, b.segments.len()), (2, 1));
        let mut all = Batches::default();
        let id = all.insert(b);
        all.insert(BatchState::new(Route::Raw, vec![seg(2, 2, 5)]));
        assert_eq!(all.events_of(2), 7);
        assert!(all.remove(id).is_some() && all.get(id).is_none());
    }
}
