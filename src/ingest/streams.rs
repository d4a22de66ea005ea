//! A bound on the requests open at once on one connection. HTTP/2 lets a
//! client open many streams on one connection, and actix does not expose
//! `SETTINGS_MAX_CONCURRENT_STREAMS`; each connection gets a counter at
//! accept time, and a request over the bound is refused (503 code 9) before
//! its body is read, so a client cannot park thousands of bodiless streams.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Requests open at once on one connection (Logpush opens a handful; Go's
/// HTTP/2 server allows 250).
pub const MAX_STREAMS_PER_CONNECTION: usize = 128;

/// The open-request counter of one connection.
#[derive(Debug, Clone, Default)]
pub struct ConnStreams(Arc<AtomicUsize>);

/// Holds one of a connection's slots until dropped.
#[derive(Debug)]
pub struct StreamSlot(Arc<AtomicUsize>);

impl ConnStreams {
    /// Takes a slot, or None when `limit` are open.
    pub fn acquire(&self, limit: usize) -> Option<StreamSlot> {
        let mut now = self.0.load(Ordering::SeqCst);
        loop {
            if now >= limit {
                return None;
            }
            match self
                .0
                .compare_exchange(now, now + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Some(StreamSlot(Arc::clone(&self.0))),
                Err(seen) => now = seen,
            }
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_given_back() {
        let c = ConnStreams::default();
        let a = c.acquire(2).unwrap();
        let _b = c.acquire(2).unwrap();
        assert!(c.acquire(2).is_none());
        drop(a);
        assert!(c.acquire(2).is_some());
    }
}
