//! One network analytics sample, parsed once into borrowed key/value pairs
//! (no `Value` tree), with Cloudflare's legacy field names normalized, HEC
//! `time` from `Datetime`, and the derived fields DESIGN.md defines.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Legacy Logpush names and their current ones.
pub const LEGACY_NAMES: &[(&str, &str)] = &[
    ("IPTtl", "IPTTL"),
    ("IPTtlBuckets", "IPTTLBuckets"),
    ("IPv4Dscp", "IPv4DSCP"),
    ("IPv4Ecn", "IPv4ECN"),
    ("IPv6Dscp", "IPv6DSCP"),
    ("IPv6Ecn", "IPv6ECN"),
    ("TCPMss", "TCPMSS"),
    ("TCPSackBlocks", "TCPSACKBlocks"),
    ("TCPSacksPermitted", "TCPSACKPermitted"),
    ("TCPTimestampEcr", "TCPTimestampECR"),
    ("GREEthertype", "GREEtherType"),
    ("SourceASNDescription", "SourceASNName"),
    ("DestinationASNDescription", "DestinationASNName"),
];

/// A sample's fields in their original order, values as received.
#[derive(Debug)]
pub struct Sample<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// Position in `fields` of each of [`KNOWN`] (`u16::MAX`: absent).
    known: [u16; KNOWN.len()],
}

/// Fields enrichment reads on every sample, found once at parse time.
const KNOWN: [&str; 11] = [
    "MitigationSystem",
    "Datetime",
    "SampleInterval",
    "IPTotalLength",
    "Outcome",
    "IPSourceAddress",
    "IPDestinationAddress",
    "IPProtocol",
    "TCPFlags",
    "TCPOptions",
    "IPTTL",
];

/// The current name of a legacy field name (`None`: not a legacy name).
pub fn current_name(key: &str) -> Option<&'static str> {
    LEGACY_NAMES
        .iter()
        .find(|(old, _)| *old == key)
        .map(|(_, new)| *new)
}

/// A JSON object's members in order; with `RENAME`, legacy names current.
struct Fields<'a, const RENAME: bool>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de, const RENAME: bool> serde::Deserialize<'de> for Fields<'de, RENAME> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const R: bool>;
        impl<'de, const R: bool> Visitor<'de> for V<R> {
            type Value = Fields<'de, R>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Fields<'de, R>, A::Error> {
                let mut out = Vec::with_capacity(if R { 96 } else { 8 });
                while let Some((Text(k), v)) = m.next_entry::<Text<'de>, &'de RawValue>()? {
                    let k = match R {
                        true => current_name(&k).map_or(k, Cow::Borrowed),
                        false => k,
                    };
                    out.push((k, v));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V::<RENAME>)
    }
}

/// A JSON object's members in order, names unescaped, values as received
/// (`None` unless `text` is an object).
pub fn object_members(text: &str) -> Option<Vec<(Cow<'_, str>, &RawValue)>> {
    serde_json::from_str::<Fields<'_, false>>(text)
        .ok()
        .map(|f| f.0)
}

/// A JSON string, borrowed unless it had escapes (serde's own `Cow<str>`
/// always allocates).
struct Text<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Fields derived from a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// Estimated packets this sample stands for (= `SampleInterval`).
    pub est_packets: u64,
    /// Estimated bytes (= `IPTotalLength` × `SampleInterval`).
    pub est_bytes: u64,
    /// Human name of `MitigationSystem`.
    pub mitigation_system_name: Option<&'static str>,
    /// Whether totals count this sample: drops always, passes only from the final system.
    pub counted: bool,
    /// 4 or 6, from the source address.
    pub ip_version: Option<u8>,
}

impl<'a> Sample<'a> {
    /// Parses a line (legacy names renamed to current ones); `None` unless
    /// it is a UTF-8 JSON object with `MitigationSystem` and `Datetime`.
    pub fn parse(line: &'a [u8]) -> Option<Sample<'a>> {
        // One UTF-8 check for the whole line, so values need none of their own.
        let text = std::str::from_utf8(line).ok()?;
        let Fields::<true>(fields) = serde_json::from_str(text).ok()?;
        // A repeated name reads as its last non-empty value, so trimming
        // (which drops the empty ones) never changes what a field reads as.
        let mut known = [u16::MAX; KNOWN.len()];
        for (i, (k, v)) in fields.iter().enumerate() {
            if let Some(slot) = KNOWN.iter().position(|n| *n == k.as_ref()) {
                if v.get() != "\"\"" && v.get() != "null" {
                    known[slot] = u16::try_from(i).unwrap_or(u16::MAX);
                }
            }
        }
        let s = Sample { fields, known };
        (s.raw_value("MitigationSystem").is_some() && s.raw_value("Datetime").is_some())
            .then_some(s)
    }

    /// A field's value as received.
    pub fn raw_value(&self, key: &str) -> Option<&'a RawValue> {
        if let Some(slot) = KNOWN.iter().position(|n| *n == key) {
            let i = self.known[slot];
            if i != u16::MAX {
                return self.fields.get(usize::from(i)).map(|(_, v)| *v);
            }
            // Only empty values, or past the 65,535th field: look the slow way.
        }
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// A string field's value.
    pub fn str(&self, key: &str) -> Option<Cow<'a, str>> {
        serde_json::from_str::<Text<'a>>(self.raw_value(key)?.get())
            .ok()
            .map(|t| t.0)
    }

    /// Every field in order: name (unescaped) and value (as received).
    pub fn pairs(&self) -> impl Iterator<Item = (&Cow<'a, str>, &'a RawValue)> {
        self.fields.iter().map(|(k, v)| (k, *v))
    }

    /// A numeric field's value (also when sent as a string).
    pub fn num(&self, key: &str) -> Option<f64> {
        let raw = self.raw_value(key)?.get();
        match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(inner) => inner.parse().ok(),
            None => raw.parse().ok(),
        }
    }

    /// Field names in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_ref())
    }

    /// HEC `time` from `Datetime`: RFC 3339, epoch seconds or epoch
    /// nanoseconds (number or string), sub-second precision kept.
    pub fn time(&self) -> Option<f64> {
        let raw = self.raw_value("Datetime")?.get();
        let text = raw.trim_matches('"');
        let t = match text.parse::<f64>() {
            Ok(v) => crate::hec::event::epoch_seconds(v),
            Err(_) => {
                let t = time::OffsetDateTime::parse(
                    text,
                    &time::format_description::well_known::Rfc3339,
                )
                .ok()?;
                t.unix_timestamp() as f64 + f64::from(t.nanosecond()) / 1e9
            }
        };
        // A time Splunk cannot index is no time: the receive time stands in.
        (t.is_finite() && (0.0..1e11).contains(&t)).then_some(t)
    }

    /// The derived fields; `final_pass_system` is the last mitigation system
    /// (passes count only there, so totals never count a packet thrice).
    pub fn derived(&self, final_pass_system: &str) -> Derived {
        let interval = self.num("SampleInterval").unwrap_or(1.0).max(0.0) as u64;
        let length = self.num("IPTotalLength").unwrap_or(0.0).max(0.0) as u64;
        let system = self.str("MitigationSystem");
        let outcome = self.str("Outcome");
        let counted = match outcome.as_deref() {
            Some("drop") => true,
            Some("pass") => system.as_deref() == Some(final_pass_system),
            _ => false,
        };
        Derived {
            est_packets: interval,
            est_bytes: length.saturating_mul(interval),
            mitigation_system_name: system.as_deref().and_then(system_name),
            counted,
            ip_version: self
                .str("IPSourceAddress")
                .filter(|a| !a.is_empty())
                .map(|a| if a.contains(':') { 6 } else { 4 }),
        }
    }
}

/// Cloudflare's product name for a `MitigationSystem` value.
pub fn system_name(system: &str) -> Option<&'static str> {
    match system {
        "dosd" => Some("Network-layer DDoS Protection"),
        "flowtrackd" => Some("Advanced TCP Protection"),
        "magic-firewall" => Some("Magic Firewall"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sample_file(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../shared/samples/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn truth(name: &str) -> serde_json::Value {
        serde_json::from_str(&sample_file(name)).unwrap()
    }

    #[test]
    fn totals_match_the_ground_truth_in_every_timestamp_form() {
        for (file, truth_file) in [
            ("nal-rfc3339.ndjson", "nal-rfc3339.truth.json"),
            ("nal-unixnano.ndjson", "nal-unixnano.truth.json"),
            ("nal-legacy-unix.ndjson", "nal-legacy-unix.truth.json"),
        ] {
            let text = sample_file(file);
            let t = truth(truth_file);
            let mut passed_packets = 0u64;
            let mut passed_bytes = 0u64;
            let mut by: BTreeMap<String, u64> = BTreeMap::new();
            let mut records = 0;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let s = Sample::parse(line.as_bytes()).expect("a sample");
                assert!(
                    s.keys()
                        .all(|k| LEGACY_NAMES.iter().all(|(old, _)| *old != k)),
                    "{file}"
                );
                let time = s.time().expect("time");
                assert!((1.7e9..2.0e9).contains(&time), "{file}: {time}");
                let d = s.derived("magic-firewall");
                let key = format!(
                    "{}/{}",
                    s.str("MitigationSystem").unwrap(),
                    s.str("Outcome").unwrap()
                );
                *by.entry(key).or_default() += 1;
                if d.counted && s.str("Outcome").as_deref() == Some("pass") {
                    passed_packets += d.est_packets;
                    passed_bytes += d.est_bytes;
                }
                assert!(d.mitigation_system_name.is_some() && d.ip_version.is_some());
                records += 1;
            }
            assert_eq!(records, t["records"].as_u64().unwrap(), "{file}");
            assert_eq!(
                passed_packets,
                t["true_passed_packets"].as_u64().unwrap(),
                "{file}"
            );
            assert_eq!(
                passed_bytes,
                t["true_passed_bytes"].as_u64().unwrap(),
                "{file}"
            );
            for (k, v) in t["by_system_outcome"].as_object().unwrap() {
                assert_eq!(by.get(k).copied(), v.as_u64(), "{file} {k}");
            }
        }
    }

    #[test]
    fn time_forms_and_non_samples() {
        let t = |d: &str| {
            Sample::parse(format!(r#"{{"MitigationSystem":"dosd","Datetime":{d}}}"#).as_bytes())
                .unwrap()
                .time()
                .unwrap()
        };
        assert_eq!(t(r#""2026-11-20T10:00:04Z""#), 1_795_168_804.0);
        assert_eq!(t(r#""2026-11-20T10:00:04.250Z""#), 1_795_168_804.25);
        assert_eq!(t("1795168804"), 1_795_168_804.0);
        assert_eq!(t(r#""1795168804""#), 1_795_168_804.0);
        assert_eq!(t("1795168804500000000"), 1_795_168_804.5);
        assert!(
            Sample::parse(br#"{"MitigationSystem":"dosd","Datetime":1e300}"#)
                .unwrap()
                .time()
                .is_none()
        );
        let twice = Sample::parse(
            br#"{"MitigationSystem":"dosd","Datetime":1,"Outcome":"drop","Outcome":"","SampleInterval":"","SampleInterval":7}"#,
        )
        .unwrap();
        assert_eq!(
            twice.str("Outcome").as_deref(),
            Some("drop"),
            "last non-empty"
        );
        assert_eq!(twice.derived("dosd").est_packets, 7);
        assert!(Sample::parse(b"not json").is_none());
        assert!(Sample::parse(br#"{"event":"x"}"#).is_none());
        assert!(Sample::parse(br#"[1,2]"#).is_none());
    }
}
