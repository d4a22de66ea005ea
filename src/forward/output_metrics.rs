//! An output's metric handles, bound to its labels once when it starts, so
//! the hot path increments counters instead of hashing label values (and no
//! URL is cloned per request).

use crate::metrics::Metrics;
use prometheus::{Gauge, Histogram, IntCounter, IntGauge};
use std::collections::HashMap;

/// Counted by batch builders (any thread).
#[derive(Clone)]
pub struct BuildMetrics {
    /// `sluice_output_bytes_total{form="uncompressed"}`.
    pub bytes_uncompressed: IntCounter,
    /// `sluice_output_bytes_total{form="compressed"}`.
    pub bytes_compressed: IntCounter,
    /// `sluice_enrich_events_total{result="enriched"}`; `None` on outputs
    /// other than the first, so each sample counts once.
    pub enriched: Option<IntCounter>,
    /// `sluice_enrich_events_total{result="passed"}` (same rule).
    pub passed: Option<IntCounter>,
    /// `sluice_sample_lag_seconds` (same rule).
    pub sample_lag: Option<Histogram>,
}

/// One destination's handles.
pub struct DestMetrics {
    /// `sluice_output_indexer_up`.
    pub up: IntGauge,
    /// `sluice_output_pending_acks`.
    pub pending_acks: IntGauge,
    /// `sluice_output_retries_total`.
    pub retries: IntCounter,
    requests: HashMap<String, IntCounter>,
    output: String,
    label: String,
}

impl DestMetrics {
    /// `sluice_output_requests_total{code}`, bound on first use of a code.
    pub fn request(&mut self, m: &Metrics, code: &str) -> &IntCounter {
        if !self.requests.contains_key(code) {
            let c = m
                .output_requests
                .with_label_values(&[&self.output, &self.label, code]);
            self.requests.insert(code.to_string(), c);
        }
        &self.requests[code]
    }
}

/// Counted by the engine of one output.
pub struct OutputMetrics {
    /// `sluice_output_events_total{result="delivered"}`.
    pub delivered: IntCounter,
    /// `sluice_output_events_total{result="resent"}`.
    pub resent: IntCounter,
    /// `sluice_output_events_total{result="dead_lettered"}`.
    pub dead_lettered: IntCounter,
    /// `sluice_output_ack_latency_seconds`.
    pub ack_latency: Histogram,
    /// `sluice_output_ack_unavailable_total`.
    pub ack_unavailable: IntCounter,
    /// `sluice_output_oldest_undelivered_age_seconds`.
    pub oldest: Gauge,
    /// `sluice_queue_corrupt_records_total`.
    pub corrupt_records: IntCounter,
    /// Per destination, in the transport's order.
    pub dests: Vec<DestMetrics>,
    /// For labels first seen later (request codes).
    pub registry: Metrics,
}

impl OutputMetrics {
    /// Binds the handles of output `name` with these destination labels.
    pub fn bind(m: &Metrics, name: &str, destinations: &[String]) -> OutputMetrics {
        let events = |r: &str| m.output_events.with_label_values(&[name, r]);
        OutputMetrics {
            delivered: events("delivered"),
            resent: events("resent"),
            dead_lettered: events("dead_lettered"),
            ack_latency: m.output_ack_latency.with_label_values(&[name]),
            ack_unavailable: m.output_ack_unavailable.with_label_values(&[name]),
            oldest: m.output_oldest_undelivered.with_label_values(&[name]),
            corrupt_records: m.queue_corrupt_records.clone(),
            dests: destinations
                .iter()
                .map(|d| DestMetrics {
                    up: m.output_indexer_up.with_label_values(&[name, d]),
                    pending_acks: m.output_pending_acks.with_label_values(&[name, d]),
                    retries: m.output_retries.with_label_values(&[name, d]),
                    requests: HashMap::new(),
                    output: name.to_string(),
                    label: d.clone(),
                })
                .collect(),
            registry: m.clone(),
        }
    }

    /// Counts a request to `dest` answered with `code`.
    pub fn request(&mut self, dest: usize, code: &str) {
        let registry = &self.registry;
        if let Some(d) = self.dests.get_mut(dest) {
            d.request(registry, code).inc();
        }
    }
}

impl BuildMetrics {
    /// Binds the builders' handles of output `name`; `measure`: whether this
    /// output counts enrichment.
    pub fn bind(m: &Metrics, name: &str, measure: bool) -> BuildMetrics {
        let bytes = |f: &str| m.output_bytes.with_label_values(&[name, f]);
        BuildMetrics {
            bytes_uncompressed: bytes("uncompressed"),
            bytes_compressed: bytes("compressed"),
            enriched: measure.then(|| m.enrich_events.with_label_values(&["enriched"])),
            passed: measure.then(|| m.enrich_events.with_label_values(&["passed"])),
            sample_lag: measure.then(|| m.sample_lag.clone()),
        }
    }
}
