//! Enrichment end to end: samples (from the shared files and from
//! `loadgen --scenario ddos`) go through the real server to the test HEC
//! sink, and what arrives adds up to the ground truth.

use crate::support::hec_sink::*;
use crate::support::*;
use serde_json::{json, Value};
use sluice::loadgen::scenario::{ScenarioOptions, Timestamps};
use sluice::loadgen::{self, Input, LoadgenOptions};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);

/// The test config forwarding to `sink` (Sluice's default `ack_timeout`),
/// with `enrich` as its `[enrich]` section.
fn config(dir: &Path, sink: &HecSink, enrich: &str) -> String {
    let enrich = format!("\n[enrich]\n{enrich}");
    let output = splunk_output_acking(&[sink.url()], None, &enrich);
    config_with_outputs(dir, "", &output)
}

/// Logpush's request of `body` with `source` in the query.
async fn post_raw(server: &TestServer, client: &reqwest::Client, body: &str, source: &str) {
    post_logpush(
        server,
        client,
        body.as_bytes(),
        &format!("&source={source}"),
    )
    .await;
}

/// The ground truth recomputed from what the sink received, in the truth files' shape.
fn truth_of<'a>(events: impl Iterator<Item = &'a IndexedEvent>) -> Value {
    let mut by = BTreeMap::<String, u64>::new();
    let mut packets = BTreeMap::<String, u64>::new();
    let mut bytes = BTreeMap::<String, u64>::new();
    let mut attacks = BTreeMap::<String, Value>::new();
    let (mut records, mut passed_packets, mut passed_bytes) = (0u64, 0u64, 0u64);
    for e in events {
        let v = &e.event;
        let key = format!(
            "{}/{}",
            v["MitigationSystem"].as_str().unwrap(),
            v["Outcome"].as_str().unwrap()
        );
        let (p, b) = (
            v["est_packets"].as_u64().unwrap(),
            v["est_bytes"].as_u64().unwrap(),
        );
        *by.entry(key.clone()).or_default() += 1;
        *packets.entry(key.clone()).or_default() += p;
        *bytes.entry(key).or_default() += b;
        records += 1;
        if v["counted"] == true && v["Outcome"] == "pass" {
            passed_packets += p;
            passed_bytes += b;
        }
        if let Some(id) = v["AttackID"].as_str() {
            let a = attacks
                .entry(id.to_string())
                .or_insert_with(|| json!({"est_packets": 0, "samples": 0}));
            a["est_packets"] = json!(a["est_packets"].as_u64().unwrap() + p);
            a["samples"] = json!(a["samples"].as_u64().unwrap() + 1);
            a["vector"] = v["AttackVector"].clone();
        }
    }
    json!({
        "attacks": attacks,
        "by_system_outcome": by,
        "est_bytes_by_system_outcome": bytes,
        "est_packets_by_system_outcome": packets,
        "records": records,
        "true_passed_bytes": passed_bytes,
        "true_passed_packets": passed_packets,
    })
}

/// `Datetime` in epoch seconds, in any of its three forms.
fn datetime(v: &Value) -> f64 {
    match v {
        Value::String(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .unwrap();
            t.unix_timestamp_nanos() as f64 / 1e9
        }
        Value::Number(n) if n.as_f64().unwrap() > 1e12 => n.as_f64().unwrap() / 1e9,
        Value::Number(n) => n.as_f64().unwrap(),
        other => panic!("Datetime {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_files_arrive_enriched_and_match_their_truth() {
    let sink = HecSink::start(SinkOptions::default()).await;
    let (_dir, mut server) = start_in_tempdir(|dir| config(dir, &sink, "")).await;
    let client = server.http2();
    let files = ["nal-rfc3339", "nal-unixnano", "nal-legacy-unix"];
    let mut total = 0;
    for f in files {
        let text = std::fs::read_to_string(sample(&format!("{f}.ndjson"))).unwrap();
        total += text.lines().count();
        post_raw(&server, &client, &text, f).await;
    }
    // A line that is not a sample, and a broken one, in the same request.
    let broken = r#"{"MitigationSystem":"dosd","Datetime":"2026-11-20T10:00:04Z","Outcome":"#;
    post_raw(&server, &client, &format!("hello\n{broken}\n"), "odd").await;
    wait_delivered(&server, &sink, total + 2, WAIT).await;
    let acked = sink.acknowledged();
    assert_eq!(acked.len(), total + 2);

    for f in files {
        let from_file: Vec<&IndexedEvent> = acked
            .iter()
            .filter(|e| e.source.as_deref() == Some(f))
            .collect();
        let truth: Value = serde_json::from_str(
            &std::fs::read_to_string(sample(&format!("{f}.truth.json"))).unwrap(),
        )
        .unwrap();
        let mut got = truth_of(from_file.iter().copied());
        // The truth files list attacks only; drop the "" (no attack) entry.
        got["attacks"].as_object_mut().unwrap().remove("");
        assert_eq!(got, truth, "{f}");
        for e in from_file {
            let t = datetime(&e.event["Datetime"]);
            assert!(
                (e.time.unwrap() - t).abs() < 1e-3,
                "{f}: time {:?} vs {t}",
                e.time
            );
            assert!(e.event.get("IPTtl").is_none() && e.event.get("IPTTL").is_some());
            assert_eq!(e.fields["mitigation_system"], e.event["MitigationSystem"]);
            assert_eq!(
                e.sourcetype.as_deref(),
                Some("cloudflare:network_analytics")
            );
        }
    }
    let odd: Vec<&IndexedEvent> = acked
        .iter()
        .filter(|e| e.source.as_deref() == Some("odd"))
        .collect();
    let texts: Vec<&str> = odd.iter().map(|e| e.raw.as_str()).collect();
    assert!(texts.contains(&"hello"), "{texts:?}");
    assert!(
        texts.contains(&broken),
        "broken line forwarded as it came: {texts:?}"
    );
    let metrics = server.metrics().await;
    for (result, n) in [("enriched", total), ("passed", 2)] {
        let line = format!("sluice_enrich_events_total{{result=\"{result}\"}} {n}");
        assert!(metrics.contains(&line), "{line} missing");
    }
    assert!(
        metrics.contains(&format!("sluice_sample_lag_seconds_count {total}")),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("lag"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    server.stop().await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_ground_truth_matches_what_the_sink_receives() {
    let sink = HecSink::start(SinkOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let assets = dir.path().join("assets.csv");
    std::fs::write(
        &assets,
        "cidr,site,service\n203.0.113.0/24,fra1,\n203.0.113.0/25,fra1,web\n2001:db8:100::/64,ams1,v6\n",
    )
    .unwrap();
    let enrich = format!(
        "trim = \"compact\"\nassets = {:?}\n",
        assets.display().to_string()
    );
    let mut server = TestServer::start_text(dir.path(), &config(dir.path(), &sink, &enrich)).await;
    let report = loadgen::run(
        LoadgenOptions {
            url: server.base.clone(),
            token: TOKEN.into(),
            ca: Some(server.ca.clone()),
            insecure: false,
            input: Input::Scenario(ScenarioOptions {
                timestamps: Timestamps::Unixnano,
                legacy_names: true,
                seed: 11,
            }),
            batch_lines: 2_000,
            concurrency: 2,
            duration: None,
            events: Some(12_000),
            http1: false,
            rate: None,
            gzip_level: 1,
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.events_accepted, 12_000, "{report:?}");
    let mut truth = serde_json::to_value(report.truth.unwrap()).unwrap();
    // Rollups have a test of their own (tests/it/rollup.rs).
    truth.as_object_mut().unwrap().remove("rollups");
    wait_delivered(&server, &sink, 12_000, WAIT).await;
    let acked = sink.acknowledged();
    let mut got = truth_of(acked.iter());
    got["attacks"].as_object_mut().unwrap().remove("");
    assert_eq!(got, truth);
    let attacks = truth["attacks"].as_object().unwrap();
    assert!(!attacks.is_empty());
    for e in &acked {
        let v = &e.event;
        assert!((e.time.unwrap() - datetime(&v["Datetime"])).abs() < 1e-3);
        assert!(
            v.get("TCPChecksum").is_none() && v.get("IPSourceSubnet").is_none(),
            "compact"
        );
        let dst = v["IPDestinationAddress"].as_str().unwrap();
        if let Some(last) = dst.strip_prefix("203.0.113.") {
            let web = last.parse::<u8>().unwrap() < 128;
            assert_eq!(v["asset_site"], "fra1");
            assert_eq!(v.get("asset_service").is_some(), web, "{dst}");
        } else {
            assert_eq!(v["asset_service"], "v6", "{dst}");
        }
        if v["AttackID"].as_str().is_some_and(|a| !a.is_empty()) {
            assert_eq!(e.fields["attack_id"], v["AttackID"]);
        }
    }
    server.stop().await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_enrichment_off_samples_arrive_as_sent() {
    let sink = HecSink::start(SinkOptions::default()).await;
    let (_dir, mut server) = start_in_tempdir(|dir| config(dir, &sink, "enabled = false")).await;
    let lines: Vec<String> = sample_lines().into_iter().take(100).collect();
    post_raw(&server, &server.http1(), &lines.join("\n"), "plain").await;
    wait_delivered(&server, &sink, 100, WAIT).await;
    let got: Vec<String> = sink
        .acknowledged()
        .iter()
        .map(|e| e.event.as_str().unwrap_or_default().to_string())
        .collect();
    for l in &lines {
        assert!(got.contains(l), "{l}");
    }
    server.stop().await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_asset_table_applies_to_new_batches_and_a_bad_one_is_refused() {
    let sink = HecSink::start(SinkOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let assets = dir.path().join("assets.csv");
    std::fs::write(&assets, "cidr,site\n203.0.113.0/24,old\n").unwrap();
    let enrich = format!("assets = {:?}\n", assets.display().to_string());
    let mut server = TestServer::start_text(dir.path(), &config(dir.path(), &sink, &enrich)).await;
    let client = server.http1();
    let v4: Vec<String> = sample_lines()
        .into_iter()
        .filter(|l| l.contains("\"IPDestinationAddress\":\"203.0.113."))
        .take(30)
        .collect();
    let site_of = |sink: &HecSink, source: &str| -> Vec<String> {
        sink.acknowledged()
            .iter()
            .filter(|e| e.source.as_deref() == Some(source))
            .map(|e| e.event["asset_site"].as_str().unwrap_or("none").to_string())
            .collect()
    };
    post_raw(&server, &client, &v4[..10].join("\n"), "first").await;
    wait_delivered(&server, &sink, 10, WAIT).await;
    assert_eq!(site_of(&sink, "first"), vec!["old"; 10]);

    std::fs::write(
        &assets,
        "cidr,site\n203.0.113.0/24,new\n198.51.100.0/24,x\n",
    )
    .unwrap();
    let running = server.running.as_ref().unwrap();
    assert_eq!(running.reload("test").await.unwrap().asset_networks, 2);
    post_raw(&server, &client, &v4[10..20].join("\n"), "second").await;
    wait_delivered(&server, &sink, 20, WAIT).await;
    assert_eq!(site_of(&sink, "second"), vec!["new"; 10]);

    std::fs::write(&assets, "cidr,site\nnot-a-network,bad\n").unwrap();
    let running = server.running.as_ref().unwrap();
    let e = running.reload("test").await.unwrap_err().to_string();
    assert!(e.contains("assets.csv line 2"), "{e}");
    post_raw(&server, &client, &v4[20..].join("\n"), "third").await;
    wait_delivered(&server, &sink, 30, WAIT).await;
    assert_eq!(
        site_of(&sink, "third"),
        vec!["new"; 10],
        "the table in force stays"
    );
    server.stop().await;
    sink.stop().await;
}
