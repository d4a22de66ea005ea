//! What the engine does with each answer: a delivered batch counts its
//! events; an ack id waits for its poll; `invalid-event-number` delivers the
//! events before it, dead-letters that one and resends the rest; a refused
//! batch is bisected until the bad event stands alone; a refused token
//! pauses the output; a transient failure opens the destination's circuit
//! and resends; events older than `dead_letter_after` become dead letters
//! instead of waiting longer.

use super::batches::{count, split, BatchId, BatchState};
use super::{now_ms, Engine, Event};
use crate::forward::breaker::jitter;
use crate::forward::build::cut::cut;
use crate::forward::build::job::{rebuild, segment_text};
use crate::forward::source::Route;
use crate::forward::source::Segment;
use crate::forward::transport::{Request, SendOutcome, Transport};
use std::time::{Duration, Instant};

/// How long a refused token pauses the output at most before it tries again.
const AUTH_PAUSE_MAX: Duration = Duration::from_secs(30);

impl<T: Transport> Engine<T> {
    pub(super) fn handle(&mut self, ev: Event) {
        match ev {
            Event::Health { dest, healthy } => {
                if healthy {
                    let label = &self.transport.destinations()[dest];
                    tracing::info!(output = %self.s.name, indexer = %label, "indexer healthy again");
                }
                self.breaker.probed(dest, Instant::now(), healthy, jitter());
            }
            Event::Polled { dest, reply } => {
                self.polling[dest] = false;
                match reply {
                    Ok(reply) => {
                        for (batch, sent) in self.tracker.acked(dest, &reply) {
                            self.m.ack_latency.observe(sent.elapsed().as_secs_f64());
                            self.delivered(batch, false);
                        }
                    }
                    Err(e) => {
                        let label = &self.transport.destinations()[dest];
                        tracing::debug!(output = %self.s.name, indexer = %label, error = %e, "ack poll failed");
                    }
                }
            }
            Event::Sent {
                batch,
                dest,
                answer,
            } => {
                self.inflight = self.inflight.saturating_sub(1);
                self.m.request(dest, &answer.code);
                if let Some(detail) = answer.detail {
                    let label = &self.transport.destinations()[dest];
                    self.errors.note(Some(label), detail);
                }
                // Answered: the body goes back to the pool once the
                // transport is done with it, unless it is cut here.
                let sent = self.batches.get_mut(batch).and_then(|st| st.sent.take());
                self.outcome(batch, dest, answer.outcome, &answer.code, sent);
            }
            Event::Rebuilt { batch, dest, built } => {
                self.inflight = self.inflight.saturating_sub(1);
                match built {
                    Ok(Some(request)) => {
                        // The rebuild took a while: the pause or the chosen
                        // destination's circuit may have changed meanwhile.
                        let dest = if self.breaker.is_closed(dest) {
                            Some(dest)
                        } else {
                            self.breaker.pick()
                        };
                        match dest.filter(|_| self.paused(Instant::now()).is_none()) {
                            Some(dest) => self.start_send(batch, dest, request),
                            None => self.resend.push_front(batch),
                        }
                    }
                    Ok(None) => self.delivered(batch, false),
                    Err((record, e)) => {
                        self.resend.push_front(batch);
                        self.resend_after = Some(Instant::now() + self.s.retry_initial);
                        self.read_failed(record, None, e);
                    }
                }
            }
            Event::Lettered {
                record,
                covers,
                unstored,
                generation,
            } => {
                self.lettering = self.lettering.saturating_sub(1);
                // Written to a store since reopened: the record is read again
                // from the start, and its events counted then.
                if generation != self.generation {
                    return;
                }
                // Letters not stored stay counted as being lettered.
                self.letters_done(record, covers);
                self.owe_letters(unstored);
                self.m.dead_lettered.inc_by(covers);
                self.count_delivered(record, covers);
            }
        }
        self.set_dest_gauges();
    }

    fn outcome(
        &mut self,
        batch: BatchId,
        dest: usize,
        outcome: SendOutcome,
        code: &str,
        sent: Option<Request>,
    ) {
        match outcome {
            SendOutcome::Retry { after } => {
                let opened = self.breaker.failed(dest, Instant::now(), after, jitter());
                let label = &self.transport.destinations()[dest];
                if opened.first {
                    tracing::warn!(output = %self.s.name, indexer = %label, code, "indexer failing; its circuit is open until a health check passes");
                }
                tracing::debug!(output = %self.s.name, indexer = %label, code, wait = ?opened.wait, "transient failure; retrying");
                self.m.dests[dest].retries.inc();
                self.retry_later(batch, true);
            }
            SendOutcome::Unauthorized { status } => {
                let wait = self.s.retry_max.min(AUTH_PAUSE_MAX);
                tracing::error!(output = %self.s.name, status, pause = ?wait, "indexer refused the token; output paused, still queueing");
                self.paused_until = Some(Instant::now() + wait);
                self.retry_later(batch, true);
            }
            SendOutcome::Delivered => {
                self.breaker.succeeded(dest);
                self.delivered(batch, true);
            }
            SendOutcome::AckUnavailable => {
                self.breaker.succeeded(dest);
                if !self.warned_no_ack {
                    self.warned_no_ack = true;
                    tracing::warn!(output = %self.s.name, "indexer answered without ackId: the token has no indexer acknowledgements; counting 200 as delivered");
                }
                self.m.ack_unavailable.inc();
                self.delivered(batch, true);
            }
            SendOutcome::AckPending(id) => {
                self.breaker.succeeded(dest);
                if let Some(lost) = self.tracker.sent(dest, id, batch, Instant::now()) {
                    let label = &self.transport.destinations()[dest];
                    tracing::warn!(output = %self.s.name, indexer = %label, ack_id = id, "indexer reused a pending ack id (restarted?); resending the batch that held it");
                    if let Some(st) = self.batches.get(lost) {
                        self.m.resent.inc_by(st.events);
                    }
                    self.retry_later(lost, true);
                }
            }
            SendOutcome::InvalidEvent { number, reason } => {
                self.breaker.succeeded(dest);
                self.invalid_event(batch, dest, number, reason, sent);
            }
            SendOutcome::Rejected { status, reason } => {
                self.breaker.succeeded(dest);
                self.rejected(batch, status, reason);
            }
        }
    }

    /// Every event of the batch is delivered: count it and release complete
    /// records. `observe` records the send-to-delivery latency (acked batches
    /// record theirs when the ack arrives).
    pub(super) fn delivered(&mut self, batch: BatchId, observe: bool) {
        let Some(st) = self.batches.remove(batch) else {
            return;
        };
        self.m.delivered.inc_by(st.events);
        if let Some(t) = st.first_sent.filter(|_| observe) {
            self.m.ack_latency.observe(t.elapsed().as_secs_f64());
        }
        for seg in st.segments {
            self.count_delivered(seg.record, seg.count);
        }
    }

    /// 400 with `invalid-event-number`: the destination stored the events
    /// before it. That event becomes a dead letter; the events after it go
    /// again, in two halves, so a batch refused event by event costs
    /// n·log n events, not n²/2. Both are cut from the body that was sent
    /// when it is at hand (`build/cut.rs`), else read from the queue.
    fn invalid_event(
        &mut self,
        batch: BatchId,
        dest: usize,
        number: u64,
        reason: String,
        sent: Option<Request>,
    ) {
        let Some(st) = self.batches.remove(batch) else {
            return;
        };
        if number >= st.events {
            let status = 400;
            let id = self.batches.insert(st);
            return self.rejected(id, status, reason);
        }
        let (before, rest) = split(&st.segments, number);
        let (bad, after) = split(&rest, 1);
        self.m.delivered.inc_by(count(&before));
        for s in before {
            self.count_delivered(s.record, s.count);
        }
        let (first, second) = split(&after, count(&after).div_ceil(2));
        let halves: Vec<Vec<Segment>> = [first, second]
            .into_iter()
            .filter(|h| !h.is_empty())
            .collect();
        let (sent, bad) = match (sent, bad.as_slice()) {
            (Some(sent), [one]) => (sent, *one),
            _ => {
                for s in bad {
                    self.dead_letter_segment(s, reason.clone());
                }
                for h in halves.into_iter().rev() {
                    self.enqueue_resend(st.route, h);
                }
                return;
            }
        };
        let letters = self.lettering_segment(bad, reason);
        let route = st.route;
        let parts: Vec<(BatchId, Vec<Segment>)> = halves
            .into_iter()
            .map(|h| (self.batches.insert(BatchState::new(route, h.clone())), h))
            .collect();
        self.inflight += parts.len();
        let (tx, events, at) = (self.tx.clone(), st.events, number);
        self.builders.run_blocking(move |shared| {
            let sizes: Vec<u64> = parts.iter().map(|(_, h)| count(h)).collect();
            let (text, mut bodies) = match cut(shared, &sent, events, at, &sizes, bad.record) {
                // A `/raw` line is not a letter: that is the event as HEC JSON.
                Ok(c) if route == Route::Event => (c.refused, Some(c.parts)),
                Ok(c) => (segment_text(shared, bad), Some(c.parts)),
                Err(e) => {
                    tracing::warn!(error = %e, "a sent body does not cut; reading its events from the queue");
                    (segment_text(shared, bad), None)
                }
            };
            letters.store(shared, &text);
            for (i, (batch, segments)) in parts.into_iter().enumerate() {
                let built = match bodies.as_mut() {
                    Some(b) if i < b.len() => Ok(Some(b[i].clone())),
                    _ => rebuild(shared, &segments, route),
                };
                let _ = tx.send(Event::Rebuilt { batch, dest, built });
            }
        });
    }

    /// Refused for content or size: bisect until the bad events stand alone.
    fn rejected(&mut self, batch: BatchId, status: u16, reason: String) {
        let Some(st) = self.batches.remove(batch) else {
            return;
        };
        if st.events <= 1 {
            for s in st.segments {
                self.dead_letter_segment(s, format!("{status} {reason}"));
            }
            return;
        }
        let (a, b) = split(&st.segments, st.events / 2);
        self.enqueue_resend(st.route, b);
        self.enqueue_resend(st.route, a);
    }

    /// A new batch of these segments, sent before the other resends.
    fn enqueue_resend(&mut self, route: Route, segments: Vec<Segment>) {
        if segments.is_empty() {
            return;
        }
        let b = self.batches.insert(BatchState::new(route, segments));
        self.resend.push_front(b);
    }

    /// How long the oldest event of a batch has waited since it was received.
    fn batch_age(&self, st: &BatchState) -> Duration {
        let oldest = st
            .segments
            .iter()
            .filter_map(|s| self.ctx.queue.received_ms(s.record))
            .min()
            .unwrap_or_else(now_ms);
        Duration::from_millis(now_ms().saturating_sub(oldest))
    }

    fn expired(&self, batch: BatchId) -> bool {
        match (self.s.dead_letter_after, self.batches.get(batch)) {
            (Some(limit), Some(st)) => self.batch_age(st) >= limit,
            _ => false,
        }
    }

    fn give_up(&mut self, batch: BatchId) {
        if let Some(st) = self.batches.remove(batch) {
            let reason = format!(
                "undelivered for longer than dead_letter_after ({:?})",
                self.s.dead_letter_after.unwrap_or_default()
            );
            for seg in st.segments {
                self.dead_letter_segment(seg, reason.clone());
            }
        }
    }

    /// Queues a batch to be sent again, unless its events have waited longer
    /// than `dead_letter_after`: then they become dead letters.
    pub(super) fn retry_later(&mut self, batch: BatchId, front: bool) {
        if self.expired(batch) {
            self.give_up(batch);
        } else if front {
            self.resend.push_front(batch);
        } else {
            self.resend.push_back(batch);
        }
    }

    /// With `dead_letter_after`, events that waited too long are given up even
    /// while no destination takes requests: waiting resends, the batch no
    /// destination took, and batches the builders have ready.
    pub(super) fn expire_waiting(&mut self) {
        if self.s.dead_letter_after.is_none() {
            return;
        }
        let waiting: Vec<BatchId> = self
            .resend
            .iter()
            .copied()
            .filter(|b| self.expired(*b))
            .collect();
        self.resend.retain(|b| !waiting.contains(b));
        for b in waiting {
            self.give_up(b);
        }
        loop {
            if let Some((batch, request)) = self.ready.take() {
                if !self.expired(batch) {
                    self.ready = Some((batch, request));
                    return;
                }
                self.give_up(batch);
            }
            // Only held here, never sent: the loop decides when sending may
            // resume (pause, resends and order stay as they are).
            match self.builders.try_next() {
                Some(built) => self.accept_built(built, false),
                None => return,
            }
        }
    }
}
