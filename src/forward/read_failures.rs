//! When to stop retrying a record that cannot be read. A read can fail for a
//! moment (the store is being reopened) or for good (a damaged page). A
//! record that keeps failing must not hold back everything behind it: after
//! a few failures spread over a short while it is given up as corrupt.

use crate::queue::RecordId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Failures of one record before it is given up.
const FAILURES: u32 = 3;
/// …spread over at least this long, so one slow moment is not enough.
const SPREAD: Duration = Duration::from_secs(1);

/// Per record that failed and is not yet given up: since when, how often.
/// Builders read several records at once, so failures of different records
/// interleave and are counted apart.
#[derive(Debug, Default)]
pub struct ReadFailures {
    failing: HashMap<RecordId, (Instant, u32)>,
}

impl ReadFailures {
    /// No failures yet.
    pub fn new() -> ReadFailures {
        ReadFailures::default()
    }

    /// Records a failed read of `record` at `now`; true when it should be
    /// given up as corrupt.
    pub fn failed(&mut self, record: RecordId, now: Instant) -> bool {
        let (first, count) = self.failing.entry(record).or_insert((now, 0));
        *count += 1;
        if *count >= FAILURES && now.duration_since(*first) >= SPREAD {
            self.failing.remove(&record);
            return true;
        }
        false
    }

    /// The record was read whole, or left the queue: forget its failures.
    pub fn forget(&mut self, record: RecordId) {
        self.failing.remove(&record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_after_repeated_failures_over_a_second() {
        let t0 = Instant::now();
        let mut f = ReadFailures::new();
        assert!(!f.failed(7, t0));
        assert!(!f.failed(7, t0 + Duration::from_millis(100)));
        assert!(
            !f.failed(7, t0 + Duration::from_millis(200)),
            "three quick failures are not yet enough"
        );
        assert!(f.failed(7, t0 + Duration::from_millis(1200)));
        assert!(
            !f.failed(7, t0 + Duration::from_millis(1300)),
            "counting starts over"
        );
    }

    #[test]
    fn interleaved_records_are_counted_apart_and_forgetting_starts_over() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut f = ReadFailures::new();
        // Two damaged records read by parallel builders fail in turn.
        for k in 0..2 {
            assert!(!f.failed(1, t0 + ms(600 * k)));
            assert!(!f.failed(2, t0 + ms(600 * k + 1)));
        }
        assert!(f.failed(1, t0 + ms(1200)));
        assert!(f.failed(2, t0 + ms(1201)));
        f.failed(3, t0);
        f.failed(3, t0 + ms(600));
        f.forget(3);
        assert!(!f.failed(3, t0 + Duration::from_secs(5)));
    }
}
