//! From a queued record's decoded body to the events an output sends, with
//! metadata resolved as DESIGN.md says: an output's override, else the event's
//! own (the `/event` object's, else the `/raw` query's), else the accepting
//! token's; host defaults to this node's hostname and source, as Splunk
//! does, to `http:<token name>`.

use super::source::NAL_SOURCETYPE;
use crate::enrich::object::members;
use crate::enrich::Enriched;
use crate::hec::event::{epoch_seconds, parse_time};
use crate::hec::raw::lines;
use crate::hec::split::objects;
use crate::queue::{DataEndpoint, RecordMeta};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::io::Write;

/// Metadata an output imposes on every event (`None`: keep the event's own).
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides<'a> {
    /// `index`.
    pub index: Option<&'a str>,
    /// `sourcetype`.
    pub sourcetype: Option<&'a str>,
    /// `source`.
    pub source: Option<&'a str>,
    /// `host`.
    pub host: Option<&'a str>,
}

/// The accepting token's defaults (the last resort before Splunk's own).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenDefaults<'a> {
    /// `index`.
    pub index: Option<&'a str>,
    /// `sourcetype`.
    pub sourcetype: Option<&'a str>,
    /// `source`.
    pub source: Option<&'a str>,
}

/// Everything metadata resolution needs besides the record.
#[derive(Debug, Clone, Copy)]
pub struct Resolver<'a> {
    /// The output's overrides.
    pub overrides: Overrides<'a>,
    /// The accepting token's defaults.
    pub token: TokenDefaults<'a>,
    /// This node's hostname.
    pub hostname: &'a str,
}

/// A stable id for duplicate detection: XXH3-128 of the event's bytes as received.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId(pub u128);

impl EventId {
    /// The id of a `/raw` line (without CR/LF) or an `/event` object's bytes.
    pub fn of(bytes: &[u8]) -> EventId {
        EventId(xxhash_rust::xxh3::xxh3_128(bytes))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What an event carries.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// A `/raw` line, as received.
    Line(&'a [u8]),
    /// An `/event` object's `event` value, as received JSON.
    Json(&'a RawValue),
}

/// One event ready for an output.
#[derive(Debug, Clone)]
pub struct OutEvent<'a> {
    /// Epoch seconds: the event's own `time`, else the record's receive time.
    pub time: f64,
    /// Resolved host.
    pub host: Cow<'a, str>,
    /// Resolved source, if any.
    pub source: Option<Cow<'a, str>>,
    /// Resolved sourcetype, if any.
    pub sourcetype: Option<Cow<'a, str>>,
    /// Resolved index, if any (Splunk then uses the token's default index).
    pub index: Option<Cow<'a, str>>,
    /// The event itself.
    pub payload: Payload<'a>,
    /// The `/event` object's indexed `fields`, as received.
    pub fields: Option<&'a RawValue>,
    /// Stable id of the event's bytes.
    pub event_id: EventId,
}

impl OutEvent<'_> {
    /// Appends the event as one HEC `/event` JSON object and a newline: explicit
    /// `time`, `host`, `source`, `sourcetype`, `index` (metadata never carries
    /// over in HEC), the payload, and `fields` with `event_id` added.
    pub fn write_hec_json(&self, out: &mut Vec<u8>) {
        self.write_head(self.time, self.sourcetype.as_deref(), out);
        match self.payload {
            Payload::Line(line) => {
                let _ = serde_json::to_writer(&mut *out, &String::from_utf8_lossy(line));
            }
            Payload::Json(raw) => out.extend_from_slice(raw.get().as_bytes()),
        }
        self.write_fields(out, |_| false, |_| {});
    }

    /// Appends the event with an enriched network analytics sample as its
    /// `event`, its `Datetime` as `time` and its indexed fields added.
    pub fn write_enriched(&self, sample: &Enriched<'_>, out: &mut Vec<u8>) {
        let sourcetype = self.sourcetype.as_deref().or(Some(NAL_SOURCETYPE));
        self.write_head(sample.time().unwrap_or(self.time), sourcetype, out);
        sample.write_event(out);
        self.write_fields(
            out,
            |k| sample.is_indexed_name(k),
            |o| sample.write_indexed_fields(o),
        );
    }

    /// Everything up to and including `"event":`.
    fn write_head(&self, time: f64, sourcetype: Option<&str>, out: &mut Vec<u8>) {
        // Writing strings and numbers into a Vec cannot fail.
        out.extend_from_slice(b"{\"time\":");
        // Millisecond precision is what Splunk's _time keeps by default; keep µs.
        let t = (time * 1e6).round() / 1e6;
        let _ = serde_json::to_writer(&mut *out, &t);
        out.extend_from_slice(b",\"host\":");
        let _ = serde_json::to_writer(&mut *out, &*self.host);
        for (key, value) in [
            ("source", self.source.as_deref()),
            ("sourcetype", sourcetype),
            ("index", self.index.as_deref()),
        ] {
            if let Some(v) = value {
                out.extend_from_slice(b",\"");
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(b"\":");
                let _ = serde_json::to_writer(&mut *out, v);
            }
        }
        out.extend_from_slice(b",\"event\":");
    }

    /// `,"fields":{…}}` and the newline: the object's own fields except
    /// those `ours` rewrites, `extra` (pairs each ending in a comma), then
    /// `event_id` — unless the object already carries one (a replayed dead
    /// letter, or another Sluice upstream), which is kept so duplicates
    /// still match.
    fn write_fields(
        &self,
        out: &mut Vec<u8>,
        ours: impl Fn(&str) -> bool,
        extra: impl FnOnce(&mut Vec<u8>),
    ) {
        out.extend_from_slice(b",\"fields\":{");
        let mut own_id = false;
        let members = self.fields.and_then(|f| members(f.get(), 8));
        for m in members.iter().flatten() {
            if ours(&m.name) {
                continue;
            }
            own_id |= m.name == "event_id";
            let _ = serde_json::to_writer(&mut *out, &m.name);
            out.push(b':');
            out.extend_from_slice(m.value.as_bytes());
            out.push(b',');
        }
        extra(out);
        if own_id {
            out.pop();
            out.extend_from_slice(b"}}");
        } else {
            let _ = write!(out, "\"event_id\":\"{}\"}}}}", self.event_id);
        }
        out.push(b'\n');
    }
}

/// An event in a record could not be read back (the record was validated at
/// ingest, so this means corruption; such events go to dead letters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {number} of the record cannot be read: {reason}")]
pub struct BadEvent {
    /// Position of the event in its record.
    pub number: u64,
    /// Why.
    pub reason: String,
}

#[derive(Deserialize)]
struct EventObject<'a> {
    #[serde(borrow)]
    event: &'a RawValue,
    #[serde(borrow, default)]
    fields: Option<&'a RawValue>,
    #[serde(borrow, default)]
    time: Option<&'a RawValue>,
    #[serde(borrow, default)]
    host: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sourcetype: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    index: Option<Cow<'a, str>>,
}

/// `time` as a number or numeric string, in epoch seconds.
fn time_of(raw: &RawValue) -> Option<f64> {
    let text = raw.get();
    if text.starts_with('"') {
        let s: Cow<'_, str> = serde_json::from_str(text).ok()?;
        parse_time(&s)
    } else {
        text.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(epoch_seconds)
    }
}

fn pick<'a>(
    over: Option<&'a str>,
    own: Option<Cow<'a, str>>,
    token: Option<&'a str>,
) -> Option<Cow<'a, str>> {
    over.map(Cow::Borrowed)
        .or(own.filter(|s| !s.is_empty()))
        .or(token.map(Cow::Borrowed))
}

impl<'a> Resolver<'a> {
    fn resolve(
        &self,
        meta: &'a RecordMeta,
        own: [Option<Cow<'a, str>>; 4],
        time: Option<f64>,
        payload: Payload<'a>,
        fields: Option<&'a RawValue>,
        event_id: EventId,
    ) -> OutEvent<'a> {
        let [host, source, sourcetype, index] = own;
        let o = &self.overrides;
        let t = &self.token;
        // The query string's metadata applies to every event of the request.
        let q = |v: &'a Option<String>| v.as_deref().map(Cow::Borrowed);
        OutEvent {
            time: time.unwrap_or(meta.received_ms as f64 / 1000.0),
            host: pick(o.host, host.or(q(&meta.host)), None)
                .unwrap_or(Cow::Borrowed(self.hostname)),
            // Splunk names a source-less event after the receiving token.
            source: pick(o.source, source.or(q(&meta.source)), t.source)
                .or_else(|| Some(Cow::Owned(format!("http:{}", meta.token)))),
            sourcetype: pick(
                o.sourcetype,
                sourcetype.or(q(&meta.sourcetype)),
                t.sourcetype,
            ),
            index: pick(o.index, index.or(q(&meta.index)), t.index),
            payload,
            fields,
            event_id,
        }
    }

    /// What every event of a record that sets nothing of its own resolves
    /// to (the host and source of the record's rollups).
    pub fn of_record(&self, meta: &'a RecordMeta) -> OutEvent<'a> {
        self.resolve(
            meta,
            [None, None, None, None],
            None,
            Payload::Line(b""),
            None,
            EventId::of(b""),
        )
    }

    /// One event of a record, from its bytes as split from the stored body
    /// (a `/raw` line, or an `/event` object) and its number in the record.
    pub fn event(
        &self,
        meta: &'a RecordMeta,
        bytes: &'a [u8],
        number: u64,
    ) -> Result<OutEvent<'a>, BadEvent> {
        match meta.endpoint {
            DataEndpoint::Raw => Ok(self.resolve(
                meta,
                [None, None, None, None],
                None,
                Payload::Line(bytes),
                None,
                EventId::of(bytes),
            )),
            DataEndpoint::Event => {
                let bad = |reason: String| BadEvent { number, reason };
                let e: EventObject<'a> =
                    serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
                let time = match e.time {
                    Some(t) if t.get() != "null" => {
                        Some(time_of(t).ok_or_else(|| bad("bad time".into()))?)
                    }
                    _ => None,
                };
                Ok(self.resolve(
                    meta,
                    [e.host, e.source, e.sourcetype, e.index],
                    time,
                    Payload::Json(e.event),
                    e.fields,
                    EventId::of(bytes),
                ))
            }
        }
    }

    /// The events of a complete decoded body (tests and benchmarks; outputs
    /// read records as streams). Only the first `meta.decoded_bytes` bytes
    /// hold accepted events.
    pub fn events<'r>(
        &'r self,
        meta: &'a RecordMeta,
        decoded: &'a [u8],
    ) -> impl Iterator<Item = Result<OutEvent<'a>, BadEvent>> + 'r
    where
        'a: 'r,
    {
        let body = &decoded[..decoded.len().min(meta.decoded_bytes as usize)];
        let split: Box<dyn Iterator<Item = Result<&'a [u8], ()>>> = match meta.endpoint {
            DataEndpoint::Raw => Box::new(lines(body).map(Ok)),
            DataEndpoint::Event => Box::new(objects(body).map(|o| o.map_err(|_| ()))),
        };
        split.enumerate().map(move |(n, bytes)| match bytes {
            Ok(b) => self.event(meta, b, n as u64),
            Err(()) => Err(BadEvent {
                number: n as u64,
                reason: "not a JSON object".into(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::BodyEncoding;

    fn meta(endpoint: DataEndpoint, len: usize) -> RecordMeta {
        RecordMeta {
            endpoint,
            token: "t".into(),
            channel: None,
            sourcetype: Some("cloudflare:network_analytics".into()),
            source: None,
            host: Some("edge".into()),
            index: None,
            received_ms: 1_700_000_000_500,
            events: 0,
            encoding: BodyEncoding::Identity,
            decoded_bytes: len as u64,
        }
    }

    const R: Resolver<'static> = Resolver {
        overrides: Overrides {
            index: None,
            sourcetype: None,
            source: None,
            host: None,
        },
        token: TokenDefaults {
            index: Some("cloudflare"),
            sourcetype: Some("token:st"),
            source: Some("cloudflare:logpush"),
        },
        hostname: "sluice-node",
    };

    #[test]
    fn raw_lines_take_query_then_token_metadata() {
        let body = b"{\"a\":1}\r\n\n{\"a\":2}\n";
        let m = meta(DataEndpoint::Raw, body.len());
        let ev: Vec<_> = R.events(&m, body).map(Result::unwrap).collect();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].host, "edge");
        assert_eq!(
            ev[0].sourcetype.as_deref(),
            Some("cloudflare:network_analytics")
        );
        assert_eq!(ev[0].source.as_deref(), Some("cloudflare:logpush"));
        assert_eq!(ev[0].index.as_deref(), Some("cloudflare"));
        assert_eq!(ev[0].time, 1_700_000_000.5);
        assert!(matches!(ev[0].payload, Payload::Line(l) if l == b"{\"a\":1}"));
        assert_eq!(ev[0].event_id, EventId::of(b"{\"a\":1}"));
        assert_eq!(ev[0].event_id.to_string().len(), 32);
    }

    #[test]
    fn event_objects_keep_their_own_metadata_and_overrides_win() {
        let body = br#"{"event":{"x":1},"time":"1700000001.25","host":"h1","index":"main","fields":{"f":"v"}} {"event":"s"}"#;
        let m = meta(DataEndpoint::Event, body.len());
        let ev: Vec<_> = R.events(&m, body).map(Result::unwrap).collect();
        assert_eq!(ev[0].host, "h1");
        assert_eq!(ev[0].index.as_deref(), Some("main"));
        assert_eq!(ev[0].time, 1_700_000_001.25);
        assert_eq!(ev[0].fields.map(RawValue::get), Some(r#"{"f":"v"}"#));
        // Metadata never carries over to the next object.
        assert_eq!(ev[1].host, "edge");
        assert_eq!(ev[1].index.as_deref(), Some("cloudflare"));
        let forced = Resolver {
            overrides: Overrides {
                index: Some("forced"),
                host: Some("fh"),
                ..Overrides::default()
            },
            ..R
        };
        let ev: Vec<_> = forced.events(&m, body).map(Result::unwrap).collect();
        assert_eq!(
            (ev[0].index.as_deref(), &*ev[0].host),
            (Some("forced"), "fh")
        );
    }

    #[test]
    fn hec_json_is_explicit_and_valid() {
        let body =
            br#"{"event":{"x":1},"time":1700000001,"fields":{"f":"v"}}{"event":"s","fields":{}}"#;
        let m = meta(DataEndpoint::Event, body.len());
        let mut out = Vec::new();
        for e in R.events(&m, body) {
            e.unwrap().write_hec_json(&mut out);
        }
        let raw = b"caf\xc3\xa9 \"q\"\n";
        let mr = meta(DataEndpoint::Raw, raw.len());
        for e in R.events(&mr, raw) {
            e.unwrap().write_hec_json(&mut out);
        }
        let lines: Vec<serde_json::Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["time"], serde_json::json!(1700000001.0));
        assert_eq!(lines[0]["event"], serde_json::json!({"x":1}));
        assert_eq!(lines[0]["fields"]["f"], "v");
        assert_eq!(lines[0]["host"], "edge");
        assert_eq!(lines[0]["index"], "cloudflare");
        assert_eq!(lines[1]["fields"].as_object().unwrap().len(), 1);
        assert_eq!(lines[2]["event"], "café \"q\"");
        assert_eq!(lines[2]["time"], serde_json::json!(1700000000.5));
        assert_eq!(
            lines[2]["fields"]["event_id"],
            EventId::of("café \"q\"".as_bytes()).to_string()
        );
    }

    #[test]
    fn only_the_accepted_prefix_is_read() {
        let body = br#"{"event":1}{"event":2}{"event":""}"#;
        let m = meta(DataEndpoint::Event, 22);
        assert_eq!(R.events(&m, body).count(), 2);
        let second: Vec<_> = R.events(&m, body).skip(1).map(Result::unwrap).collect();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].event_id, EventId::of(br#"{"event":2}"#));
        let no_source = Resolver {
            token: TokenDefaults {
                source: None,
                ..R.token
            },
            ..R
        };
        let ev: Vec<_> = no_source.events(&m, body).map(Result::unwrap).collect();
        assert_eq!(ev[0].source.as_deref(), Some("http:t"), "Splunk's default");
        let no_host = Resolver { hostname: "n", ..R };
        let mut m = meta(DataEndpoint::Raw, 2);
        m.host = None;
        let ev: Vec<_> = no_host.events(&m, b"x\n").map(Result::unwrap).collect();
        assert_eq!(ev[0].host, "n");
    }
}
