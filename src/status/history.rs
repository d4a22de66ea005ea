//! The last hour of the status page's charts: one point per step, in a
//! ring, so memory is fixed whatever the uptime.

use serde::Serialize;
use std::collections::VecDeque;
use std::time::Duration;

/// Time between points.
pub const STEP: Duration = Duration::from_secs(10);

/// Points kept: one hour.
pub const POINTS: usize = 360;

/// One sample of the charted values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Unix time, seconds.
    pub time: f64,
    /// Events accepted per second over the step before it.
    pub events_in_per_s: f64,
    /// Events in the queue.
    pub queue_events: u64,
    /// Age of the oldest queued record, seconds.
    pub queue_oldest_age_s: f64,
}

/// The last [`POINTS`] points, oldest first.
#[derive(Debug, Default, Clone)]
pub struct History {
    points: VecDeque<Point>,
    /// Events accepted (all tokens) and when, at the last point.
    last: Option<(f64, u64)>,
}

impl History {
    /// Adds a point at `time` from the running total of accepted events;
    /// the rate is over the time since the previous point (none for the
    /// first: a rate needs two counts).
    pub fn record(
        &mut self,
        time: f64,
        events_in: u64,
        queue_events: u64,
        queue_oldest_age_s: f64,
    ) {
        if let Some((t0, n0)) = self.last {
            let secs = time - t0;
            let rate = if secs > 0.0 {
                events_in.saturating_sub(n0) as f64 / secs
            } else {
                0.0
            };
            if self.points.len() == POINTS {
                self.points.pop_front();
            }
            self.points.push_back(Point {
                time,
                events_in_per_s: rate,
                queue_events,
                queue_oldest_age_s,
            });
        }
        self.last = Some((time, events_in));
    }

    /// Oldest first.
    pub fn points(&self) -> Vec<Point> {
        self.points.iter().copied().collect()
    }

    /// The newest rate (0 before there is one).
    pub fn events_in_per_s(&self) -> f64 {
        self.points.back().map_or(0.0, |p| p.events_in_per_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_step_and_the_ring_keeps_an_hour() {
        let mut h = History::default();
        h.record(0.0, 0, 0, 0.0);
        assert!(h.points().is_empty(), "one count makes no rate");
        h.record(10.0, 500, 7, 1.5);
        assert_eq!(
            h.points(),
            [Point {
                time: 10.0,
                events_in_per_s: 50.0,
                queue_events: 7,
                queue_oldest_age_s: 1.5
            }]
        );
        for i in 2..=(POINTS as u64 + 10) {
            h.record(i as f64 * 10.0, 500 * i, 0, 0.0);
        }
        let p = h.points();
        assert_eq!(p.len(), POINTS);
        assert_eq!(p.last().unwrap().time, (POINTS as f64 + 10.0) * 10.0);
        assert_eq!(h.events_in_per_s(), 50.0);
    }

    #[test]
    fn a_counter_that_went_back_gives_zero_not_a_wrap() {
        let mut h = History::default();
        h.record(0.0, 100, 0, 0.0);
        h.record(10.0, 50, 0, 0.0);
        assert_eq!(h.events_in_per_s(), 0.0);
    }
}
