//! `sluice queue dead …` and `queue export|import`, offline and through a
//! running Sluice's admin API.

use crate::support::process::*;
use crate::support::*;
use serde_json::Value;
use sluice::queue::DeadLetter;
use std::path::Path;

fn cli(args: &[&str], config: &Path) -> (bool, String, String) {
    let mut cmd = sluice_command();
    cmd.args(args).arg("--config").arg(config);
    let (status, out, err) = run_to_end(cmd);
    (status.success(), out, err)
}

fn letter(output: &str, n: u64) -> DeadLetter {
    DeadLetter {
        output: output.into(),
        record: 3,
        event_number: n,
        reason: "400 {\"text\":\"Invalid data format\",\"code\":6,\"invalid-event-number\":0}"
            .into(),
        time_ms: 1,
        event: format!("{{\"time\":1,\"host\":\"h\",\"event\":\"dead {n}\"}}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_offline_and_online() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(dir.path(), "sluice.toml", &config_text(dir.path(), "", ""));
    {
        let q = open_queue(dir.path());
        for n in 0..3 {
            q.dead_letter(&letter("unreachable", n)).unwrap();
        }
        q.flush().unwrap();
    }
    // Offline: the CLI opens the store.
    let (ok, out, err) = tokio::task::block_in_place(|| cli(&["queue", "dead", "list"], &config));
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out
        .lines()
        .all(|l| l.contains("unreachable") && l.contains("invalid-event-number")));
    let (ok, out, _) =
        tokio::task::block_in_place(|| cli(&["queue", "dead", "show", "--seq", "1"], &config));
    assert!(ok);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown[0]["seq"], 1);
    assert_eq!(
        shown[0]["event"],
        "{\"time\":1,\"host\":\"h\",\"event\":\"dead 1\"}"
    );
    let (ok, out, _) =
        tokio::task::block_in_place(|| cli(&["queue", "dead", "purge", "--seq", "0"], &config));
    assert!(ok && out.contains("purged 1"), "{out}");

    // Online: a running Sluice holds the store; the CLI asks its admin API.
    let mut server =
        TestServer::start_text(dir.path(), &std::fs::read_to_string(&config).unwrap()).await;
    let (ok, out, err) =
        tokio::task::block_in_place(|| cli(&["queue", "dead", "list", "--json"], &config));
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    server
        .assert_metrics_contain("sluice_dead_letters{output=\"unreachable\"} 2")
        .await;
    let (ok, out, err) = tokio::task::block_in_place(|| {
        cli(
            &["queue", "dead", "replay", "--output", "unreachable"],
            &config,
        )
    });
    assert!(ok && out.contains("replayed 2"), "{out} {err}");
    assert_eq!(
        server.queue_stats().events,
        2,
        "replayed events are queued again"
    );
    assert!(server.dead_letters().is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_moves_the_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path()).await;
    let client = server.http1();
    let url = server.url(&format!("{RAW}?sourcetype=st"));
    for i in 0..4 {
        let body = format!("line a{i}\nline b{i}\n");
        let resp = post(&client, &url, TOKEN, body.as_bytes(), true)
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let before = server.queue_stats();
    let config = write_file(dir.path(), "sluice.toml", &config_text(dir.path(), "", ""));
    let export = dir.path().join("backlog.ndjson");
    let (ok, _, err) = tokio::task::block_in_place(|| {
        cli(
            &["queue", "export", "--file", export.to_str().unwrap()],
            &config,
        )
    });
    assert!(!ok && err.contains("stop Sluice first"), "{err}");
    server.stop().await;
    let (ok, _, err) = tokio::task::block_in_place(|| {
        cli(
            &["queue", "export", "--file", export.to_str().unwrap()],
            &config,
        )
    });
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(&export).unwrap().lines().count(), 4);

    let other = tempfile::tempdir().unwrap();
    let other_config = write_file(
        other.path(),
        "sluice.toml",
        &config_text(other.path(), "", ""),
    );
    let (ok, _, err) = tokio::task::block_in_place(|| {
        cli(
            &["queue", "import", "--file", export.to_str().unwrap()],
            &other_config,
        )
    });
    assert!(ok, "{err}");
    let q = open_queue(other.path());
    let after = q.stats();
    assert_eq!(
        (after.records, after.events, after.bytes),
        (before.records, before.events, before.bytes)
    );
    assert_eq!(queued_events(&q).len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_commands_do_not_need_the_services_secrets() {
    let dir = tempfile::tempdir().unwrap();
    // Tokens and outputs whose secrets live in the service's environment,
    // which an operator's shell does not have.
    let text = config_text(dir.path(), "", "").replace(
        "token = \"unused\"",
        "token_env = \"SLUICE_TEST_OUTPUT_TOKEN_UNSET\"",
    )
        + "\n[[tokens]]\nname = \"logpush\"\ntoken_env = \"SLUICE_TEST_HEC_TOKEN_UNSET\"\n";
    let config = write_file(dir.path(), "sluice.toml", &text);
    drop(open_queue(dir.path()));
    let (ok, out, err) =
        tokio::task::block_in_place(|| cli(&["queue", "stats", "--json"], &config));
    assert!(ok, "{err}");
    let stats: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["records"], 0);
    // Running needs them, and says which one is missing.
    let mut cmd = sluice_command();
    cmd.args(["validate", "--config"]).arg(&config);
    let (status, _, err) = tokio::task::block_in_place(|| run_to_end(cmd));
    assert!(!status.success());
    assert!(err.contains("SLUICE_TEST_HEC_TOKEN_UNSET"), "{err}");
}
