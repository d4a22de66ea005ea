//! Enrichment of network analytics samples on the way out: pure functions
//! over one sample. `sample` parses a line once (borrowed, no `Value` tree),
//! normalizes names and derives fields; `trim` decides what stays in
//! `_raw`; `assets` tags destinations. The forwarder calls [`Enricher::sample`]
//! for each line and writes what it returns; a line that is not a sample
//! passes unchanged.

pub mod assets;
pub mod config;
pub mod object;
pub mod sample;
pub mod trim;

use assets::{AssetError, AssetTable};
use config::{EnrichConfig, TrimMode};
use sample::{Derived, Sample};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, RwLock};
use trim::Facts;

/// Names of the derived fields (lowercase, so they never collide with Cloudflare's).
pub const DERIVED_FIELDS: [&str; 5] = [
    "est_packets",
    "est_bytes",
    "mitigation_system_name",
    "counted",
    "ip_version",
];

/// Enrichment settings, ready to apply.
#[derive(Debug)]
pub struct Enricher {
    trim: TrimMode,
    final_pass_system: String,
    per_token: HashMap<String, String>,
    indexed: Vec<(String, String)>,
    assets: Option<AssetTable>,
}

/// The enrichment in force; replaced whole when the asset table is reloaded,
/// so every batch sees one consistent table.
#[derive(Debug, Default)]
pub struct EnricherSlot(RwLock<Option<Arc<Enricher>>>);

impl EnricherSlot {
    /// A slot holding `enricher` (`None`: enrichment off).
    pub fn new(enricher: Option<Enricher>) -> EnricherSlot {
        EnricherSlot(RwLock::new(enricher.map(Arc::new)))
    }

    /// The enrichment in force now.
    pub fn current(&self) -> Option<Arc<Enricher>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `enricher` in force for the batches built from now on.
    pub fn replace(&self, enricher: Option<Enricher>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = enricher.map(Arc::new);
    }
}

/// One sample, enriched: write it with [`Enriched::write_event`].
#[derive(Debug)]
pub struct Enriched<'a> {
    sample: Sample<'a>,
    facts: Facts<'a>,
    derived: Derived,
    time: Option<f64>,
    enricher: &'a Enricher,
}

impl Enricher {
    /// Builds the enricher (`None` when `enabled = false`), loading the asset
    /// table. `per_token`: (token name, its `final_pass_system`) for the
    /// tokens that set one.
    pub fn new(
        config: &EnrichConfig,
        per_token: &[(String, String)],
    ) -> Result<Option<Enricher>, AssetError> {
        if !config.enabled {
            return Ok(None);
        }
        let assets = config.assets.as_deref().map(AssetTable::load).transpose()?;
        Ok(Some(Enricher {
            trim: config.trim,
            final_pass_system: config.final_pass_system.clone(),
            per_token: per_token.iter().cloned().collect(),
            indexed: config.indexed(),
            assets,
        }))
    }

    /// The final pass system for events accepted with `token`.
    pub fn final_pass_system(&self, token: &str) -> &str {
        self.per_token
            .get(token)
            .map_or(self.final_pass_system.as_str(), String::as_str)
    }

    /// Enriches `bytes` (a `/raw` line or an `/event` object's `event`)
    /// when it is a network analytics sample; `None` leaves it as it is.
    pub fn sample<'a>(&'a self, bytes: &'a [u8], token: &str) -> Option<Enriched<'a>> {
        let t = bytes.trim_ascii();
        if t.first() != Some(&b'{') {
            return None;
        }
        let sample = Sample::parse(t)?;
        let derived = sample.derived(self.final_pass_system(token));
        let facts = Facts::of(&sample);
        let time = sample.time();
        Some(Enriched {
            sample,
            facts,
            derived,
            time,
            enricher: self,
        })
    }

    /// Networks in the asset table (0 without one).
    pub fn asset_networks(&self) -> usize {
        self.assets.as_ref().map_or(0, AssetTable::len)
    }

    fn is_asset_field(&self, key: &str) -> bool {
        self.assets
            .as_ref()
            .is_some_and(|a| a.columns().iter().any(|c| c == key))
    }
}

fn write_key(out: &mut Vec<u8>, key: &str, first: &mut bool) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A received key: one that arrived without escapes (borrowed from the
/// input) needs none; others are escaped again.
fn write_received_key(out: &mut Vec<u8>, key: &str, had_escapes: bool, first: &mut bool) {
    if !had_escapes {
        return write_key(out, key, first);
    }
    if !*first {
        out.push(b',');
    }
    *first = false;
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
}

fn write_str(out: &mut Vec<u8>, value: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

impl Enriched<'_> {
    /// `time` from `Datetime` (epoch seconds), when it parses.
    pub fn time(&self) -> Option<f64> {
        self.time
    }

    /// The derived fields.
    pub fn derived(&self) -> &Derived {
        &self.derived
    }

    /// Appends the enriched sample as one JSON object: Cloudflare's fields in
    /// their order (renamed, trimmed), then the derived fields and asset tags.
    pub fn write_event(&self, out: &mut Vec<u8>) {
        let e = self.enricher;
        let text = self.sample.text();
        let mut first = true;
        out.push(b'{');
        // Members kept side by side are copied from the line in one run
        // (commas included): one copy per run instead of five per field.
        let mut run: Option<(usize, usize)> = None;
        let flush = |out: &mut Vec<u8>, run: Option<(usize, usize)>, first: &mut bool| {
            if let Some(part) = run.and_then(|(from, to)| text.get(from..to)) {
                if !*first {
                    out.push(b',');
                }
                *first = false;
                out.extend_from_slice(part.as_bytes());
            }
        };
        for m in self.sample.members() {
            let key = m.name.as_ref();
            // Ours are recomputed (enriching an enriched sample changes nothing).
            if DERIVED_FIELDS.contains(&key) || e.is_asset_field(key) {
                continue;
            }
            if !trim::keep(e.trim, key, m.value, &self.facts) {
                continue;
            }
            if !m.verbatim {
                flush(out, run.take(), &mut first);
                let had_escapes = matches!(m.name, Cow::Owned(_));
                write_received_key(out, key, had_escapes, &mut first);
                out.extend_from_slice(m.value.as_bytes());
                continue;
            }
            let (from, to) = m.span;
            run = match run {
                Some((start, end))
                    if end + 1 == from && text.as_bytes().get(end) == Some(&b',') =>
                {
                    Some((start, to))
                }
                other => {
                    flush(out, other, &mut first);
                    Some((from, to))
                }
            };
        }
        flush(out, run, &mut first);
        let d = &self.derived;
        write_key(out, "est_packets", &mut first);
        let _ = write!(out, "{}", d.est_packets);
        write_key(out, "est_bytes", &mut first);
        let _ = write!(out, "{}", d.est_bytes);
        if let Some(name) = d.mitigation_system_name {
            write_key(out, "mitigation_system_name", &mut first);
            write_str(out, name);
        }
        write_key(out, "counted", &mut first);
        out.extend_from_slice(if d.counted { b"true" } else { b"false" });
        if let Some(v) = d.ip_version {
            write_key(out, "ip_version", &mut first);
            let _ = write!(out, "{v}");
        }
        if let (Some(table), Some(dst)) = (&e.assets, self.facts.destination()) {
            for (col, value) in table.tags(dst) {
                write_key(out, col, &mut first);
                write_str(out, value);
            }
        }
        out.push(b'}');
    }

    /// Whether `name` is one of the indexed field names enrichment writes.
    pub fn is_indexed_name(&self, name: &str) -> bool {
        self.enricher.indexed.iter().any(|(_, n)| n == name)
    }

    /// Appends the indexed fields as `"name":"value",` pairs (each with a
    /// trailing comma); absent and empty values are left out.
    pub fn write_indexed_fields(&self, out: &mut Vec<u8>) {
        for (field, name) in &self.enricher.indexed {
            let Some(v) = self.sample.raw_value(field) else {
                continue;
            };
            if v == "\"\"" || v == "null" || v.starts_with('{') || v.starts_with('[') {
                continue;
            }
            write_str(out, name);
            out.push(b':');
            if v.starts_with('"') {
                out.extend_from_slice(v.as_bytes());
            } else {
                write_str(out, v);
            }
            out.push(b',');
        }
    }
}

/// Enriches one line as the forwarder would, returning the event object
/// (for tools and tests; `None` when the line is not a sample).
pub fn enrich_line(enricher: &Enricher, line: &[u8], token: &str) -> Option<Vec<u8>> {
    let e = enricher.sample(line, token)?;
    let mut out = Vec::with_capacity(line.len() + 160);
    e.write_event(&mut out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::config::EnrichConfig;
    use super::*;
    use serde_json::{json, Map, Value};
    use std::collections::BTreeMap;

    fn sample_text(name: &str) -> String {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/");
        std::fs::read_to_string(format!("{dir}{name}")).unwrap()
    }

    fn enricher(trim: TrimMode) -> Enricher {
        let config = EnrichConfig {
            trim,
            ..EnrichConfig::default()
        };
        Enricher::new(&config, &[]).unwrap().unwrap()
    }

    fn enriched(e: &Enricher, line: &str) -> Map<String, Value> {
        let out = enrich_line(e, line.as_bytes(), "t").expect("a sample");
        serde_json::from_slice(&out).expect("valid JSON")
    }

    const FILES: [(&str, &str); 3] = [
        ("nal-rfc3339.ndjson", "nal-rfc3339.truth.json"),
        ("nal-unixnano.ndjson", "nal-unixnano.truth.json"),
        ("nal-legacy-unix.ndjson", "nal-legacy-unix.truth.json"),
    ];

    #[test]
    fn enriched_samples_add_up_to_the_ground_truth() {
        for trim in [TrimMode::None, TrimMode::Empty, TrimMode::Compact] {
            let e = enricher(trim);
            for (file, truth) in FILES {
                let truth: Value = serde_json::from_str(&sample_text(truth)).unwrap();
                let (mut packets, mut bytes) = (0u64, 0u64);
                let mut by: BTreeMap<String, u64> = BTreeMap::new();
                let mut est_by: BTreeMap<String, u64> = BTreeMap::new();
                for line in sample_text(file).lines() {
                    let v = enriched(&e, line);
                    for (old, _) in sample::LEGACY_NAMES {
                        assert!(!v.contains_key(*old), "{file}: {old} left");
                    }
                    let key = format!(
                        "{}/{}",
                        v["MitigationSystem"].as_str().unwrap(),
                        v["Outcome"].as_str().unwrap()
                    );
                    *by.entry(key.clone()).or_default() += 1;
                    *est_by.entry(key).or_default() += v["est_packets"].as_u64().unwrap();
                    if v["counted"] == json!(true) && v["Outcome"] == "pass" {
                        packets += v["est_packets"].as_u64().unwrap();
                        bytes += v["est_bytes"].as_u64().unwrap();
                    }
                }
                assert_eq!(
                    packets,
                    truth["true_passed_packets"].as_u64().unwrap(),
                    "{file} {trim:?}"
                );
                assert_eq!(
                    bytes,
                    truth["true_passed_bytes"].as_u64().unwrap(),
                    "{file}"
                );
                for (k, n) in truth["by_system_outcome"].as_object().unwrap() {
                    assert_eq!(by.get(k).copied(), n.as_u64(), "{file} {k}");
                }
                for (k, n) in truth["est_packets_by_system_outcome"].as_object().unwrap() {
                    assert_eq!(est_by.get(k).copied(), n.as_u64(), "{file} {k}");
                }
            }
        }
    }

    #[test]
    fn every_timestamp_form_gives_the_same_time() {
        // The three files hold the same scenario shape; compare each sample's
        // time with its Datetime read independently.
        let e = enricher(TrimMode::Empty);
        for (file, _) in FILES {
            for line in sample_text(file).lines() {
                let orig: Value = serde_json::from_str(line).unwrap();
                let want = match &orig["Datetime"] {
                    Value::String(s) => {
                        let t = time::OffsetDateTime::parse(
                            s,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .unwrap();
                        t.unix_timestamp_nanos() as f64 / 1e9
                    }
                    Value::Number(n) if n.as_u64().unwrap() > 10_000_000_000 => {
                        n.as_u64().unwrap() as f64 / 1e9
                    }
                    Value::Number(n) => n.as_f64().unwrap(),
                    other => panic!("{other}"),
                };
                let got = e.sample(line.as_bytes(), "t").unwrap().time().unwrap();
                assert!((got - want).abs() < 1e-6, "{file}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn unknown_fields_stay_and_enrichment_is_idempotent() {
        let e = enricher(TrimMode::Compact);
        let line = r#"{"Datetime":"2026-11-20T10:00:04.5Z","MitigationSystem":"flowtrackd","Outcome":"drop","NewField2027":{"a":[1,2]},"We\"ird":"x","IPSourceAddress":"2001:db8::1","IPDestinationAddress":"2001:db8:100::1","IPProtocol":6,"SampleInterval":"100","IPTotalLength":60,"est_packets":7}"#;
        let v = enriched(&e, line);
        assert_eq!(v["NewField2027"], json!({"a":[1,2]}));
        assert_eq!(v["We\"ird"], "x");
        assert_eq!(v["est_packets"], 100, "ours replaces a stale one");
        assert_eq!(
            (v["est_bytes"].clone(), v["ip_version"].clone()),
            (json!(6000), json!(6))
        );
        assert_eq!(v["mitigation_system_name"], "Advanced TCP Protection");
        assert_eq!(v["counted"], true, "drops always count");
        let again = enrich_line(&e, &serde_json::to_vec(&v).unwrap(), "t").unwrap();
        assert_eq!(
            serde_json::from_slice::<Map<String, Value>>(&again).unwrap(),
            v
        );
    }

    /// Members are copied from the line in runs: spacing, escaped and
    /// renamed names, and dropped members between kept ones all come out
    /// as the fields they were.
    #[test]
    fn kept_members_come_out_as_received() {
        let line = r#" { "MitigationSystem" : "dosd","Datetime":1795168804,"DNSQueryName":"","IPTtl":64,"Outcome":"drop","Col\u006fr":"r\"ed","IPProtocol":17,"TCPFlags":2,"UDPSourcePort":53 , "est_packets":99} "#;
        let e = enricher(TrimMode::Empty);
        let out = enrich_line(&e, line.as_bytes(), "t").unwrap();
        let out = std::str::from_utf8(&out).unwrap();
        let members = object::members(out, 16).unwrap();
        let keys: Vec<&str> = members.iter().map(|m| m.name.as_ref()).collect();
        let v = enriched(&e, line);
        assert_eq!(
            keys,
            [
                "MitigationSystem",
                "Datetime",
                "IPTTL",
                "Outcome",
                "Color",
                "IPProtocol",
                "UDPSourcePort",
                "est_packets",
                "est_bytes",
                "mitigation_system_name",
                "counted",
            ]
        );
        assert_eq!(v["Color"], "r\"ed");
        assert_eq!(v["IPTTL"], 64);
        assert_eq!(v["UDPSourcePort"], 53);
        assert_eq!(v["est_packets"], 1);
    }

    #[test]
    fn non_samples_are_left_alone() {
        let e = enricher(TrimMode::Empty);
        for line in [
            "plain text",
            "{\"event\":\"x\"}",
            "{\"MitigationSystem\":\"dosd\"}",
            "{\"MitigationSystem\":\"dosd\",\"Datetime\":1,",
            "[{\"MitigationSystem\":\"dosd\",\"Datetime\":1}]",
            "",
        ] {
            assert!(e.sample(line.as_bytes(), "t").is_none(), "{line}");
        }
    }

    #[test]
    fn the_final_pass_system_can_differ_per_token() {
        let per_token = [("spectrum".to_string(), "dosd".to_string())];
        let e = Enricher::new(&EnrichConfig::default(), &per_token)
            .unwrap()
            .unwrap();
        let line = r#"{"Datetime":1795168804,"MitigationSystem":"dosd","Outcome":"pass"}"#;
        assert!(
            e.sample(line.as_bytes(), "spectrum")
                .unwrap()
                .derived()
                .counted
        );
        assert!(
            !e.sample(line.as_bytes(), "logpush")
                .unwrap()
                .derived()
                .counted
        );
        let off = EnrichConfig {
            enabled: false,
            ..EnrichConfig::default()
        };
        assert!(Enricher::new(&off, &[]).unwrap().is_none());
    }

    #[test]
    fn indexed_fields_and_asset_tags() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("assets.csv");
        std::fs::write(
            &csv,
            "cidr,site,customer\n203.0.113.0/24,fra,Example\n203.0.113.35/32,fra,DNS host\n",
        )
        .unwrap();
        let config = EnrichConfig {
            assets: Some(csv),
            indexed_fields: vec![
                "MitigationSystem".into(),
                "AttackID".into(),
                "DestinationPort".into(),
                "IPTtl".into(),
            ],
            ..EnrichConfig::default()
        };
        let e = Enricher::new(&config, &[]).unwrap().unwrap();
        let line = sample_text("nal-rfc3339.ndjson")
            .lines()
            .next()
            .unwrap()
            .to_string();
        let s = e.sample(line.as_bytes(), "t").unwrap();
        let mut fields = b"{".to_vec();
        s.write_indexed_fields(&mut fields);
        fields.extend_from_slice(b"\"z\":1}");
        let f: Value = serde_json::from_slice(&fields).unwrap();
        assert_eq!(f["mitigation_system"], "dosd");
        assert_eq!(f["attack_id"], "e8d28a79023c39c200661fccd268a29a");
        assert_eq!(f["destination_port"], "31494", "indexed values are strings");
        assert_eq!(f["ipttl"], "50", "legacy name in config, current in data");
        let v = enriched(&e, &line);
        assert_eq!(
            (v["asset_site"].as_str(), v["asset_customer"].as_str()),
            (Some("fra"), Some("DNS host"))
        );
        // An empty AttackID is not indexed.
        let pass = sample_text("nal-rfc3339.ndjson")
            .lines()
            .find(|l| l.contains("\"AttackID\":\"\""))
            .unwrap()
            .to_string();
        let mut fields = Vec::new();
        e.sample(pass.as_bytes(), "t")
            .unwrap()
            .write_indexed_fields(&mut fields);
        assert!(!String::from_utf8(fields).unwrap().contains("attack_id"));
    }

    /// Fields a dashboard or the CIM Network Traffic mapping reads.
    const NEEDED: &[&str] = &[
        "Datetime",
        "MitigationSystem",
        "Outcome",
        "Direction",
        "ColoCode",
        "ColoCountry",
        "IPSourceAddress",
        "IPDestinationAddress",
        "IPProtocol",
        "SourcePort",
        "DestinationPort",
        "SourceASN",
        "SourceASNName",
        "SourceCountry",
        "DestinationCountry",
        "SampleInterval",
        "IPTotalLength",
        "AttackID",
        "AttackVector",
        "RuleID",
        "RuleName",
        "RulesetID",
        "MitigationReason",
        "TCPFlags",
        "ICMPType",
        "ICMPCode",
        "ProtocolState",
        "IPTTL",
    ];

    #[test]
    fn trimming_keeps_what_dashboards_need_and_applicable_zeros() {
        let groups = |k: &str, proto: u64, v6: bool| {
            let tcp = !k.starts_with("TCP") || proto == 6;
            let udp = !k.starts_with("UDP") || proto == 17;
            let icmp = !k.starts_with("ICMP") || proto == 1 || proto == 58;
            let gre = !k.starts_with("GRE") || proto == 47;
            let ip = !(k.starts_with("IPv4") && v6 || k.starts_with("IPv6") && !v6);
            tcp && udp && icmp && gre && ip
        };
        for trim in [TrimMode::Empty, TrimMode::Compact] {
            let e = enricher(trim);
            for (file, _) in FILES {
                for line in sample_text(file).lines() {
                    let s = Sample::parse(line.as_bytes()).unwrap();
                    let orig: Map<String, Value> = s
                        .pairs()
                        .map(|(k, v)| (k.to_string(), serde_json::from_str(v).unwrap()))
                        .collect();
                    let v = enriched(&e, line);
                    let proto = orig["IPProtocol"].as_u64().unwrap();
                    let v6 = orig["IPSourceAddress"].as_str().unwrap().contains(':');
                    for k in NEEDED {
                        let o = &orig[*k];
                        if o != "" && groups(k, proto, v6) {
                            assert_eq!(v.get(*k), Some(o), "{file} {trim:?}: {k} lost");
                        }
                    }
                    for (k, o) in &orig {
                        if o == 0 && groups(k, proto, v6) && trim == TrimMode::Empty {
                            assert_eq!(v.get(k), Some(o), "{file}: applicable zero {k} dropped");
                        }
                        if !groups(k, proto, v6) || o == "" {
                            assert!(!v.contains_key(k), "{file}: {k} kept");
                        }
                    }
                }
            }
        }
    }
}
