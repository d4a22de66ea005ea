//! When to stop retrying a record that cannot be read. A read can fail for a
//! moment (the store is being reopened) or for good (a damaged page). A
//! record that keeps failing must not hold back everything behind it: after
//! a few failures spread over a short while it is given up as corrupt.

use crate::queue::RecordId;
use std::time::{Duration, Instant};

/// Failures of one record before it is given up.
const FAILURES: u32 = 3;
/// …spread over at least this long, so one slow moment is not enough.
const SPREAD: Duration = Duration::from_secs(1);

/// The record that failed last, how often and since when.
#[derive(Debug, Default)]
pub struct ReadFailures {
    last: Option<(RecordId, Instant, u32)>,
}

impl ReadFailures {
    /// No failures yet.
    pub fn new() -> ReadFailures {
        ReadFailures::default()
    }

    /// Records a failed read of `record` at `now`; true when it should be
    /// given up as corrupt.
    pub fn failed(&mut self, record: RecordId, now: Instant) -> bool {
        let (first, count) = match self.last {
            Some((r, first, n)) if r == record => (first, n + 1),
            _ => (now, 1),
        };
        if count >= FAILURES && now.duration_since(first) >= SPREAD {
            self.last = None;
            return true;
        }
        self.last = Some((record, first, count));
        false
    }

    /// A read succeeded: earlier failures were transient.
    pub fn succeeded(&mut self, record: RecordId) {
        if self.last.is_some_and(|(r, _, _)| r == record) {
            self.last = None;
        }
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
    fn another_record_or_a_success_starts_over() {
        let t0 = Instant::now();
        let mut f = ReadFailures::new();
        f.failed(1, t0);
        f.failed(1, t0 + Duration::from_millis(600));
        assert!(!f.failed(2, t0 + Duration::from_secs(2)));
        f.failed(2, t0 + Duration::from_secs(3));
        f.succeeded(2);
        assert!(!f.failed(2, t0 + Duration::from_secs(5)));
    }
}
