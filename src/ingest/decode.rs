//! Streaming decode of a request body: gunzip (multi-member) under a cap,
//! counting and checking events without holding the decoded body.

use crate::hec::codes::{self, HecStatus};
use crate::hec::event::{EventRules, EventScanner, Rejection};
use crate::hec::probe::{is_logpush_probe, MAX_PROBE_BYTES};
use crate::hec::raw::LineCounter;
use crate::queue::{BodyEncoding, DataEndpoint};
use flate2::read::MultiGzDecoder;
use std::io::Read;

/// Parses `Content-Encoding`: gzip or identity, anything else is 415.
pub fn content_encoding(header: Option<&str>) -> Option<BodyEncoding> {
    match header.map(|h| h.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("identity") => Some(BodyEncoding::Identity),
        Some("gzip") | Some("x-gzip") => Some(BodyEncoding::Gzip),
        _ => None,
    }
}

/// What the body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// Logpush's destination probe: answer 200, queue nothing.
    Probe,
    /// Every event is good.
    Accepted {
        /// Events in the body.
        events: u64,
        /// Decoded size.
        decoded_bytes: u64,
    },
    /// A bad event: `rejection.event_number` events before it are kept, as Splunk does.
    Rejected(Rejection),
}

/// The body cannot be decoded at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Decoded size over the cap (gzip bombs end here).
    TooLarge,
    /// Not valid gzip (truncated, corrupt).
    Corrupt,
}

const CHUNK: usize = 64 * 1024;

/// Decodes and checks a body.
pub fn scan_body(
    body: &[u8],
    encoding: BodyEncoding,
    endpoint: DataEndpoint,
    rules: EventRules<'_>,
    max_decoded: u64,
) -> Result<Scan, DecodeError> {
    let mut reader: Box<dyn Read + '_> = match encoding {
        BodyEncoding::Identity => Box::new(body),
        BodyEncoding::Gzip => Box::new(MultiGzDecoder::new(body)),
    };
    let mut buf = vec![0u8; CHUNK];
    let mut head: Vec<u8> = Vec::new();
    let mut total: u64 = 0;
    let mut events = EventScanner::new(rules);
    let mut lines = LineCounter::new();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(DecodeError::Corrupt),
        };
        total += n as u64;
        if total > max_decoded {
            return Err(DecodeError::TooLarge);
        }
        let chunk = &buf[..n];
        if head.len() <= MAX_PROBE_BYTES {
            head.extend_from_slice(&chunk[..chunk.len().min(MAX_PROBE_BYTES + 1 - head.len())]);
        }
        match endpoint {
            DataEndpoint::Raw => lines.feed(chunk),
            DataEndpoint::Event => {
                if let Err(r) = events.feed(chunk) {
                    return Ok(Scan::Rejected(r));
                }
            }
        }
    }
    // Logpush probes its destination's path, `/raw`; on `/event` the same
    // body is an event without `event`, which Splunk refuses with code 12.
    if endpoint == DataEndpoint::Raw && is_logpush_probe(&head) {
        return Ok(Scan::Probe);
    }
    let count = match endpoint {
        DataEndpoint::Raw => lines.finish(),
        DataEndpoint::Event => match events.finish() {
            Ok(n) => n,
            Err(r) => return Ok(Scan::Rejected(r)),
        },
    };
    if count == 0 {
        return Ok(Scan::Rejected(Rejection {
            status: codes::NO_DATA,
            event_number: 0,
            accepted_bytes: 0,
        }));
    }
    Ok(Scan::Accepted {
        events: count,
        decoded_bytes: total,
    })
}

/// The status for a decode failure.
pub fn decode_status(e: DecodeError) -> HecStatus {
    match e {
        DecodeError::TooLarge => codes::PAYLOAD_TOO_LARGE,
        DecodeError::Corrupt => codes::INVALID_DATA_FORMAT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    const ANY: EventRules<'static> = EventRules {
        allowed_indexes: &[],
        max_event_bytes: 1 << 20,
    };

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn multi_member_gzip_counts_all_lines() {
        let mut body = gz(b"a\nb\n");
        body.extend(gz(b"c\n"));
        let s = scan_body(&body, BodyEncoding::Gzip, DataEndpoint::Raw, ANY, 1 << 20).unwrap();
        assert_eq!(
            s,
            Scan::Accepted {
                events: 3,
                decoded_bytes: 6
            }
        );
    }

    #[test]
    fn truncated_gzip_is_corrupt_and_bombs_are_too_large() {
        let body = gz(&vec![b'x'; 100_000]);
        assert_eq!(
            scan_body(
                &body[..body.len() / 2],
                BodyEncoding::Gzip,
                DataEndpoint::Raw,
                ANY,
                1 << 20
            ),
            Err(DecodeError::Corrupt)
        );
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        e.write_all(&vec![b'\n'; 10 << 20]).unwrap();
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < 100_000);
        assert_eq!(
            scan_body(&bomb, BodyEncoding::Gzip, DataEndpoint::Raw, ANY, 1 << 20),
            Err(DecodeError::TooLarge)
        );
    }

    #[test]
    fn probe_is_recognised_on_raw_only() {
        let probe = gz(br#"{"content":"tests"}"#);
        assert_eq!(
            scan_body(&probe, BodyEncoding::Gzip, DataEndpoint::Raw, ANY, 1 << 20),
            Ok(Scan::Probe)
        );
        match scan_body(
            &probe,
            BodyEncoding::Gzip,
            DataEndpoint::Event,
            ANY,
            1 << 20,
        ) {
            Ok(Scan::Rejected(r)) => {
                assert_eq!((r.status, r.event_number), (codes::EVENT_REQUIRED, 0))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn encodings() {
        assert_eq!(content_encoding(None), Some(BodyEncoding::Identity));
        assert_eq!(content_encoding(Some("GZIP")), Some(BodyEncoding::Gzip));
        assert_eq!(content_encoding(Some("deflate")), None);
        assert_eq!(content_encoding(Some("br")), None);
    }
}
