//! Which destination gets the next request: round robin over destinations
//! whose circuit is closed. A failure opens a destination's circuit for a
//! jittered exponential backoff (or the `Retry-After` it asked for); when
//! that runs out the circuit is half open: one health probe decides whether
//! it closes or opens again. A pure state machine over `Instant`s the caller
//! passes in, so every transition is tested without waiting.

use std::time::{Duration, Instant};

#[derive(Debug, Default, Clone, Copy)]
struct Dest {
    /// Consecutive failures (sends or probes).
    failures: u32,
    /// Open until then; `None`: closed.
    open_until: Option<Instant>,
    /// A probe is out: half open.
    probing: bool,
}

/// The circuits of one output's destinations.
#[derive(Debug)]
pub struct Breaker {
    dests: Vec<Dest>,
    next: usize,
    retry_initial: Duration,
    retry_max: Duration,
}

/// What a failure did to a destination's circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// How long it stays open.
    pub wait: Duration,
    /// Whether it was closed before (worth a warning; later ones are not).
    pub first: bool,
}

/// Jittered exponential backoff: `initial · 2^failures` capped at `max`,
/// times `jitter` ∈ [0.75, 1.25) (the caller draws it; tests fix it), never over `max`.
pub fn backoff(initial: Duration, max: Duration, failures: u32, jitter: f64) -> Duration {
    let exp = initial.saturating_mul(1u32 << failures.min(16));
    exp.min(max).mul_f64(jitter.clamp(0.0, 2.0)).min(max)
}

/// A jitter factor in [0.75, 1.25).
pub fn jitter() -> f64 {
    rand::random::<f64>() * 0.5 + 0.75
}

impl Breaker {
    /// `n` destinations, all closed.
    pub fn new(n: usize, retry_initial: Duration, retry_max: Duration) -> Breaker {
        Breaker {
            dests: vec![Dest::default(); n],
            next: 0,
            retry_initial,
            retry_max,
        }
    }

    /// Number of destinations.
    pub fn len(&self) -> usize {
        self.dests.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.dests.is_empty()
    }

    /// The next closed destination, round robin.
    pub fn pick(&mut self) -> Option<usize> {
        let n = self.dests.len();
        let i = (0..n)
            .map(|k| (self.next + k) % n)
            .find(|&i| self.dests[i].open_until.is_none())?;
        self.next = (i + 1) % n;
        Some(i)
    }

    /// Whether some destination is closed.
    pub fn any_closed(&self) -> bool {
        self.dests.iter().any(|d| d.open_until.is_none())
    }

    /// Destinations whose backoff ran out: each is now half open and must be
    /// probed; report the result with [`Breaker::probed`].
    pub fn due_probes(&mut self, now: Instant) -> Vec<usize> {
        let mut due = Vec::new();
        for (i, d) in self.dests.iter_mut().enumerate() {
            if !d.probing && d.open_until.is_some_and(|t| t <= now) {
                d.probing = true;
                due.push(i);
            }
        }
        due
    }

    /// How long until a probe is due (None when none is waiting).
    pub fn next_due(&self, now: Instant) -> Option<Duration> {
        self.dests
            .iter()
            .filter(|d| !d.probing)
            .filter_map(|d| d.open_until)
            .map(|t| t.saturating_duration_since(now))
            .min()
    }

    /// A request got an answer that is not a transient failure.
    pub fn succeeded(&mut self, dest: usize) {
        if let Some(d) = self.dests.get_mut(dest) {
            *d = Dest::default();
        }
    }

    /// A request failed transiently: the circuit opens for a backoff, or for
    /// `retry_after` when the destination asked (which may exceed `retry_max`).
    pub fn failed(
        &mut self,
        dest: usize,
        now: Instant,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Opened {
        let (initial, max) = (self.retry_initial, self.retry_max);
        let Some(d) = self.dests.get_mut(dest) else {
            return Opened {
                wait: initial,
                first: false,
            };
        };
        let first = d.open_until.is_none();
        d.failures = d.failures.saturating_add(1);
        let wait = retry_after.unwrap_or_else(|| backoff(initial, max, d.failures - 1, jitter));
        // A later answer must not shorten an open circuit's wait.
        let until = now + wait;
        d.open_until = Some(d.open_until.map_or(until, |t| t.max(until)));
        Opened { wait, first }
    }

    /// The half-open probe's result: healthy closes the circuit; else it
    /// opens again for a longer backoff.
    pub fn probed(&mut self, dest: usize, now: Instant, healthy: bool, jitter: f64) {
        let (initial, max) = (self.retry_initial, self.retry_max);
        let Some(d) = self.dests.get_mut(dest) else {
            return;
        };
        if healthy {
            *d = Dest::default();
            return;
        }
        d.probing = false;
        d.failures = d.failures.saturating_add(1);
        d.open_until = Some(now + backoff(initial, max, d.failures - 1, jitter));
    }

    /// Whether `dest` takes requests now.
    pub fn is_closed(&self, dest: usize) -> bool {
        self.dests.get(dest).is_some_and(|d| d.open_until.is_none())
    }

    /// The `sluice_output_indexer_up` gauge: 0 while a destination waits
    /// out its backoff, 1 when closed or half open (its backoff is over and
    /// it is being tried again).
    pub fn is_up(&self, dest: usize, now: Instant) -> bool {
        self.dests
            .get(dest)
            .is_some_and(|d| d.open_until.is_none_or(|t| t <= now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn breaker(n: usize) -> Breaker {
        Breaker::new(n, 100 * MS, 5_000 * MS)
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let (i, m) = (100 * MS, 5_000 * MS);
        assert_eq!(backoff(i, m, 0, 1.0), 100 * MS);
        assert_eq!(backoff(i, m, 3, 1.0), 800 * MS);
        assert_eq!(backoff(i, m, 10, 1.0), m);
        assert_eq!(backoff(i, m, 40, 1.0), m, "no overflow");
        assert_eq!(backoff(i, m, 0, 0.75), 75 * MS);
        assert_eq!(backoff(i, m, 10, 1.25), m, "jitter never passes the cap");
    }

    #[test]
    fn round_robin_skips_open_circuits() {
        let mut b = breaker(3);
        let t0 = Instant::now();
        assert_eq!(
            (b.pick(), b.pick(), b.pick(), b.pick()),
            (Some(0), Some(1), Some(2), Some(0))
        );
        b.failed(1, t0, None, 1.0);
        assert_eq!((b.pick(), b.pick(), b.pick()), (Some(2), Some(0), Some(2)));
        assert!(!b.is_closed(1) && b.is_closed(0));
        assert!(!b.is_up(1, t0) && b.is_up(1, t0 + Duration::from_secs(1)));
        b.failed(0, t0, None, 1.0);
        b.failed(2, t0, None, 1.0);
        assert_eq!(b.pick(), None);
        assert!(!b.any_closed());
    }

    #[test]
    fn an_open_circuit_is_probed_once_its_backoff_ran_out() {
        let mut b = breaker(2);
        let t0 = Instant::now();
        let opened = b.failed(0, t0, None, 1.0);
        assert_eq!(
            opened,
            Opened {
                wait: 100 * MS,
                first: true
            }
        );
        // A second failure answered while open is not a new warning and
        // extends the wait with the next step of the backoff.
        assert_eq!(
            b.failed(0, t0, None, 1.0),
            Opened {
                wait: 200 * MS,
                first: false
            }
        );
        assert_eq!(b.next_due(t0), Some(200 * MS));
        assert!(b.due_probes(t0 + 199 * MS).is_empty());
        assert_eq!(b.due_probes(t0 + 200 * MS), vec![0]);
        // Half open: not probed twice, still not picked, no wait reported.
        assert!(b.due_probes(t0 + 300 * MS).is_empty());
        assert_eq!(b.next_due(t0 + 300 * MS), None);
        assert_eq!((b.pick(), b.pick()), (Some(1), Some(1)));
        // A failed probe opens it again, longer.
        b.probed(0, t0 + 300 * MS, false, 1.0);
        assert_eq!(b.next_due(t0 + 300 * MS), Some(400 * MS));
        assert_eq!(b.due_probes(t0 + 700 * MS), vec![0]);
        b.probed(0, t0 + 700 * MS, true, 1.0);
        assert!(b.is_closed(0));
        // Closed again: the backoff starts over.
        assert_eq!(b.failed(0, t0 + 800 * MS, None, 1.0).wait, 100 * MS);
    }

    #[test]
    fn retry_after_sets_the_wait_even_past_retry_max() {
        let mut b = breaker(1);
        let t0 = Instant::now();
        let o = b.failed(0, t0, Some(Duration::from_secs(30)), 1.0);
        assert_eq!(o.wait, Duration::from_secs(30));
        // A shorter answer later does not cut the wait short.
        b.failed(0, t0, Some(Duration::from_secs(1)), 1.0);
        assert_eq!(b.next_due(t0), Some(Duration::from_secs(30)));
    }

    #[test]
    fn success_closes_and_resets() {
        let mut b = breaker(1);
        let t0 = Instant::now();
        b.failed(0, t0, None, 1.0);
        b.failed(0, t0, None, 1.0);
        b.succeeded(0);
        assert!(b.is_closed(0));
        assert_eq!(b.failed(0, t0, None, 1.0).wait, 100 * MS);
    }
}
