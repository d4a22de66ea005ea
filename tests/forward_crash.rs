//! kill -9 while forwarding: after a restart every event a client got a 200
//! for reaches the indexer at least once.

#[path = "support/hec_sink.rs"]
mod hec_sink;
#[path = "support/process.rs"]
mod process;
mod support;

use hec_sink::*;
use process::*;
use std::collections::HashSet;
use std::time::Duration;
use support::*;

fn config(dir: &std::path::Path, sink_url: &str) -> std::path::PathBuf {
    let outputs = format!(
        r#"
[[outputs]]
name = "splunk"
type = "splunk"
urls = ["{sink_url}"]
token = "{SINK_TOKEN}"
max_events = 40
ack_poll_interval = "100ms"
ack_timeout = "5s"
retry_initial = "50ms"
retry_max = "500ms"
linger = "10ms"
"#
    );
    let text = with_outputs(&json_log_config(dir, &[]), &outputs);
    write_file(dir, "sluice.toml", &text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_forward_then_restart_delivers_every_acknowledged_event() {
    let sink = HecSink::start(SinkOptions::default()).await;
    // Slow acks keep batches in flight when the process dies.
    sink.faults()
        .acks(AckMode::Delayed(Duration::from_millis(300)));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &sink.url());
    let mut accepted: HashSet<String> = HashSet::new();
    for round in 0..2 {
        let (mut proc, hec) = tokio::task::block_in_place(|| {
            let mut p = Sluice::run(&cfg);
            let (hec, _) = p.wait_listening();
            (p, hec)
        });
        let client = client(&dir.path().join("tls/ca.pem"), false);
        let url = format!("https://127.0.0.1:{}/services/collector/raw?channel={CHANNEL}&sourcetype=cloudflare:network_analytics", hec.port());
        for batch in 0..8 {
            let lines: Vec<String> = (0..50)
                .map(|i| format!("{{\"round\":{round},\"batch\":{batch},\"i\":{i}}}"))
                .collect();
            let resp = client
                .post(&url)
                .header("Authorization", format!("Splunk {TOKEN}"))
                .body(lines.join("\n"))
                .send()
                .await;
            if resp.is_ok_and(|r| r.status() == 200) {
                accepted.extend(lines);
            }
        }
        // Kill once some (not necessarily all) of it reached the sink.
        sink.wait_for(Duration::from_secs(30), |s| !s.indexed().is_empty())
            .await;
        let status = tokio::task::block_in_place(|| proc.kill9());
        assert!(!status.success());
    }
    // A last run drains what is left.
    sink.faults().acks(AckMode::Immediate);
    let mut proc = tokio::task::block_in_place(|| {
        let mut p = Sluice::run(&cfg);
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
