//! The output's `sluice:stats` event (`forward/stats.rs`): gathered from
//! the engine's own state every `stats_interval` and sent to an indexer
//! whose circuit is closed; skipped while none is. The status page's
//! snapshot of the output (`forward/status.rs`), published every second.

use super::{Engine, IDLE};
use crate::forward::stats::{hec_event, Counts, IndexerStats, Stats};
use crate::forward::status::OutputStatus;
use crate::forward::transport::Transport;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

impl<T: Transport> Engine<T> {
    fn indexer_stats(&self, now: Instant) -> Vec<IndexerStats> {
        self.transport
            .destinations()
            .iter()
            .enumerate()
            .map(|(i, url)| IndexerStats {
                url: url.clone(),
                up: self.breaker.is_up(i, now),
                pending_acks: self.tracker.pending(i) as u64,
            })
            .collect()
    }

    /// Publishes the output's snapshot for the status page.
    pub(super) fn publish_status(&self, now: Instant) {
        let indexers = self.indexer_stats(now);
        self.ctx.board.publish(OutputStatus {
            output: self.s.name.clone(),
            kind: self.transport.kind(),
            events_out: self.m.delivered.get(),
            resent: self.m.resent.get(),
            dead_lettered: self.m.dead_lettered.get(),
            dead_letters: self.ctx.queue.dead_letter_count(&self.s.name) as u64,
            corrupt_records: self.corrupt_given_up,
            oldest_undelivered_age_s: self.m.oldest.get(),
            paused: self.paused_until.is_some_and(|t| t > now),
            indexers_up: indexers.iter().filter(|i| i.up).count(),
            indexers_total: indexers.len(),
            indexers,
            last_errors: self.errors.to_vec(),
        });
    }

    /// Sends the stats event when it is due.
    pub(super) fn report_stats(&mut self, now: Instant) {
        let Some(clock) = self.stats.as_mut().filter(|c| c.due(now)) else {
            return;
        };
        let counts = Counts {
            events_in: self.ctx.metrics.ingest_events_total(),
            events_out: self.m.delivered.get(),
        };
        let tick = clock.tick(now, counts);
        let Some(dest) = self.breaker.pick() else {
            tracing::debug!(output = %self.s.name, "no indexer up: stats event skipped");
            return;
        };
        let q = self.ctx.queue.stats();
        let indexers = self.indexer_stats(now);
        let stats = Stats {
            version: env!("CARGO_PKG_VERSION"),
            node: self.ctx.hostname.to_string(),
            output: self.s.name.clone(),
            interval_s: tick.interval_s,
            uptime_s: tick.uptime_s,
            events_in: counts.events_in,
            events_in_per_s: tick.events_in_per_s,
            events_out: counts.events_out,
            events_out_per_s: tick.events_out_per_s,
            resent: self.m.resent.get(),
            dead_lettered: self.m.dead_lettered.get(),
            dead_letters: self.ctx.queue.dead_letter_count(&self.s.name) as u64,
            queue_records: q.records,
            queue_events: q.events,
            queue_bytes: q.bytes,
            queue_oldest_age_s: q.oldest_age_seconds,
            queue_writable: self.ctx.queue.writable(),
            indexers_up: indexers.iter().filter(|i| i.up).count(),
            indexers_total: indexers.len(),
            indexers,
        };
        let [index, _, _, host] = &self.s.overrides;
        let host = host.as_deref().unwrap_or(&self.ctx.hostname);
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let event = bytes::Bytes::from(hec_event(&stats, time, host, index.as_deref()));
        let (transport, output) = (Arc::clone(&self.transport), self.s.name.clone());
        tokio::spawn(async move {
            let sent = tokio::time::timeout(IDLE * 30, transport.send_stats(dest, event)).await;
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(output = %output, error = %e, "stats event refused"),
                Err(_) => tracing::warn!(output = %output, "stats event timed out"),
            }
        });
    }
}
