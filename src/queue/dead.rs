//! Dead letters: events an output can never deliver, kept with the reason,
//! listed, replayed to that output, or purged.

use super::record::CorruptRecord;
use super::{
    id_of, marker_key, now_ms, BodyEncoding, DataEndpoint, Queue, QueueError, RecordId, RecordMeta,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Dead letters per output, so metrics read a number instead of scanning
/// every letter. Counted once per store generation (a reopened store may
/// have lost unflushed letters), then kept as letters come and go.
#[derive(Debug, Default)]
pub(super) struct Counts {
    generation: Option<u64>,
    per_output: HashMap<String, u64>,
}

/// An event that can never be delivered, kept with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Output that gave up on it.
    pub output: String,
    /// Record it came from.
    pub record: RecordId,
    /// Its position in the record.
    pub event_number: u64,
    /// Why it cannot be delivered (e.g. the indexer's answer).
    pub reason: String,
    /// When, ms since the epoch.
    pub time_ms: u64,
    /// The event as it would have been sent (HEC JSON).
    pub event: String,
}

impl DeadLetter {
    /// Whether replaying can deliver it: not a cut oversize line, not the
    /// summary of a corrupt record.
    pub fn is_replayable(&self) -> bool {
        !(self.reason.starts_with("oversize") || self.reason.starts_with("corrupt"))
    }
}

impl Queue {
    /// Stores an event that can never be delivered, with the reason.
    pub fn dead_letter(&self, letter: &DeadLetter) -> Result<u64, QueueError> {
        self.injected_failure()?;
        let seq = self
            .store()?
            .db
            .generate_id()
            .map_err(|e| self.write_err(e))?;
        let value = serde_json::to_vec(letter).unwrap_or_default();
        self.store()?
            .dead
            .insert(seq.to_be_bytes(), value)
            .map_err(|e| self.write_err(e))?;
        self.count_dead(&letter.output, 1, 0);
        Ok(seq)
    }

    /// Dead letters in order, with their sequence numbers.
    pub fn dead_letters(&self) -> Result<Vec<(u64, DeadLetter)>, QueueError> {
        let mut out = Vec::new();
        for item in self.store()?.dead.iter() {
            let (k, v) = item.map_err(|e| self.store_err(e))?;
            let seq = id_of(&k).unwrap_or(0);
            let letter = serde_json::from_slice(&v)
                .map_err(|e| self.corrupt(CorruptRecord(e.to_string())))?;
            out.push((seq, letter));
        }
        Ok(out)
    }

    /// One dead letter.
    pub fn dead_letter_get(&self, seq: u64) -> Result<Option<DeadLetter>, QueueError> {
        match self
            .store()?
            .dead
            .get(seq.to_be_bytes())
            .map_err(|e| self.store_err(e))?
        {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| self.corrupt(CorruptRecord(e.to_string()))),
            None => Ok(None),
        }
    }

    /// Dead letters selected by sequence number and/or output (`None`: any).
    pub fn dead_selected(
        &self,
        seq: Option<u64>,
        output: Option<&str>,
    ) -> Result<Vec<(u64, DeadLetter)>, QueueError> {
        let mut all = self.dead_letters()?;
        all.retain(|(s, d)| seq.is_none_or(|x| x == *s) && output.is_none_or(|o| o == d.output));
        Ok(all)
    }

    /// Deletes dead letters: one (`seq`), an output's, or all; returns how many.
    pub fn purge_dead(&self, seq: Option<u64>, output: Option<&str>) -> Result<u64, QueueError> {
        let mut n = 0;
        for (s, d) in self.dead_selected(seq, output)? {
            self.store()?
                .dead
                .remove(s.to_be_bytes())
                .map_err(|e| self.write_err(e))?;
            self.count_dead(&d.output, 0, 1);
            n += 1;
        }
        self.flush()?;
        Ok(n)
    }

    /// Puts dead letters back in the queue for the output that gave up on
    /// them (the other outputs are marked as done with the new record);
    /// returns how many were replayed. Letters whose event could not be read
    /// stay.
    pub async fn replay_dead(
        &self,
        seq: Option<u64>,
        output: Option<&str>,
        outputs: &[&str],
    ) -> Result<u64, QueueError> {
        let mut n = 0;
        for (s, d) in self.dead_selected(seq, output)? {
            // What cannot be sent as it is stays: unreadable events, the cut
            // head of an oversize line, the record summary of a corrupt one.
            if d.event.trim().is_empty() || !d.is_replayable() {
                continue;
            }
            let body = d.event.trim().as_bytes();
            let meta = RecordMeta {
                endpoint: DataEndpoint::Event,
                token: "replay".into(),
                channel: None,
                sourcetype: None,
                source: None,
                host: None,
                index: None,
                received_ms: now_ms(),
                events: 1,
                encoding: BodyEncoding::Identity,
                decoded_bytes: body.len() as u64,
            };
            let pending = self.append(&meta, body)?;
            for other in outputs.iter().filter(|o| **o != d.output) {
                self.store()?
                    .released
                    .insert(marker_key(pending.id, other), &[])
                    .map_err(|e| self.write_err(e))?;
            }
            self.commit(pending).await?;
            self.store()?
                .dead
                .remove(s.to_be_bytes())
                .map_err(|e| self.write_err(e))?;
            self.count_dead(&d.output, 0, 1);
            n += 1;
        }
        self.flush()?;
        Ok(n)
    }

    /// The counts for the current store, counting its letters on first use.
    /// Also says whether they were just counted (and so already hold the
    /// change being reported).
    fn dead_counts(&self) -> (std::sync::MutexGuard<'_, Counts>, bool) {
        let generation = self.generation();
        let mut c = self.dead_counts.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = c.generation != Some(generation);
        if fresh {
            let mut per_output = HashMap::new();
            if let Ok(all) = self.dead_letters() {
                for (_, d) in all {
                    *per_output.entry(d.output).or_insert(0) += 1;
                }
            }
            *c = Counts {
                generation: Some(generation),
                per_output,
            };
        }
        (c, fresh)
    }

    fn count_dead(&self, output: &str, added: u64, removed: u64) {
        let (mut c, fresh) = self.dead_counts();
        if fresh {
            return;
        }
        let n = c.per_output.entry(output.to_string()).or_insert(0);
        *n = (*n + added).saturating_sub(removed);
    }

    /// Number of dead letters of an output (a running count).
    pub fn dead_letter_count(&self, output: &str) -> usize {
        self.dead_counts()
            .0
            .per_output
            .get(output)
            .map_or(0, |n| *n as usize)
    }
}
