//! Request bodies for an output: serialized events packed under the event,
//! uncompressed and compressed caps (e.g. Splunk Cloud's 1 MB), gzip or not.

use flate2::write::DeflateEncoder;
use serde::Deserialize;
use std::io::Write;
use std::sync::{Arc, Mutex, Weak};

/// Body compression of an output (`compression`, public config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip.
    #[default]
    Gzip,
    /// No compression.
    None,
}

/// Caps of one request body.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Events per request.
    pub max_events: usize,
    /// Uncompressed bytes per request.
    pub max_bytes: u64,
    /// Bytes on the wire per request (equal to uncompressed without gzip).
    pub max_compressed_bytes: u64,
    /// Body compression.
    pub compression: Compression,
}

impl BatchLimits {
    /// No caps: a body rebuilt or cut from events that were already packed
    /// under the output's caps.
    pub fn unlimited(compression: Compression) -> BatchLimits {
        BatchLimits {
            max_events: usize::MAX,
            max_bytes: u64::MAX,
            max_compressed_bytes: u64::MAX,
            compression,
        }
    }
}

/// The most a new body reserves (pages are only touched as it fills).
const MAX_RESERVE: u64 = 16 << 20;

/// Room kept for the final deflate block and the gzip trailer.
const GZIP_TAIL: u64 = 64;

/// CRC-32 and length after the deflate data.
const GZIP_TRAILER: usize = 8;

/// A gzip member's header as flate2 writes it for level 1: no name, no
/// time, XFL 4 (fastest), OS 255 (unknown).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];

/// A gzip body: raw deflate from a reused compressor between a header and
/// a trailer (CRC-32 and length) written here, since flate2's `GzEncoder`
/// cannot be reset and a new compressor zeroes ~300 KB per batch.
struct Gzip {
    deflate: DeflateEncoder<Vec<u8>>,
    crc: flate2::Crc,
    pool: BodyPool,
}

enum Sink {
    // Boxed: zlib-rs's compressor state is larger than a Vec.
    Gzip(Box<Gzip>),
    Plain(Vec<u8>),
}

/// Packs serialized events into one body.
pub struct BatchBuilder {
    limits: BatchLimits,
    sink: Sink,
    events: usize,
    bytes: u64,
    /// Uncompressed bytes written since the compressed size was last exact.
    unflushed: u64,
    /// Where a staged event starts in an uncompressed body.
    staged_from: Option<usize>,
}

/// A finished request body.
#[derive(Debug)]
pub struct Batch {
    /// Bytes to send (gzip when the output compresses).
    pub body: Vec<u8>,
    /// Events in it.
    pub events: usize,
    /// Uncompressed size.
    pub uncompressed_bytes: u64,
}

/// Body buffers kept for reuse by one output. A fresh buffer of megabytes
/// is faulted in page by page as it fills and unmapped when freed: about a
/// tenth of a drain's CPU. Bodies handed out as [`bytes::Bytes`] come back
/// here when their last reference drops (the transport is done with them).
#[derive(Clone)]
pub struct BodyPool(Arc<Pool>);

impl std::fmt::Debug for BodyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyPool")
            .field("keep", &self.0.keep)
            .field("idle", &self.idle())
            .finish()
    }
}

struct Pool {
    free: Mutex<Vec<Vec<u8>>>,
    /// Compressors, reset between bodies.
    deflaters: Mutex<Vec<DeflateEncoder<Vec<u8>>>>,
    /// Idle buffers kept at most; more are freed.
    keep: usize,
}

impl BodyPool {
    /// A pool keeping up to `keep` idle buffers.
    pub fn new(keep: usize) -> BodyPool {
        BodyPool(Arc::new(Pool {
            free: Mutex::new(Vec::new()),
            deflaters: Mutex::new(Vec::new()),
            keep,
        }))
    }

    /// An empty buffer with room for `capacity` bytes.
    fn take(&self, capacity: usize) -> Vec<u8> {
        let reused = self.0.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match reused {
            Some(mut v) => {
                v.clear();
                v.reserve(capacity);
                v
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// A gzip sink writing into `buf`, its compressor reused when one is idle.
    fn gzip(&self, mut buf: Vec<u8>) -> Gzip {
        buf.extend_from_slice(&GZIP_HEADER);
        let idle = self
            .0
            .deflaters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let deflate = match idle {
            Some(mut d) => {
                // An idle compressor was reset when its body finished:
                // only its (empty) buffer is swapped.
                *d.get_mut() = buf;
                d
            }
            None => DeflateEncoder::new(buf, flate2::Compression::fast()),
        };
        Gzip {
            deflate,
            crc: flate2::Crc::new(),
            pool: self.clone(),
        }
    }

    fn put_deflater(&self, d: DeflateEncoder<Vec<u8>>) {
        let mut idle = self.0.deflaters.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.0.keep {
            idle.push(d);
        }
    }

    /// `body` as shared bytes whose buffer returns to the pool when the
    /// last reference drops.
    pub fn share(&self, body: Vec<u8>) -> bytes::Bytes {
        bytes::Bytes::from_owner(Pooled {
            buf: body,
            pool: Arc::downgrade(&self.0),
        })
    }

    /// Idle buffers held now.
    pub fn idle(&self) -> usize {
        self.0.free.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A body on loan from a pool.
struct Pooled {
    buf: Vec<u8>,
    pool: Weak<Pool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            let mut free = pool.free.lock().unwrap_or_else(|e| e.into_inner());
            if free.len() < pool.keep {
                free.push(std::mem::take(&mut self.buf));
            }
        }
    }
}

impl BatchBuilder {
    /// An empty batch, its body from `pool`.
    pub fn new(limits: BatchLimits, pool: &BodyPool) -> BatchBuilder {
        // Room for a full body up front: growing a Vec to megabytes copies
        // the body several times over (memmove was ~8 % of a drain).
        let room = |cap: u64| pool.take(cap.min(MAX_RESERVE) as usize);
        let sink = match limits.compression {
            Compression::Gzip => Sink::Gzip(Box::new(pool.gzip(room(limits.max_compressed_bytes)))),
            Compression::None => Sink::Plain(room(limits.max_bytes)),
        };
        BatchBuilder {
            limits,
            sink,
            events: 0,
            bytes: 0,
            unflushed: 0,
            staged_from: None,
        }
    }

    /// Events so far.
    pub fn len(&self) -> usize {
        self.events
    }

    /// Whether no event was added.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// Whether an event of `len` serialized bytes still fits. An empty batch
    /// takes any event: one over the caps travels alone and the receiver decides.
    pub fn fits(&mut self, len: usize) -> bool {
        if self.events == 0 {
            return true;
        }
        let len = len as u64;
        if self.events >= self.limits.max_events || self.bytes + len > self.limits.max_bytes {
            return false;
        }
        let cap = self.limits.max_compressed_bytes;
        let Sink::Gzip(g) = &mut self.sink else {
            // Uncompressed, the wire carries the body as it is.
            return self.bytes + len <= cap;
        };
        let worst = |g: &Gzip, unflushed: u64| {
            (g.deflate.get_ref().len() + GZIP_TRAILER) as u64 + unflushed + len + GZIP_TAIL
        };
        if worst(g, self.unflushed) <= cap {
            return true;
        }
        // Near the cap: learn the exact compressed size before saying no.
        if g.deflate.flush().is_ok() {
            self.unflushed = 0;
        }
        worst(g, self.unflushed) <= cap
    }

    /// Where to render the next event: the body itself when uncompressed
    /// (so the event is not copied), else `scratch`, cleared. Follow with
    /// [`BatchBuilder::commit`] or [`BatchBuilder::take_staged`].
    pub fn stage<'b>(&'b mut self, scratch: &'b mut Vec<u8>) -> &'b mut Vec<u8> {
        self.staged_from = None;
        match &mut self.sink {
            Sink::Plain(v) => {
                self.staged_from = Some(v.len());
                v
            }
            Sink::Gzip(_) => {
                scratch.clear();
                scratch
            }
        }
    }

    /// The length of the event rendered where [`BatchBuilder::stage`] said.
    pub fn staged_len(&self, scratch: &[u8]) -> usize {
        match (&self.sink, self.staged_from) {
            (Sink::Plain(v), Some(from)) => v.len().saturating_sub(from),
            _ => scratch.len(),
        }
    }

    /// Adds the staged event.
    pub fn commit(&mut self, scratch: &[u8]) {
        let len = self.staged_len(scratch);
        if self.staged_from.take().is_some() {
            self.events += 1;
            self.bytes += len as u64;
        } else {
            self.push(scratch);
        }
    }

    /// Takes the staged event back out (it goes to the next batch): after
    /// this `scratch` holds it.
    pub fn take_staged(&mut self, scratch: &mut Vec<u8>) {
        if let (Sink::Plain(v), Some(from)) = (&mut self.sink, self.staged_from.take()) {
            scratch.clear();
            scratch.extend_from_slice(v.get(from..).unwrap_or_default());
            v.truncate(from);
        }
    }

    /// Adds one serialized event (call [`BatchBuilder::fits`] first).
    pub fn push(&mut self, event: &[u8]) {
        // Writing into a Vec cannot fail.
        let _ = match &mut self.sink {
            Sink::Gzip(g) => {
                g.crc.update(event);
                g.deflate.write_all(event)
            }
            Sink::Plain(v) => v.write_all(event),
        };
        self.events += 1;
        self.bytes += event.len() as u64;
        self.unflushed += event.len() as u64;
    }

    /// The finished body.
    pub fn finish(self) -> Batch {
        let body = match self.sink {
            Sink::Gzip(mut g) => {
                // Finishes the stream, resets the compressor and hands back
                // the body; writing into a Vec cannot fail.
                let mut body = g.deflate.reset(Vec::new()).unwrap_or_default();
                body.extend_from_slice(&g.crc.sum().to_le_bytes());
                body.extend_from_slice(&g.crc.amount().to_le_bytes());
                g.pool.put_deflater(g.deflate);
                body
            }
            Sink::Plain(v) => v,
        };
        Batch {
            body,
            events: self.events,
            uncompressed_bytes: self.bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn limits(
        max_events: usize,
        max_bytes: u64,
        max_compressed_bytes: u64,
        compression: Compression,
    ) -> BatchLimits {
        BatchLimits {
            max_events,
            max_bytes,
            max_compressed_bytes,
            compression,
        }
    }

    /// Pseudo-random hex so gzip cannot shrink it much.
    fn event(i: u64) -> Vec<u8> {
        let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut s = String::from("{\"event\":\"");
        for _ in 0..40 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push_str(&format!("{:x}", x & 0xf));
        }
        s.push_str("\"}\n");
        s.into_bytes()
    }

    fn pack(l: BatchLimits, n: u64) -> Vec<Batch> {
        let pool = BodyPool::new(0);
        let mut out = Vec::new();
        let mut b = BatchBuilder::new(l, &pool);
        for i in 0..n {
            let e = event(i);
            if !b.fits(e.len()) {
                out.push(std::mem::replace(&mut b, BatchBuilder::new(l, &pool)).finish());
            }
            b.push(&e);
        }
        out.push(b.finish());
        out
    }

    #[test]
    fn caps_on_events_and_bytes() {
        let batches = pack(limits(10, 1 << 20, 1 << 20, Compression::None), 25);
        assert_eq!(
            batches.iter().map(|b| b.events).collect::<Vec<_>>(),
            vec![10, 10, 5]
        );
        let one = event(0).len() as u64;
        let batches = pack(limits(1000, one * 3, 1 << 20, Compression::None), 7);
        assert!(batches
            .iter()
            .all(|b| b.uncompressed_bytes <= one * 3 && b.events == b.body.len() / one as usize));
    }

    #[test]
    fn compressed_cap_holds_and_bodies_are_gzip() {
        let cap = 4_000;
        let batches = pack(limits(100_000, 1 << 30, cap, Compression::Gzip), 2_000);
        assert!(batches.len() > 1);
        let mut total = 0;
        for b in &batches {
            assert!(b.body.len() as u64 <= cap, "{} > {cap}", b.body.len());
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&b.body[..])
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out.len() as u64, b.uncompressed_bytes);
            total += b.events;
        }
        assert_eq!(total, 2_000);
    }

    #[test]
    fn an_oversized_event_travels_alone() {
        let mut b = BatchBuilder::new(limits(10, 10, 10, Compression::None), &BodyPool::new(0));
        assert!(b.fits(100));
        b.push(&[b'x'; 100]);
        assert!(!b.fits(1));
        assert_eq!(b.finish().events, 1);
    }

    #[test]
    fn bodies_return_to_their_pool_when_the_last_reference_drops() {
        let pool = BodyPool::new(1);
        let l = limits(10, 1 << 20, 1 << 20, Compression::None);
        let mut b = BatchBuilder::new(l, &pool);
        b.push(b"event\n");
        let body = pool.share(b.finish().body);
        let clone = body.clone();
        drop(body);
        assert_eq!(pool.idle(), 0, "still referenced");
        assert_eq!(&clone[..], b"event\n");
        drop(clone);
        assert_eq!(pool.idle(), 1);
        let again = BatchBuilder::new(l, &pool);
        assert_eq!(pool.idle(), 0, "reused");
        assert!(again.is_empty());
        // Beyond `keep`, bodies are freed.
        let (x, y) = (pool.share(vec![1]), pool.share(vec![2]));
        drop((x, y));
        assert_eq!(pool.idle(), 1);
    }

    #[test]
    fn a_reused_compressor_starts_each_body_afresh() {
        let pool = BodyPool::new(2);
        let l = limits(1000, 1 << 20, 1 << 20, Compression::Gzip);
        for round in 0..4u64 {
            let mut b = BatchBuilder::new(l, &pool);
            let mut want = Vec::new();
            for i in 0..50 {
                let e = event(round * 1000 + i);
                want.extend_from_slice(&e);
                b.push(&e);
            }
            let body = b.finish().body;
            let mut out = Vec::new();
            // GzDecoder checks the trailer's CRC-32 and length.
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, want, "round {round}");
            drop(pool.share(body));
        }
    }

    /// Uncompressed, the wire size is the body size: an output with
    /// `compression = "none"` filled bodies to about half its
    /// `max_compressed_bytes` (the body was counted twice).
    #[test]
    fn an_uncompressed_body_fills_to_the_wire_cap() {
        let one = event(0).len() as u64;
        let batches = pack(limits(1000, 1 << 20, one * 10, Compression::None), 35);
        assert_eq!(
            batches.iter().map(|b| b.events).collect::<Vec<_>>(),
            vec![10, 10, 10, 5]
        );
    }

    /// Rendering in place (staged, then committed or taken back for the
    /// next batch) packs exactly as pushing copies does.
    #[test]
    fn staged_events_pack_like_pushed_ones() {
        let decoded = |b: &Batch, c: Compression| match c {
            Compression::None => b.body.clone(),
            Compression::Gzip => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&b.body[..])
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }
        };
        for c in [Compression::None, Compression::Gzip] {
            let one = event(0).len() as u64;
            let l = limits(7, one * 5, 1 << 20, c);
            let pool = BodyPool::new(2);
            let mut staged = Vec::new();
            let mut b = BatchBuilder::new(l, &pool);
            let mut scratch = Vec::new();
            for i in 0..23 {
                b.stage(&mut scratch).extend_from_slice(&event(i));
                let len = b.staged_len(&scratch);
                if b.fits(len) {
                    b.commit(&scratch);
                } else {
                    b.take_staged(&mut scratch);
                    assert_eq!(scratch, event(i));
                    let full = std::mem::replace(&mut b, BatchBuilder::new(l, &pool));
                    staged.push(full.finish());
                    b.push(&scratch);
                }
            }
            staged.push(b.finish());
            let pushed = pack(l, 23);
            assert_eq!(staged.len(), pushed.len(), "{c:?}");
            for (x, y) in staged.iter().zip(&pushed) {
                assert_eq!(
                    (x.events, x.uncompressed_bytes),
                    (y.events, y.uncompressed_bytes)
                );
                assert_eq!(decoded(x, c), decoded(y, c), "{c:?}");
            }
        }
    }
}
