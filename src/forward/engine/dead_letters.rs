//! What an output does with events it cannot deliver: dead letters (for an
//! event Splunk refuses, one that cannot be read, an oversize line) and
//! records given up as corrupt.

use super::super::acks::BatchId;
use super::super::source::{write_segment, Route, Segment, Unsendable};
use super::super::stream::{EventStream, SourceError};
use super::{now_ms, Engine};
use crate::queue::{DeadLetter, RecordId};
use std::time::Instant;

impl Engine {
    /// A record could not be read. Transient errors are retried; a record
    /// that keeps failing is given up as corrupt so the rest flows.
    pub(super) fn read_failed(&mut self, record: RecordId, e: SourceError) {
        if e.is_transient() {
            tracing::warn!(output = %self.s.name, record, error = %e, "reading the queue failed; retrying");
            return;
        }
        tracing::error!(output = %self.s.name, record, error = %e, "a queued record cannot be read");
        if self.read_failures.failed(record, Instant::now()) {
            self.give_up_corrupt(record, &e);
        }
    }

    /// Gives up a record that cannot be read: one dead letter with reason
    /// `corrupt` (its id, metadata and what could be read), and every event
    /// of it not yet delivered counts as handled, so the record leaves and
    /// forwarding moves on.
    pub(super) fn give_up_corrupt(&mut self, record: RecordId, e: &SourceError) {
        self.ctx.metrics.queue_corrupt_records.inc();
        // Batches already sent keep their events; batches waiting to be
        // rebuilt drop this record's.
        let mut dropped = 0u64;
        let waiting: Vec<BatchId> = self.resend.iter().copied().collect();
        for b in waiting {
            let Some(st) = self.batches.get_mut(&b) else {
                continue;
            };
            let before = st.events;
            st.segments.retain(|s| s.record != record);
            st.events = st.segments.iter().map(|s| s.count).sum();
            dropped += before - st.events;
            if st.segments.is_empty() {
                self.batches.remove(&b);
                self.resend.retain(|x| *x != b);
            }
        }
        // A record whose header cannot be read was never tracked: its index
        // entry says how many events it holds.
        let indexed = self.ctx.queue.events_of(record).unwrap_or(0);
        self.ledger.track(record, indexed);
        let total = self.ledger.events_of(record);
        // Events the cursor has passed were batched: every one of a record
        // behind it, none of one ahead of it.
        let read = match self.next.0.cmp(&record) {
            std::cmp::Ordering::Greater => total.unwrap_or(0),
            std::cmp::Ordering::Equal => self.next.1,
            std::cmp::Ordering::Less => 0,
        };
        let meta = self
            .ctx
            .queue
            .received_ms(record)
            .map(|ms| serde_json::json!({ "received_ms": ms }));
        let letter = serde_json::json!({
            "record": record,
            "meta": meta,
            "events_read": read,
            "error": e.to_string(),
        });
        // Events from `read` on were never batched; those in dropped batches
        // were batched but will not be sent.
        let untouched = total.map_or(0, |t| t.saturating_sub(read));
        self.dead_letter(
            record,
            read,
            format!("corrupt: {e}"),
            letter.to_string(),
            untouched + dropped,
        );
        if self.next.0 == record {
            self.next = (record + 1, 0);
            self.current = None;
        }
        tracing::error!(output = %self.s.name, record, events_read = read, "record given up as corrupt and dead-lettered; forwarding moves on");
    }

    pub(super) fn dead_letter_segment(&mut self, seg: Segment, reason: &str) {
        let mut text = Vec::new();
        if let Ok(Some(mut stream)) =
            EventStream::open(&self.ctx.queue, seg.record, self.ctx.max_event_bytes)
        {
            let token = stream.meta().token.clone();
            let resolver = self.resolver_for(&token);
            let enricher = self.ctx.enricher.current();
            // What could be read of it is kept; the rest stays empty.
            let _ = write_segment(
                &mut stream,
                &resolver,
                enricher.as_deref(),
                seg,
                Route::Event,
                &mut text,
            );
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        for (k, line) in (0..seg.count).zip(text.lines().chain(std::iter::repeat(""))) {
            self.dead_letter(
                seg.record,
                seg.first + k,
                reason.to_string(),
                line.to_string(),
                1,
            );
        }
    }

    /// An event that cannot be sent as it is becomes a dead letter at once.
    pub(super) fn dead_letter_unsendable(&mut self, record: RecordId, u: Unsendable) {
        match u {
            Unsendable::Bad(b) => self.dead_letter(
                record,
                b.number,
                format!("cannot read the stored event: {}", b.reason),
                String::new(),
                1,
            ),
            Unsendable::Oversize { number, head } => self.dead_letter(
                record,
                number,
                format!(
                    "oversize: longer than max_event_bytes ({})",
                    self.ctx.max_event_bytes
                ),
                String::from_utf8_lossy(&head).into_owned(),
                1,
            ),
        }
    }

    /// Stores a dead letter standing for `covers` events of `record`, which
    /// then count as handled by this output.
    pub(super) fn dead_letter(
        &mut self,
        record: RecordId,
        number: u64,
        reason: String,
        event: String,
        covers: u64,
    ) {
        let letter = DeadLetter {
            output: self.s.name.clone(),
            record,
            event_number: number,
            reason,
            time_ms: now_ms(),
            event,
        };
        match self.ctx.queue.dead_letter(&letter) {
            Ok(_) => {
                tracing::warn!(output = %self.s.name, record, event = number, reason = %letter.reason, "event dead-lettered");
                self.ctx
                    .metrics
                    .output_events
                    .with_label_values(&[&self.s.name, "dead_lettered"])
                    .inc_by(covers);
                self.count_delivered(record, covers);
            }
            Err(e) => {
                tracing::error!(output = %self.s.name, error = %e, "cannot store a dead letter; the record stays queued")
            }
        }
    }
}
