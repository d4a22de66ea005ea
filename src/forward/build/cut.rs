//! Cutting a sent body apart after an indexer answered invalid-event-number
//! k: it stored the events before k and none after. Event k and the events
//! after it are taken from the body that was sent instead of being read,
//! decoded and enriched from the queue again: the letter holds exactly what
//! the indexer refused, and the rest goes back as parts (the engine sends
//! it in halves, so a batch refused event by event costs n·log n events on
//! the wire and here, not n²/2).

use super::super::batch::{BatchBuilder, BatchLimits, Compression};
use super::super::source::Route;
use super::super::stream::{EventStream, Item, SourceError};
use super::super::transport::Request;
use super::job::finish;
use super::BuildShared;
use crate::queue::{BodyEncoding, DataEndpoint, RecordId, RecordMeta};

/// A sent body, cut.
#[derive(Debug)]
pub struct Cut {
    /// The refused event as it was sent (without its line end).
    pub refused: Vec<u8>,
    /// Requests holding the events after it, in order, one per asked size.
    pub parts: Vec<Request>,
}

/// Cuts `sent` (holding `events` events) at event `at`: the event itself,
/// then the events after it in parts of `sizes` events. `record` names the
/// batch's first record in errors.
pub fn cut(
    shared: &BuildShared,
    sent: &Request,
    events: u64,
    at: u64,
    sizes: &[u64],
    record: RecordId,
) -> Result<Cut, SourceError> {
    let encoding = match shared.limits.compression {
        Compression::Gzip => BodyEncoding::Gzip,
        Compression::None => BodyEncoding::Identity,
    };
    let endpoint = match sent.route {
        Route::Event => DataEndpoint::Event,
        Route::Raw => DataEndpoint::Raw,
    };
    let meta = RecordMeta::bare(endpoint, encoding, u64::MAX, events);
    // One event of a sent body is never longer than the body itself.
    let mut stream = EventStream::new(record, meta, &sent.body[..], u64::MAX);
    stream.skip_to(at)?;
    let refused = match stream.peek()? {
        Some(Item::Event(bytes) | Item::Oversize(bytes)) => bytes.to_vec(),
        None => Vec::new(),
    };
    stream.advance();
    let unlimited = BatchLimits::unlimited(shared.limits.compression);
    let mut parts = Vec::with_capacity(sizes.len());
    let mut line = Vec::new();
    for size in sizes {
        let mut builder = BatchBuilder::new(unlimited, &shared.bodies);
        for _ in 0..*size {
            let Some(Item::Event(bytes) | Item::Oversize(bytes)) = stream.peek()? else {
                break;
            };
            line.clear();
            line.extend_from_slice(bytes);
            line.push(b'\n');
            builder.push(&line);
            stream.advance();
        }
        parts.push(Request {
            body: finish(shared, builder),
            route: sent.route,
            query: sent.query.clone(),
        });
    }
    Ok(Cut { refused, parts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Queue, QueueLimits};
    use std::io::Read;
    use std::sync::Arc;

    fn shared(compression: Compression) -> (tempfile::TempDir, BuildShared) {
        let dir = tempfile::tempdir().unwrap();
        let queue = Arc::new(Queue::open(dir.path(), QueueLimits::roomy()).unwrap());
        (dir, BuildShared::for_tests(queue, compression))
    }

    /// A body of `events` as the builder packs them.
    fn body(shared: &BuildShared, events: &[String]) -> bytes::Bytes {
        let mut b = BatchBuilder::new(
            BatchLimits::unlimited(shared.limits.compression),
            &shared.bodies,
        );
        for e in events {
            b.push(format!("{e}\n").as_bytes());
        }
        finish(shared, b)
    }

    fn plain(shared: &BuildShared, body: &[u8]) -> String {
        match shared.limits.compression {
            Compression::None => String::from_utf8(body.to_vec()).unwrap(),
            Compression::Gzip => {
                let mut s = String::new();
                flate2::read::MultiGzDecoder::new(body)
                    .read_to_string(&mut s)
                    .unwrap();
                s
            }
        }
    }

    #[test]
    fn the_refused_event_and_the_rest_in_parts_come_from_the_sent_body() {
        for compression in [Compression::None, Compression::Gzip] {
            for route in [Route::Event, Route::Raw] {
                let (_d, shared) = shared(compression);
                let events: Vec<String> = (0..9)
                    .map(|i| match route {
                        // Whitespace and newlines inside an object are kept.
                        Route::Event => format!("{{\"event\":\"e{i}\",\n \"fields\":{{}}}}"),
                        Route::Raw => format!("line {i}"),
                    })
                    .collect();
                let sent = Request {
                    body: body(&shared, &events),
                    route,
                    query: Some("host=h".into()),
                };
                let c = cut(&shared, &sent, 9, 3, &[3, 2], 7).unwrap();
                assert_eq!(String::from_utf8(c.refused).unwrap(), events[3]);
                assert_eq!(c.parts.len(), 2);
                let texts: Vec<String> = c.parts.iter().map(|p| plain(&shared, &p.body)).collect();
                let want = |r: std::ops::Range<usize>| -> String {
                    events[r].iter().map(|e| format!("{e}\n")).collect()
                };
                assert_eq!(
                    texts,
                    vec![want(4..7), want(7..9)],
                    "{compression:?} {route:?}"
                );
                assert!(c
                    .parts
                    .iter()
                    .all(|p| p.route == route && p.query.as_deref() == Some("host=h")));
            }
        }
    }

    #[test]
    fn a_body_that_does_not_split_is_an_error_naming_the_record() {
        let (_d, shared) = shared(Compression::None);
        let sent = Request {
            body: bytes::Bytes::from_static(b"{\"event\":1}\n{\"ev"),
            route: Route::Event,
            query: None,
        };
        let e = cut(&shared, &sent, 2, 1, &[0], 7).unwrap_err();
        assert!(e.to_string().contains("record 7"), "{e}");
    }
}
