//! Validation of HEC `/event` objects, as Splunk judges them.

use super::codes::{self, HecStatus};
use super::split::ObjectSplitter;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// Rules applied to every event.
#[derive(Debug, Clone, Copy)]
pub struct EventRules<'a> {
    /// Indexes the token may write to; empty means any.
    pub allowed_indexes: &'a [String],
    /// Largest `/event` object, in bytes (`server.max_event_bytes`): one
    /// larger is refused as soon as it passes this, so memory per request
    /// does not grow with an object a client never closes.
    pub max_event_bytes: u64,
}

impl EventRules<'_> {
    /// Whether `index` may be written by this token.
    pub fn index_allowed(&self, index: &str) -> bool {
        self.allowed_indexes.is_empty() || self.allowed_indexes.iter().any(|i| i == index)
    }
}

/// What the `event` key held.
#[derive(Debug, Default, PartialEq, Eq)]
enum EventField {
    #[default]
    Missing,
    Present,
    Blank,
    Invalid,
}

impl<'de> Deserialize<'de> for EventField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EventField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an event")
            }
            fn visit_unit<E>(self) -> Result<EventField, E> {
                Ok(EventField::Invalid)
            }
            fn visit_bool<E>(self, v: bool) -> Result<EventField, E> {
                Ok(if v {
                    EventField::Present
                } else {
                    EventField::Invalid
                })
            }
            fn visit_i64<E>(self, _: i64) -> Result<EventField, E> {
                Ok(EventField::Present)
            }
            fn visit_u64<E>(self, _: u64) -> Result<EventField, E> {
                Ok(EventField::Present)
            }
            fn visit_f64<E>(self, _: f64) -> Result<EventField, E> {
                Ok(EventField::Present)
            }
            fn visit_str<E>(self, v: &str) -> Result<EventField, E> {
                Ok(if v.trim().is_empty() {
                    EventField::Blank
                } else {
                    EventField::Present
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<EventField, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(EventField::Present)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<EventField, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(EventField::Present)
            }
        }
        d.deserialize_any(V)
    }
}

/// Whether `fields` is flat: scalars or arrays of scalars.
#[derive(Debug, PartialEq, Eq)]
struct FieldsShape {
    flat: bool,
}

impl<'de> Deserialize<'de> for FieldsShape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FieldsShape;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of indexed fields")
            }
            fn visit_unit<E>(self) -> Result<FieldsShape, E> {
                Ok(FieldsShape { flat: true })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<FieldsShape, A::Error> {
                let mut flat = true;
                while let Some((_, v)) = m.next_entry::<IgnoredAny, FieldValue>()? {
                    flat &= v.0;
                }
                Ok(FieldsShape { flat })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<FieldsShape, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FieldsShape { flat: false })
            }
            fn visit_str<E>(self, _: &str) -> Result<FieldsShape, E> {
                Ok(FieldsShape { flat: false })
            }
            fn visit_bool<E>(self, _: bool) -> Result<FieldsShape, E> {
                Ok(FieldsShape { flat: false })
            }
            fn visit_i64<E>(self, _: i64) -> Result<FieldsShape, E> {
                Ok(FieldsShape { flat: false })
            }
            fn visit_u64<E>(self, _: u64) -> Result<FieldsShape, E> {
                Ok(FieldsShape { flat: false })
            }
            fn visit_f64<E>(self, _: f64) -> Result<FieldsShape, E> {
                Ok(FieldsShape { flat: false })
            }
        }
        d.deserialize_any(V)
    }
}

/// One indexed field value: `true` when it is a scalar or an array of scalars.
struct FieldValue(bool);

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V {
            in_array: bool,
        }
        impl<'de> Visitor<'de> for V {
            type Value = FieldValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an indexed field value")
            }
            fn visit_unit<E>(self) -> Result<FieldValue, E> {
                Ok(FieldValue(true))
            }
            fn visit_bool<E>(self, _: bool) -> Result<FieldValue, E> {
                Ok(FieldValue(true))
            }
            fn visit_i64<E>(self, _: i64) -> Result<FieldValue, E> {
                Ok(FieldValue(true))
            }
            fn visit_u64<E>(self, _: u64) -> Result<FieldValue, E> {
                Ok(FieldValue(true))
            }
            fn visit_f64<E>(self, _: f64) -> Result<FieldValue, E> {
                Ok(FieldValue(true))
            }
            fn visit_str<E>(self, _: &str) -> Result<FieldValue, E> {
                Ok(FieldValue(true))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<FieldValue, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(FieldValue(false))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<FieldValue, A::Error> {
                if self.in_array {
                    while s.next_element::<IgnoredAny>()?.is_some() {}
                    return Ok(FieldValue(false));
                }
                let mut flat = true;
                while let Some(v) = s.next_element_seed(ArrayItem)? {
                    flat &= v.0;
                }
                Ok(FieldValue(flat))
            }
        }
        struct ArrayItem;
        impl<'de> de::DeserializeSeed<'de> for ArrayItem {
            type Value = FieldValue;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<FieldValue, D::Error> {
                d.deserialize_any(V { in_array: true })
            }
        }
        d.deserialize_any(V { in_array: false })
    }
}

/// `time` as a number or a numeric string.
#[derive(Debug)]
struct TimeField(bool);

impl<'de> Deserialize<'de> for TimeField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TimeField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a time")
            }
            fn visit_i64<E>(self, _: i64) -> Result<TimeField, E> {
                Ok(TimeField(true))
            }
            fn visit_u64<E>(self, _: u64) -> Result<TimeField, E> {
                Ok(TimeField(true))
            }
            fn visit_f64<E>(self, v: f64) -> Result<TimeField, E> {
                Ok(TimeField(v.is_finite()))
            }
            fn visit_str<E>(self, v: &str) -> Result<TimeField, E> {
                Ok(TimeField(parse_time(v).is_some()))
            }
            fn visit_unit<E>(self) -> Result<TimeField, E> {
                Ok(TimeField(true))
            }
            fn visit_bool<E>(self, _: bool) -> Result<TimeField, E> {
                Ok(TimeField(false))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<TimeField, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(TimeField(false))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<TimeField, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TimeField(false))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a HEC `time` given as a string: decimal epoch seconds; 13-digit
/// milliseconds and 19-digit nanoseconds are recognised by magnitude.
pub fn parse_time(s: &str) -> Option<f64> {
    let v: f64 = s.trim().parse().ok()?;
    v.is_finite().then(|| epoch_seconds(v))
}

/// Scales an epoch number given in s, ms, µs or ns to seconds by its magnitude.
pub fn epoch_seconds(v: f64) -> f64 {
    let a = v.abs();
    if a >= 1e17 {
        v / 1e9
    } else if a >= 1e14 {
        v / 1e6
    } else if a >= 1e11 {
        v / 1e3
    } else {
        v
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    event: EventField,
    fields: Option<FieldsShape>,
    #[serde(borrow)]
    index: Option<Cow<'a, str>>,
    time: Option<TimeField>,
    #[serde(borrow)]
    host: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow)]
    sourcetype: Option<Cow<'a, str>>,
}

/// Judges one `/event` object as Splunk would.
pub fn check_object(obj: &[u8], rules: EventRules<'_>) -> Result<(), HecStatus> {
    let env: Envelope<'_> = serde_json::from_slice(obj).map_err(|_| codes::INVALID_DATA_FORMAT)?;
    match env.event {
        EventField::Missing => return Err(codes::EVENT_REQUIRED),
        EventField::Blank => return Err(codes::EVENT_BLANK),
        EventField::Invalid => return Err(codes::INVALID_DATA_FORMAT),
        EventField::Present => {}
    }
    if env.fields.is_some_and(|f| !f.flat) {
        return Err(codes::INDEXED_FIELDS);
    }
    if env.time.is_some_and(|t| !t.0) {
        return Err(codes::INVALID_DATA_FORMAT);
    }
    if let Some(index) = env.index.as_deref() {
        if !rules.index_allowed(index) {
            return Err(codes::INCORRECT_INDEX);
        }
    }
    let _ = (env.host, env.source, env.sourcetype);
    Ok(())
}

/// Why an `/event` body was refused, and how much of it Splunk would keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// The answer to send.
    pub status: HecStatus,
    /// Number of the first bad object (objects before it are accepted).
    pub event_number: u64,
    /// Decoded bytes up to the end of the last good object.
    pub accepted_bytes: u64,
}

/// Streams an `/event` body chunk by chunk, counting and checking objects
/// without holding the whole decoded body.
#[derive(Debug)]
pub struct EventScanner<'a> {
    rules: EventRules<'a>,
    splitter: ObjectSplitter,
    buf: Vec<u8>,
    /// Decoded offset of `buf[0]`.
    base: u64,
    events: u64,
    accepted_bytes: u64,
}

impl<'a> EventScanner<'a> {
    /// A scanner applying `rules`.
    pub fn new(rules: EventRules<'a>) -> EventScanner<'a> {
        EventScanner {
            rules,
            splitter: ObjectSplitter::new(),
            buf: Vec::new(),
            base: 0,
            events: 0,
            accepted_bytes: 0,
        }
    }

    /// Feeds the next decoded chunk.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), Rejection> {
        self.buf.extend_from_slice(chunk);
        loop {
            match self.splitter.next_object(&self.buf) {
                Ok(Some(r)) => {
                    if r.len() as u64 > self.rules.max_event_bytes {
                        return Err(self.reject(codes::INVALID_DATA_FORMAT));
                    }
                    if let Err(status) = check_object(&self.buf[r.clone()], self.rules) {
                        return Err(self.reject(status));
                    }
                    self.events += 1;
                    self.accepted_bytes = self.base + r.end as u64;
                }
                Ok(None) => break,
                Err(_) => return Err(self.reject(codes::INVALID_DATA_FORMAT)),
            }
        }
        let keep = self.splitter.keep_from();
        self.buf.drain(..keep);
        self.splitter.shift(keep);
        self.base += keep as u64;
        // What is left is the start of one unfinished object.
        if self.buf.len() as u64 > self.rules.max_event_bytes {
            return Err(self.reject(codes::INVALID_DATA_FORMAT));
        }
        Ok(())
    }

    /// Bytes held between chunks: at most `max_event_bytes` (the start of
    /// one unfinished object).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Ends the body; returns the number of events.
    pub fn finish(self) -> Result<u64, Rejection> {
        if self.splitter.finish().is_err() {
            return Err(self.reject(codes::INVALID_DATA_FORMAT));
        }
        if self.events == 0 {
            return Err(Rejection {
                status: codes::NO_DATA,
                event_number: 0,
                accepted_bytes: 0,
            });
        }
        Ok(self.events)
    }

    fn reject(&self, status: HecStatus) -> Rejection {
        Rejection {
            status,
            event_number: self.events,
            accepted_bytes: self.accepted_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY: EventRules<'static> = EventRules {
        allowed_indexes: &[],
        max_event_bytes: 1 << 20,
    };

    fn check(s: &str) -> Result<(), u16> {
        check_object(s.as_bytes(), ANY).map_err(|e| e.code)
    }

    #[test]
    fn splunk_event_rules() {
        assert_eq!(check(r#"{"event":"hello"}"#), Ok(()));
        assert_eq!(check(r#"{"event":{}}"#), Ok(()));
        assert_eq!(check(r#"{"event":[]}"#), Ok(()));
        assert_eq!(check(r#"{"event":0}"#), Ok(()));
        assert_eq!(check(r#"{"event":""}"#), Err(13));
        assert_eq!(check(r#"{"event":"  "}"#), Err(13));
        assert_eq!(check(r#"{"event":null}"#), Err(6));
        assert_eq!(check(r#"{"event":false}"#), Err(6));
        assert_eq!(check(r#"{"host":"h"}"#), Err(12));
        assert_eq!(check(r#"{"event":"x","fields":{"a":{"b":1}}}"#), Err(15));
        assert_eq!(
            check(r#"{"event":"x","fields":{"a":[1,"b"],"c":2}}"#),
            Ok(())
        );
        assert_eq!(check(r#"{"event":"x","fields":{"a":[[1]]}}"#), Err(15));
        assert_eq!(check(r#"{"event":"x","time":"1700000000.5"}"#), Ok(()));
        assert_eq!(check(r#"{"event":"x","time":1700000000123}"#), Ok(()));
        assert_eq!(check(r#"{"event":"x","time":"yesterday"}"#), Err(6));
        assert_eq!(check(r#"{"event":"x","host":5}"#), Err(6));
        assert_eq!(check(r#"{"event":"x",}"#), Err(6));
    }

    #[test]
    fn index_rules() {
        let allowed = vec!["cloudflare".to_string()];
        let rules = EventRules {
            allowed_indexes: &allowed,
            max_event_bytes: 1 << 20,
        };
        assert!(check_object(br#"{"event":1,"index":"cloudflare"}"#, rules).is_ok());
        assert_eq!(
            check_object(br#"{"event":1,"index":"main"}"#, rules),
            Err(codes::INCORRECT_INDEX)
        );
    }

    #[test]
    fn time_magnitudes() {
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000.0));
        assert_eq!(parse_time("1700000000123"), Some(1_700_000_000.123));
        assert_eq!(
            parse_time("1700000000123456789"),
            Some(1_700_000_000.123_456_8)
        );
        assert_eq!(parse_time("x"), None);
    }

    fn scan(body: &str) -> Result<u64, Rejection> {
        let mut s = EventScanner::new(ANY);
        for c in body.as_bytes().chunks(7) {
            s.feed(c)?;
        }
        s.finish()
    }

    #[test]
    fn an_object_over_the_cap_is_refused_without_buffering_it() {
        let rules = EventRules {
            allowed_indexes: &[],
            max_event_bytes: 64,
        };
        let mut s = EventScanner::new(rules);
        s.feed(br#"{"event":1} {"event":"#).unwrap();
        let mut refused = None;
        for _ in 0..1000 {
            if let Err(r) = s.feed(&[b'a'; 16]) {
                refused = Some(r);
                break;
            }
            assert!(s.buf.len() <= 64 + 16, "buffered {}", s.buf.len());
        }
        let r = refused.expect("refused once past the cap");
        assert_eq!((r.status, r.event_number), (codes::INVALID_DATA_FORMAT, 1));
        assert_eq!(r.accepted_bytes, 11);
        let mut s = EventScanner::new(rules);
        let big = format!(r#"{{"event":"{}"}}"#, "b".repeat(100));
        assert_eq!(s.feed(big.as_bytes()).unwrap_err().event_number, 0);
        let mut s = EventScanner::new(rules);
        let fits = format!(r#"{{"event":"{}"}}"#, "c".repeat(50));
        s.feed(fits.as_bytes()).unwrap();
        assert_eq!(s.finish(), Ok(1));
    }

    #[test]
    fn scanner_numbers_the_bad_event() {
        assert_eq!(scan(r#"{"event":1}{"event":2}"#), Ok(2));
        assert_eq!(scan(r#"[{"event":1},{"event":2}]"#), Ok(2));
        let body = r#"{"event":1} {"event":2}{"event":""}{"event":4}"#;
        let r = scan(body).unwrap_err();
        assert_eq!(r.status, codes::EVENT_BLANK);
        assert_eq!(r.event_number, 2);
        assert_eq!(
            &body[..r.accepted_bytes as usize],
            r#"{"event":1} {"event":2}"#
        );
        let r = scan(r#"{"event":1}{"event":2"#).unwrap_err();
        assert_eq!((r.status.code, r.event_number), (6, 1));
        assert_eq!(scan("").unwrap_err().status, codes::NO_DATA);
        assert_eq!(scan(" \n ").unwrap_err().status, codes::NO_DATA);
        let r = scan(r#"{"event":1}garbage"#).unwrap_err();
        assert_eq!((r.status.code, r.event_number), (6, 1));
    }
}
