//! One queued record as it goes into an object, on a blocking thread: its
//! lines exactly as received (or enriched HEC JSON with `enrich = true`),
//! filtered by `events`, followed by its rollups with `rollups = true`, as
//! one gzip member (or plain NDJSON).

use super::super::batch::Compression;
use super::super::context::TokenMeta;
use super::super::event::{Overrides, Resolver, TokenDefaults};
use super::super::rollups::{sample_of, Accumulator};
use super::super::routing::{EventsRoute, Routing};
use super::super::source::render;
use super::super::stream::{EventStream, Item, SourceError};
use crate::enrich::Enricher;
use crate::queue::{BodyEncoding, DataEndpoint, Queue, RecordId};
use flate2::write::GzEncoder;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;

/// How records are written.
#[derive(Debug, Clone)]
pub struct Rendering {
    /// gzip or not.
    pub compression: Compression,
    /// Enriched HEC JSON instead of lines as received.
    pub enrich: bool,
    /// Which events and whether rollups.
    pub routing: Routing,
    /// Node name (rollup ids, default host).
    pub node: Arc<str>,
    /// `server.max_event_bytes`.
    pub max_event_bytes: u64,
}

/// A record ready to go into an object.
#[derive(Debug)]
pub struct Member {
    /// Its bytes (one gzip member, or NDJSON).
    pub bytes: Vec<u8>,
    /// Events written (rollups included).
    pub events: u64,
    /// The record's receive time.
    pub received_ms: u64,
    /// Lines longer than `max_event_bytes`: their number and first bytes
    /// (they become dead letters; the record still goes).
    pub oversize: Vec<(u64, Vec<u8>)>,
}

/// Renders record `id` (`None`: it is gone from the queue).
pub fn member(
    queue: &Arc<Queue>,
    id: RecordId,
    how: &Rendering,
    tokens: &HashMap<String, TokenMeta>,
    enricher: Option<&Enricher>,
) -> Result<Option<Member>, SourceError> {
    let as_stored = !how.enrich
        && how.routing.events == EventsRoute::All
        && how.routing.rollups.is_none()
        && how.compression == Compression::Gzip;
    if as_stored {
        match stored_member(queue, id)? {
            Stored::Member(m) => return Ok(Some(m)),
            Stored::Gone => return Ok(None),
            Stored::NotAsIs => {}
        }
    }
    let Some(mut stream) = EventStream::open(queue, id, how.max_event_bytes)? else {
        return Ok(None);
    };
    let meta = stream.meta().clone();
    let t = tokens.get(&meta.token);
    let resolver = Resolver {
        overrides: Overrides {
            index: None,
            sourcetype: None,
            source: None,
            host: None,
        },
        token: TokenDefaults {
            index: t.and_then(|t| t.index.as_deref()),
            sourcetype: t.and_then(|t| t.sourcetype.as_deref()),
            source: t.and_then(|t| t.source.as_deref()),
        },
        hostname: &how.node,
    };
    let enrich = if how.enrich { enricher } else { None };
    let mut acc = how
        .routing
        .rollups
        .as_deref()
        .map(|r| Accumulator::new(r, &meta));
    // Lines gather in `out` and go into the member in chunks: a gzip
    // member holds the compressed record, never the decoded one whole.
    let mut body = MemberBytes::new(how.compression, meta.decoded_bytes);
    let mut out = Vec::with_capacity(CHUNK + (64 << 10));
    let mut events = 0u64;
    let mut oversize = Vec::new();
    loop {
        let number = stream.position();
        match stream.peek()? {
            None => break,
            Some(Item::Oversize(head)) => oversize.push((number, head.to_vec())),
            Some(Item::Event(bytes)) => {
                // An event that cannot be resolved is still a line received.
                match resolver.event(&meta, bytes, number) {
                    Ok(e) => {
                        let sample = if how.routing.reads_samples() {
                            sample_of(&e)
                        } else {
                            None
                        };
                        if let (Some(acc), Some(s)) = (acc.as_mut(), sample.as_ref()) {
                            acc.add(s);
                        }
                        if how.routing.sends(sample.as_ref()) {
                            match enrich {
                                Some(en) => {
                                    render(&e, Some((en, meta.token.as_str())), false, &mut out);
                                }
                                None => {
                                    out.extend_from_slice(bytes);
                                    out.push(b'\n');
                                }
                            }
                            events += 1;
                        }
                    }
                    Err(_) if how.routing.sends(None) => {
                        out.extend_from_slice(bytes);
                        out.push(b'\n');
                        events += 1;
                    }
                    Err(_) => {}
                }
            }
        }
        stream.advance();
        if out.len() >= CHUNK {
            body.take(&mut out);
        }
    }
    if let Some(acc) = acc {
        for line in acc.finish(&how.node, id, &resolver, &meta) {
            out.extend_from_slice(&line);
            events += 1;
        }
    }
    body.take(&mut out);
    Ok(Some(Member {
        bytes: body.finish(),
        events,
        received_ms: meta.received_ms,
        oversize,
    }))
}

/// Rendered lines are handed to the member in chunks of this size.
const CHUNK: usize = 256 << 10;

/// A member being written: plain lines, or a gzip member fed as it goes.
enum MemberBytes {
    Plain(Vec<u8>),
    Gzip(Box<GzEncoder<Vec<u8>>>),
}

impl MemberBytes {
    fn new(compression: Compression, decoded_bytes: u64) -> MemberBytes {
        let hint = usize::try_from(decoded_bytes).unwrap_or(0).min(8 << 20);
        match compression {
            Compression::None => MemberBytes::Plain(Vec::with_capacity(hint)),
            Compression::Gzip => MemberBytes::Gzip(Box::new(GzEncoder::new(
                Vec::with_capacity(hint / 8),
                flate2::Compression::fast(),
            ))),
        }
    }

    /// Moves `lines` into the member (`lines` is left empty).
    fn take(&mut self, lines: &mut Vec<u8>) {
        match self {
            MemberBytes::Plain(v) => v.append(lines),
            MemberBytes::Gzip(gz) => {
                // Writing into a Vec cannot fail.
                let _ = gz.write_all(lines);
                lines.clear();
            }
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            MemberBytes::Plain(v) => v,
            MemberBytes::Gzip(gz) => gz.finish().unwrap_or_default(),
        }
    }
}

/// What the stored body can give.
enum Stored {
    /// The record as stored, ready.
    Member(Member),
    /// The record left the queue.
    Gone,
    /// Not a gzip `/raw` body that decodes to exactly what was accepted:
    /// render it line by line.
    NotAsIs,
}

/// A gzip `/raw` record goes into the object as the bytes Logpush sent:
/// no decoding for the lines, no compressing again (byte for byte, blank
/// lines and CRLF included). It is only decoded to check its length and
/// whether it ends a line; one that does not gets a member holding "\n",
/// so the next record's first line stays a line of its own.
fn stored_member(queue: &Arc<Queue>, id: RecordId) -> Result<Stored, SourceError> {
    let Some((meta, mut body)) = queue.body_reader(id)? else {
        return Ok(Stored::Gone);
    };
    if meta.endpoint != DataEndpoint::Raw || meta.encoding != BodyEncoding::Gzip {
        return Ok(Stored::NotAsIs);
    }
    let mut stored = Vec::new();
    body.read_to_end(&mut stored)
        .map_err(|source| SourceError::Body { id, source })?;
    let mut decoder = flate2::read::MultiGzDecoder::new(&stored[..]);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut decoded, mut last) = (0u64, None);
    loop {
        match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                decoded += n as u64;
                last = Some(buf[n - 1]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Not as ingest accepted it: the line-by-line path says why.
            Err(_) => return Ok(Stored::NotAsIs),
        }
    }
    if decoded != meta.decoded_bytes {
        return Ok(Stored::NotAsIs);
    }
    if last.is_some_and(|b| b != b'\n') {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = gz.write_all(b"\n");
        stored.extend_from_slice(&gz.finish().unwrap_or_default());
    }
    Ok(Stored::Member(Member {
        bytes: stored,
        events: meta.events,
        received_ms: meta.received_ms,
        oversize: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{QueueLimits, RecordMeta};

    fn how(compression: Compression) -> Rendering {
        Rendering {
            compression,
            enrich: false,
            routing: Routing::default(),
            node: "n".into(),
            max_event_bytes: 1 << 20,
        }
    }

    async fn queued(body: &[u8], gzip: bool) -> (tempfile::TempDir, Arc<Queue>, RecordId) {
        let dir = tempfile::tempdir().unwrap();
        let q = Arc::new(Queue::open(dir.path(), QueueLimits::roomy()).unwrap());
        let lines = crate::hec::raw::lines(body).count() as u64;
        let (stored, encoding) = if gzip {
            let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(body).unwrap();
            (gz.finish().unwrap(), BodyEncoding::Gzip)
        } else {
            (body.to_vec(), BodyEncoding::Identity)
        };
        let meta = RecordMeta::plain(DataEndpoint::Raw, encoding, body.len() as u64, lines);
        let p = q.append(&meta, &stored).unwrap();
        let id = p.id;
        q.commit(p).await.unwrap();
        (dir, q, id)
    }

    fn decoded(member: &Member) -> String {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(&member.bytes[..])
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    #[tokio::test]
    async fn a_gzip_raw_record_goes_as_sent_and_ends_a_line() {
        let tokens = HashMap::new();
        for (body, want) in [
            ("{\"a\":1}\n{\"a\":2}\n", "{\"a\":1}\n{\"a\":2}\n"),
            ("{\"a\":1}\r\n\n{\"a\":2}", "{\"a\":1}\r\n\n{\"a\":2}\n"),
        ] {
            let (_d, q, id) = queued(body.as_bytes(), true).await;
            let m = member(&q, id, &how(Compression::Gzip), &tokens, None)
                .unwrap()
                .unwrap();
            assert_eq!(decoded(&m), want);
            assert_eq!(m.events, 2);
            // Line by line (not gzip as sent): the lines, CR and blank lines gone.
            let (_d, q, id) = queued(body.as_bytes(), false).await;
            let m = member(&q, id, &how(Compression::Gzip), &tokens, None)
                .unwrap()
                .unwrap();
            assert_eq!(decoded(&m), "{\"a\":1}\n{\"a\":2}\n");
            let plain = member(&q, id, &how(Compression::None), &tokens, None)
                .unwrap()
                .unwrap();
            assert_eq!(plain.bytes, b"{\"a\":1}\n{\"a\":2}\n");
        }
    }
}
