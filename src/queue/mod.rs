//! The durable FIFO of accepted requests, over sled. The only module that names sled.

mod body;
mod commit;
mod dead;
pub mod export;
mod objects;
pub mod record;
mod release;
mod slot;
mod space;
mod store;

pub use body::BodyReader;
pub use dead::DeadLetter;
pub use objects::BegunObject;
pub use record::{BodyEncoding, DataEndpoint, Record, RecordMeta};

use commit::GroupCommit;
use record::{part_key, CorruptRecord, Header, IndexEntry, CHUNK_BYTES};
use serde::{Deserialize, Serialize};
use slot::Slot;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};
use store::Store;

/// Version of the on-disk layout; written at creation, checked at open.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_KEY: &[u8] = b"format_version";

/// One past the highest record id ever handed out (`meta` tree).
const NEXT_ID_KEY: &[u8] = b"next_id";

/// Queue failures; each names the store's path.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Another Sluice holds the store's lock.
    #[error("queue {path} is locked by a running Sluice")]
    Locked {
        /// Store directory.
        path: PathBuf,
    },
    /// The store was written by an incompatible version.
    #[error("queue {path} has format version {found}, this build reads {FORMAT_VERSION}; use `sluice queue export` with the old version")]
    Version {
        /// Store directory.
        path: PathBuf,
        /// Version found.
        found: String,
    },
    /// sled failed.
    #[error("queue {path}: {source}")]
    Store {
        /// Store directory.
        path: PathBuf,
        /// The sled error.
        source: sled::Error,
    },
    /// A record could not be decoded.
    #[error("queue {path}: {source}")]
    Corrupt {
        /// Store directory.
        path: PathBuf,
        /// What was wrong.
        source: CorruptRecord,
    },
    /// Writing to disk failed; the request must be retried.
    #[error("queue {path}: flush to disk failed")]
    Flush {
        /// Store directory.
        path: PathBuf,
    },
    /// The store is being reopened after a write error.
    #[error("queue {path} is being reopened after a write error")]
    Reopening {
        /// Store directory.
        path: PathBuf,
    },
    /// The flush thread could not start.
    #[error("queue {path}: {source}")]
    Io {
        /// Store directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Limits that make the queue refuse new records (503, never a 4xx).
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Stored bytes above which appends are refused until below 90 %.
    pub max_bytes: u64,
    /// Free filesystem bytes below which appends are refused.
    pub min_free_bytes: u64,
    /// sled page cache.
    pub cache_bytes: u64,
}

#[cfg(test)]
impl QueueLimits {
    /// Test fixture: a queue that never refuses (1 GiB, no free-space floor, 8 MiB cache).
    pub(crate) fn roomy() -> QueueLimits {
        QueueLimits {
            max_bytes: 1 << 30,
            min_free_bytes: 0,
            cache_bytes: 8 << 20,
        }
    }
}

/// Why the queue cannot take a record now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Stored bytes reached `max_bytes`.
    Full,
    /// Free space fell under `min_free_bytes`.
    DiskLow,
    /// A write failed; the store is not writable until it is reopened.
    WriteFailed,
}

/// Queue totals (also the public JSON of `sluice queue stats --json`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Records (accepted requests) stored.
    pub records: u64,
    /// Events in those records.
    pub events: u64,
    /// Stored bytes.
    pub bytes: u64,
    /// Age of the oldest record, seconds (0 when empty).
    pub oldest_age_seconds: f64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    records: u64,
    events: u64,
    bytes: u64,
}

/// Id of a stored record; ids grow, so sled order is arrival order.
pub type RecordId = u64;

/// An appended record that is not yet known to be on disk.
#[derive(Debug, Clone, Copy)]
#[must_use = "an append is durable only after Queue::commit"]
pub struct Pending {
    /// The record's id.
    pub id: RecordId,
    seq: u64,
    generation: u64,
}

/// The durable queue.
pub struct Queue {
    path: PathBuf,
    slot: Arc<Slot>,
    /// Ids allocated whose insert has not finished: readers stop below them.
    appending: Mutex<BTreeSet<RecordId>>,
    /// Woken after every append, so outputs need not poll.
    appended_notify: tokio::sync::Notify,
    next_id: AtomicU64,
    appended: AtomicU64,
    totals: Mutex<Totals>,
    full: AtomicBool,
    limits: QueueLimits,
    commit: GroupCommit,
    /// One reopen at a time.
    reopening: Mutex<()>,
    /// Dead letters per output, counted once per store and kept since.
    dead_counts: Mutex<dead::Counts>,
    /// Test hook: this many more releases and dead letters fail as a write
    /// meeting a damaged page does (the store stays open).
    #[cfg(test)]
    failing_writes: AtomicU64,
    /// Test hook: body readers opened (each decodes a record from its start).
    #[cfg(test)]
    readers_opened: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn key(id: RecordId) -> [u8; 8] {
    id.to_be_bytes()
}

fn marker_key(id: RecordId, output: &str) -> Vec<u8> {
    let mut k = key(id).to_vec();
    k.extend_from_slice(output.as_bytes());
    k
}

fn id_of(k: &[u8]) -> Option<RecordId> {
    k.try_into().ok().map(u64::from_be_bytes)
}

impl Queue {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path, limits: QueueLimits) -> Result<Queue, QueueError> {
        let opened = Store::open(path, limits.cache_bytes)?;
        let slot = Arc::new(Slot {
            path: path.to_path_buf(),
            store: RwLock::new(Some(Arc::new(opened.store))),
            writable: AtomicBool::new(true),
            write_errors: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        });
        let flusher = Arc::clone(&slot);
        let commit =
            GroupCommit::start(move || flusher.flush()).map_err(|source| QueueError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Queue {
            path: path.to_path_buf(),
            slot,
            appending: Mutex::new(BTreeSet::new()),
            appended_notify: tokio::sync::Notify::new(),
            next_id: AtomicU64::new(opened.next_id),
            appended: AtomicU64::new(0),
            full: AtomicBool::new(opened.totals.bytes >= limits.max_bytes),
            totals: Mutex::new(opened.totals),
            limits,
            commit,
            reopening: Mutex::new(()),
            dead_counts: Mutex::new(dead::Counts::default()),
            #[cfg(test)]
            failing_writes: AtomicU64::new(0),
            #[cfg(test)]
            readers_opened: AtomicU64::new(0),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn store(&self) -> Result<Arc<Store>, QueueError> {
        self.slot.get()
    }

    /// Test hook: the next `n` releases and dead letters fail without
    /// closing the store, as when sled's cleaner meets a damaged page.
    #[cfg(test)]
    pub(crate) fn fail_writes(&self, n: u64) {
        self.failing_writes.store(n, Ordering::SeqCst);
    }

    /// Test hook: runs `f` with the store out of its slot, as during a
    /// reopen (readers get the transient `Reopening`).
    #[cfg(test)]
    pub(crate) fn while_reopening<R>(&self, f: impl FnOnce() -> R) -> R {
        let store = self
            .slot
            .store
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let out = f();
        *self.slot.store.write().unwrap_or_else(|e| e.into_inner()) = store;
        out
    }

    /// Test helper: opens the store at `path` again, waiting while a store
    /// just dropped there still holds the lock (sled's own threads let go of
    /// it a moment after the drop on a busy machine).
    #[cfg(test)]
    pub(crate) fn open_again(path: &Path) -> Queue {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Queue::open(path, QueueLimits::roomy()) {
                Err(QueueError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other.expect("queue opens again"),
            }
        }
    }

    /// Test helper: queues `body` as a `/raw` record of `events` lines from
    /// token "t", flushed, and returns its id.
    #[cfg(test)]
    pub(crate) async fn push_raw(&self, body: &[u8], events: u64) -> RecordId {
        let meta = RecordMeta::plain(
            DataEndpoint::Raw,
            BodyEncoding::Identity,
            body.len() as u64,
            events,
        );
        let p = self.append(&meta, body).expect("append");
        let id = p.id;
        self.commit(p).await.expect("commit");
        id
    }

    /// Test hook: a write error, then the reopen that follows it.
    #[cfg(test)]
    pub(crate) fn fail_and_reopen(&self) {
        self.slot.write_failed(&"injected");
        assert!(matches!(self.reopen_if_failed(), Ok(true)));
    }

    /// How many body readers were opened so far.
    #[cfg(test)]
    pub(crate) fn readers_opened(&self) -> u64 {
        self.readers_opened.load(Ordering::SeqCst)
    }

    /// Fails a write the test hook asks to fail.
    fn injected_failure(&self) -> Result<(), QueueError> {
        #[cfg(test)]
        if self
            .failing_writes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(self.store_err(sled::Error::Unsupported("injected failure".into())));
        }
        Ok(())
    }

    /// A sled error from a read.
    fn store_err(&self, source: sled::Error) -> QueueError {
        QueueError::Store {
            path: self.path.clone(),
            source,
        }
    }

    /// A sled error from a write or flush: an I/O error makes the store
    /// unwritable until reopened (sled keeps failing after one). Read errors
    /// do not: they are about the bytes read, which a reopen cannot mend.
    fn write_err(&self, source: sled::Error) -> QueueError {
        if matches!(source, sled::Error::Io(_)) {
            self.slot.write_failed(&source);
        }
        self.store_err(source)
    }

    /// Whether appends can be written (false after a write error, until reopened).
    pub fn writable(&self) -> bool {
        self.slot.writable.load(Ordering::SeqCst)
    }

    /// Failed appends and flushes since start.
    pub fn write_errors(&self) -> u64 {
        self.slot.write_errors.load(Ordering::SeqCst)
    }

    /// Changes each time the store is reopened: readers start over then
    /// (markers and removals not yet flushed by the old store may be gone).
    pub fn generation(&self) -> u64 {
        self.slot.generation.load(Ordering::SeqCst)
    }

    /// Whether a record of `incoming` bytes may be appended now. Stored bytes
    /// may overshoot `max_bytes` by the requests in flight; the watermark is
    /// a back-pressure signal, the free-space floor is the hard stop.
    pub fn admit(&self, incoming: u64) -> Result<(), Busy> {
        if !self.writable() {
            return Err(Busy::WriteFailed);
        }
        let bytes = self.lock_totals().bytes;
        if self.full.load(Ordering::Relaxed) {
            if bytes.saturating_mul(10) >= self.limits.max_bytes.saturating_mul(9) {
                return Err(Busy::Full);
            }
            self.full.store(false, Ordering::Relaxed);
        }
        if bytes >= self.limits.max_bytes {
            self.full.store(true, Ordering::Relaxed);
            return Err(Busy::Full);
        }
        if self
            .free_bytes()
            .is_some_and(|f| f < self.limits.min_free_bytes.saturating_add(incoming))
        {
            return Err(Busy::DiskLow);
        }
        Ok(())
    }

    /// Whether the queue is over a watermark or cannot write (for `/health`).
    pub fn over_watermark(&self) -> bool {
        self.admit(0).is_err()
    }

    /// Free bytes on the queue's filesystem, when readable.
    pub fn free_bytes(&self) -> Option<u64> {
        space::free_bytes(&self.path).ok()
    }

    fn lock_totals(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.totals.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a record in memory; call [`Queue::commit`] before acknowledging it.
    pub fn append(&self, meta: &RecordMeta, body: &[u8]) -> Result<Pending, QueueError> {
        let id = {
            let mut a = self.appending.lock().unwrap_or_else(|e| e.into_inner());
            let id = self.next_id.fetch_add(1, Ordering::SeqCst);
            a.insert(id);
            id
        };
        let result = self.write_record(id, meta, body);
        self.appending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.appended_notify.notify_waiters();
        result
    }

    fn write_record(
        &self,
        id: RecordId,
        meta: &RecordMeta,
        body: &[u8],
    ) -> Result<Pending, QueueError> {
        // Held for the whole write: a reopen cannot slip between the insert
        // and the sequence number that its flush will cover.
        let guard = self.slot.store.read().unwrap_or_else(|e| e.into_inner());
        let store = guard.as_ref().ok_or_else(|| QueueError::Reopening {
            path: self.path.clone(),
        })?;
        let generation = self.generation();
        let chunks = body.chunks(CHUNK_BYTES);
        let n = u32::try_from(chunks.len()).map_err(|_| QueueError::Corrupt {
            path: self.path.clone(),
            source: CorruptRecord("body too large".into()),
        })?;
        let header = Header::encode(meta, n);
        let stored = (header.len() + body.len()) as u64;
        // Raised before the record lands, so the mark is on disk whenever
        // the record is (sled persists writes in order).
        let mark = (id + 1).to_be_bytes();
        store
            .meta
            .fetch_and_update(NEXT_ID_KEY, |old| match old.and_then(id_of) {
                Some(old) if old > id => Some(key(old).to_vec()),
                _ => Some(mark.to_vec()),
            })
            .map_err(|e| self.write_err(e))?;
        // Header and chunks land atomically: a record is whole or absent.
        let mut batch = sled::Batch::default();
        batch.insert(&part_key(id, 0)[..], header);
        for (i, chunk) in chunks.enumerate() {
            batch.insert(&part_key(id, i as u32 + 1)[..], chunk);
        }
        store
            .records
            .apply_batch(batch)
            .map_err(|e| self.write_err(e))?;
        let entry = IndexEntry {
            events: meta.events,
            bytes: stored,
            received_ms: meta.received_ms,
        };
        // Record before index: after a crash an index entry always has its record.
        store
            .index
            .insert(key(id), &entry.encode()[..])
            .map_err(|e| self.write_err(e))?;
        {
            let mut t = self.lock_totals();
            t.records += 1;
            t.events += entry.events;
            t.bytes += entry.bytes;
        }
        let seq = self.appended.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Pending {
            id,
            seq,
            generation,
        })
    }

    /// Waits until `pending` is on disk (sharing the flush with concurrent appends).
    pub async fn commit(&self, pending: Pending) -> Result<(), QueueError> {
        let flushed = self.commit.wait(pending.seq).await;
        // A reopen since the append means the store that was flushed is not
        // the one the record was written to.
        if flushed.is_err() || self.generation() != pending.generation {
            return Err(QueueError::Flush {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// Flushes everything to disk now.
    pub fn flush(&self) -> Result<(), QueueError> {
        let store = self.store()?;
        store.db.flush().map(|_| ()).map_err(|e| self.write_err(e))
    }

    fn corrupt(&self, source: CorruptRecord) -> QueueError {
        QueueError::Corrupt {
            path: self.path.clone(),
            source,
        }
    }

    fn header(&self, store: &Store, id: RecordId) -> Result<Option<Header>, QueueError> {
        match store
            .records
            .get(part_key(id, 0))
            .map_err(|e| self.store_err(e))?
        {
            Some(v) => Header::decode(&v).map(Some).map_err(|e| self.corrupt(e)),
            None => Ok(None),
        }
    }

    /// Reads one record whole (the CLI's export and tests; outputs stream
    /// with [`Queue::body_reader`]).
    pub fn get(&self, id: RecordId) -> Result<Option<Record>, QueueError> {
        let store = self.store()?;
        let Some(header) = self.header(&store, id)? else {
            return Ok(None);
        };
        let generation = self.generation();
        let mut body = Vec::with_capacity(header.chunks as usize * CHUNK_BYTES);
        for part in 1..=header.chunks {
            body.extend_from_slice(&self.chunk(id, part, generation)?);
        }
        Ok(Some(Record {
            meta: header.meta,
            body,
        }))
    }

    /// A record's metadata and a reader of its stored body, chunk by chunk.
    pub fn body_reader(
        self: &Arc<Queue>,
        id: RecordId,
    ) -> Result<Option<(RecordMeta, BodyReader)>, QueueError> {
        let store = self.store()?;
        let Some(header) = self.header(&store, id)? else {
            return Ok(None);
        };
        #[cfg(test)]
        self.readers_opened.fetch_add(1, Ordering::SeqCst);
        Ok(Some((
            header.meta,
            BodyReader::new(Arc::clone(self), id, header.chunks, self.generation()),
        )))
    }

    /// One stored body chunk (`part` from 1), for [`BodyReader`].
    fn chunk(&self, id: RecordId, part: u32, generation: u64) -> Result<Vec<u8>, QueueError> {
        let store = self.store()?;
        if self.generation() != generation {
            return Err(QueueError::Reopening {
                path: self.path.clone(),
            });
        }
        match store
            .records
            .get(part_key(id, part))
            .map_err(|e| self.store_err(e))?
        {
            Some(v) => Ok(v.to_vec()),
            None => Err(self.corrupt(CorruptRecord(format!(
                "record {id} lacks body chunk {part}"
            )))),
        }
    }

    /// A record's index entry: `Ok(None)` only when the record is gone; a
    /// store being reopened or an unreadable entry is an error, never
    /// "gone", or a resend would count events as delivered unsent.
    fn index_entry(&self, id: RecordId) -> Result<Option<IndexEntry>, QueueError> {
        let Some(v) = self
            .store()?
            .index
            .get(key(id))
            .map_err(|e| self.store_err(e))?
        else {
            return Ok(None);
        };
        IndexEntry::decode(&v)
            .map(Some)
            .map_err(|e| self.corrupt(CorruptRecord(format!("record {id}: {}", e.0))))
    }

    /// Events of a queued record, from its index entry (`Ok(None)`: gone).
    pub fn events_of(&self, id: RecordId) -> Result<Option<u64>, QueueError> {
        Ok(self.index_entry(id)?.map(|e| e.events))
    }

    /// Receive time (ms since the epoch) of a queued record, where readable.
    pub fn received_ms(&self, id: RecordId) -> Option<u64> {
        self.index_entry(id).ok().flatten().map(|e| e.received_ms)
    }

    /// Whether a record is still queued.
    pub fn contains(&self, id: RecordId) -> bool {
        self.store()
            .map(|s| s.index.contains_key(key(id)).unwrap_or(true))
            .unwrap_or(true)
    }

    /// Every id below this is either stored whole or gone: readers must not
    /// look past it, or a slower concurrent append could land behind them.
    pub fn readable_before(&self) -> RecordId {
        let a = self.appending.lock().unwrap_or_else(|e| e.into_inner());
        a.first()
            .copied()
            .unwrap_or_else(|| self.next_id.load(Ordering::SeqCst))
    }

    /// Resolves after the next append (register before checking for data).
    pub fn appended(&self) -> tokio::sync::futures::Notified<'_> {
        self.appended_notify.notified()
    }

    /// Ids of stored records from `from` on, in arrival order.
    pub fn ids_from(&self, from: RecordId) -> impl Iterator<Item = RecordId> {
        let iter = self.store().ok().map(|s| s.index.range(key(from)..).keys());
        iter.into_iter()
            .flatten()
            .filter_map(|k| k.ok().and_then(|k| id_of(&k)))
    }

    /// Deletes a delivered record. The index entry goes first: from then on
    /// the record is gone for readers and totals, even when its parts sit in
    /// a damaged page that cannot be rewritten (they stay as dead bytes).
    pub fn remove(&self, id: RecordId) -> Result<bool, QueueError> {
        let store = self.store()?;
        let Some(v) = store.index.remove(key(id)).map_err(|e| self.write_err(e))? else {
            return Ok(false);
        };
        if let Ok(e) = IndexEntry::decode(&v) {
            let mut t = self.lock_totals();
            t.records = t.records.saturating_sub(1);
            t.events = t.events.saturating_sub(e.events);
            t.bytes = t.bytes.saturating_sub(e.bytes);
        }
        // Every part under the id, even when the header is unreadable.
        let mut batch = sled::Batch::default();
        for k in store
            .records
            .range(part_key(id, 0)..=part_key(id, u32::MAX))
            .keys()
        {
            match k {
                Ok(k) => batch.remove(k),
                Err(sled::Error::Corruption { .. }) => {
                    tracing::warn!(path = %self.path.display(), record = id, "a removed record's parts sit in a damaged page and stay in the store");
                    return Ok(true);
                }
                Err(e) => return Err(self.store_err(e)),
            }
        }
        store
            .records
            .apply_batch(batch)
            .map_err(|e| self.write_err(e))?;
        Ok(true)
    }

    /// Current totals and the oldest record's age.
    pub fn stats(&self) -> QueueStats {
        let t = *self.lock_totals();
        let oldest_age_seconds = self
            .store()
            .ok()
            .and_then(|s| s.index.first().ok().flatten())
            .and_then(|(_, v)| IndexEntry::decode(&v).ok())
            .map_or(0.0, |e| {
                now_ms().saturating_sub(e.received_ms) as f64 / 1000.0
            });
        QueueStats {
            records: t.records,
            events: t.events,
            bytes: t.bytes,
            oldest_age_seconds,
        }
    }
}

#[cfg(test)]
mod tests;
