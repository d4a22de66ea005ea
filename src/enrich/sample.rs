//! One network analytics sample, parsed once into borrowed key/value pairs
//! (no `Value` tree), with Cloudflare's legacy field names normalized, HEC
//! `time` from `Datetime`, and the derived fields DESIGN.md defines.

use super::object::{members, string_value, Member};
use std::borrow::Cow;

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

/// A sample's fields in their original order, values as received (JSON text).
#[derive(Debug)]
pub struct Sample<'a> {
    text: &'a str,
    fields: Vec<Member<'a>>,
    /// Position in `fields` of each field [`known_slot`] names (`u16::MAX`: absent).
    known: [u16; KNOWN],
}

/// Fields enrichment reads on every sample, found once at parse time.
const KNOWN: usize = 11;

/// The slot of a field enrichment reads on every sample.
fn known_slot(key: &str) -> Option<usize> {
    Some(match key {
        "MitigationSystem" => 0,
        "Datetime" => 1,
        "SampleInterval" => 2,
        "IPTotalLength" => 3,
        "Outcome" => 4,
        "IPSourceAddress" => 5,
        "IPDestinationAddress" => 6,
        "IPProtocol" => 7,
        "TCPFlags" => 8,
        "TCPOptions" => 9,
        "IPTTL" => 10,
        _ => return None,
    })
}

/// The current name of a legacy field name (`None`: not a legacy name).
pub fn current_name(key: &str) -> Option<&'static str> {
    LEGACY_NAMES
        .iter()
        .find(|(old, _)| *old == key)
        .map(|(_, new)| *new)
}

/// Fields a sample has about this many of (Cloudflare's dataset has ~100).
const TYPICAL_FIELDS: usize = 112;

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
        let mut fields = members(text, TYPICAL_FIELDS)?;
        // A repeated name reads as its last non-empty value, so trimming
        // (which drops the empty ones) never changes what a field reads as.
        let mut known = [u16::MAX; KNOWN];
        for (i, m) in fields.iter_mut().enumerate() {
            if let Some(new) = current_name(&m.name) {
                m.name = Cow::Borrowed(new);
                m.verbatim = false;
            }
            if let Some(slot) = known_slot(&m.name) {
                if m.value != "\"\"" && m.value != "null" {
                    known[slot] = u16::try_from(i).unwrap_or(u16::MAX);
                }
            }
        }
        let s = Sample {
            text,
            fields,
            known,
        };
        (s.raw_value("MitigationSystem").is_some() && s.raw_value("Datetime").is_some())
            .then_some(s)
    }

    /// A field's value as received (JSON text).
    pub fn raw_value(&self, key: &str) -> Option<&'a str> {
        if let Some(slot) = known_slot(key) {
            let i = self.known[slot];
            if i != u16::MAX {
                return self.fields.get(usize::from(i)).map(|m| m.value);
            }
            // Only empty values, or past the 65,535th field: look the slow way.
        }
        self.fields.iter().find(|m| m.name == key).map(|m| m.value)
    }

    /// A string field's value.
    pub fn str(&self, key: &str) -> Option<Cow<'a, str>> {
        string_value(self.raw_value(key)?)
    }

    /// Every field in order: name (unescaped) and value (as received).
    pub fn pairs(&self) -> impl Iterator<Item = (&Cow<'a, str>, &'a str)> {
        self.fields.iter().map(|m| (&m.name, m.value))
    }

    /// Every field in order, with where it stands in [`Sample::text`].
    pub fn members(&self) -> &[Member<'a>] {
        &self.fields
    }

    /// The line the sample was parsed from (whitespace around it trimmed).
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// A numeric field's value (also when sent as a string).
    pub fn num(&self, key: &str) -> Option<f64> {
        let raw = self.raw_value(key)?;
        match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(inner) => inner.parse().ok(),
            None => raw.parse().ok(),
        }
    }

    /// Field names in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|m| m.name.as_ref())
    }

    /// HEC `time` from `Datetime`: RFC 3339, epoch seconds or epoch
    /// nanoseconds (number or string), sub-second precision kept.
    pub fn time(&self) -> Option<f64> {
        let raw = self.raw_value("Datetime")?;
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

    /// `Datetime` in whole epoch seconds, for bucketing: an integer (s, ms,
    /// µs or ns, by magnitude) is divided exactly, not through an `f64`
    /// (which rounds a 19-digit time ending in …999999900 up into the next
    /// second, and so a sample into the next interval).
    pub fn whole_seconds(&self) -> Option<u64> {
        let raw = self.raw_value("Datetime")?;
        let text = raw.trim_matches('"');
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let v: u64 = text.parse().ok()?;
            let s = match v {
                v if v >= 100_000_000_000_000_000 => v / 1_000_000_000,
                v if v >= 100_000_000_000_000 => v / 1_000_000,
                v if v >= 100_000_000_000 => v / 1_000,
                v => v,
            };
            return (s < 100_000_000_000).then_some(s);
        }
        self.time().map(|t| t.floor() as u64)
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
