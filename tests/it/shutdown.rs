//! Shutdown: the drain phase (503 code 23, connection close), SIGTERM on the
//! real binary, what a finished shutdown leaves behind, and SIGHUP (asset
//! table reload) on the real binary.

use crate::support::process::*;
use crate::support::*;

use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

fn shutting_down() -> Value {
    hec("Server is shutting down", 23)
}

/// Sends `n` accepted requests alternating `/event` and gzip `/raw` over the
/// given clients; returns the events.
async fn accept_some(clients: &[reqwest::Client], base: &str, tag: &str, n: usize) -> Vec<String> {
    let mut sent = Vec::new();
    for i in 0..n {
        let client = &clients[i % clients.len()];
        let ev: Vec<String> = (0..3).map(|e| format!("{tag}-{i}-{e}")).collect();
        let got = if i % 2 == 0 {
            let url = format!("{base}{EVENT}");
            post_answer(client, &url, TOKEN, &event_body(&ev), false).await
        } else {
            let url = format!("{base}{RAW}");
            post_answer(client, &url, TOKEN, &raw_body(&ev), true).await
        };
        assert_eq!(got, (200, success()), "request {i}");
        sent.extend(ev);
    }
    sent
}

fn connection_header(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("connection")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_drains_with_503_code_23_and_keeps_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_replacing(
        dir.path(),
        &[("shutdown_grace = \"300ms\"", "shutdown_grace = \"2s\"")],
    );
    let mut server = TestServer::start_text(dir.path(), &text).await;
    let h1 = server.http1();
    let h2 = server.http2();
    let sent = accept_some(&[h1.clone(), h2.clone()], &server.base, "drain", 6).await;
    let before = server.queue_stats();
    assert_eq!(before.events, sent.len() as u64);

    let running = server.running.take().expect("running");
    let shutdown = tokio::spawn(running.shutdown());

    // Poll /health until the drain answer shows up (bounded, no timing assertion).
    let mut drained = None;
    for _ in 0..400 {
        let resp = h1
            .get(server.url(HEALTH))
            .send()
            .await
            .expect("the listener stays open during the grace period");
        let close = connection_header(&resp);
        match answer(resp).await {
            (503, body) => {
                drained = Some((body, close));
                break;
            }
            (200, body) => assert_eq!(body, healthy()),
            other => panic!("unexpected health answer {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (body, close) = drained.expect("/health never answered 503 during the drain");
    assert_eq!(body, shutting_down());
    assert_eq!(
        close.as_deref(),
        Some("close"),
        "HTTP/1.1 drain answer closes"
    );

    let resp = h1
        .get(server.url("/services/collector/health/1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(connection_header(&resp).as_deref(), Some("close"));
    assert_eq!(answer(resp).await, (503, shutting_down()));

    // New data is refused with the same code, over both protocols.
    let resp = post(
        &h1,
        &server.url(EVENT),
        TOKEN,
        br#"{"event":"late"}"#,
        false,
    )
    .await
    .unwrap();
    assert_eq!(connection_header(&resp).as_deref(), Some("close"));
    assert_eq!(answer(resp).await, (503, shutting_down()));
    let got = post_answer(&h1, &server.url(RAW), TOKEN, b"late raw\n", true).await;
    assert_eq!(got, (503, shutting_down()));
    let event = server.url(EVENT);
    let got = post_answer(&h2, &event, TOKEN, br#"{"event":"late h2"}"#, false).await;
    assert_eq!(got, (503, shutting_down()));
    // Close our connections so the graceful stop does not wait for them.
    drop(h1);
    drop(h2);

    shutdown
        .await
        .expect("shutdown task")
        .expect("clean shutdown");
    let queue = open_queue(dir.path());
    let after = queue.stats();
    assert_eq!(
        (after.records, after.events, after.bytes),
        (before.records, before.events, before.bytes)
    );
    let queued: HashSet<String> = queued_events(&queue).into_iter().collect();
    assert_eq!(queued, sent.into_iter().collect::<HashSet<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_0_and_keeps_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "sluice.toml",
        &json_log_config(
            dir.path(),
            &[("shutdown_grace = \"300ms\"", "shutdown_grace = \"1s\"")],
        ),
    );
    let (mut proc, hec, _) = tokio::task::block_in_place(|| Sluice::run_listening(&config));
    let ca = dir.path().join("tls/ca.pem");
    let base = format!("https://127.0.0.1:{}", hec.port());
    let sent = {
        let clients = [
            client_with_timeout(&ca, true, Duration::from_secs(20)),
            client_with_timeout(&ca, false, Duration::from_secs(20)),
        ];
        accept_some(&clients, &base, "sigterm", 10).await
        // Clients dropped here: no idle connection holds up the stop.
    };
    let status = tokio::task::block_in_place(|| proc.terminate());
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}; stderr:\n{}",
        proc.stderr.text()
    );
    let log = proc.stderr.text();
    assert!(log.contains("draining"), "{log}");
    assert!(log.contains("queue flushed"), "{log}");

    let queue = open_queue(dir.path());
    let stats = queue.stats();
    assert_eq!(stats.records, 10);
    assert_eq!(stats.events, sent.len() as u64);
    let queued: HashSet<String> = queued_events(&queue).into_iter().collect();
    assert_eq!(queued, sent.into_iter().collect::<HashSet<_>>());
}

/// BUG (src/app.rs `Running::shutdown`): it returns while the queue is still
/// open. actix-server workers report "stopped" before they drop their app data
/// (which holds `Arc<IngestState>` → `Arc<Queue>` → the sled `Db` and its file
/// lock), and the ack sweeper is `abort()`ed but not awaited. So opening the
/// same data dir right after `shutdown()` (a restart in one process, as
/// `TestServer::stop` + `TestServer::start` do) fails with `Locked` for a few
/// milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_the_queue_store() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let mut server = TestServer::start(dir.path()).await;
        accept_some(&[server.http1()], &server.base, "lock", 1).await;
        server.stop().await;
        match sluice::queue::Queue::open(&dir.path().join("queue"), open_limits()) {
            Ok(q) => assert_eq!(q.stats().records, 1),
            Err(e) => panic!(
                "round {round}: the queue is still in use after Running::shutdown() returned: {e}"
            ),
        }
    }
}

/// Regression (fixed in 65811af): graceful shutdown waited for an idle HTTP/2
/// connection until the hard-coded 30 s actix `shutdown_timeout`, whatever
/// `shutdown_grace` said (actix sends no GOAWAY, and `force_close()` only
/// affects HTTP/1.1), so a Logpush-like client keeping its HTTP/2 connection
/// open held `sluice` for grace + 30 s after SIGTERM. The bound below (15 s
/// for a 300 ms grace) is a hang guard, not a performance check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_an_idle_http2_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path()).await;
    let h2 = server.http2();
    accept_some(std::slice::from_ref(&h2), &server.base, "idle-h2", 1).await;
    let running = server.running.take().expect("running");
    let finished = tokio::time::timeout(Duration::from_secs(15), running.shutdown()).await;
    drop(h2);
    finished
        .expect("graceful shutdown (grace 300 ms) still waiting after 15 s for an idle HTTP/2 connection")
        .expect("clean shutdown");
}

#[test]
fn sighup_reloads_the_asset_table_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let assets = dir.path().join("assets.csv");
    std::fs::write(&assets, "cidr,site\n203.0.113.0/24,fra\n").unwrap();
    let text = format!(
        "{}\n[enrich]\nassets = {:?}\n",
        json_log_config(dir.path(), &[]),
        assets.display().to_string()
    );
    let config = write_file(dir.path(), "sluice.toml", &text);
    let mut sluice = Sluice::run(&config);
    sluice.wait_listening();
    std::fs::write(
        &assets,
        "cidr,site\n203.0.113.0/24,fra\n2001:db8::/32,ams\n",
    )
    .unwrap();
    sluice.signal("-HUP");
    let line = sluice.wait_for_stderr("reload log line", |l| l.contains("configuration reloaded"));
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["fields"]["asset_networks"], 2, "{line}");
    std::fs::write(&assets, "cidr,site\n10.0.0.1/8,bad\n").unwrap();
    sluice.signal("-HUP");
    let line = sluice.wait_for_stderr("refusal log line", |l| l.contains("not reloaded"));
    assert!(
        line.contains("line 2") && line.contains("host bits"),
        "{line}"
    );
    assert!(sluice.exited().is_none(), "still serving");
    assert!(sluice.terminate().success());
}

/// Finding 10 of the hardening issue: the handlers were installed after the
/// "listening" line, so a signal in the first moments ended the process with
/// no drain and no flush. Signals right at start, repeatedly: SIGHUP and
/// SIGTERM as soon as the first log line appears (on old code that line came
/// before the handlers), and SIGTERM as soon as it listens.
#[test]
fn signals_right_at_start_drain_and_flush() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(dir.path(), "sluice.toml", &json_log_config(dir.path(), &[]));
    for round in 0..6 {
        let mut sluice = Sluice::run(&config);
        if round % 3 == 2 {
            sluice.wait_listening();
        } else {
            sluice.wait_for_stderr("a first log line", |_| true);
            if round % 3 == 1 {
                sluice.signal("-HUP");
            }
        }
        sluice.signal("-TERM");
        let status = sluice.wait_exit(EXIT_TIMEOUT);
        let log = sluice.stderr.text();
        assert!(
            status.success(),
            "round {round}: exit {status} after an early signal; stderr:\n{log}"
        );
        assert!(log.contains("queue flushed"), "round {round}: {log}");
    }
}
