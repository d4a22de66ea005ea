//! The DDoS overview's rollups panels against their events twins. Sluice
//! rolls the shared samples up itself (one record per file, through
//! `sluice::rollup`, written as its HEC metric events), the metric events
//! become data points as a metrics index holds them, and each `| mstats`
//! panel run over those points (`search.rs`) must give the numbers its
//! events twin gives over the same samples as events. The switch between
//! the two is checked as Splunk runs it: the `cloudflare_nal_rollups` macro,
//! the dashboard's search that reads it, and the visibility conditions on
//! that search's result.

use super::search::{self, Data, Row};
use super::spl::V;
use super::{
    app_dir, app_searches, conf, enriched, fields_of, sample_lines, search_fields, SearchTime,
    SAMPLES, SOURCETYPE,
};
use serde_json::Value;
use sluice::enrich::config::TrimMode;
use sluice::enrich::sample::Sample;
use sluice::rollup::config::RollupSettings;
use sluice::rollup::{RecordRollup, RollupMeta, OTHER};
use std::collections::{BTreeMap, BTreeSet};

const OVERVIEW: &str = "cloudflare_nal_ddos_overview.xml";

/// Results as text, a map per row, so tables compare whatever the order of
/// their fields.
type Table = Vec<BTreeMap<String, String>>;

fn overview() -> Value {
    let path = app_dir().join("default/data/ui/views").join(OVERVIEW);
    let xml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json = xml
        .split_once("<![CDATA[")
        .and_then(|(_, r)| r.split_once("]]>"))
        .map(|(j, _)| j)
        .expect("a definition");
    serde_json::from_str(json).unwrap()
}

/// The query of a visualization's primary data source, if it has one.
fn query_of<'d>(def: &'d Value, viz: &Value) -> Option<&'d str> {
    let ds = viz["dataSources"]["primary"].as_str()?;
    Some(
        def["dataSources"][ds]["options"]["query"]
            .as_str()
            .expect("a query"),
    )
}

fn reads_metrics(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.contains("| mstats"))
}

/// The samples as a search of the events index sees them: what Sluice
/// sends (`trim = "compact"`) with the app's search-time fields, `_raw`,
/// `_time` from Sluice's `time`, and the index and sourcetype the base
/// macro looks for.
fn events(index: &str) -> Vec<Row> {
    let st = SearchTime::of(SOURCETYPE);
    let mut out = Vec::new();
    for file in SAMPLES {
        for line in sample_lines(file) {
            let sent = enriched(&line, TrimMode::Compact);
            let mut f = st.apply(fields_of(&sent));
            let time = Sample::parse(line.as_bytes())
                .and_then(|s| s.time())
                .expect("a time");
            f.insert("_raw".into(), V::Str(sent.to_string()));
            f.insert("_time".into(), V::Num(time));
            f.insert("index".into(), V::Str(index.into()));
            f.insert("sourcetype".into(), V::Str(SOURCETYPE.into()));
            out.push(f);
        }
    }
    out
}

/// Sluice's rollups of the samples, one record per file, as a metrics index
/// holds them: a data point per metric of each metric event, with the
/// event's dimensions and metadata.
fn points(settings: &RollupSettings) -> Vec<Row> {
    let mut hec = Vec::new();
    for (record, file) in SAMPLES.iter().enumerate() {
        let mut rollup = RecordRollup::new(settings);
        for line in sample_lines(file) {
            let sample = Sample::parse(line.as_bytes()).expect("a sample");
            rollup.add(&sample, &sample.derived(&settings.final_pass.default), 0.0);
        }
        let meta = RollupMeta {
            host: "sluice",
            source: None,
            index: &settings.index,
        };
        for r in rollup.finish("node", record as u64, 0) {
            r.write_hec(meta, &mut hec);
        }
    }
    let mut out = Vec::new();
    for line in hec.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let event: Value = serde_json::from_slice(line).unwrap();
        let mut dims = Row::new();
        dims.insert(
            "_time".into(),
            V::Num(event["time"].as_f64().expect("a time")),
        );
        for key in ["host", "source", "sourcetype", "index"] {
            if let Some(v) = event[key].as_str() {
                dims.insert(key.into(), V::Str(v.into()));
            }
        }
        let mut metrics = Vec::new();
        for (k, v) in event["fields"].as_object().expect("fields") {
            match k.strip_prefix("metric_name:") {
                Some(name) => metrics.push((name.to_string(), v.as_f64().expect("a number"))),
                None => {
                    dims.insert(k.clone(), V::Str(v.as_str().expect("a dimension").into()));
                }
            }
        }
        for (name, value) in metrics {
            let mut point = dims.clone();
            point.insert("metric_name".into(), V::Str(name));
            point.insert("_value".into(), V::Num(value));
            out.push(point);
        }
    }
    out
}

fn run(query: &str, data: &Data<'_>) -> Table {
    let rows = search::parse(query)
        .and_then(|s| s.run(data))
        .unwrap_or_else(|e| panic!("{e}: {query}"));
    rows.iter()
        .map(|r| {
            r.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.text()?)))
                .collect()
        })
        .collect()
}

/// A condition of the one form the dashboard uses:
/// `$<data source name>:result.<field>$ = "<value>"`.
struct Condition {
    source: String,
    field: String,
    value: String,
}

fn conditions(def: &Value) -> BTreeMap<String, Condition> {
    let form = regex::Regex::new(r#"^\$([^:$]+):result\.(\w+)\$ = "([^"]*)"$"#).unwrap();
    let all = def["expressions"]["conditions"].as_object();
    all.expect("conditions")
        .iter()
        .map(|(id, c)| {
            let v = c["value"].as_str().expect("a value");
            let m = form
                .captures(v)
                .unwrap_or_else(|| panic!("{id}: a condition this test cannot read: {v}"));
            let condition = Condition {
                source: m[1].to_string(),
                field: m[2].to_string(),
                value: m[3].to_string(),
            };
            (id.clone(), condition)
        })
        .collect()
}

/// The conditions a visualization shows under (none: it always shows).
fn shown_under(id: &str, viz: &Value) -> Vec<String> {
    let visibility = &viz["containerOptions"]["visibility"];
    assert!(
        visibility["hideConditions"].is_null(),
        "{id}: hideConditions"
    );
    let any = visibility["showWhenConditions"]
        .as_str()
        .unwrap_or("any-true");
    assert_eq!(any, "any-true", "{id}");
    visibility["showConditions"]
        .as_array()
        .map(|a| a.iter().map(|c| c.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The row of the data source named `name`, with `cloudflare_nal_rollups`
/// defined as `definition` (`None`: as shipped).
fn result_of(def: &Value, name: &str, definition: Option<&str>) -> Row {
    let sources = def["dataSources"].as_object().unwrap();
    let (_, ds) = sources
        .iter()
        .find(|(_, ds)| ds["name"] == name)
        .unwrap_or_else(|| panic!("no data source is named {name}"));
    let smart = ds["options"]["enableSmartSources"].as_bool();
    assert_eq!(smart, Some(true), "{name} sets no tokens");
    let mut macros = conf("macros.conf");
    if let Some(d) = definition {
        let (_, settings) = macros
            .stanzas
            .iter_mut()
            .find(|(n, _)| n == "cloudflare_nal_rollups")
            .expect("the switch");
        let setting = settings.iter_mut().find(|(k, _)| k == "definition");
        setting.expect("a definition").1 = d.to_string();
    }
    let query = ds["options"]["query"].as_str().unwrap();
    let q = search::expand(query, &macros).unwrap();
    let nothing = Data {
        events: &[],
        points: &[],
        default_span: 60,
    };
    let rows = search::parse(&q).and_then(|s| s.run(&nothing)).unwrap();
    assert_eq!(rows.len(), 1, "{q}");
    rows.into_iter().next().unwrap()
}

/// (x, y, w, h) of each item placed.
fn positions(def: &Value) -> BTreeMap<String, [u64; 4]> {
    let mut out = BTreeMap::new();
    for layout in def["layout"]["layoutDefinitions"]
        .as_object()
        .unwrap()
        .values()
    {
        for entry in layout["structure"].as_array().unwrap() {
            let p = &entry["position"];
            let n = |k: &str| p[k].as_u64().expect("a position");
            let item = entry["item"].as_str().unwrap().to_string();
            out.insert(item, [n("x"), n("y"), n("w"), n("h")]);
        }
    }
    out
}

/// The shipped macro shows the events version of every panel that has two,
/// `"true"` the rollups version; every panel shows once in each tier, and a
/// rollups version sits right after its events twin in the same row, so
/// the grid layout gives the hidden one's width to the one shown.
#[test]
fn the_macro_switches_each_panel_between_its_events_and_rollups_versions() {
    let def = overview();
    let conds = conditions(&def);
    let read: BTreeSet<(&str, &str)> = conds
        .values()
        .map(|c| (c.source.as_str(), c.field.as_str()))
        .collect();
    assert_eq!(read.len(), 1, "one search's field decides: {read:?}");
    let (source, field) = read.into_iter().next().unwrap();
    let holding = |definition: Option<&str>| {
        let row = result_of(&def, source, definition);
        let value = row.get(field).and_then(V::text).expect("the field");
        conds
            .iter()
            .filter(|(_, c)| c.value == value)
            .map(|(id, _)| id)
            .collect::<BTreeSet<&String>>()
    };
    let events_tier = holding(None);
    let rollups_tier = holding(Some("\"true\""));
    assert_eq!(events_tier.len(), 1, "{events_tier:?}");
    assert_eq!(rollups_tier.len(), 1, "{rollups_tier:?}");
    assert_ne!(events_tier, rollups_tier);

    let vizs = def["visualizations"].as_object().unwrap();
    let mut shown_titles = Vec::new();
    for (tier, rollups) in [(&events_tier, false), (&rollups_tier, true)] {
        let mut titles = Vec::new();
        for (id, viz) in vizs {
            let under = shown_under(id, viz);
            for c in &under {
                assert!(conds.contains_key(c), "{id}: no condition {c}");
            }
            let metrics = reads_metrics(query_of(&def, viz));
            let shown = under.is_empty() || under.iter().any(|c| tier.contains(c));
            assert!(
                !metrics || shown == rollups,
                "{id}: reads the metrics index, shown: {shown}"
            );
            if shown {
                titles.push(viz["title"].as_str().unwrap_or(id).to_string());
            }
        }
        titles.sort();
        let mut unique = titles.clone();
        unique.dedup();
        assert_eq!(titles, unique, "a panel shows twice (rollups: {rollups})");
        shown_titles.push(titles);
    }
    assert_eq!(
        shown_titles[0], shown_titles[1],
        "each tier shows every panel"
    );

    let at = positions(&def);
    let mut pairs = 0;
    for (id, viz) in vizs
        .iter()
        .filter(|(_, v)| reads_metrics(query_of(&def, v)))
    {
        let (twin, _) = vizs
            .iter()
            .find(|(_, v)| v["title"] == viz["title"] && !reads_metrics(query_of(&def, v)))
            .unwrap_or_else(|| panic!("{id}: no events twin"));
        let ([x, y, _, h], [tx, ty, tw, th]) = (at[id], at[twin]);
        assert_eq!((x, y, h), (tx + tw, ty, th), "{id} right after {twin}");
        pairs += 1;
    }
    assert!(pairs > 0);
}

#[test]
fn every_macro_is_defined_and_every_overview_search_parses() {
    let macros = conf("macros.conf");
    let mut parsed = 0;
    for (place, query) in app_searches() {
        let q = search::expand(&query, &macros).unwrap_or_else(|e| panic!("{place}: {e}"));
        if place.starts_with(OVERVIEW) {
            if let Err(e) = search::parse(&q) {
                panic!("{place}: {e}: {q}");
            }
            parsed += 1;
        }
    }
    assert!(parsed > 0);
}

/// (title, events query, rollups query) of each panel that has both,
/// macros expanded.
fn twins(def: &Value) -> Vec<(String, String, String)> {
    let macros = conf("macros.conf");
    let panels: Vec<(&str, &str)> = def["visualizations"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|v| Some((v["title"].as_str()?, query_of(def, v)?)))
        .collect();
    let mut out = Vec::new();
    for &(title, rollups) in panels.iter().filter(|p| reads_metrics(Some(p.1))) {
        let (_, events) = *panels
            .iter()
            .find(|p| p.0 == title && !reads_metrics(Some(p.1)))
            .unwrap_or_else(|| panic!("{title}: no events twin"));
        let expand = |q: &str| search::expand(q, &macros).unwrap();
        out.push((title.to_string(), expand(events), expand(rollups)));
    }
    out
}

/// A search up to its `sort`: every row, not the top ones.
fn unsorted(query: &str) -> &str {
    query.split(" | sort ").next().unwrap_or(query)
}

/// With values folded into `other`, rollups cannot match the events row for
/// row: each value sums to at most the events' (the rest is in `other`),
/// and the totals agree.
fn folded_check(title: &str, query: &str, events: &Table, rollups: &Table) {
    let sorted_by = regex::Regex::new(r"\| sort - (\w+)").unwrap();
    let number = sorted_by
        .captures(query)
        .map(|c| c[1].to_string())
        .unwrap_or_else(|| panic!("{title}: folded, and no number to compare"));
    let num = |r: &BTreeMap<String, String>| -> u64 {
        r.get(&number).map_or(0, |v| v.parse().expect("a count"))
    };
    let key = |r: &BTreeMap<String, String>| {
        let mut k = r.clone();
        k.remove(&number);
        k
    };
    let total = |t: &Table| t.iter().map(num).sum::<u64>();
    assert_eq!(total(rollups), total(events), "{title}: totals");
    for r in rollups.iter().filter(|r| !r.values().any(|v| v == OTHER)) {
        let twin = events
            .iter()
            .find(|e| key(e) == key(r))
            .unwrap_or_else(|| panic!("{title}: {r:?} is in no events row"));
        assert!(num(r) <= num(twin), "{title}: {r:?} above {twin:?}");
    }
}

/// Each rollups panel over Sluice's rollups gives what its events twin
/// gives over the samples: exactly, when no value was folded into `other`
/// (always with an unlimited `top_n`), else within what folding allows.
/// With the default spans of an hour and of a day.
#[test]
fn each_rollups_panel_gives_the_numbers_of_its_events_twin() {
    let macros = conf("macros.conf");
    let default = RollupSettings::default();
    assert_eq!(
        macros.get("cloudflare_nal_metrics_index", "definition"),
        Some(format!("index={}", default.index).as_str()),
        "the app looks where Sluice writes by default"
    );
    let index = macros
        .get("cloudflare_nal_index", "definition")
        .and_then(|d| d.strip_prefix("index="))
        .expect("index=<name>");
    let events = events(index);
    let twins = twins(&overview());
    assert!(!twins.is_empty());
    let unlimited = RollupSettings {
        top_n: usize::MAX,
        ..RollupSettings::default()
    };
    let mut folded = 0;
    for settings in [&unlimited, &default] {
        let points = points(settings);
        for default_span in [60, 1800] {
            let data = Data {
                events: &events,
                points: &points,
                default_span,
            };
            for (title, ev, ro) in &twins {
                let want = run(ev, &data);
                assert!(!want.is_empty(), "{title}: no rows from the samples");
                let all = run(unsorted(ro), &data);
                if !all.iter().any(|r| r.values().any(|v| v == OTHER)) {
                    assert_eq!(run(ro, &data), want, "{title}, span {default_span}: {ro}");
                    continue;
                }
                assert_eq!(settings.top_n, default.top_n, "{title}: `other` unlimited");
                folded_check(title, ro, &run(unsorted(ev), &data), &all);
                folded += 1;
            }
        }
    }
    // The samples have more ports than a minute keeps: the weaker check ran.
    assert!(folded > 0);

    // Rollups are per minute: their charts keep to that, whatever finer
    // span the time range asks for.
    let points = points(&default);
    let fine = Data {
        events: &events,
        points: &points,
        default_span: 10,
    };
    for (title, _, ro) in twins.iter().filter(|t| t.2.contains("| timechart")) {
        let times: Vec<u64> = run(ro, &fine)
            .iter()
            .map(|r| r["_time"].parse().expect("a time"))
            .collect();
        assert!(times.len() > 1, "{title}");
        assert!(
            times.windows(2).all(|w| w[1] - w[0] >= 60),
            "{title}: {times:?}"
        );
    }
}

/// What an `mstats` search reads is a dimension, metric or field of
/// Sluice's metric events, or a field the search makes itself.
#[test]
fn every_field_an_mstats_search_reads_is_in_sluices_metric_events() {
    let points = points(&RollupSettings::default());
    let mut known: BTreeSet<String> = points.iter().flat_map(|p| p.keys().cloned()).collect();
    known.extend(
        points
            .iter()
            .filter_map(|p| p.get("metric_name").and_then(V::text)),
    );
    let mut searches = 0;
    for (place, query) in app_searches() {
        if !query.contains("| mstats") {
            continue;
        }
        let (read, defined) = search_fields(&query);
        let unknown: Vec<&String> = read
            .iter()
            .filter(|f| !defined.contains(*f) && !known.contains(*f))
            .collect();
        assert!(
            unknown.is_empty(),
            "{place} reads {unknown:?}, which no metric event has: {query}"
        );
        searches += 1;
    }
    assert!(searches > 0);
}
