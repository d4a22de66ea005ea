//! Which records the next build job takes. Jobs are whole records from the
//! first one this output has not planned yet, about `max_events` events
//! (or [`MAX_RECORDS_PER_JOB`] records) each, so a record is decoded once
//! and builders work on different records in parallel. Small records wait
//! up to `linger` for company; a record whose read failed is planned again
//! from the event it stopped at once its retry is due.

use crate::queue::{Queue, RecordId};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Records per job at most (many tiny requests still make one job).
pub const MAX_RECORDS_PER_JOB: usize = 256;

/// The planner's answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Build these records, each from the given event on.
    Job(Vec<(RecordId, u64)>),
    /// Nothing to build before this long (lingering, or a retry not yet due).
    Wait(Duration),
    /// Nothing to build until the queue grows.
    Idle,
}

/// Where planning stands for one output.
#[derive(Debug, Default)]
pub struct Planner {
    /// Records below this were planned (or are not this output's to send).
    next: RecordId,
    /// Records to read again from an event on, when due.
    retries: BTreeMap<RecordId, (u64, Instant)>,
}

impl Planner {
    /// Starts at the oldest record.
    pub fn new() -> Planner {
        Planner::default()
    }

    /// The first record not yet planned.
    pub fn position(&self) -> RecordId {
        self.next
    }

    /// Plans `record` again from event `from` at `at`.
    pub fn retry(&mut self, record: RecordId, from: u64, at: Instant) {
        self.retries.insert(record, (from, at));
    }

    /// Drops a pending retry (the record was given up).
    pub fn forget(&mut self, record: RecordId) {
        self.retries.remove(&record);
    }

    /// Starts over from the oldest record (the store was reopened).
    pub fn reset(&mut self) {
        *self = Planner::default();
    }

    /// Plans the next job. `track(record, events)` is called for each record
    /// planned (whole or from a retry) before it is returned.
    #[allow(clippy::too_many_arguments)]
    pub fn plan(
        &mut self,
        queue: &Queue,
        output: &str,
        max_events: u64,
        linger: Duration,
        now: Instant,
        now_ms: u64,
        mut track: impl FnMut(RecordId, u64),
    ) -> Plan {
        if let Some((&record, &(from, _))) = self.retries.iter().find(|(_, (_, at))| *at <= now) {
            self.retries.remove(&record);
            if let Some(events) = queue.events_of(record) {
                track(record, events);
                return Plan::Job(vec![(record, from)]);
            }
        }
        let retry_wait = self
            .retries
            .values()
            .map(|(_, at)| at.saturating_duration_since(now))
            .min();
        let limit = queue.readable_before();
        let mut job = Vec::new();
        let mut events = 0u64;
        let mut first_ms = None;
        let mut last = None;
        for id in queue.ids_from(self.next).take_while(|id| *id < limit) {
            last = Some(id);
            if queue.is_released(id, output) {
                continue;
            }
            let Some(n) = queue.events_of(id) else {
                continue;
            };
            first_ms = first_ms.or_else(|| queue.received_ms(id));
            job.push((id, n));
            events += n;
            if events >= max_events || job.len() >= MAX_RECORDS_PER_JOB {
                break;
            }
        }
        if job.is_empty() {
            // Skipped records (released by this output) are behind us.
            if let Some(id) = last {
                self.next = id + 1;
            }
            return retry_wait.map_or(Plan::Idle, Plan::Wait);
        }
        if events < max_events {
            let age = Duration::from_millis(now_ms.saturating_sub(first_ms.unwrap_or(now_ms)));
            if let Some(wait) = linger.checked_sub(age).filter(|w| !w.is_zero()) {
                return Plan::Wait(retry_wait.map_or(wait, |r| r.min(wait)));
            }
        }
        self.next = last.map_or(self.next, |id| id + 1);
        Plan::Job(
            job.into_iter()
                .map(|(id, n)| {
                    track(id, n);
                    (id, 0)
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{BodyEncoding, DataEndpoint, QueueLimits, RecordMeta};

    const MS: Duration = Duration::from_millis(1);

    async fn queue(events: &[u64], received_ms: u64) -> (tempfile::TempDir, Queue) {
        let dir = tempfile::tempdir().unwrap();
        let limits = QueueLimits::roomy();
        let q = Queue::open(dir.path(), limits).unwrap();
        for n in events {
            let meta = RecordMeta {
                received_ms,
                ..RecordMeta::plain(DataEndpoint::Raw, BodyEncoding::Identity, 1, *n)
            };
            let p = q.append(&meta, b"x").unwrap();
            q.commit(p).await.unwrap();
        }
        (dir, q)
    }

    fn plan(
        p: &mut Planner,
        q: &Queue,
        max: u64,
        linger: Duration,
        now: Instant,
        ms: u64,
    ) -> (Plan, Vec<(RecordId, u64)>) {
        let mut tracked = Vec::new();
        let plan = p.plan(q, "out", max, linger, now, ms, |r, n| tracked.push((r, n)));
        (plan, tracked)
    }

    #[tokio::test]
    async fn jobs_are_whole_records_of_about_max_events() {
        let (_d, q) = queue(&[4, 4, 4, 9, 1], 1_000).await;
        let mut p = Planner::new();
        let now = Instant::now();
        let (j, tracked) = plan(&mut p, &q, 8, Duration::ZERO, now, 1_000);
        assert_eq!(j, Plan::Job(vec![(0, 0), (1, 0)]));
        assert_eq!(tracked, vec![(0, 4), (1, 4)]);
        // A record over the size is one job of its own, never cut.
        assert_eq!(
            plan(&mut p, &q, 8, Duration::ZERO, now, 1_000).0,
            Plan::Job(vec![(2, 0), (3, 0)])
        );
        assert_eq!(
            plan(&mut p, &q, 8, Duration::ZERO, now, 1_000).0,
            Plan::Job(vec![(4, 0)])
        );
        assert_eq!(
            plan(&mut p, &q, 8, Duration::ZERO, now, 1_000).0,
            Plan::Idle
        );
        assert_eq!(p.position(), 5);
    }

    #[tokio::test]
    async fn small_records_linger_and_released_ones_are_skipped() {
        let (_d, q) = queue(&[1, 1, 1], 10_000).await;
        q.release(0, "out", &["out", "other"]).unwrap();
        let mut p = Planner::new();
        let now = Instant::now();
        let linger = 200 * MS;
        // 50 ms old, 3 events < 10: wait the rest of the linger.
        let (j, tracked) = plan(&mut p, &q, 10, linger, now, 10_050);
        assert_eq!(j, Plan::Wait(150 * MS));
        assert!(
            tracked.is_empty(),
            "nothing is tracked before it is planned"
        );
        assert_eq!(
            plan(&mut p, &q, 10, linger, now, 10_200).0,
            Plan::Job(vec![(1, 0), (2, 0)])
        );
    }

    #[tokio::test]
    async fn a_failed_record_is_planned_again_from_where_it_stopped_when_due() {
        let (_d, q) = queue(&[5, 5], 1_000).await;
        let mut p = Planner::new();
        let now = Instant::now();
        assert_eq!(
            plan(&mut p, &q, 100, Duration::ZERO, now, 1_000).0,
            Plan::Job(vec![(0, 0), (1, 0)])
        );
        p.retry(0, 3, now + 100 * MS);
        assert_eq!(
            plan(&mut p, &q, 100, Duration::ZERO, now, 1_000).0,
            Plan::Wait(100 * MS)
        );
        let (j, tracked) = plan(&mut p, &q, 100, Duration::ZERO, now + 100 * MS, 1_000);
        assert_eq!(j, Plan::Job(vec![(0, 3)]));
        assert_eq!(tracked, vec![(0, 5)]);
        p.retry(1, 1, now);
        p.forget(1);
        assert_eq!(
            plan(&mut p, &q, 100, Duration::ZERO, now, 1_000).0,
            Plan::Idle
        );
        p.reset();
        assert_eq!(p.position(), 0);
    }
}
