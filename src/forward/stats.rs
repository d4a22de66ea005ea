//! `sluice:stats`: the event each `splunk` output sends its own indexers
//! every `stats_interval`, so the Splunk app can show the appliance's
//! health next to the data it carries. It goes straight to an indexer, not
//! through the queue: it describes the queue, and a stats event waiting
//! behind a backlog would arrive when it no longer says anything. Its keys
//! are public (README, "sluice:stats").

use serde::Serialize;
use std::time::{Duration, Instant};

/// The sourcetype of the event.
pub const SOURCETYPE: &str = "sluice:stats";

/// One indexer of the output.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IndexerStats {
    /// Its base URL.
    pub url: String,
    /// Whether its circuit is closed (it takes requests).
    pub up: bool,
    /// Batches sent to it whose ack is not true yet.
    pub pending_acks: u64,
}

/// The event's fields.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stats {
    /// Sluice's version.
    pub version: &'static str,
    /// The node's hostname.
    pub node: String,
    /// The output's name.
    pub output: String,
    /// Seconds the rates are measured over (the time since the previous event).
    pub interval_s: f64,
    /// Seconds since the output started.
    pub uptime_s: f64,
    /// Events this node accepted since it started, all tokens.
    pub events_in: u64,
    /// Events accepted per second over `interval_s`.
    pub events_in_per_s: f64,
    /// Events this output delivered since it started.
    pub events_out: u64,
    /// Events delivered per second over `interval_s`.
    pub events_out_per_s: f64,
    /// Events this output sent again since it started (ack timeouts).
    pub resent: u64,
    /// Events this output dead-lettered since it started.
    pub dead_lettered: u64,
    /// Dead letters of this output held now (`sluice queue dead list`).
    pub dead_letters: u64,
    /// Records in the queue.
    pub queue_records: u64,
    /// Events in the queue.
    pub queue_events: u64,
    /// Stored bytes of the queue.
    pub queue_bytes: u64,
    /// Age of the oldest queued record, seconds.
    pub queue_oldest_age_s: f64,
    /// Whether the queue accepts writes (false after a disk error until it heals).
    pub queue_writable: bool,
    /// Indexers whose circuit is closed.
    pub indexers_up: usize,
    /// Indexers configured.
    pub indexers_total: usize,
    /// Each indexer.
    pub indexers: Vec<IndexerStats>,
}

/// Counters that rates are computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counts {
    /// Events accepted (all tokens).
    pub events_in: u64,
    /// Events this output delivered.
    pub events_out: u64,
}

/// When the next event is due, and the counts at the last one.
#[derive(Debug)]
pub struct StatsClock {
    interval: Duration,
    started: Instant,
    last: Instant,
    counts: Option<Counts>,
}

/// What the clock says about an event being sent now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick {
    /// Seconds since the previous event (or the start).
    pub interval_s: f64,
    /// Seconds since the start.
    pub uptime_s: f64,
    /// Events accepted per second since then.
    pub events_in_per_s: f64,
    /// Events delivered per second since then.
    pub events_out_per_s: f64,
}

impl StatsClock {
    /// A clock whose first event is due `interval` after `now`.
    pub fn new(interval: Duration, now: Instant) -> StatsClock {
        StatsClock {
            interval,
            started: now,
            last: now,
            counts: None,
        }
    }

    /// Whether an event is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) >= self.interval
    }

    /// Records an event at `now` with `counts`; rates are over the time
    /// since the previous one (the first one's since the start, from zero).
    pub fn tick(&mut self, now: Instant, counts: Counts) -> Tick {
        let secs = now.saturating_duration_since(self.last).as_secs_f64();
        let before = self.counts.unwrap_or(Counts {
            events_in: 0,
            events_out: 0,
        });
        let rate = |a: u64, b: u64| {
            if secs > 0.0 {
                a.saturating_sub(b) as f64 / secs
            } else {
                0.0
            }
        };
        let t = Tick {
            interval_s: secs,
            uptime_s: now.saturating_duration_since(self.started).as_secs_f64(),
            events_in_per_s: rate(counts.events_in, before.events_in),
            events_out_per_s: rate(counts.events_out, before.events_out),
        };
        self.last = now;
        self.counts = Some(counts);
        t
    }
}

/// The HEC `/event` body carrying `stats`: `time` in epoch seconds, `host`,
/// `source` `sluice`, sourcetype [`SOURCETYPE`], `index` when the output
/// overrides it.
pub fn hec_event(stats: &Stats, time: f64, host: &str, index: Option<&str>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        time: f64,
        host: &'a str,
        source: &'a str,
        sourcetype: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        index: Option<&'a str>,
        event: &'a Stats,
    }
    serde_json::to_vec(&Envelope {
        time: (time * 1000.0).round() / 1000.0,
        host,
        source: "sluice",
        sourcetype: SOURCETYPE,
        index,
        event: stats,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_over_the_time_since_the_previous_event() {
        let t0 = Instant::now();
        let mut c = StatsClock::new(Duration::from_secs(60), t0);
        assert!(!c.due(t0 + Duration::from_secs(59)));
        assert!(c.due(t0 + Duration::from_secs(60)));
        let first = c.tick(
            t0 + Duration::from_secs(60),
            Counts {
                events_in: 600,
                events_out: 120,
            },
        );
        assert_eq!((first.interval_s, first.uptime_s), (60.0, 60.0));
        assert_eq!((first.events_in_per_s, first.events_out_per_s), (10.0, 2.0));
        assert!(!c.due(t0 + Duration::from_secs(100)));
        let second = c.tick(
            t0 + Duration::from_secs(90),
            Counts {
                events_in: 900,
                events_out: 120,
            },
        );
        assert_eq!((second.interval_s, second.uptime_s), (30.0, 90.0));
        assert_eq!(
            (second.events_in_per_s, second.events_out_per_s),
            (10.0, 0.0)
        );
    }

    #[test]
    fn the_event_is_hec_json_with_the_public_keys() {
        let s = Stats {
            version: "1.2.3",
            node: "n1".into(),
            output: "splunk".into(),
            interval_s: 60.0,
            uptime_s: 120.0,
            events_in: 10,
            events_in_per_s: 0.5,
            events_out: 9,
            events_out_per_s: 0.25,
            resent: 1,
            dead_lettered: 2,
            dead_letters: 2,
            queue_records: 3,
            queue_events: 4,
            queue_bytes: 5,
            queue_oldest_age_s: 6.5,
            queue_writable: true,
            indexers_up: 1,
            indexers_total: 2,
            indexers: vec![
                IndexerStats {
                    url: "https://a:8088".into(),
                    up: true,
                    pending_acks: 3,
                },
                IndexerStats {
                    url: "https://b:8088".into(),
                    up: false,
                    pending_acks: 0,
                },
            ],
        };
        let v: serde_json::Value =
            serde_json::from_slice(&hec_event(&s, 1_795_168_804.123_4, "h", Some("ops"))).unwrap();
        assert_eq!(v["time"], 1_795_168_804.123);
        assert_eq!(
            (&v["host"], &v["source"], &v["sourcetype"], &v["index"]),
            (
                &serde_json::json!("h"),
                &serde_json::json!("sluice"),
                &serde_json::json!("sluice:stats"),
                &serde_json::json!("ops")
            )
        );
        assert_eq!(v["event"]["indexers"][1]["up"], false);
        assert_eq!(v["event"]["queue_oldest_age_s"], 6.5);
        let no_index: serde_json::Value =
            serde_json::from_slice(&hec_event(&s, 1.0, "h", None)).unwrap();
        assert!(no_index.get("index").is_none());
    }
}
