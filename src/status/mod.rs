//! The status page on the metrics listener: `GET /` (server-rendered HTML
//! with inline SVG charts of the last hour, no external assets) and
//! `GET /api/status` (the same as JSON, `model.rs`). A sampler task adds a
//! chart point every [`history::STEP`]; everything else is read when asked.

pub mod history;
pub mod model;
pub mod page;

use crate::forward::status::OutputBoard;
use crate::metrics::Metrics;
use crate::queue::Queue;
use history::History;
use model::{HecView, HistoryView, ListenerView, OutputView, Status};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What the status page reads.
pub struct StatusSource {
    queue: Arc<Queue>,
    metrics: Metrics,
    board: Arc<OutputBoard>,
    node: String,
    started: Instant,
    listeners: OnceLock<Vec<ListenerView>>,
    sampled: Mutex<Sampled>,
}

#[derive(Default)]
struct Sampled {
    history: History,
    /// Per output: (time, events delivered) at the last point, and the rate since the one before.
    outputs: HashMap<String, ((f64, u64), f64)>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl StatusSource {
    /// A source over the node's queue, metrics and outputs.
    pub fn new(
        queue: Arc<Queue>,
        metrics: Metrics,
        board: Arc<OutputBoard>,
        node: String,
    ) -> StatusSource {
        StatusSource {
            queue,
            metrics,
            board,
            node,
            started: Instant::now(),
            listeners: OnceLock::new(),
            sampled: Mutex::new(Sampled::default()),
        }
    }

    /// Sets the listeners once they are bound.
    pub fn set_listeners(&self, listeners: Vec<ListenerView>) {
        let _ = self.listeners.set(listeners);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sampled> {
        self.sampled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a chart point now.
    pub fn sample(&self) {
        let time = unix_now();
        let q = self.queue.stats();
        let events_in = self.metrics.ingest_events_total();
        let outputs = self.board.all();
        let mut s = self.lock();
        s.history
            .record(time, events_in, q.events, q.oldest_age_seconds);
        for o in outputs {
            let now = (time, o.events_out);
            let entry = s.outputs.entry(o.output).or_insert((now, 0.0));
            let ((t0, n0), _) = *entry;
            let rate = if time > t0 {
                o.events_out.saturating_sub(n0) as f64 / (time - t0)
            } else {
                0.0
            };
            *entry = (now, rate);
        }
    }

    /// The node's state now, with what the HEC side reports.
    pub fn snapshot(&self, hec: HecView) -> Status {
        let q = self.queue.stats();
        let m = &self.metrics;
        let listeners = self.listeners.get().cloned().unwrap_or_default();
        let hec_tls = listeners.iter().any(|l| l.name == "hec" && l.tls);
        let s = self.lock();
        let outputs = self
            .board
            .all()
            .into_iter()
            .map(|o| OutputView {
                events_out_per_s: s.outputs.get(&o.output).map_or(0.0, |e| e.1),
                status: o,
            })
            .collect();
        Status {
            version: env!("CARGO_PKG_VERSION"),
            node: self.node.clone(),
            time: unix_now(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            draining: hec.draining,
            listeners,
            tokens: hec.tokens,
            events_in: m.ingest_events_total(),
            events_in_per_s: s.history.events_in_per_s(),
            queue_records: q.records,
            queue_events: q.events,
            queue_bytes: q.bytes,
            queue_oldest_age_s: q.oldest_age_seconds,
            queue_writable: self.queue.writable(),
            queue_free_bytes: self.queue.free_bytes(),
            corrupt_records: m.queue_corrupt_records.get(),
            tls_cert_expiry: hec_tls.then(|| m.tls_cert_expiry.with_label_values(&["hec"]).get()),
            config_last_reload_successful: m.config_last_reload_successful.get() == 1,
            config_last_reload_success_timestamp_seconds: m.config_last_reload_success.get(),
            client_ack_channels: hec.client_ack_channels,
            client_acks_pending: hec.client_acks_pending,
            outputs,
            history: HistoryView {
                step_s: history::STEP.as_secs_f64(),
                span_s: (history::STEP * history::POINTS as u32).as_secs_f64(),
                points: s.history.points(),
            },
        }
    }
}

/// Adds a point every [`history::STEP`] until aborted.
pub async fn run_sampler(source: Arc<StatusSource>) {
    let mut tick = tokio::time::interval(history::STEP);
    loop {
        tick.tick().await;
        source.sample();
    }
}
