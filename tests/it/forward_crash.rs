//! kill -9 while forwarding: after a restart every event a client got a 200
//! for reaches the indexer at least once.

use crate::support::hec_sink::*;
use crate::support::process::*;
use crate::support::*;
use std::collections::HashSet;
use std::time::Duration;

fn config(dir: &std::path::Path, sink_url: String) -> std::path::PathBuf {
    let outputs = splunk_output_acking(&[sink_url], Some("5s"), "max_events = 40");
    let text = with_outputs(&json_log_config(dir, &[]), &outputs);
    write_file(dir, "sluice.toml", &text)
}

/// Records in the queue when Sluice opened it (its "queue open" log line).
fn queued_at_start(p: &mut Sluice) -> u64 {
    let line = p.wait_for_stderr("\"queue open\" log line", |l| l.contains("queue open"));
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    v["fields"]["records"]
        .as_u64()
        .expect("records in the log line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_forward_then_restart_delivers_every_acknowledged_event() {
    let sink = HecSink::start(SinkOptions::default()).await;
    // Slow acks keep batches in flight when the process dies.
    sink.faults().acks(AckMode::Delayed(Duration::from_secs(2)));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), sink.url());
    let mut accepted: HashSet<String> = HashSet::new();
    for round in 0..2 {
        let (mut proc, hec) = tokio::task::block_in_place(|| {
            let mut p = Sluice::run(&cfg);
            let queued = queued_at_start(&mut p);
            if round > 0 {
                assert!(queued > 0, "nothing was left undelivered by the kill");
            }
            let (hec, _) = p.wait_listening();
            (p, hec)
        });
        let client = client(&dir.path().join("tls/ca.pem"), false);
        let url = format!(
            "https://127.0.0.1:{}{RAW}?channel={CHANNEL}&sourcetype=cloudflare:network_analytics",
            hec.port()
        );
        for batch in 0..8 {
            let lines: Vec<String> = (0..50)
                .map(|i| format!("{{\"round\":{round},\"batch\":{batch},\"i\":{i}}}"))
                .collect();
            let body = lines.join("\n");
            let resp = post(&client, &url, TOKEN, body.as_bytes(), false).await;
            if resp.is_ok_and(|r| r.status() == 200) {
                accepted.extend(lines);
            }
        }
        // Kill while batches are in flight: indexed by the sink, not yet
        // acknowledged to Sluice.
        let in_flight = sink
            .wait_for(Duration::from_secs(30), |s| {
                let indexed = s.indexed().len();
                indexed > 0 && indexed > s.acknowledged().len()
            })
            .await;
        assert!(in_flight, "no batch was in flight to be killed");
        let status = tokio::task::block_in_place(|| proc.kill9());
        assert!(!status.success());
    }
    // A last run drains what is left.
    sink.faults().acks(AckMode::Immediate);
    let mut proc = tokio::task::block_in_place(|| {
        let mut p = Sluice::run(&cfg);
        assert!(queued_at_start(&mut p) > 0, "nothing was left by the kill");
        p.wait_listening();
        p
    });
    let all_there = |s: &HecSink| {
        let got: HashSet<String> = s
            .acknowledged()
            .iter()
            .filter_map(|e| e.event.as_str().map(String::from))
            .collect();
        accepted.iter().all(|l| got.contains(l))
    };
    assert!(
        sink.wait_for(Duration::from_secs(90), all_there).await,
        "every event acknowledged to a client reached the indexer"
    );
    assert_eq!(accepted.len(), 800);
    let status = tokio::task::block_in_place(|| proc.terminate());
    assert!(status.success());
    sink.stop().await;
}
