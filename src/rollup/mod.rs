//! Rollups: one queue record's network analytics samples summed per
//! interval of their `Datetime` and per dimension set, as HEC metric events
//! (`metric_name:nal.est_packets`, `nal.est_bytes`, `nal.samples`). Pure: a
//! record always yields the same rollups, so a resend or a restart needs no
//! state, and the partial rollups of different records add up in Splunk
//! (`mstats sum`) to the totals of the samples.

pub mod config;

use crate::enrich::sample::{Derived, Sample};
use crate::enrich::trim::{protocol_name, subnet_of};
use config::RollupSettings;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Sourcetype of rollup metric events.
pub const ROLLUP_SOURCETYPE: &str = "cloudflare:network_analytics:rollup";

/// The value a folded dimension value becomes (see `top_n`).
pub const OTHER: &str = "other";

/// A rollup dimension: the metric event's field name and where its value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// `MitigationSystem`.
    MitigationSystem,
    /// `Outcome`.
    Outcome,
    /// Whether totals count the sample (`true`/`false`, as enrichment's `counted`).
    Counted,
    /// `AttackID`.
    AttackId,
    /// `AttackVector`.
    AttackVector,
    /// `ColoCode`.
    ColoCode,
    /// `Direction`.
    Direction,
    /// `IPProtocolName` (else the `IPProtocol` number).
    IpProtocol,
    /// The /24 or /64 of `IPDestinationAddress`.
    DestSubnet,
    /// `DestinationPort`.
    DestPort,
}

impl Dimension {
    /// Every dimension, in the default order.
    pub const ALL: [Dimension; 10] = [
        Dimension::MitigationSystem,
        Dimension::Outcome,
        Dimension::Counted,
        Dimension::AttackId,
        Dimension::AttackVector,
        Dimension::ColoCode,
        Dimension::Direction,
        Dimension::IpProtocol,
        Dimension::DestSubnet,
        Dimension::DestPort,
    ];

    /// The field name in metric events and `[rollup] dimensions`.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::MitigationSystem => "mitigation_system",
            Dimension::Outcome => "outcome",
            Dimension::Counted => "counted",
            Dimension::AttackId => "attack_id",
            Dimension::AttackVector => "attack_vector",
            Dimension::ColoCode => "colo_code",
            Dimension::Direction => "direction",
            Dimension::IpProtocol => "ip_protocol",
            Dimension::DestSubnet => "dest_subnet",
            Dimension::DestPort => "dest_port",
        }
    }

    /// The dimension called `name`.
    pub fn from_name(name: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The sample's value (empty when it has none).
    fn value(self, s: &Sample<'_>, d: &Derived) -> String {
        match self {
            Dimension::MitigationSystem => text(s, "MitigationSystem"),
            Dimension::Outcome => text(s, "Outcome"),
            Dimension::Counted => d.counted.to_string(),
            Dimension::AttackId => text(s, "AttackID"),
            Dimension::AttackVector => text(s, "AttackVector"),
            Dimension::ColoCode => text(s, "ColoCode"),
            Dimension::Direction => text(s, "Direction"),
            // By name, as Cloudflare writes it; a sample with only the number
            // gets the same name, so one protocol is one value.
            Dimension::IpProtocol => match text(s, "IPProtocolName") {
                name if name.is_empty() => {
                    let number = text(s, "IPProtocol");
                    number
                        .parse::<u8>()
                        .ok()
                        .and_then(protocol_name)
                        .map_or(number, str::to_string)
                }
                name => name,
            },
            Dimension::DestSubnet => s
                .str("IPDestinationAddress")
                .and_then(|a| subnet_of(&a))
                .unwrap_or_default(),
            Dimension::DestPort => text(s, "DestinationPort"),
        }
    }
}

/// A field as text: a string's value, or a number as written.
fn text(s: &Sample<'_>, key: &str) -> String {
    match s.str(key) {
        Some(v) => v.into_owned(),
        None => match s.raw_value(key) {
            Some(raw) if raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => {
                raw.to_string()
            }
            _ => String::new(),
        },
    }
}

/// What a rollup counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    /// Samples.
    pub samples: u64,
    /// Σ `SampleInterval`.
    pub est_packets: u64,
    /// Σ `IPTotalLength` × `SampleInterval`.
    pub est_bytes: u64,
}

impl Sums {
    fn add(&mut self, o: Sums) {
        self.samples += o.samples;
        self.est_packets = self.est_packets.saturating_add(o.est_packets);
        self.est_bytes = self.est_bytes.saturating_add(o.est_bytes);
    }
}

/// One rollup: an interval, a dimension set and the sums of the record's
/// samples in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollup {
    /// The interval's start, epoch seconds.
    pub time: u64,
    /// Dimension values (a dimension the samples lack is left out).
    pub dimensions: Vec<(Dimension, String)>,
    /// The sums.
    pub sums: Sums,
    /// Stable id of node, record (id and receive time), interval and
    /// dimensions (32 hex digits).
    pub id: String,
}

/// Where a rollup's metadata comes from.
#[derive(Debug, Clone, Copy)]
pub struct RollupMeta<'a> {
    /// `host`.
    pub host: &'a str,
    /// `source`.
    pub source: Option<&'a str>,
    /// `index` (`[rollup] index`).
    pub index: &'a str,
}

impl Rollup {
    /// Appends the rollup as one HEC metric event (multiple-metric JSON
    /// format) and a newline.
    pub fn write_hec(&self, meta: RollupMeta<'_>, out: &mut Vec<u8>) {
        let s = |v: &str, out: &mut Vec<u8>| {
            let _ = serde_json::to_writer(&mut *out, v);
        };
        out.extend_from_slice(format!("{{\"time\":{},\"host\":", self.time).as_bytes());
        s(meta.host, out);
        if let Some(source) = meta.source {
            out.extend_from_slice(b",\"source\":");
            s(source, out);
        }
        out.extend_from_slice(b",\"sourcetype\":");
        s(ROLLUP_SOURCETYPE, out);
        out.extend_from_slice(b",\"index\":");
        s(meta.index, out);
        let Sums {
            samples,
            est_packets,
            est_bytes,
        } = self.sums;
        out.extend_from_slice(
            format!(
                ",\"event\":\"metric\",\"fields\":{{\"metric_name:nal.est_packets\":{est_packets},\"metric_name:nal.est_bytes\":{est_bytes},\"metric_name:nal.samples\":{samples}"
            )
            .as_bytes(),
        );
        for (d, v) in &self.dimensions {
            out.extend_from_slice(format!(",\"{}\":", d.name()).as_bytes());
            s(v, out);
        }
        out.extend_from_slice(b",\"rollup_id\":");
        s(&self.id, out);
        out.extend_from_slice(b"}}\n");
    }
}

/// The rollups of one record, as its samples are read.
#[derive(Debug)]
pub struct RecordRollup<'s> {
    settings: &'s RollupSettings,
    groups: HashMap<(u64, Vec<String>), Sums>,
}

impl<'s> RecordRollup<'s> {
    /// Nothing counted yet.
    pub fn new(settings: &'s RollupSettings) -> RecordRollup<'s> {
        RecordRollup {
            settings,
            groups: HashMap::new(),
        }
    }

    /// Counts a sample; `fallback_time` (the record's receive time) stands
    /// in for a `Datetime` that does not parse.
    pub fn add(&mut self, sample: &Sample<'_>, derived: &Derived, fallback_time: f64) {
        let t = sample
            .whole_seconds()
            .unwrap_or(fallback_time.max(0.0) as u64);
        let start = t - t % self.settings.interval_s;
        let values = self
            .settings
            .dimensions
            .iter()
            .map(|d| d.value(sample, derived))
            .collect();
        self.groups.entry((start, values)).or_default().add(Sums {
            samples: 1,
            est_packets: derived.est_packets,
            est_bytes: derived.est_bytes,
        });
    }

    /// Whether no sample was counted.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The record's rollups in a fixed order (interval, then dimension
    /// values), each dimension cut to its `top_n` values per interval;
    /// `node`, `record` and its `received_ms` make the ids unique (a queue
    /// emptied and restarted numbers its records from 0 again).
    pub fn finish(self, node: &str, record: u64, received_ms: u64) -> Vec<Rollup> {
        let dims = &self.settings.dimensions;
        let mut by_interval: BTreeMap<u64, Vec<(Vec<String>, Sums)>> = BTreeMap::new();
        for ((start, values), sums) in self.groups {
            by_interval.entry(start).or_default().push((values, sums));
        }
        let mut out = Vec::new();
        for (start, mut groups) in by_interval {
            for d in 0..dims.len() {
                fold(&mut groups, d, self.settings.top_n);
            }
            let mut merged: BTreeMap<Vec<String>, Sums> = BTreeMap::new();
            for (values, sums) in groups {
                merged.entry(values).or_default().add(sums);
            }
            for (values, sums) in merged {
                let dimensions: Vec<(Dimension, String)> = dims
                    .iter()
                    .copied()
                    .zip(values)
                    .filter(|(_, v)| !v.is_empty())
                    .collect();
                let id = rollup_id(node, (record, received_ms), start, &dimensions);
                out.push(Rollup {
                    time: start,
                    dimensions,
                    sums,
                    id,
                });
            }
        }
        out
    }
}

/// Keeps the `top_n` values of dimension `d` with the most `est_packets`
/// (ties: the smaller value) and renames the rest `other`; an absent value
/// is not a value and stays absent. Sums are untouched, so totals hold.
fn fold(groups: &mut [(Vec<String>, Sums)], d: usize, top_n: usize) {
    let mut totals: HashMap<&str, u64> = HashMap::new();
    for (values, sums) in groups.iter() {
        if !values[d].is_empty() {
            let t = totals.entry(values[d].as_str()).or_default();
            *t = t.saturating_add(sums.est_packets);
        }
    }
    if totals.len() <= top_n {
        return;
    }
    let mut ranked: Vec<(&str, u64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let keep: HashSet<String> = ranked[..top_n]
        .iter()
        .map(|(v, _)| (*v).to_string())
        .collect();
    for (values, _) in groups.iter_mut() {
        if !values[d].is_empty() && !keep.contains(&values[d]) {
            values[d] = OTHER.to_string();
        }
    }
}

/// XXH3-128 of what makes a rollup unique, as 32 hex digits.
fn rollup_id(
    node: &str,
    (record, received_ms): (u64, u64),
    start: u64,
    dims: &[(Dimension, String)],
) -> String {
    let mut key = Vec::with_capacity(128);
    key.extend_from_slice(node.as_bytes());
    key.push(0);
    key.extend_from_slice(&record.to_le_bytes());
    key.extend_from_slice(&received_ms.to_le_bytes());
    key.extend_from_slice(&start.to_le_bytes());
    for (d, v) in dims {
        // Lengths, not separators: no value can pass for another's end.
        key.extend_from_slice(d.name().as_bytes());
        key.extend_from_slice(&(v.len() as u64).to_le_bytes());
        key.extend_from_slice(v.as_bytes());
    }
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(time: &str, system: &str, outcome: &str, interval: u64, extra: &str) -> String {
        format!(
            r#"{{"Datetime":"{time}","MitigationSystem":"{system}","Outcome":"{outcome}","SampleInterval":{interval},"IPTotalLength":100,"IPDestinationAddress":"203.0.113.9","DestinationPort":443,"IPProtocolName":"tcp","ColoCode":"FRA","Direction":"ingress"{extra}}}"#
        )
    }

    fn rollups(settings: &RollupSettings, lines: &[String]) -> Vec<Rollup> {
        let mut r = RecordRollup::new(settings);
        for l in lines {
            let s = Sample::parse(l.as_bytes()).unwrap();
            let d = s.derived("magic-firewall");
            r.add(&s, &d, 0.0);
        }
        r.finish("node1", 7, 1_000)
    }

    fn total(rs: &[Rollup]) -> Sums {
        let mut t = Sums::default();
        for r in rs {
            t.add(r.sums);
        }
        t
    }

    /// An `f64` of 1795168859999999900 ns is 1795168860.0 s: the sample
    /// went into the next minute.
    #[test]
    fn a_nanosecond_time_is_bucketed_exactly() {
        let s = RollupSettings::default();
        let line = sample("1795168859999999900", "dosd", "drop", 1, "");
        assert_eq!(rollups(&s, &[line])[0].time, 1_795_168_800);
        let line = sample("1795168859999", "dosd", "drop", 1, "");
        assert_eq!(rollups(&s, &[line])[0].time, 1_795_168_800);
    }

    #[test]
    fn huge_sample_intervals_saturate_instead_of_overflowing() {
        let s = RollupSettings {
            top_n: 1,
            ..RollupSettings::default()
        };
        let big = 10_000_000_000_000_000_000u64;
        let lines: Vec<String> = [("a", 443), ("a", 80), ("b", 53)]
            .iter()
            .map(|(attack, port)| {
                sample("2026-11-20T10:00:04Z", "dosd", "drop", big, "").replace(
                    r#""DestinationPort":443"#,
                    &format!(r#""DestinationPort":{port},"AttackID":"{attack}""#),
                )
            })
            .collect();
        let rs = rollups(&s, &lines);
        assert_eq!(total(&rs).est_packets, u64::MAX);
    }

    #[test]
    fn a_value_cannot_pass_for_the_next_dimension() {
        let two = [
            (Dimension::AttackId, "a".to_string()),
            (Dimension::Outcome, "b".to_string()),
        ];
        let one = [(Dimension::AttackId, "a\0outcome=b".to_string())];
        assert_ne!(
            rollup_id("n", (1, 2), 0, &two),
            rollup_id("n", (1, 2), 0, &one)
        );
    }

    #[test]
    fn a_protocol_number_alone_gets_its_name() {
        let s = RollupSettings {
            dimensions: vec![Dimension::IpProtocol],
            ..RollupSettings::default()
        };
        let named = sample("2026-11-20T10:00:04Z", "dosd", "drop", 1, "");
        let number = named.replace(r#""IPProtocolName":"tcp""#, r#""IPProtocol":6"#);
        let odd = named.replace(r#""IPProtocolName":"tcp""#, r#""IPProtocol":253"#);
        let rs = rollups(&s, &[named, number, odd]);
        let values: Vec<&str> = rs.iter().map(|r| r.dimensions[0].1.as_str()).collect();
        assert_eq!(values, ["253", "tcp"]);
        assert_eq!(rs[1].sums.samples, 2);
    }

    #[test]
    fn samples_sum_per_interval_and_dimensions() {
        let s = RollupSettings::default();
        let lines = [
            sample(
                "2026-11-20T10:00:04Z",
                "dosd",
                "drop",
                1000,
                r#","AttackID":"a1""#,
            ),
            sample(
                "2026-11-20T10:00:59Z",
                "dosd",
                "drop",
                1000,
                r#","AttackID":"a1""#,
            ),
            sample(
                "2026-11-20T10:01:00Z",
                "dosd",
                "drop",
                10,
                r#","AttackID":"a1""#,
            ),
            sample("2026-11-20T10:00:30Z", "magic-firewall", "pass", 100, ""),
            sample("2026-11-20T10:00:30Z", "flowtrackd", "pass", 100, ""),
        ];
        let rs = rollups(&s, &lines);
        assert_eq!(rs.len(), 4);
        let first = &rs[0];
        assert_eq!(first.time, 1_795_168_800);
        assert_eq!(
            first.sums,
            Sums {
                samples: 2,
                est_packets: 2000,
                est_bytes: 200_000
            }
        );
        let dim = |r: &Rollup, name: &str| {
            r.dimensions
                .iter()
                .find(|(d, _)| d.name() == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(dim(first, "mitigation_system").as_deref(), Some("dosd"));
        assert_eq!(dim(first, "dest_subnet").as_deref(), Some("203.0.113.0/24"));
        assert_eq!(dim(first, "dest_port").as_deref(), Some("443"));
        assert_eq!(dim(first, "counted").as_deref(), Some("true"));
        let passes: Vec<&Rollup> = rs
            .iter()
            .filter(|r| dim(r, "outcome").as_deref() == Some("pass"))
            .collect();
        assert_eq!(passes.len(), 2);
        assert!(
            passes.iter().all(|r| dim(r, "attack_id").is_none()),
            "absent, not empty"
        );
        let counted: Vec<Option<String>> =
            passes.iter().map(|r| dim(r, "mitigation_system")).collect();
        assert!(counted.contains(&Some("magic-firewall".into())));
        for r in &passes {
            let want = dim(r, "mitigation_system").as_deref() == Some("magic-firewall");
            assert_eq!(
                dim(r, "counted").as_deref(),
                Some(if want { "true" } else { "false" })
            );
        }
        assert_eq!(rs[3].time, 1_795_168_860);
        assert_eq!(total(&rs).est_packets, 2210);
        // Same record, same rollups and ids; another record, other ids.
        assert_eq!(rollups(&s, &lines), rs);
        let mut other = RecordRollup::new(&s);
        let one = Sample::parse(lines[0].as_bytes()).unwrap();
        other.add(&one, &one.derived("magic-firewall"), 0.0);
        assert_ne!(other.finish("node1", 8, 1_000)[0].id, rs[0].id);
        // The same number again after the queue emptied and restarted.
        let mut again = RecordRollup::new(&s);
        again.add(&one, &one.derived("magic-firewall"), 0.0);
        let mut first = RecordRollup::new(&s);
        first.add(&one, &one.derived("magic-firewall"), 0.0);
        assert_ne!(
            again.finish("node1", 7, 2_000)[0].id,
            first.finish("node1", 7, 1_000)[0].id
        );
    }

    #[test]
    fn top_n_folds_the_smallest_values_into_other_and_keeps_totals() {
        let s = RollupSettings {
            top_n: 2,
            dimensions: vec![Dimension::AttackId, Dimension::Outcome],
            ..RollupSettings::default()
        };
        let lines: Vec<String> = [("a", 50), ("b", 40), ("c", 30), ("d", 30), ("", 5)]
            .iter()
            .map(|(id, n)| {
                let extra = if id.is_empty() {
                    String::new()
                } else {
                    format!(r#","AttackID":"{id}""#)
                };
                sample("2026-11-20T10:00:04Z", "dosd", "drop", *n, &extra)
            })
            .collect();
        let rs = rollups(&s, &lines);
        let got: Vec<(Option<&str>, u64)> = rs
            .iter()
            .map(|r| {
                let id = r
                    .dimensions
                    .iter()
                    .find(|(d, _)| *d == Dimension::AttackId)
                    .map(|(_, v)| v.as_str());
                (id, r.sums.est_packets)
            })
            .collect();
        assert_eq!(
            got,
            [
                (None, 5),
                (Some("a"), 50),
                (Some("b"), 40),
                (Some("other"), 60)
            ]
        );
        assert_eq!(total(&rs).samples, 5);
    }

    #[test]
    fn a_rollup_is_one_hec_metric_event() {
        let s = RollupSettings::default();
        let rs = rollups(
            &s,
            &[sample(
                "2026-11-20T10:00:04Z",
                "dosd",
                "drop",
                1000,
                r#","AttackID":"a\"1""#,
            )],
        );
        let mut out = Vec::new();
        let meta = RollupMeta {
            host: "edge",
            source: Some("http:cf"),
            index: "cloudflare_metrics",
        };
        rs[0].write_hec(meta, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["event"], "metric");
        assert_eq!(v["time"], 1_795_168_800);
        assert_eq!(v["index"], "cloudflare_metrics");
        assert_eq!(v["sourcetype"], ROLLUP_SOURCETYPE);
        assert_eq!(
            (v["host"].as_str(), v["source"].as_str()),
            (Some("edge"), Some("http:cf"))
        );
        let f = &v["fields"];
        assert_eq!(f["metric_name:nal.est_packets"], 1000);
        assert_eq!(f["metric_name:nal.est_bytes"], 100_000);
        assert_eq!(f["metric_name:nal.samples"], 1);
        assert_eq!(f["attack_id"], "a\"1");
        assert_eq!(f["rollup_id"].as_str().unwrap().len(), 32);
    }
}
