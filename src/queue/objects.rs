//! Objects an output has begun to write (the `s3` output): the record range
//! and the key of each, stored (and flushed) before its upload starts, so
//! that after a crash the same records go to the same key again instead of
//! to a new object beside a half-written one.

use super::{id_of, key, Queue, QueueError, RecordId};

/// An object begun and not yet finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BegunObject {
    /// Its first record.
    pub first: RecordId,
    /// Its last record.
    pub last: RecordId,
    /// Its key in the bucket.
    pub key: String,
    /// Whether it is in the bucket, whole (only releases were left).
    pub uploaded: bool,
}

/// The byte after a begun object's last record that marks it uploaded
/// (never the first byte of a UTF-8 key).
const UPLOADED: u8 = 0xff;

/// `len(output) ‖ output ‖ first`: one output's objects sort together, by first record.
fn object_key(output: &str, first: RecordId) -> Vec<u8> {
    let name = output.as_bytes();
    let mut k = Vec::with_capacity(2 + name.len() + 8);
    k.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_be_bytes());
    k.extend_from_slice(name);
    k.extend_from_slice(&key(first));
    k
}

fn prefix(output: &str) -> Vec<u8> {
    let mut k = object_key(output, 0);
    k.truncate(k.len() - 8);
    k
}

impl Queue {
    /// Records that `output` is about to upload records `first..=last` as
    /// `object_key`, on disk before this returns.
    pub fn begin_object(
        &self,
        output: &str,
        first: RecordId,
        last: RecordId,
        object_key_text: &str,
    ) -> Result<(), QueueError> {
        let mut value = key(last).to_vec();
        value.extend_from_slice(object_key_text.as_bytes());
        self.store()?
            .objects
            .insert(object_key(output, first), value)
            .map_err(|e| self.write_err(e))?;
        self.flush()
    }

    /// The object of `output` starting at `first` is in the bucket, whole:
    /// after a crash its records are released, not written again (a rewrite
    /// from the records not yet released would replace it with a part of
    /// itself). On disk before this returns.
    pub fn object_uploaded(&self, output: &str, first: RecordId) -> Result<(), QueueError> {
        let store = self.store()?;
        let k = object_key(output, first);
        let Some(v) = store.objects.get(&k).map_err(|e| self.store_err(e))? else {
            return Ok(());
        };
        let (Some(last), rest) = (v.get(..8), v.get(8..).unwrap_or_default()) else {
            return Ok(());
        };
        if rest.first() == Some(&UPLOADED) {
            return Ok(());
        }
        let mut marked = last.to_vec();
        marked.push(UPLOADED);
        marked.extend_from_slice(rest);
        store
            .objects
            .insert(k, marked)
            .map_err(|e| self.write_err(e))?;
        self.flush()
    }

    /// The object of `output` starting at `first` is complete and its
    /// records released.
    pub fn end_object(&self, output: &str, first: RecordId) -> Result<(), QueueError> {
        self.store()?
            .objects
            .remove(object_key(output, first))
            .map_err(|e| self.write_err(e))?;
        Ok(())
    }

    /// `output`'s objects begun and not finished, oldest first.
    pub fn begun_objects(&self, output: &str) -> Result<Vec<BegunObject>, QueueError> {
        let p = prefix(output);
        let mut out = Vec::new();
        for item in self.store()?.objects.scan_prefix(&p) {
            let (k, v) = item.map_err(|e| self.store_err(e))?;
            let (Some(first), Some(last)) =
                (k.get(p.len()..).and_then(id_of), v.get(..8).and_then(id_of))
            else {
                continue;
            };
            let rest = v.get(8..).unwrap_or_default();
            let uploaded = rest.first() == Some(&UPLOADED);
            let key = String::from_utf8_lossy(&rest[usize::from(uploaded)..]).into_owned();
            out.push(BegunObject {
                first,
                last,
                key,
                uploaded,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::queue::Queue;

    #[test]
    fn begun_objects_survive_a_reopen_per_output() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = Queue::open_again(dir.path());
            q.begin_object("s3", 4, 9, "p/dt=2026-12-03/hour=07/n-4-9.ndjson.gz")
                .unwrap();
            q.begin_object("s3", 10, 10, "k2").unwrap();
            q.begin_object("s3b", 1, 2, "other").unwrap();
            q.end_object("s3", 10).unwrap();
        }
        let q = Queue::open_again(dir.path());
        let b = q.begun_objects("s3").unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!((b[0].first, b[0].last), (4, 9));
        assert_eq!(b[0].key, "p/dt=2026-12-03/hour=07/n-4-9.ndjson.gz");
        assert_eq!(q.begun_objects("s3b").unwrap()[0].key, "other");
        assert!(q.begun_objects("s").unwrap().is_empty());
        assert!(!b[0].uploaded);
        q.object_uploaded("s3", 4).unwrap();
        q.object_uploaded("s3", 4).unwrap();
        q.object_uploaded("s3", 99).unwrap();
        drop(q);
        let q = Queue::open_again(dir.path());
        let b = q.begun_objects("s3").unwrap();
        assert_eq!(b.len(), 1);
        assert!(b[0].uploaded);
        assert_eq!(b[0].key, "p/dt=2026-12-03/hour=07/n-4-9.ndjson.gz");
    }
}
