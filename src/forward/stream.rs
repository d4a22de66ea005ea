//! A queued record's events, decoded as a stream: the stored body is read
//! chunk by chunk, gunzipped on the fly (only the accepted prefix) and split
//! into events one at a time. Memory per stream is one stored chunk, the
//! gzip window, one read buffer and at most `max_event_bytes` of one event,
//! whatever the record decodes to.
//!
//! Event numbers match what ingest counted: `/raw` lines without their
//! CR/LF, blank lines skipped; `/event` objects (concatenated or in an array).
//! A line (or object) longer than `max_event_bytes` is not held: only its
//! first `max_event_bytes` bytes are kept, and it is reported as oversize.

use crate::hec::split::ObjectSplitter;
use crate::queue::{BodyEncoding, DataEndpoint, Queue, QueueError, RecordId, RecordMeta};
use std::io::Read;
use std::sync::Arc;

/// Decoded bytes read at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Reading a record back failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The stored body does not decode (corruption).
    #[error("record {id}: stored body does not decode: {source}")]
    Body {
        /// The record.
        id: RecordId,
        /// Why.
        source: std::io::Error,
    },
    /// The decoded body does not split into the events ingest accepted.
    #[error("record {id}: event {number} cannot be split from the stored body")]
    Split {
        /// The record.
        id: RecordId,
        /// The event where splitting failed.
        number: u64,
    },
}

impl SourceError {
    /// Whether reading again will succeed once the store is back (it is
    /// being reopened). Any other error is about this record: retried a few
    /// times, then the record is given up.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Queue(QueueError::Reopening { .. }) => true,
            SourceError::Body { source, .. } => source
                .get_ref()
                .and_then(|e| e.downcast_ref::<QueueError>())
                .is_some_and(|q| matches!(q, QueueError::Reopening { .. })),
            _ => false,
        }
    }
}

/// One event of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// The event's bytes: a `/raw` line without CR/LF, or an `/event` object.
    Event(&'a [u8]),
    /// An event longer than `max_event_bytes`: its first bytes only.
    Oversize(&'a [u8]),
}

/// Where the next event stands in the buffer.
#[derive(Debug, Clone, Copy)]
enum Ready {
    /// `buf[start..end]` is the event; `consumed` bytes go with it.
    Event {
        start: usize,
        end: usize,
        consumed: usize,
    },
    /// `head` holds the first bytes of an oversize event, already consumed.
    Oversize,
}

/// The events of one record, in order.
pub struct EventStream<'q> {
    id: RecordId,
    meta: RecordMeta,
    reader: Box<dyn Read + Send + 'q>,
    max_event: usize,
    buf: Vec<u8>,
    /// Bytes of `buf` before this are consumed.
    start: usize,
    eof: bool,
    splitter: ObjectSplitter,
    ready: Option<Ready>,
    head: Vec<u8>,
    position: u64,
}

impl<'q> EventStream<'q> {
    /// Opens a queued record (None once it has left the queue).
    pub fn open(
        queue: &Arc<Queue>,
        id: RecordId,
        max_event: u64,
    ) -> Result<Option<EventStream<'q>>, SourceError> {
        let Some((meta, body)) = queue.body_reader(id)? else {
            return Ok(None);
        };
        Ok(Some(EventStream::new(id, meta, body, max_event)))
    }

    /// The events of a body read from `stored` (encoded as `meta` says).
    pub fn new(
        id: RecordId,
        meta: RecordMeta,
        stored: impl Read + Send + 'q,
        max_event: u64,
    ) -> EventStream<'q> {
        let want = meta.decoded_bytes;
        let reader: Box<dyn Read + Send + 'q> = match meta.encoding {
            BodyEncoding::Identity => Box::new(stored.take(want)),
            BodyEncoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stored).take(want)),
        };
        EventStream {
            id,
            meta,
            reader,
            max_event: usize::try_from(max_event).unwrap_or(usize::MAX).max(1),
            buf: Vec::new(),
            start: 0,
            eof: false,
            splitter: ObjectSplitter::new(),
            ready: None,
            head: Vec::new(),
            position: 0,
        }
    }

    /// The record.
    pub fn id(&self) -> RecordId {
        self.id
    }

    /// Its metadata.
    pub fn meta(&self) -> &RecordMeta {
        &self.meta
    }

    /// Number of the next event.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next event, without consuming it (None at the end).
    pub fn peek(&mut self) -> Result<Option<Item<'_>>, SourceError> {
        // Ingest counted `events`; a body cut after the last good object
        // (a partly refused `/event` batch) ends there, open array and all.
        if self.ready.is_none() && self.position >= self.meta.events {
            return Ok(None);
        }
        if self.ready.is_none() {
            self.ready = match self.meta.endpoint {
                DataEndpoint::Raw => self.next_line()?,
                DataEndpoint::Event => self.next_object()?,
            };
            // The body ended before the events ingest counted: it is damaged,
            // and saying so lets the record be given up instead of waiting
            // forever for events that will not come.
            if self.ready.is_none() {
                return Err(SourceError::Split {
                    id: self.id,
                    number: self.position,
                });
            }
        }
        Ok(match self.ready {
            None => None,
            Some(Ready::Event { start, end, .. }) => Some(Item::Event(&self.buf[start..end])),
            Some(Ready::Oversize) => Some(Item::Oversize(&self.head)),
        })
    }

    /// Consumes the event [`EventStream::peek`] returned.
    pub fn advance(&mut self) {
        match self.ready.take() {
            Some(Ready::Event { consumed, .. }) => {
                self.start += consumed;
                self.position += 1;
            }
            Some(Ready::Oversize) => {
                self.head.clear();
                self.position += 1;
            }
            None => {}
        }
    }

    /// Skips to event `to` (a batch that starts deep in a record).
    pub fn skip_to(&mut self, to: u64) -> Result<(), SourceError> {
        while self.position < to {
            if self.peek()?.is_none() {
                break;
            }
            self.advance();
        }
        Ok(())
    }

    /// Reads more decoded bytes; false at the end.
    fn fill(&mut self) -> Result<bool, SourceError> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            if self.meta.endpoint == DataEndpoint::Event {
                self.splitter.shift(self.start);
            }
            self.start = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let n = loop {
            match self.reader.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    self.buf.truncate(old);
                    return Err(SourceError::Body {
                        id: self.id,
                        source,
                    });
                }
            }
        };
        self.buf.truncate(old + n);
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    fn next_line(&mut self) -> Result<Option<Ready>, SourceError> {
        let mut scanned = 0;
        loop {
            let pending = &self.buf[self.start..];
            if let Some(i) = memchr::memchr(b'\n', &pending[scanned..]) {
                let nl = scanned + i;
                let line = &pending[..nl];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if !has_content(line) {
                    self.start += nl + 1;
                    scanned = 0;
                    continue;
                }
                if line.len() > self.max_event {
                    // Longer than the cap though whole in the buffer.
                    self.head.clear();
                    self.head.extend_from_slice(&line[..self.max_event]);
                    self.start += nl + 1;
                    return Ok(Some(Ready::Oversize));
                }
                return Ok(Some(Ready::Event {
                    start: self.start,
                    end: self.start + line.len(),
                    consumed: nl + 1,
                }));
            }
            scanned = pending.len();
            if pending.len() > self.max_event {
                match self.oversize_line()? {
                    Some(ready) => return Ok(Some(ready)),
                    // Blanks only: no event; go on with the next line.
                    None => {
                        scanned = 0;
                        continue;
                    }
                }
            }
            if !self.fill()? {
                let rest = &self.buf[self.start..];
                if !has_content(rest) {
                    self.start = self.buf.len();
                    return Ok(None);
                }
                let line = rest.strip_suffix(b"\r").unwrap_or(rest);
                if line.len() > self.max_event {
                    self.head.clear();
                    self.head.extend_from_slice(&line[..self.max_event]);
                    self.start = self.buf.len();
                    return Ok(Some(Ready::Oversize));
                }
                return Ok(Some(Ready::Event {
                    start: self.start,
                    end: self.start + line.len(),
                    consumed: rest.len(),
                }));
            }
        }
    }

    /// The line at `start` is longer than the cap and not yet whole: keep
    /// its head, read past its end without holding it. A line of blanks only
    /// was no event at ingest either (None).
    fn oversize_line(&mut self) -> Result<Option<Ready>, SourceError> {
        let pending = &self.buf[self.start..];
        self.head.clear();
        self.head
            .extend_from_slice(&pending[..self.max_event.min(pending.len())]);
        let mut content = has_content(pending);
        self.start = self.buf.len();
        loop {
            if !self.fill()? {
                break;
            }
            let pending = &self.buf[self.start..];
            if let Some(nl) = memchr::memchr(b'\n', pending) {
                content |= has_content(&pending[..nl]);
                self.start += nl + 1;
                break;
            }
            content |= has_content(pending);
            self.start = self.buf.len();
        }
        if content {
            Ok(Some(Ready::Oversize))
        } else {
            self.head.clear();
            Ok(None)
        }
    }

    fn next_object(&mut self) -> Result<Option<Ready>, SourceError> {
        let split = |s: &Self| SourceError::Split {
            id: s.id,
            number: s.position,
        };
        loop {
            // The splitter's offsets are relative to `buf`, which keeps
            // every byte from `start` on.
            match self.splitter.next_object(&self.buf) {
                Ok(Some(r)) => {
                    return Ok(Some(Ready::Event {
                        start: r.start,
                        end: r.end,
                        consumed: r.end - self.start,
                    }))
                }
                Ok(None) => {}
                Err(_) => return Err(split(self)),
            }
            // Everything before an open object (or all of it, outside one)
            // is consumed.
            self.start = self.splitter.keep_from();
            if self.splitter.in_object() && self.buf.len() - self.start > self.max_event {
                return self.oversize_object();
            }
            if !self.fill()? {
                return match self.splitter.finish() {
                    Ok(()) => Ok(None),
                    Err(_) => Err(split(self)),
                };
            }
        }
    }

    /// The object at `start` is longer than the cap: keep its head and scan
    /// to its end without holding it.
    fn oversize_object(&mut self) -> Result<Option<Ready>, SourceError> {
        self.head.clear();
        let open = &self.buf[self.start..];
        self.head
            .extend_from_slice(&open[..self.max_event.min(open.len())]);
        loop {
            let n = self.splitter.drop_scanned();
            self.buf.drain(..n);
            self.start = 0;
            match self.splitter.next_object(&self.buf) {
                Ok(Some(r)) => {
                    self.buf.drain(..r.end);
                    self.splitter.shift(r.end);
                    return Ok(Some(Ready::Oversize));
                }
                Ok(None) => {}
                Err(_) => {
                    return Err(SourceError::Split {
                        id: self.id,
                        number: self.position,
                    })
                }
            }
            if !self.fill()? {
                return Err(SourceError::Split {
                    id: self.id,
                    number: self.position,
                });
            }
        }
    }
}

fn has_content(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| !b.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::BodyEncoding;
    use std::io::Write;

    fn meta(endpoint: DataEndpoint, encoding: BodyEncoding, decoded: usize) -> RecordMeta {
        RecordMeta::plain(endpoint, encoding, decoded as u64, u64::MAX)
    }

    fn counted(endpoint: DataEndpoint, decoded: usize, events: u64) -> RecordMeta {
        RecordMeta::plain(endpoint, BodyEncoding::Identity, decoded as u64, events)
    }

    fn collect(endpoint: DataEndpoint, body: &[u8], cap: u64) -> Vec<Result<String, String>> {
        let mut s = EventStream::new(
            0,
            meta(endpoint, BodyEncoding::Identity, body.len()),
            body,
            cap,
        );
        let mut out = Vec::new();
        loop {
            let item = match s.peek() {
                Ok(None) => break,
                Ok(Some(Item::Event(b))) => Ok(String::from_utf8_lossy(b).into_owned()),
                Ok(Some(Item::Oversize(h))) => Err(String::from_utf8_lossy(h).into_owned()),
                // These parser tests leave the count open: the body's end is the end.
                Err(SourceError::Split { .. }) => break,
                Err(e) => panic!("{e}"),
            };
            // peek is idempotent until advance
            let again = match s.peek().unwrap() {
                Some(Item::Event(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
                Some(Item::Oversize(h)) => Err(String::from_utf8_lossy(h).into_owned()),
                None => unreachable!(),
            };
            assert_eq!(item, again);
            out.push(item);
            s.advance();
        }
        out
    }

    #[test]
    fn raw_lines_match_the_ingest_count_and_long_lines_are_cut() {
        let body = b"a\r\n\n  \nbb\n  c\nlast";
        let got = collect(DataEndpoint::Raw, body, 1 << 20);
        assert_eq!(
            got,
            vec![
                Ok("a".into()),
                Ok("bb".into()),
                Ok("  c".into()),
                Ok("last".into())
            ]
        );
        let mut long = b"x\n".to_vec();
        long.extend(vec![b'y'; 300_000]);
        long.extend(b"\n");
        long.extend(vec![b' '; 300_000]);
        long.extend(b"\nz\r\n");
        let got = collect(DataEndpoint::Raw, &long, 1000);
        assert_eq!(got.len(), 3, "the blank long line is no event");
        assert_eq!(got[0], Ok("x".into()));
        assert_eq!(got[1], Err("y".repeat(1000)));
        assert_eq!(got[2], Ok("z".into()));
    }

    #[test]
    fn event_objects_stream_and_long_objects_are_cut() {
        let body = br#"{"event":1} [ {"event":"}"} , {"event":3} ]{"event":4}"#;
        let got = collect(DataEndpoint::Event, body, 1 << 20);
        assert_eq!(got.len(), 4);
        assert_eq!(got[1], Ok(r#"{"event":"}"}"#.into()));
        let big = format!(
            r#"{{"event":1}}{{"event":"{}"}}{{"event":3}}"#,
            "q".repeat(200_000)
        );
        let got = collect(DataEndpoint::Event, big.as_bytes(), 100);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1], Err(big[11..111].to_string()));
        assert_eq!(got[2], Ok(r#"{"event":3}"#.into()));
    }

    #[test]
    fn a_partly_refused_array_ends_after_its_accepted_events() {
        // Ingest kept event 0 of `[{"event":1},{"x":2}]`: the stored prefix
        // leaves the array open.
        let body = br#"[{"event":1},{"x":2}]"#;
        let mut m = meta(DataEndpoint::Event, BodyEncoding::Identity, 12);
        m.events = 1;
        let mut s = EventStream::new(0, m, &body[..], 1 << 20);
        assert_eq!(s.peek().unwrap(), Some(Item::Event(br#"{"event":1}"#)));
        s.advance();
        assert_eq!(s.peek().unwrap(), None);
    }

    #[test]
    fn many_long_blank_lines_do_not_recurse() {
        let mut body = b"x\n".to_vec();
        for _ in 0..20_000 {
            body.extend(vec![b' '; 40]);
            body.push(b'\n');
        }
        body.extend(b"y\n");
        let got = collect(DataEndpoint::Raw, &body, 16);
        assert_eq!(got, vec![Ok("x".into()), Ok("y".into())]);
        // A long line whole in the buffer is cut like one that is not.
        let got = collect(
            DataEndpoint::Raw,
            b"short\nthis line is longer than sixteen\n",
            16,
        );
        assert_eq!(
            got,
            vec![Ok("short".into()), Err("this line is lon".into())]
        );
    }

    #[test]
    fn gzip_is_read_as_a_stream_up_to_the_accepted_prefix() {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"one\ntwo\nthree\n").unwrap();
        let mut gz = e.finish().unwrap();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"four\n").unwrap();
        gz.extend(e.finish().unwrap());
        let m = RecordMeta {
            events: 4,
            ..meta(DataEndpoint::Raw, BodyEncoding::Gzip, 19)
        };
        let mut s = EventStream::new(3, m, &gz[..], 1 << 20);
        s.skip_to(2).unwrap();
        assert_eq!(s.position(), 2);
        assert_eq!(s.peek().unwrap(), Some(Item::Event(b"three")));
        s.advance();
        assert_eq!(s.peek().unwrap(), Some(Item::Event(b"four")));
        s.advance();
        assert_eq!(s.peek().unwrap(), None);
        let broken = &gz[..gz.len() / 2];
        let m = meta(DataEndpoint::Raw, BodyEncoding::Gzip, 19);
        let mut s = EventStream::new(3, m, broken, 1 << 20);
        let mut err = None;
        for _ in 0..5 {
            match s.peek() {
                Ok(Some(_)) => s.advance(),
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        assert!(
            matches!(err, Some(SourceError::Body { id: 3, .. })),
            "{err:?}"
        );
    }

    #[test]
    fn a_body_with_fewer_events_than_counted_is_an_error() {
        for (endpoint, body) in [
            (DataEndpoint::Raw, &b"a\nb\n"[..]),
            (DataEndpoint::Event, &br#"{"event":1}{"event":2}"#[..]),
        ] {
            let mut s = EventStream::new(9, counted(endpoint, body.len(), 3), body, 1 << 20);
            s.skip_to(2).unwrap();
            assert!(
                matches!(s.peek(), Err(SourceError::Split { id: 9, number: 2 })),
                "{endpoint:?}"
            );
        }
    }

    #[test]
    fn a_huge_line_is_read_in_bounded_memory() {
        struct Endless(u64);
        impl Read for Endless {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = out.len().min(self.0 as usize);
                out[..n].fill(b'k');
                self.0 -= n as u64;
                Ok(n)
            }
        }
        let len = 256 << 20;
        let m = counted(DataEndpoint::Raw, len, 1);
        let mut s = EventStream::new(0, m, Endless(len as u64), 4096);
        match s.peek().unwrap() {
            Some(Item::Oversize(h)) => assert_eq!(h.len(), 4096),
            other => panic!("{other:?}"),
        }
        assert!(
            s.buf.capacity() < 1 << 20,
            "buffer grew to {}",
            s.buf.capacity()
        );
        s.advance();
        assert_eq!(s.peek().unwrap(), None);
    }
}
