//! The sled handles of one open store, and what opening it rebuilds.
//!
//! sled remembers an I/O error (ENOSPC, EIO) for the life of the `Db`: every
//! later write fails with it even once the cause is gone. The queue therefore
//! keeps its store behind a slot it can empty and fill again (`Queue::reopen`),
//! and this module is the one place that opens it.

use super::record::{id_of_part, part_key, CorruptRecord, Header, IndexEntry};
use super::{id_of, key, QueueError, Totals, FORMAT_KEY, FORMAT_VERSION, NEXT_ID_KEY};
use std::path::Path;

/// One open sled database and its trees.
pub(super) struct Store {
    pub db: sled::Db,
    /// Format version and the id high-water mark.
    pub meta: sled::Tree,
    /// Records: `id ‖ part` → header (part 0) or body chunk.
    pub records: sled::Tree,
    /// `id` → [`IndexEntry`].
    pub index: sled::Tree,
    /// Per-output delivery markers: `id ‖ output name`.
    pub released: sled::Tree,
    /// Dead letters: `seq` → JSON.
    pub dead: sled::Tree,
    /// Objects begun per output (`objects.rs`).
    pub objects: sled::Tree,
}

/// A store just opened, with what its contents say.
pub(super) struct Opened {
    pub store: Store,
    pub totals: Totals,
    /// One past the highest record id stored.
    pub next_id: u64,
}

impl Store {
    /// Opens (or creates) the store at `path`, checks its format, finishes an
    /// index a crash left short and counts its totals.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Opened, QueueError> {
        crate::private_fs::create_dir(path).map_err(|source| QueueError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let store = |source: sled::Error| QueueError::Store {
            path: path.to_path_buf(),
            source,
        };
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|e| match &e {
                sled::Error::Io(io) if io.to_string().contains("lock") => QueueError::Locked {
                    path: path.to_path_buf(),
                },
                _ => store(e),
            })?;
        let meta = db.open_tree("meta").map_err(store)?;
        let records = db.open_tree("records").map_err(store)?;
        let index = db.open_tree("index").map_err(store)?;
        let released = db.open_tree("released").map_err(store)?;
        let dead = db.open_tree("dead").map_err(store)?;
        let objects = db.open_tree("objects").map_err(store)?;
        match meta.get(FORMAT_KEY).map_err(store)? {
            Some(v) if v.as_ref() == FORMAT_VERSION.to_string().as_bytes() => {}
            Some(v) => {
                return Err(QueueError::Version {
                    path: path.to_path_buf(),
                    found: String::from_utf8_lossy(&v).into_owned(),
                })
            }
            None => {
                meta.insert(FORMAT_KEY, FORMAT_VERSION.to_string().as_bytes())
                    .map_err(store)?;
                db.flush().map_err(store)?;
            }
        }
        match repair_index(&records, &index) {
            Ok(()) => {}
            // A damaged page at the tail: the records it holds without an
            // index entry were never acknowledged (the entry is written
            // before the flush that answers 200); the rest of the store is
            // usable.
            Err(Repair::Store(e @ sled::Error::Corruption { .. })) => {
                tracing::warn!(path = %path.display(), error = %e, "the queue's tail holds an unreadable record without an index entry; it is left as it is")
            }
            Err(Repair::Corrupt(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "the queue's tail holds an unreadable record without an index entry; it is left as it is")
            }
            Err(Repair::Store(e)) => return Err(store(e)),
        }
        let mut totals = Totals::default();
        for item in index.iter() {
            let (_, v) = item.map_err(store)?;
            // An unreadable index entry still stands for a record; it counts
            // as empty here and becomes a dead letter when an output reaches it.
            let e = IndexEntry::decode(&v).unwrap_or(IndexEntry {
                events: 0,
                bytes: 0,
                received_ms: 0,
            });
            totals.records += 1;
            totals.events += e.events;
            totals.bytes += e.bytes;
        }
        let by_index = index
            .last()
            .map_err(store)?
            .and_then(|(k, _)| id_of(&k))
            .map_or(0, |id| id + 1);
        let next_id = match records.last() {
            Ok(Some((k, _))) => id_of_part(&k).map_or(0, |id| id + 1).max(by_index),
            Ok(None) => by_index,
            // An unreadable last page: ids continue past what the index knows,
            // plus a margin for records only that page held.
            Err(sled::Error::Corruption { .. }) => by_index + 1_000_000,
            Err(e) => return Err(store(e)),
        };
        // Ids are never handed out twice, even once the queue has emptied:
        // outputs name what they wrote after them (object keys, rollup ids).
        let next_id = match meta.get(NEXT_ID_KEY) {
            Ok(Some(v)) => id_of(&v).map_or(next_id, |mark| mark.max(next_id)),
            Ok(None) => next_id,
            Err(sled::Error::Corruption { .. }) => next_id + 1_000_000,
            Err(e) => return Err(store(e)),
        };
        Ok(Opened {
            store: Store {
                db,
                meta,
                records,
                index,
                released,
                dead,
                objects,
            },
            totals,
            next_id,
        })
    }
}

enum Repair {
    Store(sled::Error),
    Corrupt(CorruptRecord),
}

/// Records are written before their index entry, so a crash can leave records
/// at the tail without one: rebuild those entries from the record headers.
fn repair_index(records: &sled::Tree, index: &sled::Tree) -> Result<(), Repair> {
    let after = match index.last().map_err(Repair::Store)? {
        Some((k, _)) => id_of(&k).map_or(0, |id| id + 1),
        None => 0,
    };
    let mut next = after;
    loop {
        let Some((k, v)) = records
            .range(part_key(next, 0)..)
            .next()
            .transpose()
            .map_err(Repair::Store)?
        else {
            return Ok(());
        };
        let id = id_of_part(&k).ok_or_else(|| Repair::Corrupt(CorruptRecord("bad key".into())))?;
        let header = Header::decode(&v).map_err(Repair::Corrupt)?;
        let mut bytes = v.len() as u64;
        for item in records.range(part_key(id, 1)..=part_key(id, u32::MAX)) {
            bytes += item.map_err(Repair::Store)?.1.len() as u64;
        }
        let entry = IndexEntry {
            events: header.meta.events,
            bytes,
            received_ms: header.meta.received_ms,
        };
        index
            .insert(key(id), &entry.encode()[..])
            .map_err(Repair::Store)?;
        next = id + 1;
    }
}
