//! Reading queued records back for an output: decode the stored body (only
//! the accepted prefix) and serialize runs of its events as HEC JSON.

use super::event::{BadEvent, OutEvent, Payload, Resolver};
use crate::enrich::Enricher;
use crate::queue::{BodyEncoding, Queue, QueueError, Record, RecordId, RecordMeta};
use std::io::Read;

/// A run of consecutive events of one record, as carried by one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// The record.
    pub record: RecordId,
    /// Position of the first event in the record.
    pub first: u64,
    /// Number of events.
    pub count: u64,
}

/// A record read back and decoded.
#[derive(Debug)]
pub struct Loaded {
    /// Its id.
    pub id: RecordId,
    /// Its metadata.
    pub meta: RecordMeta,
    /// The accepted part of its body, decoded.
    pub decoded: Vec<u8>,
}

/// Reading a record back failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The stored body does not decode (corruption).
    #[error("record {id}: stored body does not decode: {reason}")]
    Body {
        /// The record.
        id: RecordId,
        /// Why.
        reason: String,
    },
}

/// Decodes the accepted prefix of a record's body.
pub fn decode(id: RecordId, record: &Record) -> Result<Vec<u8>, SourceError> {
    let want = record.meta.decoded_bytes;
    match record.meta.encoding {
        BodyEncoding::Identity => Ok(record.body[..record.body.len().min(want as usize)].to_vec()),
        BodyEncoding::Gzip => {
            let mut out = Vec::with_capacity(want.min(1 << 30) as usize);
            flate2::read::MultiGzDecoder::new(&record.body[..])
                .take(want)
                .read_to_end(&mut out)
                .map_err(|e| SourceError::Body {
                    id,
                    reason: e.to_string(),
                })?;
            Ok(out)
        }
    }
}

/// Reads and decodes a record (None once it has left the queue).
pub fn load(queue: &Queue, id: RecordId) -> Result<Option<Loaded>, SourceError> {
    let Some(record) = queue.get(id)? else {
        return Ok(None);
    };
    let decoded = decode(id, &record)?;
    Ok(Some(Loaded {
        id,
        meta: record.meta,
        decoded,
    }))
}

/// Which Splunk endpoint an event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/services/collector/event`, as HEC JSON with explicit metadata.
    Event,
    /// `/services/collector/raw`, as the line received, so Splunk's own line
    /// breaking and timestamp rules apply (non-sample `/raw` data).
    Raw,
}

/// Sourcetype of Cloudflare's network analytics samples.
pub const NAL_SOURCETYPE: &str = "cloudflare:network_analytics";

/// `/raw` lines go to Splunk's `/raw` unless they are network analytics
/// samples (that sourcetype and a JSON object), which travel as `/event`.
pub fn route_of(e: &OutEvent<'_>) -> Route {
    match e.payload {
        Payload::Json(_) => Route::Event,
        Payload::Line(line) => {
            let t = line.trim_ascii();
            let object = t.first() == Some(&b'{') && t.last() == Some(&b'}');
            if object && e.sourcetype.as_deref() == Some(NAL_SOURCETYPE) {
                Route::Event
            } else {
                Route::Raw
            }
        }
    }
}

/// How an event was written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rendered {
    /// The Splunk endpoint it goes to.
    pub route: Route,
    /// Whether it was enriched as a network analytics sample.
    pub enriched: bool,
    /// Its `Datetime` (epoch seconds) when it is an enriched sample.
    pub sample_time: Option<f64>,
}

/// Appends an event in its wire form: an enriched HEC JSON object when it
/// is a network analytics sample and `enrich` is on, else `/raw` when
/// `allow_raw` and [`route_of`] say so, else HEC JSON as received.
pub fn render(
    e: &OutEvent<'_>,
    enrich: Option<(&Enricher, &str)>,
    allow_raw: bool,
    out: &mut Vec<u8>,
) -> Rendered {
    if let Some((enricher, token)) = enrich {
        let bytes = match e.payload {
            Payload::Line(line) => line,
            Payload::Json(raw) => raw.get().as_bytes(),
        };
        if let Some(sample) = enricher.sample(bytes, token) {
            e.write_enriched(&sample, out);
            return Rendered {
                route: Route::Event,
                enriched: true,
                sample_time: sample.time(),
            };
        }
    }
    let route = if allow_raw { route_of(e) } else { Route::Event };
    match (route, e.payload) {
        (Route::Raw, Payload::Line(line)) => {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        _ => e.write_hec_json(out),
    }
    Rendered {
        route,
        enriched: false,
        sample_time: None,
    }
}

/// The `/raw` query string carrying an event's metadata.
pub fn raw_query(e: &OutEvent<'_>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("host", &e.host);
    for (k, v) in [
        ("source", &e.source),
        ("sourcetype", &e.sourcetype),
        ("index", &e.index),
    ] {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    q.finish()
}

impl Loaded {
    /// Serializes events `first..first+count` for a batch of `route` into
    /// `out`; returns the `/raw` query of the first event, and the events
    /// that cannot be read (for dead letters).
    pub fn write_events(
        &self,
        resolver: &Resolver<'_>,
        enrich: Option<&Enricher>,
        first: u64,
        count: u64,
        route: Route,
        out: &mut Vec<u8>,
    ) -> (Option<String>, Vec<BadEvent>) {
        let mut bad = Vec::new();
        let mut query = None;
        let enrich = enrich.map(|en| (en, self.meta.token.as_str()));
        for e in resolver
            .events_from(&self.meta, &self.decoded, first as usize)
            .take(count as usize)
        {
            match e {
                Ok(e) => {
                    if query.is_none() && route == Route::Raw {
                        query = Some(raw_query(&e));
                    }
                    render(&e, enrich, route == Route::Raw, out);
                }
                Err(b) => bad.push(b),
            }
        }
        (query, bad)
    }

    /// Each event from `first` on, rendered (for batching): how, and its bytes.
    /// Without `allow_raw` (the file output) every event is HEC JSON.
    pub fn each_event<'s>(
        &'s self,
        resolver: &'s Resolver<'s>,
        enrich: Option<&'s Enricher>,
        first: u64,
        allow_raw: bool,
    ) -> impl Iterator<Item = Result<(Rendered, Vec<u8>), BadEvent>> + 's {
        let enrich = enrich.map(|en| (en, self.meta.token.as_str()));
        resolver
            .events_from(&self.meta, &self.decoded, first as usize)
            .map(move |e| {
                e.map(|e| {
                    // Room for the envelope and derived fields: no regrowth.
                    let payload = match e.payload {
                        Payload::Line(l) => l.len(),
                        Payload::Json(r) => r.get().len(),
                    };
                    let mut v = Vec::with_capacity(payload + 384);
                    let r = render(&e, enrich, allow_raw, &mut v);
                    (r, v)
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::event::{Overrides, TokenDefaults};
    use crate::queue::{BodyEncoding, DataEndpoint};

    /// A `/raw` record of `body` (identity encoding, no query metadata).
    fn raw_record(body: &str, received_ms: u64) -> Loaded {
        Loaded {
            id: 0,
            meta: RecordMeta {
                endpoint: DataEndpoint::Raw,
                token: "t".into(),
                channel: None,
                sourcetype: None,
                source: None,
                host: None,
                index: None,
                received_ms,
                events: crate::hec::raw::lines(body.as_bytes()).count() as u64,
                encoding: BodyEncoding::Identity,
                decoded_bytes: body.len() as u64,
            },
            decoded: body.as_bytes().to_vec(),
        }
    }

    const RESOLVER: Resolver<'static> = Resolver {
        overrides: Overrides {
            index: None,
            sourcetype: None,
            source: None,
            host: None,
        },
        token: TokenDefaults {
            index: None,
            sourcetype: None,
            source: None,
        },
        hostname: "n",
    };

    #[test]
    fn samples_go_to_event_and_other_lines_to_raw() {
        let mut l = raw_record("{\"MitigationSystem\":\"dosd\"}\nplain text line\n", 0);
        l.meta.sourcetype = Some(NAL_SOURCETYPE.into());
        l.meta.host = Some("edge one".into());
        l.meta.index = Some("cf".into());
        let r = RESOLVER;
        let routes: Vec<Route> = l
            .each_event(&r, None, 0, true)
            .map(|e| e.unwrap().0.route)
            .collect();
        assert_eq!(routes, vec![Route::Event, Route::Raw]);
        assert!(l
            .each_event(&r, None, 0, false)
            .all(|e| e.unwrap().0.route == Route::Event));
        let mut out = Vec::new();
        let (q, bad) = l.write_events(&r, None, 1, 1, Route::Raw, &mut out);
        assert!(bad.is_empty());
        assert_eq!(out, b"plain text line\n");
        assert_eq!(
            q.as_deref(),
            Some(
                "host=edge+one&source=http%3At&sourcetype=cloudflare%3Anetwork_analytics&index=cf"
            )
        );
    }

    #[test]
    fn samples_are_enriched_and_broken_lines_pass_unchanged() {
        let sample = r#"{"MitigationSystem":"dosd","Datetime":"2026-11-20T10:00:04Z","Outcome":"drop","SampleInterval":10,"IPTotalLength":60,"DNSQueryName":""}"#;
        let broken = r#"{"MitigationSystem":"dosd","Datetime":"2026-11-20T10:00:04Z","#;
        let l = raw_record(&format!("{sample}\n{broken}\nplain\n"), 1_000);
        let r = RESOLVER;
        let config = crate::config::enrich::EnrichConfig::default();
        let en = Enricher::new(&config, &[]).unwrap().unwrap();
        let out: Vec<(Rendered, Vec<u8>)> = l
            .each_event(&r, Some(&en), 0, true)
            .map(Result::unwrap)
            .collect();
        assert_eq!(out[0].0.route, Route::Event);
        assert_eq!(out[0].0.sample_time, Some(1_795_168_804.0));
        let v: serde_json::Value = serde_json::from_slice(&out[0].1).unwrap();
        assert_eq!(v["time"], 1_795_168_804.0);
        assert_eq!(v["sourcetype"], NAL_SOURCETYPE);
        assert_eq!(v["event"]["est_bytes"], 600);
        assert!(v["event"].get("DNSQueryName").is_none());
        assert_eq!(v["fields"]["outcome"], "drop");
        assert_eq!(
            v["fields"]["event_id"],
            crate::forward::event::EventId::of(sample.as_bytes()).to_string()
        );
        // Not a sample: exactly as it came, on /raw (no sourcetype asks for /event).
        assert!(out[0].0.enriched);
        assert_eq!(
            out[1].0,
            Rendered {
                route: Route::Raw,
                enriched: false,
                sample_time: None
            }
        );
        assert_eq!(out[1].1, format!("{broken}\n").into_bytes());
        assert_eq!(out[2].1, b"plain\n");
        // The same events written again for a resend are byte-identical.
        let mut again = Vec::new();
        l.write_events(&r, Some(&en), 0, 1, Route::Event, &mut again);
        assert_eq!(again, out[0].1);

        // Sent again as an /event object (a replayed dead letter, or another
        // Sluice upstream): same event, same id, no duplicate fields.
        let replayed = Loaded {
            id: 1,
            meta: RecordMeta {
                endpoint: DataEndpoint::Event,
                decoded_bytes: out[0].1.len() as u64,
                events: 1,
                ..l.meta.clone()
            },
            decoded: out[0].1.clone(),
        };
        let (rendered, bytes) = replayed
            .each_event(&r, Some(&en), 0, true)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(rendered.route, Route::Event);
        let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
        assert_eq!(
            parse(&bytes),
            parse(&out[0].1),
            "enriching an enriched event changes nothing"
        );
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.matches("\"event_id\"").count(), 1);
        assert_eq!(text.matches("\"outcome\"").count(), 1);
    }
}
