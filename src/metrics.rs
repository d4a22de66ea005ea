//! One Prometheus registry with typed handles for every stage (names are public).

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric Sluice exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `sluice_ingest_requests_total{endpoint,code}`.
    pub ingest_requests: IntCounterVec,
    /// `sluice_ingest_events_total{token}`.
    pub ingest_events: IntCounterVec,
    /// `sluice_ingest_bytes_total{form}`.
    pub ingest_bytes: IntCounterVec,
    /// `sluice_ingest_probes_total`.
    pub ingest_probes: IntCounter,
    /// `sluice_ingest_request_duration_seconds{endpoint}`.
    pub ingest_duration: HistogramVec,
    /// `sluice_ingest_last_received_timestamp_seconds{token}`.
    pub ingest_last_received: GaugeVec,
    /// `sluice_queue_records`.
    pub queue_records: IntGauge,
    /// `sluice_queue_events`.
    pub queue_events: IntGauge,
    /// `sluice_queue_bytes`.
    pub queue_bytes: IntGauge,
    /// `sluice_queue_oldest_age_seconds`.
    pub queue_oldest_age: Gauge,
    /// `sluice_queue_free_bytes`.
    pub queue_free_bytes: IntGauge,
    /// `sluice_queue_write_errors_total`: failed appends and flushes (ENOSPC, EIO).
    pub queue_write_errors: IntCounter,
    /// `sluice_queue_writable` (0/1): 0 from a write error until the store is reopened.
    pub queue_writable: IntGauge,
    /// `sluice_queue_corrupt_records_total`: records that could not be read
    /// and became dead letters with reason `corrupt`.
    pub queue_corrupt_records: IntCounter,
    /// `sluice_ingest_refused_streams_total`: requests refused (503 code 9)
    /// because their connection already had the most requests open.
    pub ingest_refused_streams: IntCounter,
    /// `sluice_ingest_denied_connections_total`: HEC connections closed
    /// because their peer is outside `server.allow_cidrs`.
    pub ingest_denied_connections: IntCounter,
    /// `sluice_client_ack_channels`.
    pub client_ack_channels: IntGauge,
    /// `sluice_client_acks_pending`.
    pub client_acks_pending: IntGauge,
    /// `sluice_tls_cert_expiry_timestamp_seconds{listener}`.
    pub tls_cert_expiry: IntGaugeVec,
    /// `sluice_build_info{version}`.
    pub build_info: IntGaugeVec,
    /// `sluice_output_events_total{output,result}`.
    pub output_events: IntCounterVec,
    /// `sluice_output_bytes_total{output,form}`.
    pub output_bytes: IntCounterVec,
    /// `sluice_output_requests_total{output,indexer,code}`.
    pub output_requests: IntCounterVec,
    /// `sluice_output_retries_total{output,indexer}`.
    pub output_retries: IntCounterVec,
    /// `sluice_output_pending_acks{output,indexer}`.
    pub output_pending_acks: IntGaugeVec,
    /// `sluice_output_ack_latency_seconds{output}`.
    pub output_ack_latency: HistogramVec,
    /// `sluice_output_ack_unavailable_total{output}`.
    pub output_ack_unavailable: IntCounterVec,
    /// `sluice_output_indexer_up{output,indexer}`.
    pub output_indexer_up: IntGaugeVec,
    /// `sluice_output_oldest_undelivered_age_seconds{output}`.
    pub output_oldest_undelivered: GaugeVec,
    /// `sluice_dead_letters{output}`.
    pub dead_letters: IntGaugeVec,
    /// `sluice_sample_lag_seconds`: now − `Datetime` as a sample is first sent.
    pub sample_lag: Histogram,
    /// `sluice_enrich_events_total{result}`: `enriched` samples, `passed` other lines.
    pub enrich_events: IntCounterVec,
    /// `sluice_config_last_reload_successful` (0/1): whether the last reload
    /// (or the start) put its configuration in force.
    pub config_last_reload_successful: IntGauge,
    /// `sluice_config_last_reload_success_timestamp_seconds`: when the
    /// configuration in force was loaded.
    pub config_last_reload_success: Gauge,
}

/// A metric could not be registered (a programming error, reported at startup).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    /// Events accepted since start, all tokens (`sluice_ingest_events_total` summed).
    pub fn ingest_events_total(&self) -> u64 {
        use prometheus::core::Collector;
        self.ingest_events
            .collect()
            .iter()
            .flat_map(|f| f.get_metric())
            .map(|m| m.get_counter().value() as u64)
            .sum()
    }

    /// Creates and registers every metric, plus the process collector.
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let latency_buckets = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let m = Metrics {
            ingest_requests: IntCounterVec::new(
                Opts::new(
                    "sluice_ingest_requests_total",
                    "HEC requests answered, by endpoint and HEC code (or HTTP status)",
                ),
                &["endpoint", "code"],
            )?,
            ingest_events: IntCounterVec::new(
                Opts::new(
                    "sluice_ingest_events_total",
                    "Events accepted into the queue, by token name",
                ),
                &["token"],
            )?,
            ingest_bytes: IntCounterVec::new(
                Opts::new(
                    "sluice_ingest_bytes_total",
                    "Bytes of accepted request bodies, as received and decoded",
                ),
                &["form"],
            )?,
            ingest_probes: IntCounter::new(
                "sluice_ingest_probes_total",
                "Logpush destination-validation probes answered (not queued)",
            )?,
            ingest_duration: HistogramVec::new(
                HistogramOpts::new(
                    "sluice_ingest_request_duration_seconds",
                    "HEC request latency, including the durable flush",
                )
                .buckets(latency_buckets),
                &["endpoint"],
            )?,
            ingest_last_received: GaugeVec::new(
                Opts::new(
                    "sluice_ingest_last_received_timestamp_seconds",
                    "Unix time of the last accepted request, by token name",
                ),
                &["token"],
            )?,
            queue_records: IntGauge::new(
                "sluice_queue_records",
                "Records (accepted requests) in the queue",
            )?,
            queue_events: IntGauge::new("sluice_queue_events", "Events in the queue")?,
            queue_bytes: IntGauge::new("sluice_queue_bytes", "Stored bytes in the queue")?,
            queue_oldest_age: Gauge::new(
                "sluice_queue_oldest_age_seconds",
                "Age of the oldest queued record",
            )?,
            queue_free_bytes: IntGauge::new(
                "sluice_queue_free_bytes",
                "Free bytes on the queue's filesystem",
            )?,
            queue_write_errors: IntCounter::new(
                "sluice_queue_write_errors_total",
                "Queue appends and flushes that failed (ENOSPC, EIO)",
            )?,
            queue_writable: IntGauge::new(
                "sluice_queue_writable",
                "1 while the queue can write; 0 from a write error until the store is reopened",
            )?,
            queue_corrupt_records: IntCounter::new(
                "sluice_queue_corrupt_records_total",
                "Queued records that could not be read and were dead-lettered as corrupt",
            )?,
            ingest_refused_streams: IntCounter::new(
                "sluice_ingest_refused_streams_total",
                "Requests refused because their connection had the most requests open",
            )?,
            client_ack_channels: IntGauge::new(
                "sluice_client_ack_channels",
                "Client channels with ack state",
            )?,
            client_acks_pending: IntGauge::new(
                "sluice_client_acks_pending",
                "Client ack ids not yet reported true",
            )?,
            tls_cert_expiry: IntGaugeVec::new(
                Opts::new(
                    "sluice_tls_cert_expiry_timestamp_seconds",
                    "Unix time when the served certificate expires",
                ),
                &["listener"],
            )?,
            build_info: IntGaugeVec::new(
                Opts::new("sluice_build_info", "Build information (always 1)"),
                &["version"],
            )?,
            output_events: IntCounterVec::new(
                Opts::new(
                    "sluice_output_events_total",
                    "Events by output and result (delivered, resent, dead_lettered)",
                ),
                &["output", "result"],
            )?,
            output_bytes: IntCounterVec::new(
                Opts::new(
                    "sluice_output_bytes_total",
                    "Request body bytes sent, uncompressed and compressed",
                ),
                &["output", "form"],
            )?,
            output_requests: IntCounterVec::new(
                Opts::new(
                    "sluice_output_requests_total",
                    "Requests to indexers by HTTP status (or error)",
                ),
                &["output", "indexer", "code"],
            )?,
            output_retries: IntCounterVec::new(
                Opts::new(
                    "sluice_output_retries_total",
                    "Requests retried after a transient failure",
                ),
                &["output", "indexer"],
            )?,
            output_pending_acks: IntGaugeVec::new(
                Opts::new("sluice_output_pending_acks", "Indexer ack ids not yet true"),
                &["output", "indexer"],
            )?,
            output_ack_latency: HistogramVec::new(
                HistogramOpts::new(
                    "sluice_output_ack_latency_seconds",
                    "From send to indexer ack (or to 200 without acks)",
                )
                .buckets(vec![
                    0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
                ]),
                &["output"],
            )?,
            sample_lag: Histogram::with_opts(
                HistogramOpts::new(
                    "sluice_sample_lag_seconds",
                    "Now minus a network analytics sample's Datetime when it is first sent",
                )
                .buckets(vec![
                    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0,
                    86400.0,
                ]),
            )?,
            enrich_events: IntCounterVec::new(
                Opts::new(
                    "sluice_enrich_events_total",
                    "Events read for sending with enrichment on: enriched samples, or passed as received",
                ),
                &["result"],
            )?,
            output_ack_unavailable: IntCounterVec::new(
                Opts::new(
                    "sluice_output_ack_unavailable_total",
                    "200 answers without ackId (token without indexer acks)",
                ),
                &["output"],
            )?,
            output_indexer_up: IntGaugeVec::new(
                Opts::new(
                    "sluice_output_indexer_up",
                    "1 while an indexer takes requests, 0 while its circuit is open",
                ),
                &["output", "indexer"],
            )?,
            output_oldest_undelivered: GaugeVec::new(
                Opts::new(
                    "sluice_output_oldest_undelivered_age_seconds",
                    "Age of the oldest record the output has not delivered",
                ),
                &["output"],
            )?,
            dead_letters: IntGaugeVec::new(
                Opts::new(
                    "sluice_dead_letters",
                    "Events an output gave up on, kept in the dead-letter tree",
                ),
                &["output"],
            )?,
            config_last_reload_successful: IntGauge::new(
                "sluice_config_last_reload_successful",
                "Whether the last configuration reload succeeded (1) or was refused (0)",
            )?,
            config_last_reload_success: Gauge::new(
                "sluice_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration load (start or reload)",
            )?,
            ingest_denied_connections: IntCounter::new(
                "sluice_ingest_denied_connections_total",
                "HEC connections closed because the peer is outside server.allow_cidrs",
            )?,
            registry,
        };
        let r = &m.registry;
        r.register(Box::new(m.ingest_requests.clone()))?;
        r.register(Box::new(m.ingest_events.clone()))?;
        r.register(Box::new(m.ingest_bytes.clone()))?;
        r.register(Box::new(m.ingest_probes.clone()))?;
        r.register(Box::new(m.ingest_duration.clone()))?;
        r.register(Box::new(m.ingest_last_received.clone()))?;
        r.register(Box::new(m.queue_records.clone()))?;
        r.register(Box::new(m.queue_events.clone()))?;
        r.register(Box::new(m.queue_bytes.clone()))?;
        r.register(Box::new(m.queue_oldest_age.clone()))?;
        r.register(Box::new(m.queue_free_bytes.clone()))?;
        r.register(Box::new(m.queue_write_errors.clone()))?;
        r.register(Box::new(m.queue_writable.clone()))?;
        r.register(Box::new(m.queue_corrupt_records.clone()))?;
        r.register(Box::new(m.ingest_refused_streams.clone()))?;
        r.register(Box::new(m.ingest_denied_connections.clone()))?;
        r.register(Box::new(m.client_ack_channels.clone()))?;
        r.register(Box::new(m.client_acks_pending.clone()))?;
        r.register(Box::new(m.tls_cert_expiry.clone()))?;
        r.register(Box::new(m.build_info.clone()))?;
        r.register(Box::new(m.output_events.clone()))?;
        r.register(Box::new(m.output_bytes.clone()))?;
        r.register(Box::new(m.output_requests.clone()))?;
        r.register(Box::new(m.output_retries.clone()))?;
        r.register(Box::new(m.output_pending_acks.clone()))?;
        r.register(Box::new(m.output_ack_latency.clone()))?;
        r.register(Box::new(m.output_ack_unavailable.clone()))?;
        r.register(Box::new(m.output_indexer_up.clone()))?;
        r.register(Box::new(m.output_oldest_undelivered.clone()))?;
        r.register(Box::new(m.dead_letters.clone()))?;
        r.register(Box::new(m.sample_lag.clone()))?;
        r.register(Box::new(m.enrich_events.clone()))?;
        r.register(Box::new(m.config_last_reload_successful.clone()))?;
        r.register(Box::new(m.config_last_reload_success.clone()))?;
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m.queue_writable.set(1);
        m.config_loaded(true);
        Ok(m)
    }

    /// Records a configuration load (the start, or a reload) and its result.
    pub fn config_loaded(&self, ok: bool) {
        self.config_last_reload_successful.set(i64::from(ok));
        if ok {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.config_last_reload_success.set(now);
        }
    }

    /// Brings a counter up to a total kept elsewhere (counters only rise).
    pub fn catch_up(counter: &IntCounter, total: u64) {
        let now = counter.get();
        if total > now {
            counter.inc_by(total - now);
        }
    }

    /// Renders the registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on metric families that cannot exist here.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_public_names() {
        let m = super::Metrics::new().unwrap();
        m.ingest_requests.with_label_values(&["raw", "0"]).inc();
        m.ingest_bytes.with_label_values(&["received"]).inc_by(3);
        let text = m.render();
        for name in [
            "sluice_ingest_requests_total{code=\"0\",endpoint=\"raw\"} 1",
            "sluice_build_info{version=",
            "sluice_queue_free_bytes",
            "sluice_sample_lag_seconds_bucket{le=\"30\"}",
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }
}
