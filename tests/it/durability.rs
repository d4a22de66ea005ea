//! Durability: restart, kill -9, and the watermarks that refuse new data
//! without losing what was accepted.

use crate::support::process::*;
use crate::support::*;

use serde_json::Value;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn busy() -> Value {
    hec("Server is busy", 9)
}

fn queues_full() -> Value {
    hec("HEC is unhealthy, queues are full", 18)
}

/// Sends `n` requests alternating `/event` (identity, 2 events) and gzip
/// `/raw` (3 lines) over HTTP/1.1 and HTTP/2; all must be accepted.
/// Returns the events sent.
async fn send_mix(server: &TestServer, tag: &str, n: usize) -> Vec<String> {
    let clients = [server.http1(), server.http2()];
    let mut sent = Vec::new();
    for i in 0..n {
        let client = &clients[i % 2];
        let (path, events, body, gz) = if i % 2 == 0 {
            let ev: Vec<String> = (0..2).map(|e| format!("{tag}-event-{i}-{e}")).collect();
            let body = event_body(&ev);
            (EVENT, ev, body, false)
        } else {
            let ev: Vec<String> = (0..3).map(|e| format!("{tag}-raw-{i}-{e}")).collect();
            let body = raw_body(&ev);
            (RAW, ev, body, true)
        };
        let got = post_answer(client, &server.url(path), TOKEN, &body, gz).await;
        assert_eq!(got, (200, success()), "request {i}");
        sent.extend(events);
    }
    sent
}

fn assert_all_queued(queued: &HashSet<String>, sent: &[String]) {
    let missing: Vec<&String> = sent.iter().filter(|e| !queued.contains(*e)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} accepted events missing from the queue, e.g. {:?}",
        missing.len(),
        sent.len(),
        &missing[..missing.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path()).await;
    let sent = send_mix(&server, "restart", 20).await;
    let before = server.queue_stats();
    assert_eq!(before.records, 20);
    assert_eq!(before.events, sent.len() as u64);
    server.stop().await;

    let mut again = TestServer::start(dir.path()).await;
    let after = again.queue_stats();
    assert_eq!(
        (after.records, after.events, after.bytes),
        (before.records, before.events, before.bytes)
    );
    // New records go after the old ones, still counted on top.
    let more = send_mix(&again, "second", 2).await;
    assert_eq!(
        again.queue_stats().events,
        before.events + more.len() as u64
    );
    again.stop().await;

    let queue = open_queue(dir.path());
    let ids: Vec<u64> = queue.ids_from(0).collect();
    assert_eq!(
        ids,
        (0..22).collect::<Vec<_>>(),
        "FIFO ids survive restarts"
    );
    let queued = queued_event_set(&queue);
    assert_all_queued(&queued, &sent);
    assert_all_queued(&queued, &more);
}

/// One client loop of the crash test: sends small unique requests until
/// `stop`, returns the events of the requests that got a 200.
async fn crash_client(
    client: reqwest::Client,
    base: String,
    tag: String,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> Vec<String> {
    let mut ok = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let (path, events, body, gz) = match n % 3 {
            0 => {
                let ev: Vec<String> = (0..2).map(|e| format!("{tag}-n{n}-e{e}")).collect();
                let b = event_body(&ev);
                (EVENT, ev, b, false)
            }
            1 => {
                let ev: Vec<String> = (0..3).map(|e| format!("{tag}-n{n}-r{e}")).collect();
                let b = raw_body(&ev);
                (RAW, ev, b, false)
            }
            _ => {
                let ev: Vec<String> = (0..3).map(|e| format!("{tag}-n{n}-g{e}")).collect();
                let b = raw_body(&ev);
                (RAW, ev, b, true)
            }
        };
        match post(&client, &format!("{base}{path}"), TOKEN, &body, gz).await {
            Ok(resp) => {
                let (status, answer_body) = answer(resp).await;
                if status == 200 {
                    assert_eq!(answer_body, success());
                    acked.fetch_add(events.len() as u64, Ordering::SeqCst);
                    ok.extend(events);
                } else {
                    // Nothing but success is expected before the kill.
                    panic!("unexpected answer {status} {answer_body}");
                }
            }
            // Connection reset/refused around the kill: not acknowledged.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(dir.path(), "sluice.toml", &json_log_config(dir.path(), &[]));
    let ca = dir.path().join("tls/ca.pem");
    let mut all_acked: Vec<String> = Vec::new();
    for cycle in 0..3 {
        let (mut proc, hec, _) = tokio::task::block_in_place(|| Sluice::run_listening(&config));
        let base = format!("https://127.0.0.1:{}", hec.port());
        if cycle > 0 {
            // Recovery after the previous crash: the reopened queue counts
            // at least every acknowledged event.
            let open = proc
                .stderr
                .text()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| v["fields"]["message"] == "queue open")
                .expect("\"queue open\" log line");
            let events = open["fields"]["events"].as_u64().expect("events field");
            assert!(events >= all_acked.len() as u64, "{open}");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for t in 0..4 {
            let client = client_with_timeout(&ca, t % 2 == 0, Duration::from_secs(20));
            tasks.push(tokio::spawn(crash_client(
                client,
                base.clone(),
                format!("crash-c{cycle}-t{t}"),
                Arc::clone(&stop),
                Arc::clone(&acked),
            )));
        }
        // Let load run for about 1.5 s and until some requests were acknowledged
        // (bounded: kill anyway after 20 s).
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let enough = acked.load(Ordering::SeqCst) >= 30;
            let elapsed = started.elapsed();
            if (enough && elapsed >= Duration::from_millis(1500))
                || elapsed >= Duration::from_secs(20)
            {
                break;
            }
        }
        let status = tokio::task::block_in_place(|| proc.kill9());
        assert!(!status.success(), "killed, not exited: {status}");
        stop.store(true, Ordering::SeqCst);
        let mut cycle_acked = Vec::new();
        for t in tasks {
            cycle_acked.extend(t.await.expect("client task"));
        }
        assert!(
            !cycle_acked.is_empty(),
            "cycle {cycle}: no request was acknowledged before the kill; stderr:\n{}",
            proc.stderr.text()
        );
        println!(
            "cycle {cycle}: {} events acknowledged before kill -9",
            cycle_acked.len()
        );
        all_acked.extend(cycle_acked);

        // The process is dead: read its queue directly.
        let queue = tokio::task::block_in_place(|| open_queue(dir.path()));
        let queued = queued_events(&queue);
        let stats = queue.stats();
        assert_eq!(stats.events, queued.len() as u64, "stats match the records");
        assert!(stats.events >= all_acked.len() as u64);
        let set: HashSet<String> = queued.into_iter().collect();
        assert_all_queued(&set, &all_acked);
        println!(
            "cycle {cycle}: {} events queued in all, {} acknowledged in all",
            set.len(),
            all_acked.len()
        );
        drop(queue);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_disk_refuses_with_503_and_keeps_earlier_records() {
    let huge = (
        "min_free_bytes = 0",
        "min_free_bytes = 18446744073709551615",
    );

    // A fresh store under the free-space floor takes nothing.
    let dir = tempfile::tempdir().unwrap();
    let mut server =
        TestServer::start_text(dir.path(), &config_replacing(dir.path(), &[huge])).await;
    assert_refuses_everything(&server).await;
    let s = server.queue_stats();
    assert_eq!((s.records, s.events, s.bytes), (0, 0, 0));
    server.stop().await;

    // A store with accepted data keeps all of it when the floor is hit.
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path()).await;
    let sent = send_mix(&server, "before-full", 6).await;
    let before = server.queue_stats();
    server.stop().await;

    let mut server =
        TestServer::start_text(dir.path(), &config_replacing(dir.path(), &[huge])).await;
    assert_refuses_everything(&server).await;
    let after = server.queue_stats();
    assert_eq!(
        (after.records, after.events, after.bytes),
        (before.records, before.events, before.bytes)
    );
    server.stop().await;
    let queue = open_queue(dir.path());
    let queued = queued_events(&queue);
    assert_eq!(queued.len(), sent.len());
    assert_all_queued(&queued.into_iter().collect(), &sent);
}

async fn assert_refuses_everything(server: &TestServer) {
    for client in [server.http1(), server.http2()] {
        let (event, raw) = (server.url(EVENT), server.url(RAW));
        let got = post_answer(&client, &event, TOKEN, br#"{"event":"x"}"#, false).await;
        assert_eq!(got, (503, busy()), "/event");
        let got = post_answer(&client, &raw, TOKEN, b"a line\n", false).await;
        assert_eq!(got, (503, busy()), "/raw");
        let got = post_answer(&client, &raw, TOKEN, b"a line\n", true).await;
        assert_eq!(got, (503, busy()), "gzip /raw");
        let resp = client.get(server.url(HEALTH)).send().await.unwrap();
        assert_eq!(answer(resp).await, (503, queues_full()), "/health");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_bytes_refuses_with_503_and_counts_every_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_with(dir.path(), "", "max_bytes = 20000").await;
    let client = server.http2();
    let resp = client.get(server.url(HEALTH)).send().await.unwrap();
    assert_eq!(answer(resp).await, (200, healthy()));
    let line = "x".repeat(200);
    let mut accepted_requests = 0u64;
    let mut accepted_events = 0u64;
    let mut refused = false;
    // ~1 KB decoded per request: 20,000 bytes fill within ~25 requests.
    for i in 0..200u64 {
        let events: Vec<String> = (0..5).map(|e| format!("{i}-{e}-{line}")).collect();
        let (path, body) = if i % 2 == 0 {
            (RAW, raw_body(&events))
        } else {
            (EVENT, event_body(&events))
        };
        match post_answer(&client, &server.url(path), TOKEN, &body, i % 4 == 1).await {
            (200, b) => {
                assert_eq!(b, success());
                accepted_requests += 1;
                accepted_events += events.len() as u64;
            }
            (503, b) => {
                assert_eq!(b, busy());
                refused = true;
                break;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(refused, "max_bytes = 20000 never refused a request");
    assert!(accepted_requests > 0);
    let resp = client.get(server.url(HEALTH)).send().await.unwrap();
    assert_eq!(answer(resp).await, (503, queues_full()));
    // Still full: nothing is removed without outputs.
    let got = post_answer(&client, &server.url(RAW), TOKEN, b"one more\n", false).await;
    assert_eq!(got, (503, busy()));
    let s = server.queue_stats();
    assert_eq!(s.records, accepted_requests);
    assert_eq!(s.events, accepted_events);
    assert!(s.bytes >= 20000, "refused below max_bytes: {s:?}");
    // Close the idle HTTP/2 connection first (it used to hold a graceful
    // stop for 30 s; see the shutdown module).
    drop(client);
    server.stop().await;
}
