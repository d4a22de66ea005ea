//! Which records the next build job takes. Jobs are whole records from the
//! first one this output has not planned yet, about [`JOB_BATCHES`] ×
//! `max_events` events each, so a record is decoded once
//! and builders work on different records in parallel. Small records wait
//! up to `linger` for company; a record whose read failed is planned again
//! from the event it stopped at once its retry is due.

use crate::queue::{Queue, RecordId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A job holds about this many full batches (`max_events` each), so the
/// partial batch at a job's end is one request in this many.
pub const JOB_BATCHES: u64 = 2;

/// Records per job at most, whatever their events (bounds one planning pass).
pub const MAX_RECORDS_PER_JOB: usize = 65_536;

/// When a due retry cannot read its record's count, it is tried again after this.
const RETRY_AGAIN: Duration = Duration::from_secs(1);

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
    /// planned (whole or from a retry) whose event count is known.
    #[allow(clippy::too_many_arguments)]
    pub fn plan(
        &mut self,
        queue: &Arc<Queue>,
        output: &str,
        max_events: u64,
        linger: Duration,
        now: Instant,
        now_ms: u64,
        mut track: impl FnMut(RecordId, u64),
    ) -> Plan {
        if let Some((&record, &(from, _))) = self.retries.iter().find(|(_, (_, at))| *at <= now) {
            self.retries.remove(&record);
            match known_events(queue, record) {
                Some(events) => {
                    track(record, events);
                    return Plan::Job(vec![(record, from)]);
                }
                // Not readable right now (a store being reopened): later.
                None if queue.contains(record) => {
                    self.retries.insert(record, (from, now + RETRY_AGAIN));
                }
                None => {}
            }
        }
        let retry_wait = self
            .retries
            .values()
            .map(|(_, at)| at.saturating_duration_since(now))
            .min();
        let limit = queue.readable_before();
        let target = max_events.saturating_mul(JOB_BATCHES);
        let mut job: Vec<(RecordId, Option<u64>)> = Vec::new();
        let mut events = 0u64;
        let mut first_ms = None;
        let mut last = None;
        for id in queue.ids_from(self.next).take_while(|id| *id < limit) {
            if queue.is_released(id, output) {
                last = Some(id);
                continue;
            }
            let n = known_events(queue, id);
            if n.is_none() && !job.is_empty() {
                // Planned alone next time, so its failure stays its own.
                break;
            }
            last = Some(id);
            first_ms = first_ms.or_else(|| queue.received_ms(id));
            job.push((id, n));
            events += n.unwrap_or(0);
            if n.is_none() || events >= target || job.len() >= MAX_RECORDS_PER_JOB {
                break;
            }
        }
        let Some(&(first, _)) = job.first() else {
            // Skipped records (released by this output) are behind us.
            if let Some(id) = last {
                self.next = id + 1;
            }
            return retry_wait.map_or(Plan::Idle, Plan::Wait);
        };
        if events < max_events && job.iter().all(|(_, n)| n.is_some()) {
            let age = Duration::from_millis(now_ms.saturating_sub(first_ms.unwrap_or(now_ms)));
            if let Some(wait) = linger.checked_sub(age).filter(|w| !w.is_zero()) {
                // Released records before the first are not scanned again.
                self.next = first;
                return Plan::Wait(retry_wait.map_or(wait, |r| r.min(wait)));
            }
        }
        self.next = last.map_or(self.next, |id| id + 1);
        Plan::Job(
            job.into_iter()
                .map(|(id, n)| {
                    // A record whose count cannot be read is not tracked: its
                    // job reports the read failure, which gives it up in time.
                    if let Some(n) = n {
                        track(id, n);
                    }
                    (id, 0)
                })
                .collect(),
        )
    }
}

/// A record's event count: from its index entry, else from its header.
fn known_events(queue: &Arc<Queue>, id: RecordId) -> Option<u64> {
    queue
        .events_of(id)
        .ok()
        .flatten()
        .or_else(|| queue.body_reader(id).ok().flatten().map(|(m, _)| m.events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{BodyEncoding, DataEndpoint, QueueLimits, RecordMeta};

    const MS: Duration = Duration::from_millis(1);

    async fn queue(events: &[u64], received_ms: u64) -> (tempfile::TempDir, Arc<Queue>) {
        let dir = tempfile::tempdir().unwrap();
        let limits = QueueLimits::roomy();
        let q = Arc::new(Queue::open(dir.path(), limits).unwrap());
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
        q: &Arc<Queue>,
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
    async fn jobs_are_whole_records_of_a_few_batches() {
        let (_d, q) = queue(&[4, 4, 4, 9, 1], 1_000).await;
        let mut p = Planner::new();
        let now = Instant::now();
        // max_events 4: a job holds JOB_BATCHES × 4 = 8 events or more.
        let (j, tracked) = plan(&mut p, &q, 4, Duration::ZERO, now, 1_000);
        assert_eq!(j, Plan::Job(vec![(0, 0), (1, 0)]));
        assert_eq!(tracked, vec![(0, 4), (1, 4)]);
        // A record is never cut between jobs.
        assert_eq!(
            plan(&mut p, &q, 4, Duration::ZERO, now, 1_000).0,
            Plan::Job(vec![(2, 0), (3, 0)])
        );
        assert_eq!(
            plan(&mut p, &q, 4, Duration::ZERO, now, 1_000).0,
            Plan::Job(vec![(4, 0)])
        );
        assert_eq!(
            plan(&mut p, &q, 4, Duration::ZERO, now, 1_000).0,
            Plan::Idle
        );
        assert_eq!(p.position(), 5);
    }

    #[tokio::test]
    async fn single_event_requests_still_fill_whole_batches() {
        let (_d, q) = queue(&[1; 300], 1_000).await;
        let mut p = Planner::new();
        let (j, _) = plan(&mut p, &q, 100, Duration::ZERO, Instant::now(), 1_000);
        let Plan::Job(job) = j else { panic!("{j:?}") };
        assert_eq!(job.len(), 200, "two full batches of single-event requests");
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
