//! Release per output: a record leaves the queue once every output delivered it.

use super::{id_of, key, marker_key, Queue, QueueError, RecordId};

impl Queue {
    /// Marks `id` delivered by `output`; when every output in `outputs` has
    /// delivered it, the record and its markers are deleted (returns true).
    pub fn release(
        &self,
        id: RecordId,
        output: &str,
        outputs: &[&str],
    ) -> Result<bool, QueueError> {
        self.injected_failure()?;
        self.store()?
            .released
            .insert(marker_key(id, output), &[])
            .map_err(|e| self.write_err(e))?;
        self.remove_if_released(id, outputs)
    }

    /// Whether `output` already delivered `id` (so a restart does not send it again).
    pub fn is_released(&self, id: RecordId, output: &str) -> bool {
        !self.contains(id)
            || self.store().is_ok_and(|s| {
                s.released
                    .contains_key(marker_key(id, output))
                    .unwrap_or(false)
            })
    }

    fn remove_if_released(&self, id: RecordId, outputs: &[&str]) -> Result<bool, QueueError> {
        let mut done: Vec<Vec<u8>> = Vec::new();
        for item in self.store()?.released.scan_prefix(key(id)) {
            let (k, _) = item.map_err(|e| self.store_err(e))?;
            done.push(k[8..].to_vec());
        }
        if !outputs
            .iter()
            .all(|o| done.iter().any(|d| d == o.as_bytes()))
        {
            return Ok(false);
        }
        self.remove(id)?;
        let mut batch = sled::Batch::default();
        for name in done {
            let mut k = key(id).to_vec();
            k.extend_from_slice(&name);
            batch.remove(k);
        }
        self.store()?
            .released
            .apply_batch(batch)
            .map_err(|e| self.write_err(e))?;
        Ok(true)
    }

    /// Finishes releases a crash interrupted (all markers written, record not
    /// yet deleted) and drops markers of records already gone.
    pub fn sweep_released(&self, outputs: &[&str]) -> Result<u64, QueueError> {
        let mut ids: Vec<RecordId> = Vec::new();
        for item in self.store()?.released.iter().keys() {
            let k = item.map_err(|e| self.store_err(e))?;
            if let Some(id) = id_of(&k[..8.min(k.len())]) {
                if ids.last() != Some(&id) {
                    ids.push(id);
                }
            }
        }
        let mut removed = 0;
        for id in ids {
            if !self.contains(id) {
                let stale: Vec<_> = self
                    .store()?
                    .released
                    .scan_prefix(key(id))
                    .keys()
                    .filter_map(Result::ok)
                    .collect();
                for k in stale {
                    self.store()?
                        .released
                        .remove(k)
                        .map_err(|e| self.write_err(e))?;
                }
            } else if self.remove_if_released(id, outputs)? {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
