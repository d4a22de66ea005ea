//! Writes that must happen before a record may leave, tried again when they
//! fail: the release of a delivered record and the dead letters standing for
//! events that will never be delivered. A write can fail while the store
//! stays open (sled's cleaner moving a damaged page, say); without a second
//! try the record would stay queued, and the queue stuck, until a restart.
//! A write error that closes the store reopens it instead, and the engine
//! then reads every record again (`follow_reopen`), so nothing owed is kept
//! across generations.

use super::Engine;
use crate::forward::transport::Transport;
use crate::queue::{DeadLetter, RecordId};
use std::collections::BTreeSet;

/// Dead letters held for another try at most; with more, no new work is
/// planned (each holds its event's text: memory stays bounded while the
/// store refuses letters).
const MAX_OWED_LETTERS: usize = 1024;

/// What is owed to the store.
#[derive(Debug, Default)]
pub(super) struct Owed {
    /// Records delivered whose release failed.
    releases: BTreeSet<RecordId>,
    /// Dead letters not stored yet, with the events each stands for. Their
    /// events stay counted in `lettering_events` until stored.
    letters: Vec<(DeadLetter, u64)>,
}

impl Owed {
    /// Nothing owed.
    pub(super) fn is_empty(&self) -> bool {
        self.releases.is_empty() && self.letters.is_empty()
    }

    /// Too many letters wait: plan nothing new until some are stored.
    pub(super) fn is_full(&self) -> bool {
        self.letters.len() >= MAX_OWED_LETTERS
    }
}

impl<T: Transport> Engine<T> {
    /// Releases a record every event of which was handled; a failure is
    /// tried again on the next housekeeping tick.
    pub(super) fn release(&mut self, record: RecordId) {
        let outputs: Vec<&str> = self.ctx.outputs.iter().map(String::as_str).collect();
        match self.ctx.queue.release(record, &self.s.name, &outputs) {
            Ok(_) => {
                self.owed.releases.remove(&record);
            }
            Err(e) => {
                if self.owed.releases.insert(record) {
                    tracing::error!(output = %self.s.name, record, error = %e, "releasing a delivered record failed; trying again");
                }
            }
        }
    }

    /// Stores a dead letter standing for `covers` events of its record,
    /// which then count as handled; one that cannot be stored now is tried
    /// again, its events held as being lettered meanwhile.
    pub(super) fn store_letter(&mut self, letter: DeadLetter, covers: u64) {
        if !self.try_store_letter(&letter, covers) {
            tracing::error!(output = %self.s.name, record = letter.record, "cannot store a dead letter; the record stays queued and it is tried again");
            *self.lettering_events.entry(letter.record).or_insert(0) += covers;
            self.owed.letters.push((letter, covers));
        }
    }

    /// Letters written on a blocking thread that could not be stored: each
    /// stands for one event, already counted in `lettering_events`.
    pub(super) fn owe_letters(&mut self, letters: Vec<DeadLetter>) {
        self.owed
            .letters
            .extend(letters.into_iter().map(|l| (l, 1)));
    }

    fn try_store_letter(&mut self, letter: &DeadLetter, covers: u64) -> bool {
        match self.ctx.queue.dead_letter(letter) {
            Ok(_) => {
                tracing::warn!(output = %self.s.name, record = letter.record, event = letter.event_number, reason = %letter.reason, "event dead-lettered");
                self.m.dead_lettered.inc_by(covers);
                self.count_delivered(letter.record, covers);
                true
            }
            Err(e) => {
                tracing::debug!(output = %self.s.name, record = letter.record, error = %e, "storing a dead letter failed");
                false
            }
        }
    }

    /// Tries every owed write once more.
    pub(super) fn retry_owed(&mut self) {
        // What a store since reopened was owed is read again instead.
        self.follow_reopen();
        if self.owed.is_empty() {
            return;
        }
        let letters = std::mem::take(&mut self.owed.letters);
        for (letter, covers) in letters {
            // Held as being lettered until stored, then counted.
            self.letters_done(letter.record, covers);
            if !self.try_store_letter(&letter, covers) {
                *self.lettering_events.entry(letter.record).or_insert(0) += covers;
                self.owed.letters.push((letter, covers));
            }
        }
        let releases: Vec<RecordId> = self.owed.releases.iter().copied().collect();
        for record in releases {
            self.release(record);
        }
    }

    /// `n` events of `record` are no longer being lettered.
    pub(super) fn letters_done(&mut self, record: RecordId, n: u64) {
        if let Some(left) = self.lettering_events.get_mut(&record) {
            *left = left.saturating_sub(n);
            if *left == 0 {
                self.lettering_events.remove(&record);
            }
        }
    }

    /// The store was reopened: what the old one owed is read again.
    pub(super) fn forget_owed(&mut self) {
        self.owed = Owed::default();
    }
}
