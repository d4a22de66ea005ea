//! The Splunk app and Sluice stay in step: the app's own `.conf` text is
//! read and its expressions evaluated (`spl.rs`) over what Sluice's
//! enrichment writes for the shared samples, so a field the app restores is
//! checked against the value `trim = "none"` keeps, a fallback for data that
//! did not pass through Sluice against what Sluice derives, and `_time`
//! against Sluice's `time`. Nothing here repeats a list from either side.
//! `metrics.rs` does the same for the rollup panels, over Sluice's rollups.

mod conf;
mod metrics;
mod search;
mod spl;

use conf::Conf;
use serde_json::Value;
use sluice::enrich::config::{indexed_name, EnrichConfig, TrimMode};
use sluice::enrich::sample::{system_name, LEGACY_NAMES};
use sluice::enrich::trim::PROTOCOL_NAMES;
use sluice::enrich::{Enricher, DERIVED_FIELDS};
use spl::{Compiled, Fields, V};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

const SAMPLES: [&str; 3] = [
    "nal-rfc3339.ndjson",
    "nal-unixnano.ndjson",
    "nal-legacy-unix.ndjson",
];

fn app_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("splunk-app/cloudflare_network_analytics")
}

fn conf(name: &str) -> Conf {
    Conf::read(&app_dir().join("default").join(name))
}

fn sample_lines(file: &str) -> Vec<String> {
    let path = crate::support::sample(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(String::from)
        .collect()
}

/// What Sluice writes as `_raw` for `line` with `trim` (default settings
/// otherwise; one enricher per trim mode and thread).
fn enriched(line: &str, trim: TrimMode) -> Value {
    thread_local! {
        static ENRICHERS: HashMap<u8, Enricher> = [TrimMode::None, TrimMode::Empty, TrimMode::Compact]
            .into_iter()
            .map(|trim| {
                let config = EnrichConfig { trim, ..EnrichConfig::default() };
                (trim as u8, Enricher::new(&config, &[]).unwrap().unwrap())
            })
            .collect();
    }
    ENRICHERS.with(|all| {
        let sample = all[&(trim as u8)]
            .sample(line.as_bytes(), "t")
            .expect("a sample");
        let mut out = Vec::new();
        sample.write_event(&mut out);
        serde_json::from_slice(&out).unwrap()
    })
}

/// Fields as `KV_MODE = json` extracts them from a top-level object.
fn fields_of(v: &Value) -> Fields {
    let mut f = Fields::new();
    for (k, v) in v.as_object().expect("an object") {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        f.insert(k.clone(), V::Str(text));
    }
    f
}

fn text(f: &Fields, name: &str) -> Option<String> {
    f.get(name).and_then(V::text)
}

struct Lookup {
    class: String,
    rows: Vec<HashMap<String, String>>,
    case_insensitive: bool,
    /// (column, event field)
    inputs: Vec<(String, String)>,
    outputs: Vec<(String, String)>,
    output_new: bool,
}

/// The search-time part of a sourcetype: aliases, calculated fields and
/// automatic lookups, applied in Splunk's order.
struct SearchTime {
    /// (from, to, only when `to` is absent)
    aliases: Vec<(String, String, bool)>,
    evals: Vec<(String, Compiled, String)>,
    lookups: Vec<Lookup>,
}

/// `col [AS field]` pairs.
fn pairs(words: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if words
            .get(i + 1)
            .is_some_and(|w| w.eq_ignore_ascii_case("AS"))
        {
            out.push((words[i].to_string(), words[i + 2].to_string()));
            i += 3;
        } else {
            out.push((words[i].to_string(), words[i].to_string()));
            i += 1;
        }
    }
    out
}

fn read_lookup(transforms: &Conf, class: &str, spec: &str) -> Lookup {
    let words: Vec<&str> = spec.split_whitespace().collect();
    let table = words[0];
    let out_at = words
        .iter()
        .position(|w| *w == "OUTPUTNEW" || *w == "OUTPUT")
        .unwrap_or_else(|| panic!("{class}: no OUTPUT"));
    let file = transforms
        .get(table, "filename")
        .unwrap_or_else(|| panic!("[{table}] has no filename"));
    let path = app_dir().join("lookups").join(file);
    let mut reader =
        csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .cloned()
                .zip(r.iter().map(String::from))
                .collect()
        })
        .collect();
    let lookup = Lookup {
        class: class.to_string(),
        rows,
        case_insensitive: transforms.get(table, "case_sensitive_match") == Some("false"),
        inputs: pairs(&words[1..out_at]),
        outputs: pairs(&words[out_at + 1..]),
        output_new: words[out_at] == "OUTPUTNEW",
    };
    for (col, _) in lookup.inputs.iter().chain(&lookup.outputs) {
        assert!(header.contains(col), "{class}: {file} has no column {col}");
    }
    lookup
}

impl Lookup {
    /// Sets the output fields from the first row whose input columns match.
    fn apply(&self, f: &mut Fields) {
        let row = self.rows.iter().find(|row| {
            self.inputs
                .iter()
                .all(|(col, field)| match (row.get(col), text(f, field)) {
                    (Some(a), Some(b)) if self.case_insensitive => a.eq_ignore_ascii_case(&b),
                    (Some(a), Some(b)) => *a == b,
                    _ => false,
                })
        });
        for (col, field) in row
            .iter()
            .flat_map(|r| self.outputs.iter().map(move |o| (r, o)))
            .map(|(r, (c, fl))| (r.get(c), fl))
        {
            if self.output_new && f.contains_key(field) {
                continue;
            }
            if let Some(v) = col.filter(|v| !v.is_empty()) {
                f.insert(field.clone(), V::Str(v.clone()));
            }
        }
    }
}

impl SearchTime {
    fn of(sourcetype: &str) -> SearchTime {
        let props = conf("props.conf");
        let transforms = conf("transforms.conf");
        let mut st = SearchTime {
            aliases: Vec::new(),
            evals: Vec::new(),
            lookups: Vec::new(),
        };
        for (k, v) in props.stanza(sourcetype) {
            if k.starts_with("FIELDALIAS-") {
                let words: Vec<&str> = v.split_whitespace().collect();
                for w in words.chunks(3) {
                    assert!(w.len() == 3 && matches!(w[1], "AS" | "ASNEW"), "{k}: {v}");
                    st.aliases
                        .push((w[0].to_string(), w[2].to_string(), w[1] == "ASNEW"));
                }
            } else if let Some(name) = k.strip_prefix("EVAL-") {
                let e = spl::parse(v).unwrap_or_else(|e| panic!("{k}: {e}"));
                st.evals.push((name.to_string(), e, v.clone()));
            } else if let Some(class) = k.strip_prefix("LOOKUP-") {
                st.lookups.push(read_lookup(&transforms, class, v));
            }
        }
        st.lookups.sort_by(|a, b| a.class.cmp(&b.class));
        st
    }

    /// The fields a search sees for an event whose extracted fields are `f`.
    fn apply(&self, mut f: Fields) -> Fields {
        for (from, to, only_new) in &self.aliases {
            if let Some(v) = f.get(from).cloned() {
                if !*only_new || !f.contains_key(to) {
                    f.insert(to.clone(), v);
                }
            }
        }
        // Calculated fields all read the fields before any of them.
        let results: Vec<(String, V)> = self
            .evals
            .iter()
            .map(|(name, e, src)| {
                let v = e
                    .eval(&f)
                    .unwrap_or_else(|err| panic!("EVAL-{name} = {src}: {err}"));
                assert!(!matches!(v, V::Bool(_)), "EVAL-{name} yields a condition");
                (name.clone(), v)
            })
            .collect();
        for (name, v) in results {
            match v {
                V::Null => f.remove(&name),
                v => f.insert(name, v),
            };
        }
        for l in &self.lookups {
            l.apply(&mut f);
        }
        f
    }

    /// Every field the sourcetype's settings read.
    fn reads(&self) -> BTreeSet<String> {
        let mut r: BTreeSet<String> = self.evals.iter().flat_map(|(_, e, _)| e.fields()).collect();
        r.extend(self.aliases.iter().map(|a| a.0.clone()));
        for l in &self.lookups {
            r.extend(l.inputs.iter().map(|i| i.1.clone()));
        }
        r
    }

    /// Every field the sourcetype's settings define.
    fn defines(&self) -> BTreeSet<String> {
        let mut d: BTreeSet<String> = self.evals.iter().map(|e| e.0.clone()).collect();
        d.extend(self.aliases.iter().map(|a| a.1.clone()));
        for l in &self.lookups {
            d.extend(l.outputs.iter().map(|o| o.1.clone()));
        }
        d
    }
}

const SOURCETYPE: &str = "cloudflare:network_analytics";

#[test]
fn compact_trimmed_fields_are_restored_exactly_and_present_ones_untouched() {
    let st = SearchTime::of(SOURCETYPE);
    let mut restored: BTreeSet<String> = BTreeSet::new();
    for file in SAMPLES {
        for line in sample_lines(file) {
            let none = fields_of(&enriched(&line, TrimMode::None));
            let empty = fields_of(&enriched(&line, TrimMode::Empty));
            let compact = fields_of(&enriched(&line, TrimMode::Compact));
            let seen = st.apply(compact.clone());
            for (k, v) in &compact {
                assert_eq!(
                    seen.get(k),
                    Some(v),
                    "{file}: the app changed {k}, which Sluice sent"
                );
            }
            for k in empty.keys().filter(|k| !compact.contains_key(*k)) {
                if k.ends_with("Checksum") {
                    continue;
                }
                assert_eq!(
                    text(&seen, k),
                    text(&none, k),
                    "{file}: {k} as the app restores it, in {line}"
                );
                restored.insert(k.clone());
            }
        }
    }
    // The samples exercise most of the compact set (not the TCP options that
    // only a SYN without them drops).
    for k in [
        "IPSourceSubnet",
        "IPDestinationSubnet",
        "IPTTLBuckets",
        "IPProtocolName",
        "TCPFlagsString",
        "Verdict",
    ] {
        assert!(restored.contains(k), "{k} never restored: {restored:?}");
    }
}

/// Samples built to reach every row of the compact table, IPv6 subnets of
/// every shape among them.
#[test]
fn every_compact_rule_restores_on_crafted_samples() {
    let st = SearchTime::of(SOURCETYPE);
    let base = r#""Datetime":"2026-11-20T10:00:04Z","MitigationSystem":"flowtrackd","Outcome":"drop","Verdict":"drop","SampleInterval":100,"IPTotalLength":1234,"IPTTL":57,"IPTTLBuckets":50,"IPTotalLengthBuckets":1200"#;
    let tcp = r#""IPProtocol":6,"IPProtocolName":"tcp","TCPFlags":2,"TCPFlagsString":"SYN","TCPOptions":"1,1","TCPMSS":0,"TCPWindowScale":0,"TCPSACKPermitted":0,"TCPTimestampValue":0,"TCPTimestampECR":0,"TCPAcknowledgementNumber":0,"TCPUrgentPointer":0"#;
    let addrs = [
        ("198.51.100.7", "198.51.100.0/24"),
        ("2001:db8:dead::c5c1:c59f", "2001:db8:dead::/64"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:0:5:6:7:8", "2001:db8:1::/64"),
        ("2001:0:0:1::1", "2001:0:0:1::/64"),
        ("::1", "::/64"),
        ("::ffff:192.0.2.1", "::/64"),
        ("1::", "1::/64"),
        ("::1:2:3:4:5", "0:0:0:1::/64"),
        ("fe80::1:2:3:4", "fe80::/64"),
        ("2001:db8::", "2001:db8::/64"),
    ];
    for (addr, subnet) in addrs {
        let version = if addr.contains(':') { 6 } else { 4 };
        let header = if version == 6 {
            r#","IPHeaderLength":40"#
        } else {
            ""
        };
        let line = format!(
            r#"{{{base},{tcp},"IPSourceAddress":"{addr}","IPSourceSubnet":"{subnet}","IPDestinationAddress":"{addr}","IPDestinationSubnet":"{subnet}"{header}}}"#
        );
        let none = fields_of(&enriched(&line, TrimMode::None));
        let compact = fields_of(&enriched(&line, TrimMode::Compact));
        for k in [
            "IPSourceSubnet",
            "TCPMSS",
            "TCPTimestampECR",
            "TCPUrgentPointer",
            "Verdict",
        ] {
            assert!(!compact.contains_key(k), "{addr}: Sluice kept {k}");
        }
        let seen = st.apply(compact.clone());
        for k in none.keys().filter(|k| !compact.contains_key(*k)) {
            assert_eq!(text(&seen, k), text(&none, k), "{k} for {addr}");
        }
    }
}

/// Data that went from Logpush straight to Splunk: legacy names answer to
/// today's, and the derived fields equal what Sluice derives.
#[test]
fn fallbacks_match_sluice_for_data_that_did_not_pass_through_it() {
    let st = SearchTime::of(SOURCETYPE);
    let macros = conf("macros.conf");
    let counted = counted_expression(&macros);
    for file in SAMPLES {
        for line in sample_lines(file) {
            let raw: Value = serde_json::from_str(&line).unwrap();
            let sluice = fields_of(&enriched(&line, TrimMode::None));
            let mut extracted = fields_of(&raw);
            extracted.insert("_raw".into(), V::Str(line.clone()));
            let seen = st.apply(extracted);
            for (legacy, current) in LEGACY_NAMES {
                if raw.get(legacy).is_some() {
                    assert_eq!(
                        text(&seen, current),
                        text(&sluice, current),
                        "{legacy} → {current}"
                    );
                }
            }
            // Magic Firewall is the final system in the props fallback too.
            for k in DERIVED_FIELDS {
                assert_eq!(text(&seen, k), text(&sluice, k), "{file}: {k}");
            }
            let c = counted.eval(&seen).unwrap();
            assert_eq!(c.text(), text(&sluice, "counted"), "{file}: counted");
        }
    }
}

/// The `counted=` expression of the base macro, with its macros expanded.
fn counted_expression(macros: &Conf) -> Compiled {
    let mut def = macros
        .get("cloudflare_nal_samples", "definition")
        .expect("the base macro")
        .to_string();
    for (name, settings) in &macros.stanzas {
        if let Some((_, d)) = settings.iter().find(|(k, _)| k == "definition") {
            def = def.replace(&format!("`{name}`"), d);
        }
    }
    let expr = def
        .split_once("| eval counted=")
        .map(|(_, e)| e)
        .expect("the base macro sets counted");
    spl::parse(expr).unwrap()
}

#[test]
fn index_time_reads_datetime_in_all_three_forms() {
    let transforms = conf("transforms.conf");
    let props = conf("props.conf");
    let class = props
        .stanza(SOURCETYPE)
        .iter()
        .find(|(k, _)| k.starts_with("TRANSFORMS-"))
        .map(|(_, v)| v.clone())
        .expect("an index-time transform");
    let ingest = transforms.get(&class, "INGEST_EVAL").expect("INGEST_EVAL");
    let steps: Vec<(String, Compiled)> = spl::split_top(ingest, ',')
        .into_iter()
        .map(|a| {
            let (name, e) = a
                .split_once(":=")
                .unwrap_or_else(|| panic!("not name:=expr: {a}"));
            (name.trim().to_string(), spl::parse(e).unwrap())
        })
        .collect();
    let config = EnrichConfig::default();
    let enricher = Enricher::new(&config, &[]).unwrap().unwrap();
    let extra = [
        r#"{"Datetime":"2026-11-20T10:00:04.25Z","MitigationSystem":"dosd"}"#,
        r#"{"Datetime":"2026-11-20T12:00:04+02:00","MitigationSystem":"dosd"}"#,
        r#"{"Datetime":1795168804.5,"MitigationSystem":"dosd"}"#,
        r#"{"Datetime":"1795168804123456789","MitigationSystem":"dosd"}"#,
    ];
    let lines = SAMPLES
        .iter()
        .flat_map(|f| sample_lines(f))
        .chain(extra.map(String::from));
    for line in lines {
        let mut f = Fields::new();
        f.insert("_raw".into(), V::Str(line.clone()));
        f.insert("_time".into(), V::Num(1.0));
        for (name, e) in &steps {
            match e.eval(&f).unwrap() {
                V::Null => f.remove(name),
                v => f.insert(name.clone(), v),
            };
        }
        let want = enricher
            .sample(line.as_bytes(), "t")
            .unwrap()
            .time()
            .unwrap();
        let got = match f.get("_time") {
            Some(V::Num(n)) => *n,
            other => panic!("_time {other:?} for {line}"),
        };
        assert!(
            (got - want).abs() < 1e-3,
            "_time {got} against Sluice's {want} for {line}"
        );
        assert_eq!(f.len(), 2, "a temporary field stayed: {f:?}");
    }
}

#[test]
fn lookups_agree_with_sluice() {
    let st = SearchTime::of(SOURCETYPE);
    let by_class = |c: &str| st.lookups.iter().find(|l| l.class.contains(c)).unwrap();
    let protocols = by_class("ip_protocols");
    for (number, name) in PROTOCOL_NAMES {
        let row = protocols
            .rows
            .iter()
            .find(|r| r["number"] == number.to_string())
            .unwrap_or_else(|| panic!("protocol {number} missing"));
        assert_eq!(row["name"], *name, "protocol {number}");
    }
    let systems = by_class("mitigation_systems");
    for row in &systems.rows {
        assert_eq!(
            system_name(&row["MitigationSystem"]),
            Some(row["mitigation_system_name"].as_str())
        );
    }
    assert_eq!(systems.rows.len(), 3);
    let reasons = by_class("mitigation_reasons");
    for row in &reasons.rows {
        let key = format!(
            "{}:{}:{}",
            row["MitigationSystem"], row["Outcome"], row["MitigationReason"]
        );
        assert_eq!(row["mitigation_key"], key);
    }
    // Every drop of the samples gets a severity (the CIM's IDS events need one).
    for file in SAMPLES {
        for line in sample_lines(file) {
            let seen = st.apply(fields_of(&enriched(&line, TrimMode::Compact)));
            if text(&seen, "Outcome").as_deref() == Some("drop") {
                assert!(text(&seen, "severity").is_some(), "no severity: {line}");
            }
        }
    }
}

#[test]
fn indexed_fields_are_declared_and_the_version_is_the_crates() {
    let fields = conf("fields.conf");
    let mut want: Vec<String> = EnrichConfig::default()
        .indexed_fields
        .iter()
        .map(|f| indexed_name(f))
        .collect();
    want.push("event_id".into());
    // direction: the CIM's search-time `direction` (fields.conf says why).
    want.retain(|f| f != "direction");
    for f in &want {
        assert_eq!(fields.get(f, "INDEXED"), Some("true"), "{f}");
    }
    let app = conf("app.conf");
    assert_eq!(
        app.get("launcher", "version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(app.get("id", "version"), Some(env!("CARGO_PKG_VERSION")));
}

/// Every field the sourcetype's settings read is in a raw sample, in
/// Sluice's output, a legacy name, or one the app defines.
#[test]
fn every_field_the_app_reads_exists() {
    let st = SearchTime::of(SOURCETYPE);
    let mut known: BTreeSet<String> = st.defines();
    known.extend(["_raw", "_time"].map(String::from));
    known.extend(LEGACY_NAMES.iter().map(|(old, _)| old.to_string()));
    for file in SAMPLES {
        for line in sample_lines(file) {
            let raw: Value = serde_json::from_str(&line).unwrap();
            known.extend(raw.as_object().unwrap().keys().cloned());
            known.extend(fields_of(&enriched(&line, TrimMode::None)).into_keys());
        }
    }
    let unknown: Vec<String> = st.reads().difference(&known).cloned().collect();
    assert!(
        unknown.is_empty(),
        "the app reads fields nothing has: {unknown:?}"
    );
}

/// Field names a search reads, and those it defines itself (`AS x`,
/// `eval x=…`, `rex` groups): a small reading of SPL that is enough for the
/// app's own searches, which quote every value.
fn search_fields(query: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    const WORDS: [&str; 31] = [
        "stats",
        "timechart",
        "chart",
        "eval",
        "where",
        "table",
        "sort",
        "head",
        "dedup",
        "mvexpand",
        "rex",
        "tstats",
        "search",
        "fields",
        "fillnull",
        "value",
        "by",
        "as",
        "over",
        "and",
        "or",
        "not",
        "span",
        "field",
        "count",
        "index",
        "makeresults",
        "mstats",
        "minspan",
        "fillnull_value",
        "rename",
    ];
    let mut defined = BTreeSet::new();
    let groups = regex::Regex::new(r"\(\?<([A-Za-z_][A-Za-z0-9_]*)>").unwrap();
    defined.extend(groups.captures_iter(query).map(|c| c[1].to_string()));
    // Strings and macro calls say nothing about fields.
    let stripped = regex::Regex::new(r#""(?:[^"\\]|\\.)*"|`[^`]*`"#)
        .unwrap()
        .replace_all(query, " ");
    // `nal.est_packets`: a metric name is one name.
    let token = regex::Regex::new(
        r"'[^']*'|nal\.[a-z_]+|[A-Za-z_][A-Za-z0-9_]*(?:\{\}\.[A-Za-z_]+)?|[0-9][A-Za-z0-9_.]*|==|!=|<=|>=|[^\sA-Za-z_0-9]",
    )
    .unwrap();
    let mut read = BTreeSet::new();
    for segment in stripped.split('|') {
        let toks: Vec<&str> = token.find_iter(segment).map(|m| m.as_str()).collect();
        let command = toks.first().copied().unwrap_or("");
        if command == "lookup" {
            let (inputs, outputs) = search::lookup_fields(segment);
            read.extend(inputs);
            defined.extend(outputs);
            continue;
        }
        for (i, t) in toks.iter().enumerate() {
            let name = t.trim_matches('\'');
            let first = name.chars().next().unwrap_or('0');
            if !(first.is_ascii_alphabetic() || first == '_') {
                continue;
            }
            let next = toks.get(i + 1).copied();
            let prev = i.checked_sub(1).map(|p| toks[p].to_ascii_lowercase());
            if next == Some("(") && !t.starts_with('\'') {
                continue;
            }
            // `field=value` outside eval: an unquoted value is no field.
            if prev.as_deref() == Some("=") && command != "eval" {
                continue;
            }
            if prev.as_deref() == Some("as") || (command == "eval" && next == Some("=")) {
                defined.insert(name.to_string());
            } else if !WORDS.contains(&name.to_ascii_lowercase().as_str()) {
                read.insert(name.to_string());
            }
        }
    }
    (read, defined)
}

/// Every search of the app: dashboards, alerts and macros, by where they are.
fn app_searches() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let views = app_dir().join("default/data/ui/views");
    for entry in std::fs::read_dir(&views).unwrap() {
        let path = entry.unwrap().path();
        let xml = std::fs::read_to_string(&path).unwrap();
        let json = xml
            .split_once("<![CDATA[")
            .and_then(|(_, r)| r.split_once("]]>"))
            .map(|(j, _)| j)
            .unwrap_or_else(|| panic!("{}: no definition", path.display()));
        let def: Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (id, ds) in def["dataSources"].as_object().unwrap() {
            let name = path.file_name().unwrap().to_string_lossy();
            out.push((
                format!("{name} {id}"),
                ds["options"]["query"].as_str().unwrap().to_string(),
            ));
        }
    }
    let saved = conf("savedsearches.conf");
    for (name, settings) in saved.stanzas.iter().skip(1) {
        let q = settings.iter().find(|(k, _)| k == "search").unwrap();
        out.push((name.clone(), q.1.clone()));
    }
    for (name, settings) in conf("macros.conf").stanzas.iter().skip(1) {
        let q = settings.iter().find(|(k, _)| k == "definition").unwrap();
        out.push((format!("macro {name}"), q.1.clone()));
    }
    out
}

/// What a search may read: for the health view, the keys Sluice's stats
/// event has; for the rest, what a sample has (raw or enriched) or the app
/// defines.
#[test]
fn every_field_a_search_reads_exists() {
    use sluice::forward::stats::{IndexerStats, Stats};
    let st = SearchTime::of(SOURCETYPE);
    let mut samples: BTreeSet<String> = st.defines();
    samples.extend(
        [
            "_time",
            "_indextime",
            "_raw",
            "host",
            "source",
            "sourcetype",
        ]
        .map(String::from),
    );
    for file in SAMPLES {
        for line in sample_lines(file) {
            let raw: Value = serde_json::from_str(&line).unwrap();
            samples.extend(raw.as_object().unwrap().keys().cloned());
            samples.extend(fields_of(&enriched(&line, TrimMode::None)).into_keys());
        }
    }
    let example = Stats {
        version: "0",
        node: String::new(),
        output: String::new(),
        interval_s: 0.0,
        uptime_s: 0.0,
        events_in: 0,
        events_in_per_s: 0.0,
        events_out: 0,
        events_out_per_s: 0.0,
        resent: 0,
        dead_lettered: 0,
        dead_letters: 0,
        queue_records: 0,
        queue_events: 0,
        queue_bytes: 0,
        queue_oldest_age_s: 0.0,
        queue_writable: true,
        indexers_up: 0,
        indexers_total: 0,
        indexers: vec![IndexerStats {
            url: String::new(),
            up: true,
            pending_acks: 0,
        }],
    };
    let mut stats: BTreeSet<String> = ["_time", "host", "source", "sourcetype"]
        .map(String::from)
        .into();
    for (k, v) in serde_json::to_value(&example).unwrap().as_object().unwrap() {
        match v {
            Value::Array(items) => {
                for key in items[0].as_object().unwrap().keys() {
                    stats.insert(format!("{k}{{}}.{key}"));
                }
            }
            _ => {
                stats.insert(k.clone());
            }
        }
    }
    let searches = app_searches();
    assert!(searches.len() >= 20, "{} searches", searches.len());
    for (place, query) in searches {
        // What the metrics index has: checked in metrics.rs.
        if query.contains("| mstats") {
            continue;
        }
        let (read, defined) = search_fields(&query);
        let known = if query.contains("sluice_stats") {
            &stats
        } else {
            &samples
        };
        let unknown: Vec<&String> = read
            .iter()
            .filter(|f| !defined.contains(*f) && !known.contains(*f))
            .collect();
        assert!(
            unknown.is_empty(),
            "{place} reads {unknown:?}, which nothing has: {query}"
        );
    }
}

/// A macro that ends in a command (`… | eval …`) takes no search terms
/// after it: they would land inside that command. Wherever the app calls
/// one, a pipe follows.
#[test]
fn a_macro_that_ends_in_a_command_is_followed_by_a_pipe() {
    let macros = conf("macros.conf");
    let piped: Vec<&String> = macros
        .stanzas
        .iter()
        .filter(|(_, s)| s.iter().any(|(k, v)| k == "definition" && v.contains('|')))
        .map(|(name, _)| name)
        .collect();
    assert!(!piped.is_empty());
    let mut calls = 0;
    for (place, query) in app_searches() {
        for name in &piped {
            let call = format!("`{name}`");
            for (at, _) in query.match_indices(&call) {
                let rest = query[at + call.len()..].trim_start();
                assert!(
                    rest.is_empty() || rest.starts_with('|'),
                    "{place}: `{name}` is followed by search terms: {query}"
                );
                calls += 1;
            }
        }
    }
    assert!(calls >= 10, "{calls} calls of the base macro");
}
