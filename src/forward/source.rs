//! From a queued record's events to their wire form for an output: which
//! Splunk endpoint each goes to, enrichment of network analytics samples,
//! and the runs of events (segments) a batch carries, rebuilt from the queue
//! as a stream.

use super::event::{BadEvent, OutEvent, Payload, Resolver};
use super::stream::{EventStream, Item, SourceError};
use crate::enrich::Enricher;
use crate::queue::RecordId;

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

/// An event that cannot be sent as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsendable {
    /// It cannot be read back (the record was validated at ingest: corruption).
    Bad(BadEvent),
    /// Longer than `max_event_bytes`: its first bytes.
    Oversize {
        /// Its number in the record.
        number: u64,
        /// Its first `max_event_bytes` bytes.
        head: Vec<u8>,
    },
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

/// Writes the events of `seg` (read from `stream`, which must not be past
/// `seg.first`) for a batch of `route`; returns the `/raw` query of the
/// first. Events that cannot be sent were left out of segments when the
/// batch was built; here they are skipped.
pub fn write_segment(
    stream: &mut EventStream<'_>,
    resolver: &Resolver<'_>,
    enrich: Option<&Enricher>,
    seg: Segment,
    route: Route,
    out: &mut Vec<u8>,
) -> Result<Option<String>, SourceError> {
    stream.skip_to(seg.first)?;
    let mut query = None;
    let meta = stream.meta().clone();
    let enrich = enrich.map(|en| (en, meta.token.as_str()));
    while stream.position() < seg.first + seg.count {
        let number = stream.position();
        match stream.peek()? {
            None => break,
            Some(Item::Event(bytes)) => {
                if let Ok(e) = resolver.event(&meta, bytes, number) {
                    if query.is_none() && route == Route::Raw {
                        query = Some(raw_query(&e));
                    }
                    render(&e, enrich, route == Route::Raw, out);
                }
            }
            Some(Item::Oversize(_)) => {}
        }
        stream.advance();
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::event::{Overrides, TokenDefaults};
    use crate::queue::{BodyEncoding, DataEndpoint, RecordMeta};

    /// A `/raw` record's metadata for `body` (identity, no query metadata).
    fn raw_meta(body: &str, received_ms: u64) -> RecordMeta {
        RecordMeta {
            received_ms,
            ..RecordMeta::plain(
                DataEndpoint::Raw,
                BodyEncoding::Identity,
                body.len() as u64,
                crate::hec::raw::lines(body.as_bytes()).count() as u64,
            )
        }
    }

    /// Each event rendered on its own: how, and its bytes.
    fn each(
        meta: &RecordMeta,
        body: &[u8],
        enrich: Option<&Enricher>,
        allow_raw: bool,
    ) -> Vec<(Rendered, Vec<u8>)> {
        let r = RESOLVER;
        r.events(meta, body)
            .map(|e| {
                let mut v = Vec::new();
                let how = render(&e.unwrap(), enrich.map(|en| (en, "t")), allow_raw, &mut v);
                (how, v)
            })
            .collect()
    }

    fn segment(
        meta: &RecordMeta,
        body: &[u8],
        enrich: Option<&Enricher>,
        first: u64,
        count: u64,
        route: Route,
    ) -> (Option<String>, Vec<u8>) {
        let mut stream = EventStream::new(0, meta.clone(), body, 1 << 20);
        let mut out = Vec::new();
        let seg = Segment {
            record: 0,
            first,
            count,
        };
        let q = write_segment(&mut stream, &RESOLVER, enrich, seg, route, &mut out).unwrap();
        (q, out)
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
        let body = "{\"MitigationSystem\":\"dosd\"}\nplain text line\n";
        let mut m = raw_meta(body, 0);
        m.sourcetype = Some(NAL_SOURCETYPE.into());
        m.host = Some("edge one".into());
        m.index = Some("cf".into());
        let routes: Vec<Route> = each(&m, body.as_bytes(), None, true)
            .iter()
            .map(|e| e.0.route)
            .collect();
        assert_eq!(routes, vec![Route::Event, Route::Raw]);
        assert!(each(&m, body.as_bytes(), None, false)
            .iter()
            .all(|e| e.0.route == Route::Event));
        let (q, out) = segment(&m, body.as_bytes(), None, 1, 1, Route::Raw);
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
        let body = format!("{sample}\n{broken}\nplain\n");
        let m = raw_meta(&body, 1_000);
        let config = crate::enrich::config::EnrichConfig::default();
        let en = Enricher::new(&config, &[]).unwrap().unwrap();
        let out = each(&m, body.as_bytes(), Some(&en), true);
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
        // The same events written again for a resend, from the stream, are byte-identical.
        let (_, again) = segment(&m, body.as_bytes(), Some(&en), 0, 1, Route::Event);
        assert_eq!(again, out[0].1);

        // Sent again as an /event object (a replayed dead letter, or another
        // Sluice upstream): same event, same id, no duplicate fields.
        let replayed = RecordMeta {
            endpoint: DataEndpoint::Event,
            decoded_bytes: out[0].1.len() as u64,
            events: 1,
            ..m.clone()
        };
        let (rendered, bytes) = each(&replayed, &out[0].1, Some(&en), true).remove(0);
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
