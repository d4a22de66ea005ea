//! Operating a running node: hot reload (in-process, `sluice reload`,
//! SIGHUP), `sluice drain` and `sluice health`.

use crate::support::hec_sink::*;
use crate::support::process::*;
use crate::support::*;
use std::path::Path;

const FRESH_TOKEN: &str = "11111111-2222-4333-8444-fresh0000001";

async fn raw_status(
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> Result<(u16, serde_json::Value), reqwest::Error> {
    let resp = client
        .post(format!("{base}{RAW}"))
        .header("Authorization", format!("Splunk {token}"))
        .body("{\"reload\":true}")
        .send()
        .await?;
    Ok(answer(resp).await)
}

fn rewrite(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "config lacks {from:?}");
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

const PLAIN: &str = "[[tokens]]\nname = \"plain\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_tokens_and_certificate_and_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path()).await;
    let cfg = dir.path().join("sluice.toml");
    let old_ca = server.ca.clone();
    let old = client(&old_ca, true);
    assert_eq!(raw_status(&old, &server.base, TOKEN).await.unwrap().0, 200);

    // A new certificate from another CA, named in the config; "plain" is
    // disabled and a token is added.
    let other = tempfile::tempdir().unwrap();
    let new_tls = sluice::bootstrap::ensure_tls(other.path(), [127, 0, 0, 1].into()).unwrap();
    rewrite(
        &cfg,
        "workers = 2\n",
        &format!(
            "workers = 2\ntls_cert = {:?}\ntls_key = {:?}\n",
            new_tls.cert.display().to_string(),
            new_tls.key.display().to_string()
        ),
    );
    rewrite(
        &cfg,
        PLAIN,
        &format!(
            "[[tokens]]\nname = \"fresh\"\ntoken = \"{FRESH_TOKEN}\"\n\n{PLAIN}disabled = true\n"
        ),
    );
    let running = server.running.as_ref().unwrap();
    let r = running.reload("test").await.expect("reload");
    assert_eq!(r.tokens_added, ["fresh"]);
    assert_eq!(r.tokens_changed, ["plain"]);
    assert!(r.tokens_removed.is_empty());
    assert!(r.tls_reloaded);
    assert!(r.restart_needed.is_empty(), "{:?}", r.restart_needed);

    // The open HTTP/2 connection (it trusts only the old CA, so it cannot be
    // a new one) carries on, under the new tokens.
    assert_eq!(
        raw_status(&old, &server.base, FRESH_TOKEN).await.unwrap().0,
        200
    );
    let (status, body) = raw_status(&old, &server.base, TOKEN).await.unwrap();
    assert_eq!((status, body), (403, hec("Token disabled", 1)));
    // New handshakes get the new certificate.
    assert!(
        raw_status(&client(&old_ca, true), &server.base, FRESH_TOKEN)
            .await
            .is_err(),
        "a new connection still got the old certificate"
    );
    let fresh = client(&new_tls.ca, false);
    assert_eq!(
        raw_status(&fresh, &server.base, FRESH_TOKEN)
            .await
            .unwrap()
            .0,
        200
    );
    server
        .assert_metrics_contain("sluice_config_last_reload_successful 1")
        .await;

    // A bad config changes nothing and says why.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        good.replace(
            "[[tokens]]\nname = \"fresh\"",
            "[[tokens]]\nname = \"fresh\"\nack_max = 5",
        ),
    )
    .unwrap();
    let e = running.reload("test").await.unwrap_err().to_string();
    assert!(
        e.contains("tokens[0].ack_max") && e.contains("sluice.toml"),
        "{e}"
    );
    server
        .assert_metrics_contain("sluice_config_last_reload_successful 0")
        .await;
    assert_eq!(
        raw_status(&fresh, &server.base, FRESH_TOKEN)
            .await
            .unwrap()
            .0,
        200
    );

    // Output and listener changes are named, not applied.
    std::fs::write(
        &cfg,
        good.replace("name = \"unreachable\"", "name = \"elsewhere\"")
            .replace("shutdown_grace = \"300ms\"", "shutdown_grace = \"1s\""),
    )
    .unwrap();
    let r = running.reload("test").await.expect("reload");
    assert_eq!(r.restart_needed, ["outputs", "server.shutdown_grace"]);
    server
        .assert_metrics_contain("sluice_config_last_reload_successful 1")
        .await;
    // Everything accepted is still queued: the reload lost nothing.
    assert_eq!(server.queue_stats().events, 4);
    server.stop().await;
}

/// Rollups count passes at the final pass systems in force at start: a
/// resend must rebuild the rollups its first send had. A reload that
/// changes them says so; enrichment takes them at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_pass_change_needs_a_restart_for_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), "", "").replace(
        "retry_max = \"5s\"\n",
        "retry_max = \"5s\"\nrollups = true\n",
    );
    let mut server = TestServer::start_text(dir.path(), &text).await;
    let cfg = dir.path().join("sluice.toml");
    let running = server.running.as_ref().unwrap();
    let r = running.reload("test").await.expect("reload");
    assert!(r.restart_needed.is_empty(), "{:?}", r.restart_needed);
    rewrite(
        &cfg,
        "[log]",
        "[enrich]\nfinal_pass_system = \"dosd\"\n\n[log]",
    );
    let r = running.reload("test").await.expect("reload");
    assert_eq!(r.restart_needed, ["enrich.final_pass_system (for rollups)"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_sluice_reload_put_a_new_token_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(dir.path(), "sluice.toml", &json_log_config(dir.path(), &[]));
    let (mut proc, hec_addr, metrics_addr) =
        tokio::task::block_in_place(|| Sluice::run_listening(&cfg));
    let base = format!("https://127.0.0.1:{}", hec_addr.port());
    let c = client(&dir.path().join("tls/ca.pem"), false);
    assert_eq!(raw_status(&c, &base, FRESH_TOKEN).await.unwrap().0, 403);

    rewrite(
        &cfg,
        PLAIN,
        &format!("[[tokens]]\nname = \"fresh\"\ntoken = \"{FRESH_TOKEN}\"\n\n{PLAIN}"),
    );
    proc.signal("-HUP");
    tokio::task::block_in_place(|| {
        proc.wait_for_stderr("reload log line", |l| {
            l.contains("configuration reloaded") && l.contains("SIGHUP")
        })
    });
    assert_eq!(raw_status(&c, &base, FRESH_TOKEN).await.unwrap().0, 200);

    // `sluice reload` asks the same node over its admin socket.
    rewrite(
        &cfg,
        "name = \"fresh\"",
        "name = \"fresh\"\ndisabled = true",
    );
    let out = sluice_command()
        .args(["reload", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["tokens_changed"], serde_json::json!(["fresh"]));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(FRESH_TOKEN),
        "token values never leave the node"
    );
    assert_eq!(raw_status(&c, &base, FRESH_TOKEN).await.unwrap().0, 403);

    // A refused reload: the command fails naming the problem, the node logs it.
    rewrite(&cfg, "[server]", "[server]\nno_such_key = 1");
    let out = sluice_command()
        .args(["reload", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    // The CLI itself reads the file first, so it is the CLI that names the key.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no_such_key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    proc.signal("-HUP");
    tokio::task::block_in_place(|| {
        proc.wait_for_stderr("refused reload log line", |l| {
            l.contains("configuration not reloaded") && l.contains("no_such_key")
        })
    });
    let metrics = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sluice_config_last_reload_successful 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_config_last_reload_success_timestamp_seconds "),
        "{metrics}"
    );
    let status = tokio::task::block_in_place(|| proc.terminate());
    assert!(status.success());
}

fn cli(args: &[&str], config: Option<&Path>) -> std::process::Output {
    let mut cmd = sluice_command();
    cmd.args(args);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_the_queue_then_the_node_exits_0_and_health_follows() {
    let sink = HecSink::start(SinkOptions::default()).await;
    sink.faults()
        .fail_until_cleared(Target::All, Fault::busy(1));
    let dir = tempfile::tempdir().unwrap();
    let outputs = splunk_output(&[sink.url()], "max_events = 50");
    let cfg = write_file(
        dir.path(),
        "sluice.toml",
        &with_outputs(&json_log_config(dir.path(), &[]), &outputs),
    );
    let (mut proc, hec_addr, _) = tokio::task::block_in_place(|| Sluice::run_listening(&cfg));
    let base = format!("https://127.0.0.1:{}", hec_addr.port());
    let ca = dir.path().join("tls/ca.pem");
    let c = client(&ca, false);

    // Healthy: without a CA (not verified, like a balancer's check) and with the right one.
    let out = cli(&["health", "--url", &base], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("code 17"));
    let out = cli(
        &["health", "--url", &base, "--ca", ca.to_str().unwrap()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = tempfile::tempdir().unwrap();
    let wrong = sluice::bootstrap::ensure_tls(other.path(), [127, 0, 0, 1].into()).unwrap();
    let out = cli(
        &["health", "--url", &base, "--ca", wrong.ca.to_str().unwrap()],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a certificate from another CA must fail the check"
    );

    let lines: Vec<String> = (0..120).map(|i| format!("{{\"drain\":{i}}}")).collect();
    let resp = c
        .post(format!("{base}{RAW}"))
        .header("Authorization", format!("Splunk {TOKEN}"))
        .body(lines.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // An ack token's batch: its ack must still be answered while draining.
    let acked = c
        .post(format!("{base}{RAW}?channel={CHANNEL}"))
        .header("Authorization", format!("Splunk {ACK_TOKEN}"))
        .body("{\"acked\":1}")
        .send()
        .await
        .unwrap();
    let (status, body) = answer(acked).await;
    assert_eq!(status, 200, "{body}");
    let ack_id = body["ackId"].as_u64().unwrap();

    // The indexer refuses everything: the drain cannot finish in time.
    let out = tokio::task::block_in_place(|| cli(&["drain", "--timeout", "2s"], Some(&cfg)));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The node stays up, draining: /health and new requests answer 503 code 23.
    let (status, body) = answer(c.get(format!("{base}{HEALTH}")).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_u64()), (503, Some(23)));
    let (status, body) = raw_status(&c, &base, TOKEN).await.unwrap();
    assert_eq!((status, body["code"].as_u64()), (503, Some(23)));
    let out = cli(&["health", "--url", &base], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("code 23"));
    let polled = c
        .post(format!("{base}{ACK}?channel={CHANNEL}"))
        .header("Authorization", format!("Splunk {ACK_TOKEN}"))
        .json(&serde_json::json!({ "acks": [ack_id] }))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(polled).await;
    assert_eq!(status, 200, "acks are answered while draining: {body}");
    assert_eq!(body["acks"][ack_id.to_string()], true);

    // The indexer is back: the queue empties, the node exits 0, and so does drain.
    sink.faults().clear();
    let out = tokio::task::block_in_place(|| cli(&["drain", "--timeout", "120s"], Some(&cfg)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = tokio::task::block_in_place(|| proc.wait_exit(EXIT_TIMEOUT));
    assert!(status.success(), "the drained node exits 0: {status}");
    let got: std::collections::HashSet<String> = sink
        .acknowledged()
        .iter()
        .map(|e| e.event.as_str().unwrap_or_default().to_string())
        .collect();
    for l in &lines {
        assert!(
            got.contains(l),
            "{l} was not delivered before the node stopped"
        );
    }
    // Nothing answers any more.
    let out = cli(&["health", "--url", &base], None);
    assert_eq!(out.status.code(), Some(1));
    sink.stop().await;
}
