//! End to end: ingest → queue → forward to a faithful HEC sink, with faults.

use crate::support::hec_sink::*;
use crate::support::process::{authorized_post, post};
use crate::support::*;
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

async fn start(dir: &Path, outputs: &str) -> TestServer {
    TestServer::start_text(dir, &config_with_outputs(dir, "", outputs)).await
}

/// Sluice in a fresh data dir (kept as long as the TempDir) with `outputs`.
async fn start_forwarding(outputs: &str) -> (tempfile::TempDir, TestServer) {
    start_in_tempdir(|dir| config_with_outputs(dir, "", outputs)).await
}

/// Posts `lines` to `/raw` as one gzip request (Logpush's shape).
async fn post_raw(server: &TestServer, client: &reqwest::Client, lines: &[String]) {
    let body = format!("{}\n", lines.join("\n"));
    post_logpush(server, client, body.as_bytes(), "").await;
}

/// The event ids of lines as sent: what identifies them after enrichment.
fn ids_of(lines: &[String]) -> HashSet<String> {
    lines
        .iter()
        .map(|l| sluice::forward::event::EventId::of(l.as_bytes()).to_string())
        .collect()
}

fn arrived_ids(events: &[IndexedEvent]) -> HashSet<String> {
    events.iter().filter_map(IndexedEvent::event_id).collect()
}

fn raw_texts(events: &[IndexedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.event.as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_arrives_once_with_metadata() {
    let sink = HecSink::start(SinkOptions::default()).await;
    let (_dir, mut server) =
        start_forwarding(&splunk_output(&[sink.url()], "max_events = 500")).await;
    let lines = sample_lines();
    let client = server.http2();
    for chunk in lines.chunks(700) {
        post_raw(&server, &client, chunk).await;
    }
    let body = br#"{"event":{"k":"v"},"time":"1700000000.25","host":"h1","fields":{"f":"x"}}{"event":"second"}"#;
    let resp = post(&client, &server.url(EVENT), INDEXED_TOKEN, body, false)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let total = lines.len() + 2;
    wait_delivered(&server, &sink, total, WAIT).await;

    let acked = sink.acknowledged();
    assert_eq!(acked.len(), total, "exactly once when nothing fails");
    let keys = count_by_key(&acked);
    assert!(keys.values().all(|&n| n == 1), "no duplicates");
    assert!(
        ids_of(&lines).is_subset(&arrived_ids(&acked)),
        "every sample line arrived"
    );
    let first_id = ids_of(&lines[..1]).into_iter().next().unwrap();
    let raw_one = acked
        .iter()
        .find(|e| e.event_id().as_deref() == Some(first_id.as_str()))
        .unwrap();
    assert_eq!(
        raw_one.sourcetype.as_deref(),
        Some("cloudflare:network_analytics")
    );
    assert!(raw_one.host.is_some());
    // Enriched: the sample's own Datetime is the time, derived and indexed fields added.
    let sent: Value = serde_json::from_str(&lines[0]).unwrap();
    let datetime = time::OffsetDateTime::parse(
        sent["Datetime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(raw_one.time, Some(datetime.unix_timestamp() as f64));
    assert_eq!(raw_one.event["est_packets"], sent["SampleInterval"]);
    assert_eq!(
        raw_one.fields.get("mitigation_system"),
        Some(&sent["MitigationSystem"])
    );
    assert!(raw_one.event.get("DNSQueryName").is_none(), "trimmed");
    let obj = acked
        .iter()
        .find(|e| e.event == serde_json::json!({"k":"v"}))
        .unwrap();
    assert_eq!(
        (obj.host.as_deref(), obj.time),
        (Some("h1"), Some(1_700_000_000.25))
    );
    assert_eq!(
        obj.index.as_deref(),
        Some("cloudflare"),
        "token default index"
    );
    assert_eq!(obj.fields.get("f"), Some(&Value::from("x")));
    let second = acked.iter().find(|e| e.event == "second").unwrap();
    assert_eq!(second.host, raw_one.host, "metadata does not carry over");
    server
        .assert_metrics_contain(&format!(
            "sluice_output_events_total{{output=\"splunk\",result=\"delivered\"}} {total}"
        ))
        .await;
    server.stop().await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_down_then_back_loses_nothing() {
    let sink = HecSink::start(SinkOptions::default()).await;
    sink.down().await;
    let (_dir, mut server) = start_forwarding(&splunk_output(&[sink.url()], "")).await;
    let lines: Vec<String> = sample_lines().into_iter().take(300).collect();
    let client = server.http1();
    post_raw(&server, &client, &lines[..150]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    post_raw(&server, &client, &lines[150..]).await;
    assert_eq!(
        server.queue_stats().events,
        300,
        "kept while Splunk is down"
    );
    sink.up().await;
    wait_delivered(&server, &sink, 300, WAIT).await;
    assert!(ids_of(&lines).is_subset(&arrived_ids(&sink.acknowledged())));
    server
        .assert_metrics_contain("sluice_output_retries_total{")
        .await;
    server.stop().await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_indexers_one_down_all_go_to_the_other() {
    let up = HecSink::start(SinkOptions::default()).await;
    // "Down" answers every data request and health check with 503: it is
    // tried, its circuit opens, and everything goes to the other.
    let down = HecSink::start(SinkOptions::default()).await;
    down.faults()
        .fail_until_cleared(Target::All, Fault::busy(1));
    let (_dir, mut server) =
        start_forwarding(&splunk_output(&[down.url(), up.url()], "max_events = 50")).await;
    let lines: Vec<String> = sample_lines().into_iter().take(400).collect();
    let client = server.http2();
    for chunk in lines.chunks(100) {
        post_raw(&server, &client, chunk).await;
    }
    wait_delivered(&server, &up, 400, WAIT).await;
    let tried = down.count("/services/collector/raw", Some(503))
        + down.count("/services/collector/event", Some(503));
    assert!(tried >= 1, "the failing indexer was never tried");
    assert!(down.indexed().is_empty(), "it indexed nothing");
    let per_id = count_by_key(&up.acknowledged());
    assert_eq!(per_id.len(), 400, "all 400 reached the other indexer");
    let m = server.metrics().await;
    let gauge = format!(
        "sluice_output_indexer_up{{indexer=\"{}\",output=\"splunk\"}} 0",
        down.url()
    );
    assert!(m.contains(&gauge), "{gauge} missing from\n{m}");
    server.stop().await;
    up.stop().await;
    down.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_acks_are_resent_after_the_timeout() {
    let sink = HecSink::start(SinkOptions::default()).await;
    sink.faults().acks(AckMode::Lost);
    let out = splunk_output_acking(&[sink.url()], Some("1s"), "");
    let (_dir, mut server) = start_forwarding(&out).await;
    let lines: Vec<String> = sample_lines().into_iter().take(50).collect();
    post_raw(&server, &server.http1(), &lines).await;
    assert!(sink.wait_for(WAIT, |s| s.indexed().len() >= 50).await);
    assert_eq!(
        server.queue_stats().events,
        50,
        "not released without an ack"
    );
    sink.faults().acks(AckMode::Immediate);
    wait_delivered(&server, &sink, 50, WAIT).await;
    assert!(sink.indexed().len() >= 100, "the batch was sent again");
    server
        .assert_metrics_contain("sluice_output_events_total{output=\"splunk\",result=\"resent\"}")
        .await;
    server.stop().await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_dead_lettered_and_the_rest_delivered_once() {
    let sink = HecSink::start(SinkOptions::default()).await;
    sink.faults()
        .poison(|o| o["event"].as_str().is_some_and(|s| s.contains("POISON")));
    let (_dir, mut server) = start_forwarding(&splunk_output(&[sink.url()], "")).await;
    let mut lines: Vec<String> = (0..40).map(|i| format!("{{\"n\":{i}}}")).collect();
    lines[17] = "{\"n\":\"POISON\"}".into();
    post_raw(&server, &server.http1(), &lines).await;
    wait_delivered(&server, &sink, 39, WAIT).await;
    let acked = sink.acknowledged();
    let keys = count_by_key(&acked);
    assert_eq!(keys.len(), 39, "{:?}", raw_texts(&acked));
    assert!(
        keys.values().all(|&n| n == 1),
        "events before the poison are not resent"
    );
    assert!(raw_texts(&acked).iter().all(|t| !t.contains("POISON")));
    let dead = server.dead_letters();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].1.event.contains("POISON") && dead[0].1.reason.contains("invalid-event-number")
    );
    server
        .assert_metrics_contain("result=\"dead_lettered\"} 1")
        .await;
    server.stop().await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_ack_ids_turn_true_only_after_the_sink_acked() {
    let sink = HecSink::start(SinkOptions::default()).await;
    sink.faults().acks(AckMode::Lost);
    let dir = tempfile::tempdir().unwrap();
    let out = splunk_output_acking(&[sink.url()], Some("2s"), "");
    let text = config_with_outputs(dir.path(), "", &out).replace(
        "name = \"acked\"\ntoken = \"aaaaaaaa-2222-4333-8444-555555555555\"\nack = \"durable\"",
        "name = \"acked\"\ntoken = \"aaaaaaaa-2222-4333-8444-555555555555\"\nack = \"delivered\"",
    );
    assert!(text.contains("ack = \"delivered\""));
    let mut server = TestServer::start_text(dir.path(), &text).await;
    let client = server.http1();
    let resp = authorized_post(&client, &server.url(EVENT), ACK_TOKEN)
        .header("X-Splunk-Request-Channel", CHANNEL)
        .body(r#"{"event":"e2e"}"#)
        .send()
        .await
        .unwrap();
    let (_, body) = answer(resp).await;
    let ack_id = body["ackId"].as_u64().unwrap();
    let poll = || async {
        let resp = authorized_post(&client, &server.url(ACK), ACK_TOKEN)
            .header("X-Splunk-Request-Channel", CHANNEL)
            .body(format!("{{\"acks\":[{ack_id}]}}"))
            .send()
            .await
            .unwrap();
        answer(resp).await.1["acks"][ack_id.to_string()]
            .as_bool()
            .unwrap()
    };
    assert!(sink.wait_for(WAIT, |s| !s.indexed().is_empty()).await);
    assert!(
        !poll().await,
        "indexed but not acked by the sink: not delivered yet"
    );
    sink.faults().acks(AckMode::Immediate);
    let mut delivered = false;
    for _ in 0..600 {
        if poll().await {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        delivered,
        "true once the sink acknowledged (after the resend)"
    );
    assert!(!sink.acknowledged().is_empty());
    server.stop().await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_file_output_archives_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), "").await;
    let lines: Vec<String> = sample_lines().into_iter().take(500).collect();
    post_raw(&server, &server.http2(), &lines).await;
    server.wait_queue_empty().await;
    server.stop().await;
    let mut archived = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("archive")).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(&data[..]), &mut text)
            .unwrap();
        archived.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    assert_eq!(archived.len(), 500);
    let ids: HashSet<String> = archived
        .iter()
        .filter_map(|v| v["fields"]["event_id"].as_str().map(String::from))
        .collect();
    assert_eq!(ids, ids_of(&lines));
    assert!(archived
        .iter()
        .all(|v| v["event"]["counted"].is_boolean() && v["event"].get("Datetime").is_some()));
    assert!(archived
        .iter()
        .all(|v| v["fields"]["event_id"].is_string() && v["time"].is_number()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_pauses_the_output_and_it_resumes() {
    let sink = HecSink::start(SinkOptions::default()).await;
    sink.faults()
        .fail_until_cleared(Target::Data, Fault::revoked());
    let (_dir, mut server) = start_forwarding(&splunk_output(&[sink.url()], "")).await;
    let lines: Vec<String> = sample_lines().into_iter().take(20).collect();
    post_raw(&server, &server.http1(), &lines).await;
    assert!(
        sink.wait_for(WAIT, |s| s.count("/services/collector/event", Some(403))
            >= 1)
            .await
    );
    assert_eq!(
        server.queue_stats().events,
        20,
        "kept while the token is refused"
    );
    sink.faults().clear();
    wait_delivered(&server, &sink, 20, WAIT).await;
    server.assert_metrics_contain("code=\"403\"").await;
    server.stop().await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_indexers_are_retried_and_large_batches_split_on_413() {
    let sink = HecSink::start(SinkOptions::default()).await;
    sink.faults().fail_next(Target::Data, 3, Fault::busy(1));
    sink.faults().max_body_bytes(Some(20_000));
    let out = splunk_output(
        &[sink.url()],
        "compression = \"none\"\nmax_compressed_bytes = 100000\nmax_bytes = 100000",
    );
    let (_dir, mut server) = start_forwarding(&out).await;
    let lines: Vec<String> = sample_lines().into_iter().take(200).collect();
    post_raw(&server, &server.http2(), &lines).await;
    wait_delivered(&server, &sink, 200, WAIT).await;
    assert!(sink.count("/services/collector/event", Some(503)) >= 3);
    assert!(sink.count("/services/collector/event", Some(413)) >= 1);
    let keys = count_by_key(&sink.acknowledged());
    assert_eq!(keys.len(), 200);
    assert!(keys.values().all(|&n| n == 1));
    server.stop().await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_after_gives_up_on_an_unreachable_indexer() {
    let sink = HecSink::start(SinkOptions::default()).await;
    sink.down().await;
    let (_dir, mut server) =
        start_forwarding(&splunk_output(&[sink.url()], "dead_letter_after = \"1s\"")).await;
    let lines: Vec<String> = sample_lines().into_iter().take(10).collect();
    post_raw(&server, &server.http1(), &lines).await;
    server.wait_queue_empty().await;
    let dead = server.dead_letters();
    assert_eq!(dead.len(), 10);
    assert!(dead
        .iter()
        .all(|(_, d)| d.reason.contains("dead_letter_after")));
    server.stop().await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_sample_raw_lines_go_to_splunk_raw_with_their_metadata() {
    let sink = HecSink::start(SinkOptions::default()).await;
    let (_dir, mut server) = start_forwarding(&splunk_output(&[sink.url()], "")).await;
    let client = server.http1();
    let body = "Nov 26 10:00:00 fw1 kernel: DROP src=192.0.2.1\nNov 26 10:00:01 fw1 kernel: DROP src=192.0.2.2\n";
    let url = server.url(&format!("{RAW}?sourcetype=syslog&host=fw1&index=net"));
    let resp = post(&client, &url, TOKEN, body.as_bytes(), false)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let samples: Vec<String> = sample_lines().into_iter().take(3).collect();
    post_raw(&server, &client, &samples).await;
    wait_delivered(&server, &sink, 5, WAIT).await;
    let acked = sink.acknowledged();
    let raw: Vec<&IndexedEvent> = acked
        .iter()
        .filter(|e| e.endpoint == Endpoint::Raw)
        .collect();
    assert_eq!(raw.len(), 2, "syslog lines use Splunk's /raw");
    assert!(raw.iter().all(|e| e.sourcetype.as_deref() == Some("syslog")
        && e.host.as_deref() == Some("fw1")
        && e.index.as_deref() == Some("net")));
    // No source anywhere: Splunk's default for the receiving token
    // ("plain"), not the indexer's token's.
    assert!(
        raw.iter()
            .all(|e| e.source.as_deref() == Some("http:plain")),
        "{raw:?}"
    );
    assert_eq!(raw[0].raw, "Nov 26 10:00:00 fw1 kernel: DROP src=192.0.2.1");
    let events = acked
        .iter()
        .filter(|e| e.endpoint == Endpoint::Event)
        .count();
    assert_eq!(events, 3, "network analytics samples use /event");
    server.stop().await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookies_are_sent_back_on_event_and_ack() {
    let sink = HecSink::start(SinkOptions {
        sticky_cookie: Some("idx-a".into()),
        ..SinkOptions::default()
    })
    .await;
    let out = splunk_output(&[sink.url()], "max_events = 10\nconcurrency = 1");
    let (_dir, mut server) = start_forwarding(&out).await;
    let lines: Vec<String> = sample_lines().into_iter().take(50).collect();
    post_raw(&server, &server.http1(), &lines).await;
    wait_delivered(&server, &sink, 50, WAIT).await;
    let requests = sink.requests();
    let event_reqs: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/services/collector/event")
        .collect();
    let ack_reqs: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/services/collector/ack")
        .collect();
    assert!(event_reqs.len() >= 5 && !ack_reqs.is_empty());
    assert!(event_reqs[1..]
        .iter()
        .all(|r| r.cookie(STICKY_COOKIE) == Some("idx-a")));
    assert!(ack_reqs
        .iter()
        .all(|r| r.cookie(STICKY_COOKIE) == Some("idx-a")));
    let channels: HashSet<_> = requests.iter().filter_map(|r| r.channel.clone()).collect();
    assert_eq!(
        channels.len(),
        1,
        "one channel per indexer on every request"
    );
    server.stop().await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_indexer_acks_counts_200_as_delivered() {
    let sink = HecSink::start(SinkOptions {
        acks: false,
        ..SinkOptions::default()
    })
    .await;
    let (_dir, mut server) = start_forwarding(&splunk_output(&[sink.url()], "")).await;
    let lines: Vec<String> = sample_lines().into_iter().take(30).collect();
    post_raw(&server, &server.http1(), &lines).await;
    wait_delivered(&server, &sink, 30, WAIT).await;
    assert_eq!(
        sink.count("/services/collector/ack", None),
        0,
        "nothing to poll"
    );
    server
        .assert_metrics_contain("sluice_output_ack_unavailable_total{output=\"splunk\"}")
        .await;
    server.stop().await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_per_indexer_survives_a_restart() {
    let sink = HecSink::start(SinkOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for round in 0..2 {
        let mut server = start(dir.path(), &splunk_output(&[sink.url()], "")).await;
        post_raw(
            &server,
            &server.http1(),
            &[format!("{{\"round\":{round}}}")],
        )
        .await;
        assert!(
            sink.wait_for(WAIT, |s| s.acknowledged().len() > round)
                .await
        );
        server.wait_queue_empty().await;
        server.stop().await;
        seen.extend(sink.requests().iter().filter_map(|r| r.channel.clone()));
    }
    let channels: HashSet<String> = seen.into_iter().collect();
    assert_eq!(channels.len(), 1, "{channels:?}");
    sink.stop().await;
}

/// The splunk output over real TLS: `ca_file`, no CA (system roots refuse
/// the sink's private CA), `insecure_skip_verify`, and mTLS with
/// `client_cert`/`client_key` against an indexer that requires one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_splunk_output_speaks_tls_with_ca_file_client_certs_and_skip_verify() {
    let plain = HecSink::start(SinkOptions {
        tls: true,
        ..SinkOptions::default()
    })
    .await;
    let mutual = HecSink::start(SinkOptions {
        tls: true,
        require_client_cert: true,
        ..SinkOptions::default()
    })
    .await;
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = mutual.client_identity(certs.path());
    let lines: Vec<String> = sample_lines().into_iter().take(20).collect();
    let cases: Vec<(&str, &HecSink, String, bool)> = vec![
        (
            "ca_file",
            &plain,
            format!("ca_file = {:?}", plain.ca_pem().unwrap()),
            true,
        ),
        ("system roots", &plain, String::new(), false),
        (
            "insecure_skip_verify",
            &plain,
            "insecure_skip_verify = true".to_string(),
            true,
        ),
        (
            "mTLS",
            &mutual,
            format!(
                "ca_file = {:?}\nclient_cert = {:?}\nclient_key = {:?}",
                mutual.ca_pem().unwrap(),
                cert,
                key
            ),
            true,
        ),
        (
            "mTLS without a client certificate",
            &mutual,
            format!("ca_file = {:?}", mutual.ca_pem().unwrap()),
            false,
        ),
    ];
    for (name, sink, extra, delivers) in cases {
        let before = sink.acknowledged().len();
        let (_dir, mut server) = start_forwarding(&splunk_output(&[sink.url()], &extra)).await;
        post_raw(&server, &server.http1(), &lines).await;
        if delivers {
            assert!(
                sink.wait_for(WAIT, |s| s.acknowledged().len() >= before + 20)
                    .await,
                "{name}: not delivered"
            );
            server.wait_queue_empty().await;
        } else {
            // The handshake fails: retried, never delivered, still queued.
            let m = || async { server.metrics().await };
            let deadline = std::time::Instant::now() + WAIT;
            while !m().await.contains("sluice_output_retries_total") {
                assert!(std::time::Instant::now() < deadline, "{name}: no retry");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(sink.acknowledged().len(), before, "{name}: delivered");
            assert_eq!(server.queue_stats().events, 20, "{name}: kept");
        }
        server.stop().await;
    }
    plain.stop().await;
    mutual.stop().await;
}

/// The `sluice:stats` event reaches an indexer every `stats_interval`,
/// outside the queue, to the output's index, with the keys the Splunk app
/// reads; data events keep flowing beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_events_reach_the_indexers_outside_the_queue() {
    let sink = HecSink::start(SinkOptions::default()).await;
    let outputs = splunk_output(&[sink.url()], "stats_interval = \"1s\"\nindex = \"ops\"");
    let (_dir, mut server) = start_forwarding(&outputs).await;
    let lines: Vec<String> = sample_lines().into_iter().take(50).collect();
    let client = server.http2();
    post_raw(&server, &client, &lines).await;
    let stats = |s: &HecSink| -> Vec<IndexedEvent> {
        s.indexed()
            .into_iter()
            .filter(|e| e.sourcetype.as_deref() == Some("sluice:stats"))
            .collect()
    };
    let done = sink
        .wait_for(WAIT, |s| {
            stats(s)
                .iter()
                .any(|e| e.event["events_out"].as_u64() == Some(50))
        })
        .await;
    assert!(
        done,
        "no stats event counting the 50 events: {:?}",
        stats(&sink)
    );
    let last = stats(&sink).pop().unwrap();
    assert_eq!(last.index.as_deref(), Some("ops"));
    assert_eq!(last.source.as_deref(), Some("sluice"));
    let e = &last.event;
    assert_eq!(e["output"], "splunk");
    assert!(e["events_in"].as_u64() >= Some(50), "{e}");
    assert_eq!(e["queue_records"], 0, "{e}");
    assert_eq!(e["indexers"][0]["url"], sink.url().trim_end_matches('/'));
    assert_eq!(e["indexers"][0]["up"], true);
    // Only the 50 samples went through the queue.
    let data = sink.indexed().len() - stats(&sink).len();
    assert_eq!(data, 50);
    server.stop().await;
}
