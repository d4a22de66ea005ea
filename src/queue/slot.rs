//! The open store behind the queue, and reopening it after a write error:
//! sled remembers an I/O error for the life of its `Db`, so recovering means
//! closing the store and opening it anew, in-process.

use super::store::Store;
use super::{Queue, QueueError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The open store, shared with the flush thread, and whether it can write.
pub(super) struct Slot {
    pub(super) path: PathBuf,
    /// `None` only while the store is being reopened.
    pub(super) store: RwLock<Option<Arc<Store>>>,
    pub(super) writable: AtomicBool,
    pub(super) write_errors: AtomicU64,
    /// Bumped on every reopen: appends of an earlier generation were never
    /// flushed by the store now open.
    pub(super) generation: AtomicU64,
}

impl Slot {
    pub(super) fn get(&self) -> Result<Arc<Store>, QueueError> {
        self.store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| QueueError::Reopening {
                path: self.path.clone(),
            })
    }

    /// Records a failed write: the store refuses appends until reopened.
    pub(super) fn write_failed(&self, error: &dyn std::fmt::Display) {
        self.write_errors.fetch_add(1, Ordering::SeqCst);
        if self.writable.swap(false, Ordering::SeqCst) {
            tracing::error!(path = %self.path.display(), error = %error, "queue write failed: refusing requests (503 code 9, /health 503 code 18) until the store is reopened; it is reopened as soon as there is free space again");
        }
    }

    pub(super) fn flush(&self) -> Result<(), String> {
        let store = self.get().map_err(|e| e.to_string())?;
        store.db.flush().map(|_| ()).map_err(|e| {
            self.write_failed(&e);
            e.to_string()
        })
    }
}

/// How long a reopen waits for readers of the old store to let go.
const REOPEN_WAIT: Duration = Duration::from_secs(10);

impl Queue {
    /// After a write error: once the free-space floor is met again, closes
    /// the store and opens it anew, which clears sled's sticky error. Appends
    /// that were not flushed were answered 503 and are retried by their
    /// senders. Returns whether the store is writable afterwards.
    pub fn reopen_if_failed(&self) -> Result<bool, QueueError> {
        if self.writable() {
            return Ok(true);
        }
        if self
            .free_bytes()
            .is_some_and(|f| f < self.limits.min_free_bytes)
        {
            return Ok(false);
        }
        let _one = self.reopening.lock().unwrap_or_else(|e| e.into_inner());
        // Out of the slot under a brief write lock: readers meanwhile get
        // `Reopening` (transient) instead of waiting on the lock.
        let old = self
            .slot
            .store
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(old) = old {
            // sled's file lock goes with the last handle of the old store.
            let deadline = Instant::now() + REOPEN_WAIT;
            while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if Arc::strong_count(&old) > 1 {
                *self.slot.store.write().unwrap_or_else(|e| e.into_inner()) = Some(old);
                return Ok(false);
            }
            drop(old);
        }
        let mut attempt = 0;
        let opened = loop {
            match Store::open(&self.path, self.limits.cache_bytes) {
                Ok(o) => break o,
                Err(QueueError::Locked { .. }) if attempt < 50 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                // The slot stays empty; the healer tries again.
                Err(e) => return Err(e),
            }
        };
        {
            let mut slot = self.slot.store.write().unwrap_or_else(|e| e.into_inner());
            *self.lock_totals() = opened.totals;
            // Ids never go back: an output's cursor may be past unflushed ones.
            self.next_id.fetch_max(opened.next_id, Ordering::SeqCst);
            *slot = Some(Arc::new(opened.store));
            self.slot.generation.fetch_add(1, Ordering::SeqCst);
            self.slot.writable.store(true, Ordering::SeqCst);
        }
        tracing::warn!(path = %self.path.display(), "queue store reopened after a write error; accepting again");
        self.appended_notify.notify_waiters();
        Ok(true)
    }
}
