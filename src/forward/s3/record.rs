//! One queued record as it goes into an object, on a blocking thread: its
//! lines exactly as received (or enriched HEC JSON with `enrich = true`),
//! filtered by `events`, followed by its rollups with `rollups = true`, as
//! one gzip member (or plain NDJSON).

use super::super::batch::Compression;
use super::super::context::TokenMeta;
use super::super::event::{Overrides, Resolver, TokenDefaults};
use super::super::rollups::{sample_of, Accumulator};
use super::super::routing::Routing;
use super::super::source::render;
use super::super::stream::{EventStream, Item, SourceError};
use crate::enrich::Enricher;
use crate::queue::{Queue, RecordId};
use flate2::write::GzEncoder;
use std::collections::HashMap;
use std::io::Write;
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
        .map(|r| Accumulator::new(r, enricher, &meta));
    let mut out = Vec::with_capacity(
        usize::try_from(meta.decoded_bytes)
            .unwrap_or(0)
            .min(8 << 20),
    );
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
    }
    if let Some(acc) = acc {
        for line in acc.finish(&how.node, id, &resolver, &meta) {
            out.extend_from_slice(&line);
            events += 1;
        }
    }
    let bytes = match how.compression {
        Compression::None => out,
        Compression::Gzip => {
            let mut gz = GzEncoder::new(
                Vec::with_capacity(out.len() / 8),
                flate2::Compression::fast(),
            );
            // Writing into a Vec cannot fail.
            let _ = gz.write_all(&out);
            gz.finish().unwrap_or_default()
        }
    };
    Ok(Some(Member {
        bytes,
        events,
        received_ms: meta.received_ms,
        oversize,
    }))
}
