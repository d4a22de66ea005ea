//! What an output does with events it cannot deliver: dead letters (for an
//! event the destination refuses, one that cannot be read, an oversize
//! line) and records given up as corrupt.

use super::batches::count;
use super::{now_ms, Engine, Event};
use crate::forward::build::job::segment_text;
use crate::forward::build::BuildShared;
use crate::forward::source::{Segment, Unsendable};
use crate::forward::stream::SourceError;
use crate::forward::transport::Transport;
use crate::hec::split::objects;
use crate::queue::{DeadLetter, RecordId};
use std::time::Instant;

impl<T: Transport> Engine<T> {
    /// A record could not be read. `retry_from`: the event a build job
    /// stopped at (it is planned again from there); a resend's rebuild
    /// passes `None` (the batch itself waits to be rebuilt). Transient
    /// errors are retried; a record that keeps failing is given up as
    /// corrupt so the rest flows.
    pub(super) fn read_failed(
        &mut self,
        record: RecordId,
        retry_from: Option<u64>,
        e: SourceError,
    ) {
        let now = Instant::now();
        if self.corrupt.contains(&record) {
            // Given up already: what a resend still held of it becomes dead
            // letters too (with whatever of it can be read).
            for seg in self.take_waiting(record) {
                self.dead_letter_segment(seg, format!("corrupt: {e}"));
            }
            return;
        }
        let retry = |engine: &mut Engine<T>| {
            if let Some(from) = retry_from {
                engine
                    .planner
                    .retry(record, from, now + engine.s.retry_initial);
            }
        };
        if e.is_transient() {
            tracing::warn!(output = %self.s.name, record, error = %e, "reading the queue failed; retrying");
            return retry(self);
        }
        tracing::error!(output = %self.s.name, record, error = %e, "a queued record cannot be read");
        if self.read_failures.failed(record, now) {
            self.give_up_corrupt(record, &e);
        } else {
            retry(self);
        }
    }

    /// Takes `record`'s segments out of the batches waiting to be rebuilt
    /// (nothing is counted yet).
    fn take_waiting(&mut self, record: RecordId) -> Vec<Segment> {
        let mut taken = Vec::new();
        let waiting: Vec<_> = self.resend.iter().copied().collect();
        for b in waiting {
            let Some(st) = self.batches.get_mut(b) else {
                continue;
            };
            taken.extend(st.strip(record));
            if st.segments.is_empty() {
                self.batches.remove(b);
                self.resend.retain(|x| *x != b);
            }
        }
        taken
    }

    /// Gives up a record that cannot be read: one dead letter with reason
    /// `corrupt` (its id, receive time, events read and the error) stands
    /// for every event of it that is nowhere else; events in waiting resends
    /// get dead letters of their own (with what can be read of them); events
    /// in batches out, or in letters being written, are counted when those
    /// finish. So the record leaves, exactly once all are counted.
    pub(super) fn give_up_corrupt(&mut self, record: RecordId, e: &SourceError) {
        if self.ctx.queue.is_released(record, &self.s.name) {
            return;
        }
        self.m.corrupt_records.inc();
        self.corrupt.insert(record);
        self.planner.forget(record);
        // A record whose header cannot be read was never tracked: its index
        // entry says how many events it holds. Tracked before anything counts.
        let indexed = self.ctx.queue.events_of(record).ok().flatten().unwrap_or(0);
        self.ledger.track(record, indexed);
        // Never read through: it has no rollups.
        self.ledger.settle_rollups(record);
        let waiting = self.take_waiting(record);
        let left = self.ledger.remaining(record).unwrap_or(0);
        let elsewhere = self.batches.events_of(record)
            + self.lettering_events.get(&record).copied().unwrap_or(0)
            + count(&waiting);
        let covers = left.saturating_sub(elsewhere);
        let total = self.ledger.events_of(record).unwrap_or(indexed);
        let read = total.saturating_sub(covers);
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
        let reason = format!("corrupt: {e}");
        self.dead_letter(record, read, reason.clone(), letter.to_string(), covers);
        for seg in waiting {
            self.dead_letter_segment(seg, reason.clone());
        }
        tracing::error!(output = %self.s.name, record, events_read = read, "record given up as corrupt and dead-lettered; forwarding moves on");
        self.corrupt_given_up += 1;
        self.errors.note(
            None,
            format!("record {record} unreadable after {read} events; dead-lettered as corrupt"),
        );
    }

    /// Dead-letters the events of `seg`, with what can be read of them, on a
    /// blocking thread (reading them back decodes the record). They count as
    /// handled once stored (`Event::Lettered`).
    pub(super) fn dead_letter_segment(&mut self, seg: Segment, reason: String) {
        let letters = self.lettering_segment(seg, reason);
        self.builders.run_blocking(move |shared| {
            let text = segment_text(shared, seg);
            letters.store(shared, &text);
        });
    }

    /// Counts `seg` as being lettered; the letters are stored by the
    /// returned value, on a blocking thread.
    pub(super) fn lettering_segment(&mut self, seg: Segment, reason: String) -> Letters {
        self.lettering += 1;
        *self.lettering_events.entry(seg.record).or_insert(0) += seg.count;
        Letters {
            seg,
            reason,
            output: self.s.name.clone(),
            generation: self.generation,
            tx: self.tx.clone(),
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
        self.store_letter(letter, covers);
    }
}

/// Dead letters for the events of one segment, to be stored.
pub(super) struct Letters {
    seg: Segment,
    reason: String,
    output: String,
    generation: u64,
    tx: tokio::sync::mpsc::UnboundedSender<Event>,
}

impl Letters {
    /// Stores one letter per event, holding the lines of `text` in order
    /// (empty where it has fewer), and reports `Event::Lettered`.
    pub(super) fn store(self, shared: &BuildShared, text: &[u8]) {
        let Letters {
            seg,
            reason,
            output,
            generation,
            tx,
        } = self;
        let mut covers = 0;
        let mut unstored = Vec::new();
        for (k, event) in (0..seg.count).zip(letter_texts(text)) {
            let letter = DeadLetter {
                output: output.clone(),
                record: seg.record,
                event_number: seg.first + k,
                reason: reason.clone(),
                time_ms: now_ms(),
                event,
            };
            match shared.queue.dead_letter(&letter) {
                Ok(_) => {
                    tracing::warn!(output = %output, record = seg.record, event = letter.event_number, reason = %letter.reason, "event dead-lettered");
                    covers += 1;
                }
                Err(e) => {
                    tracing::error!(output = %output, record = seg.record, error = %e, "cannot store a dead letter; the record stays queued and it is tried again");
                    unstored.push(letter);
                }
            }
        }
        let _ = tx.send(Event::Lettered {
            record: seg.record,
            covers,
            unstored,
            generation,
        });
    }
}

/// The events of `text` (HEC JSON objects, as rendered for letters), one
/// string each, then empty ones for events that could not be read. Objects
/// are split as JSON, not by lines: an event's own whitespace may hold line
/// ends.
fn letter_texts(text: &[u8]) -> impl Iterator<Item = String> + '_ {
    objects(text)
        .map_while(Result::ok)
        .map(|o| String::from_utf8_lossy(o).into_owned())
        .chain(std::iter::repeat_with(String::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_split_objects_not_lines() {
        let text = b"{\"event\":{\n \"a\": 1\n},\"fields\":{}}\n{\"event\":\"b\"}\n";
        let got: Vec<String> = letter_texts(text).take(3).collect();
        assert_eq!(
            got,
            vec![
                "{\"event\":{\n \"a\": 1\n},\"fields\":{}}".to_string(),
                "{\"event\":\"b\"}".to_string(),
                String::new()
            ]
        );
    }
}
