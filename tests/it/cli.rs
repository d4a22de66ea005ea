//! The `sluice` command line: validate, queue stats (offline and online), and
//! a first start on the embedded defaults.

use crate::support::process::*;
use crate::support::*;

use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn validate(config: &Path, cwd: &Path, apps_token: Option<&str>) -> (bool, String, String) {
    let mut cmd = sluice_command();
    cmd.arg("validate")
        .arg("--config")
        .arg(config)
        .current_dir(cwd)
        .env_remove("SLUICE_TOKEN_APPS");
    if let Some(t) = apps_token {
        cmd.env("SLUICE_TOKEN_APPS", t)
            .env("SLUICE_S3_ACCESS_KEY_ID", "example-id")
            .env("SLUICE_S3_SECRET_ACCESS_KEY", "example-secret");
    }
    let (status, out, err) = run_to_end(cmd);
    (status.success(), out, err)
}

/// `validate` fails and names `what` on stderr.
fn assert_invalid(config: &Path, cwd: &Path, apps_token: Option<&str>, what: &str) {
    let (ok, out, err) = validate(config, cwd, apps_token);
    assert!(!ok, "validate passed: {out}{err}");
    assert!(err.contains(what), "stderr: {err}");
}

#[test]
fn validate_names_the_bad_file_key_or_value() {
    let tmp = tempfile::tempdir().unwrap();
    let apps = Some("apps-token-value");

    // The example names certs/server.pem, absent from a checkout.
    let example = manifest_dir().join("sluice.example.toml");
    let (ok, out, err) = validate(Path::new("sluice.example.toml"), manifest_dir(), apps);
    if manifest_dir().join("certs/server.pem").exists() {
        println!("note: certs/server.pem exists here; the example validates: {out}{err}");
    } else {
        assert!(!ok, "validate passed without certs/server.pem: {out}{err}");
        assert!(err.contains("certs/server.pem"), "stderr: {err}");
    }

    // Without the TLS file lines it is valid (with its token_env variable set).
    let text = std::fs::read_to_string(&example).unwrap();
    let stripped: String = text
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !l.starts_with("tls_cert") && !l.starts_with("tls_key")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(
        stripped.len(),
        text.len(),
        "the example sets tls_cert/tls_key"
    );
    let copy = write_file(tmp.path(), "example-no-tls.toml", &stripped);
    // Its asset table is named relative to the working directory.
    std::fs::create_dir(tmp.path().join("deploy")).unwrap();
    std::fs::copy(
        manifest_dir().join("deploy/assets.example.csv"),
        tmp.path().join("deploy/assets.example.csv"),
    )
    .unwrap();
    let (ok, out, err) = validate(&copy, tmp.path(), apps);
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("OK"), "stdout: {out}");
    // Validation reads nothing into the working directory.
    assert!(!tmp.path().join("data").exists());

    // A bad asset table is named with its line.
    std::fs::write(
        tmp.path().join("deploy/assets.example.csv"),
        "cidr,site\n10.0.0.0/8,a\n10.0.0.1/8,b\n",
    )
    .unwrap();
    let (ok, _, err) = validate(&copy, tmp.path(), apps);
    assert!(!ok);
    assert!(
        err.contains("enrich.assets") && err.contains("deploy/assets.example.csv line 3"),
        "stderr: {err}"
    );
    std::fs::copy(
        manifest_dir().join("deploy/assets.example.csv"),
        tmp.path().join("deploy/assets.example.csv"),
    )
    .unwrap();

    // ...and names the variable when it is not set.
    assert_invalid(&copy, tmp.path(), None, "SLUICE_TOKEN_APPS");

    let bad_key = write_file(
        tmp.path(),
        "bad-key.toml",
        "[server]\nlisten_adress = \"x\"\n",
    );
    assert_invalid(&bad_key, tmp.path(), None, "listen_adress");

    let missing = tmp.path().join("does-not-exist.toml");
    assert_invalid(&missing, tmp.path(), None, &missing.display().to_string());

    let bad_value = write_file(
        tmp.path(),
        "bad-ack.toml",
        "[[tokens]]\nname = \"a\"\ntoken = \"t\"\nack = \"sometimes\"\n",
    );
    assert_invalid(&bad_value, tmp.path(), None, "sometimes");
}

fn queue_stats_cmd(config: &Path, json: bool) -> String {
    let mut cmd = sluice_command();
    cmd.args(["queue", "stats", "--config"]).arg(config);
    if json {
        cmd.arg("--json");
    }
    let (status, out, err) = run_to_end(cmd);
    assert!(
        status.success(),
        "queue stats failed: {status}\nstderr: {err}"
    );
    out
}

fn parse_stats_json(out: &str) -> serde_json::Map<String, Value> {
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let obj = v.as_object().expect("a JSON object").clone();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["bytes", "events", "oldest_age_seconds", "records"]);
    obj
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_stats_offline_and_online() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path()).await;
    let mut events = 0u64;
    {
        let client = server.http1();
        for i in 0..5u64 {
            let body: String = (0..=i)
                .map(|e| format!("{{\"event\":\"s{i}-{e}\"}}"))
                .collect();
            let url = server.url(EVENT);
            let got = post_answer(&client, &url, TOKEN, body.as_bytes(), i % 2 == 1).await;
            assert_eq!(got, (200, success()));
            events += i + 1;
        }
    }
    let expect = server.queue_stats();
    assert_eq!((expect.records, expect.events), (5, events));
    server.stop().await;

    // Offline: the CLI opens the store itself.
    let config = write_file(dir.path(), "sluice.toml", &json_log_config(dir.path(), &[]));
    let out = tokio::task::block_in_place(|| queue_stats_cmd(&config, true));
    let obj = parse_stats_json(&out);
    assert_eq!(obj["records"], json!(5));
    assert_eq!(obj["events"], json!(events));
    assert_eq!(obj["bytes"], json!(expect.bytes));
    let age = obj["oldest_age_seconds"].as_f64().expect("age is a number");
    assert!((0.0..3600.0).contains(&age), "oldest_age_seconds {age}");

    // Online: the store is locked by a running Sluice; the CLI asks its admin API.
    let (mut proc, _, metrics) = tokio::task::block_in_place(|| Sluice::run_listening(&config));
    // The admin API is a Unix socket in the data dir that only this user can
    // open, and nothing on the metrics listener changes or shows the queue.
    let socket = dir.path().join("admin.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "admin socket mode {mode:o}");
    for (method, path) in [
        ("GET", "/admin/dead"),
        ("POST", "/admin/dead/purge"),
        ("POST", "/admin/dead/replay"),
        ("GET", "/admin/queue/stats"),
    ] {
        let url = format!("http://{metrics}{path}");
        let c = reqwest::Client::new();
        let resp = if method == "GET" {
            c.get(&url)
        } else {
            c.post(&url)
        }
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
        assert_eq!(
            resp.status(),
            404,
            "{method} {path} on the metrics listener"
        );
    }
    let online = config.clone();
    let out = tokio::task::block_in_place(|| queue_stats_cmd(&online, true));
    let obj = parse_stats_json(&out);
    assert_eq!(obj["records"], json!(5));
    assert_eq!(obj["events"], json!(events));
    assert_eq!(obj["bytes"], json!(expect.bytes));

    let out = tokio::task::block_in_place(|| queue_stats_cmd(&online, false));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0], "records: 5");
    assert_eq!(lines[1], format!("events: {events}"));
    assert_eq!(lines[2], format!("bytes: {}", expect.bytes));
    let age = lines[3]
        .strip_prefix("oldest_age_seconds: ")
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("bad age line: {out}"));
    assert!(age >= 0.0, "{out}");

    let status = tokio::task::block_in_place(|| proc.terminate());
    assert!(status.success(), "{status}: {}", proc.stderr.text());
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A `sluice` with no arguments in `cwd` (the embedded defaults).
fn start_default(cwd: &Path, env_token: Option<&str>) -> Option<Sluice> {
    let mut cmd = sluice_command();
    cmd.current_dir(cwd);
    if let Some(t) = env_token {
        cmd.env("SLUICE_HEC_TOKEN", t);
    }
    let mut p = Sluice::spawn(cmd);
    match p.try_wait_for_stderr("\"listening\" log line", |l| l.contains("listening")) {
        Ok(_) => Some(p),
        Err(status) => {
            let err = p.stderr.text();
            if err.contains("cannot listen") {
                skipped(
                    "embedded_defaults_generate_tls_and_token_once",
                    &format!("default ports taken meanwhile ({status}): {err}"),
                );
                None
            } else {
                panic!("sluice with embedded defaults exited ({status}): {err}");
            }
        }
    }
}

/// An event to the embedded default listener.
async fn send_event(ca: &Path, token: &str) -> (u16, Value) {
    let client = client_with_timeout(ca, true, Duration::from_secs(20));
    let url = format!("https://127.0.0.1:8088{EVENT}");
    post_answer(
        &client,
        &url,
        token,
        br#"{"event":"hello from curl"}"#,
        false,
    )
    .await
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_defaults_generate_tls_and_token_once() {
    // The embedded defaults are these fixed ports; wait a while for them.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !(port_free(8088) && port_free(9108)) {
        if std::time::Instant::now() > deadline {
            skipped(
                "embedded_defaults_generate_tls_and_token_once",
                "127.0.0.1:8088 or :9108 is busy on this machine",
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");

    // First start: generates the CA, the server certificate and the token.
    let Some(mut first) = tokio::task::block_in_place(|| start_default(tmp.path(), None)) else {
        return;
    };
    for f in [
        "tls/ca.pem",
        "tls/server.pem",
        "tls/server.key",
        "hec_token",
    ] {
        assert!(data.join(f).is_file(), "data/{f} not generated");
    }
    assert_eq!(mode(&data.join("tls/server.key")), 0o600);
    assert_eq!(mode(&data.join("hec_token")), 0o600);
    let token = std::fs::read_to_string(data.join("hec_token"))
        .unwrap()
        .trim()
        .to_string();
    assert!(!token.is_empty());
    let ca = data.join("tls/ca.pem");
    assert_eq!(send_event(&ca, &token).await, (200, success()));
    let status = tokio::task::block_in_place(|| first.terminate());
    assert!(status.success(), "{status}");
    let err = first.stderr.text();
    let all = format!("{}\n{err}", first.stdout.text());
    // stderr is a pipe here, as under systemd: the token is not printed,
    // the log names the file that holds it.
    assert!(
        !all.contains(&token),
        "token printed to a non-terminal: {all}"
    );
    let line = err
        .lines()
        .find(|l| l.contains("generated a HEC token"))
        .unwrap_or_else(|| panic!("no \"generated a HEC token\" line: {err}"));
    assert!(line.contains("hec_token"), "{line}");

    // Second start on the same dir: the same token works, and is never printed.
    let Some(mut second) = tokio::task::block_in_place(|| start_default(tmp.path(), None)) else {
        return;
    };
    assert_eq!(send_event(&ca, &token).await, (200, success()));
    let status = tokio::task::block_in_place(|| second.terminate());
    assert!(status.success(), "{status}");
    let all = format!("{}\n{}", second.stdout.text(), second.stderr.text());
    assert!(
        !all.contains(&token),
        "second start printed the token: {all}"
    );
    assert!(!all.contains("Generated HEC token"), "{all}");

    // SLUICE_HEC_TOKEN on a fresh dir: that token is accepted, no token file.
    let fresh = tempfile::tempdir().unwrap();
    let env_token = "eeeeeeee-1111-4222-8333-444444444444";
    let Some(mut third) =
        tokio::task::block_in_place(|| start_default(fresh.path(), Some(env_token)))
    else {
        return;
    };
    let fresh_ca = fresh.path().join("data/tls/ca.pem");
    assert_eq!(send_event(&fresh_ca, env_token).await, (200, success()));
    let (status, body) = send_event(&fresh_ca, &token).await;
    assert_eq!(
        (status, body["code"].clone()),
        (403, json!(4)),
        "old token refused"
    );
    let status = tokio::task::block_in_place(|| third.terminate());
    assert!(status.success(), "{status}");
    assert!(!fresh.path().join("data/hec_token").exists());
    let all = format!("{}\n{}", third.stdout.text(), third.stderr.text());
    assert!(!all.contains(env_token), "env token printed: {all}");
    assert!(!all.contains("Generated HEC token"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_scenario_writes_its_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path()).await;
    let truth_path = dir.path().join("truth.json");
    let mut cmd = sluice_command();
    cmd.arg("loadgen")
        .args(["--url", &server.base, "--token", TOKEN, "--ca"])
        .arg(&server.ca)
        .args([
            "--scenario",
            "ddos",
            "--events",
            "3000",
            "--batch-lines",
            "1000",
        ])
        .args([
            "--concurrency",
            "1",
            "--timestamps",
            "unix",
            "--legacy-names",
        ])
        .args(["--seed", "5", "--json", "--truth"])
        .arg(&truth_path);
    let (status, out, err) = tokio::task::spawn_blocking(move || run_to_end(cmd))
        .await
        .unwrap();
    assert!(status.success(), "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["events_accepted"], 3000, "{report}");
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    assert_eq!(truth["records"], 3000);
    let by = truth["by_system_outcome"].as_object().unwrap();
    assert_eq!(by.values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 3000);
    for key in [
        "attacks",
        "est_bytes_by_system_outcome",
        "est_packets_by_system_outcome",
        "true_passed_bytes",
        "true_passed_packets",
    ] {
        assert!(truth.get(key).is_some(), "{key} missing: {truth}");
    }
    assert!(!truth["attacks"].as_object().unwrap().is_empty());
    assert_eq!(server.queue_stats().events, 3000);
    server.stop().await;

    // --truth belongs to generated traffic, not to files.
    let mut cmd = sluice_command();
    cmd.args(["loadgen", "--file", "x.ndjson", "--truth", "x.json"]);
    let (status, _, err) = run_to_end(cmd);
    assert!(
        !status.success() && err.contains("cannot be used with"),
        "{err}"
    );
}

/// An installed binary has no sample files beside it: without `--file`,
/// loadgen generates the ddos scenario, and `--seed` / `--truth` apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_without_files_generates_the_ddos_scenario_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path()).await;
    // No ../shared/samples from here.
    let cwd = dir.path().join("elsewhere");
    std::fs::create_dir(&cwd).unwrap();
    let mut cmd = sluice_command();
    cmd.current_dir(&cwd)
        .arg("loadgen")
        .args(["--url", &server.base, "--token", TOKEN, "--ca"])
        .arg(&server.ca)
        .args(["--events", "2000", "--batch-lines", "500", "--seed", "7"])
        .args(["--json", "--truth", "truth.json"]);
    let (status, out, err) = tokio::task::spawn_blocking(move || run_to_end(cmd))
        .await
        .unwrap();
    assert!(status.success(), "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["events_accepted"], 2000, "{report}");
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(cwd.join("truth.json")).unwrap()).unwrap();
    assert_eq!(truth["records"], 2000);
    assert_eq!(server.queue_stats().events, 2000);
    server.stop().await;
}
