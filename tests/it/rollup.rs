//! Tiers: rollups and per-output routing end to end. `loadgen --scenario
//! ddos` traffic goes through the real server to the test HEC sink as
//! metric events (and only the events each output asks for), and the
//! rollups add up to the generator's ground truth.

use crate::support::hec_sink::*;
use crate::support::*;
use serde_json::Value;
use sluice::loadgen::scenario::{ScenarioOptions, Timestamps};
use sluice::loadgen::truth::Truth;
use sluice::loadgen::{self, Input, LoadgenOptions};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);

fn config(dir: &Path, sink: &HecSink, routing: &str) -> String {
    let output = splunk_output_acking(&[sink.url()], None, routing);
    config_with_outputs(dir, "", &output)
}

async fn scenario(server: &TestServer, seed: u64, events: u64) -> Truth {
    let report = loadgen::run(
        LoadgenOptions {
            url: server.base.clone(),
            token: TOKEN.into(),
            ca: Some(server.ca.clone()),
            insecure: false,
            input: Input::Scenario(ScenarioOptions {
                timestamps: Timestamps::Rfc3339,
                legacy_names: false,
                seed,
            }),
            batch_lines: 500,
            concurrency: 2,
            duration: None,
            events: Some(events),
            http1: false,
            rate: None,
            gzip_level: 1,
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.events_accepted, events, "{report:?}");
    report.truth.unwrap()
}

/// The rollups the sink holds, one per `rollup_id`: a resent record gives
/// the same rollups again, and a duplicate must be identical.
fn unique_rollups(sink: &HecSink) -> Vec<IndexedEvent> {
    let mut seen: HashMap<String, IndexedEvent> = HashMap::new();
    for e in sink.acknowledged() {
        assert_eq!(e.event, "metric", "only rollups: {}", e.raw);
        assert_eq!(e.index.as_deref(), Some("cloudflare_metrics"));
        assert_eq!(
            e.sourcetype.as_deref(),
            Some("cloudflare:network_analytics:rollup")
        );
        let id = e.fields["rollup_id"].as_str().unwrap().to_string();
        if let Some(first) = seen.get(&id) {
            assert_eq!(first.fields, e.fields, "a duplicate differs");
            assert_eq!(first.time, e.time);
            continue;
        }
        seen.insert(id, e);
    }
    seen.into_values().collect()
}

fn metric(e: &IndexedEvent, name: &str) -> u64 {
    e.fields[&format!("metric_name:nal.{name}")]
        .as_u64()
        .unwrap()
}

fn dim<'a>(e: &'a IndexedEvent, name: &str) -> Option<&'a str> {
    e.fields.get(name).and_then(Value::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_add_up_to_the_scenario_truth_across_a_restart() {
    let sink = HecSink::start(SinkOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), &sink, "events = \"none\"\nrollups = true\n");
    let mut server = TestServer::start_text(dir.path(), &text).await;
    let mut truth = scenario(&server, 21, 6_000).await;
    // Stopped with records still queued or unacknowledged: after the
    // restart they are read again and give the same rollups.
    server.stop().await;
    let mut server = TestServer::start_text(dir.path(), &text).await;
    truth.merge(&scenario(&server, 22, 6_000).await);
    server.wait_queue_empty().await;
    assert!(sink.wait_for(WAIT, |s| !s.acknowledged().is_empty()).await);

    let rollups = unique_rollups(&sink);
    let mut packets = BTreeMap::<String, u64>::new();
    let mut bytes = BTreeMap::<String, u64>::new();
    let mut samples = BTreeMap::<String, u64>::new();
    let mut attacks = BTreeMap::<String, u64>::new();
    let mut counted_passes = 0;
    let mut per_interval = BTreeMap::<u64, [u64; 4]>::new();
    for r in &rollups {
        let key = format!(
            "{}/{}",
            dim(r, "mitigation_system").unwrap(),
            dim(r, "outcome").unwrap()
        );
        let (p, b, n) = (
            metric(r, "est_packets"),
            metric(r, "est_bytes"),
            metric(r, "samples"),
        );
        *packets.entry(key.clone()).or_default() += p;
        *bytes.entry(key.clone()).or_default() += b;
        *samples.entry(key).or_default() += n;
        if let Some(id) = dim(r, "attack_id") {
            *attacks.entry(id.to_string()).or_default() += p;
        }
        let counted = dim(r, "counted") == Some("true");
        if counted && dim(r, "outcome") == Some("pass") {
            counted_passes += p;
        }
        let time = r.time.unwrap() as u64;
        assert_eq!(time % 60, 0, "an interval's start");
        let i = per_interval.entry(time).or_default();
        i[0] += n;
        i[1] += p;
        i[2] += b;
        if counted {
            i[3] += p;
        }
    }
    assert_eq!(packets, truth.est_packets_by_system_outcome);
    assert_eq!(bytes, truth.est_bytes_by_system_outcome);
    assert_eq!(samples, truth.by_system_outcome);
    assert_eq!(counted_passes, truth.true_passed_packets);
    let want_attacks: BTreeMap<String, u64> = truth
        .attacks
        .iter()
        .filter(|(id, _)| !id.is_empty())
        .map(|(id, a)| (id.clone(), a.est_packets))
        .collect();
    assert!(!want_attacks.is_empty());
    assert_eq!(attacks, want_attacks);
    let want_intervals: BTreeMap<u64, [u64; 4]> = truth
        .rollups
        .intervals
        .iter()
        .map(|(t, i)| {
            (
                *t,
                [i.samples, i.est_packets, i.est_bytes, i.counted_est_packets],
            )
        })
        .collect();
    assert_eq!(per_interval, want_intervals);
    // Fewer events than samples even in records of 500 samples (how many
    // fewer, for Logpush-sized records, is benches/tiers' question).
    assert!(rollups.len() * 2 < 12_000, "{} rollups", rollups.len());
    server.stop().await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_route_sends_dropped_samples_and_every_other_line() {
    let sink = HecSink::start(SinkOptions::default()).await;
    let (_dir, mut server) =
        start_in_tempdir(|dir| config(dir, &sink, "events = \"drops\"\n")).await;
    let lines: Vec<String> = sample_lines();
    let drops = lines
        .iter()
        .filter(|l| l.contains("\"Outcome\":\"drop\""))
        .count();
    assert!(drops > 0 && drops < lines.len());
    let body = format!("{}\nnot a sample\n", lines.join("\n"));
    post_logpush(&server, &server.http2(), body.as_bytes(), "").await;
    // The passes are handled without being sent: the record still leaves.
    wait_delivered(&server, &sink, drops + 1, WAIT).await;
    let got = sink.acknowledged();
    assert_eq!(got.len(), drops + 1);
    let other: Vec<&IndexedEvent> = got
        .iter()
        .filter(|e| e.event.get("Outcome").is_none())
        .collect();
    assert_eq!(other.len(), 1, "the line that is not a sample");
    assert!(got
        .iter()
        .filter(|e| e.event.get("Outcome").is_some())
        .all(|e| e.event["Outcome"] == "drop"));
    server.stop().await;
    sink.stop().await;
}
