//! The status page as a browser shows it: Debian's Chromium loads `GET /`
//! headless, takes a screenshot and dumps the DOM it rendered, and what it
//! shows is checked against `GET /api/status`.

use crate::support::*;
use regex::Regex;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "chromium";

/// Chromium as the machine's probe runs it: without the background
/// networking flags it keeps trying hosts this machine cannot reach.
fn chromium(args: &[&str], profile: &Path) -> std::process::Output {
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("chromium status").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("chromium output")
}

/// Chromium is installed by `.ci/run`; elsewhere the test says it skipped.
fn have_chromium() -> bool {
    let found = Command::new(CHROMIUM)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("SLUICE_REQUIRE_CHROMIUM").is_some() {
        panic!("SLUICE_REQUIRE_CHROMIUM is set but {CHROMIUM} does not run");
    }
    found
}

/// `data-key="k" data-value="v"` pairs inside `html`, in order.
fn values(html: &str, key: &str) -> Vec<String> {
    let re = Regex::new(&format!(r#"data-key="{key}" data-value="([^"]*)""#)).unwrap();
    re.captures_iter(html).map(|c| c[1].to_string()).collect()
}

fn attrs(html: &str, attr: &str) -> Vec<String> {
    let re = Regex::new(&format!(r#"{attr}="([^"]*)""#)).unwrap();
    re.captures_iter(html).map(|c| c[1].to_string()).collect()
}

/// PNG width and height from its IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_what_the_status_api_says() {
    if !have_chromium() {
        skipped(
            "chromium_shows_what_the_status_api_says",
            "chromium is not installed",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The harness's output points at an indexer nobody runs: events stay
    // queued and the page has a destination that is down, with errors.
    let mut server = TestServer::start(dir.path()).await;
    let client = server.http1();
    for i in 0..3 {
        let body: Vec<String> = (0..10)
            .map(|j| format!("{{\"page\":{i},\"j\":{j}}}"))
            .collect();
        let resp = client
            .post(server.url(RAW))
            .header("Authorization", format!("Splunk {TOKEN}"))
            .body(body.join("\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let api = format!("{}/api/status", server.metrics_base);
    let status = |api: String| async move {
        reqwest::get(api)
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    // The engine publishes every second and marks the indexer down once a
    // send failed.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(api.clone()).await;
        let out = &s["outputs"][0];
        if out["indexers_up"] == 0 && out["last_errors"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the output never reported its failing indexer: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let profile = tempfile::tempdir().unwrap();
    let shot = dir.path().join("status.png");
    let page = format!("{}/", server.metrics_base);
    let (dom, png) = tokio::task::block_in_place(|| {
        let out = chromium(
            &[&format!("--screenshot={}", shot.display()), &page],
            profile.path(),
        );
        assert!(
            out.status.success(),
            "chromium --screenshot: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = chromium(&["--dump-dom", &page], profile.path());
        assert!(
            out.status.success(),
            "chromium --dump-dom: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            std::fs::read(&shot).unwrap(),
        )
    });
    let s = status(api).await;

    // The screenshot is the page at the window's size, with something drawn.
    assert_eq!(png_size(&png), (1280, 1600));
    assert!(
        png.len() > 20_000,
        "a {}-byte screenshot is a blank page",
        png.len()
    );
    if let Some(dir) = std::env::var_os("SLUICE_SCREENSHOT_DIR") {
        let _ = std::fs::copy(&shot, Path::new(&dir).join("status.png"));
    }

    // Nothing arrives or leaves now, so these hold between the two reads.
    for key in [
        "queue_events",
        "queue_records",
        "queue_bytes",
        "events_in",
        "corrupt_records",
    ] {
        let shown = values(&dom, key);
        assert_eq!(
            shown.first().map(String::as_str),
            Some(s[key].to_string().as_str()),
            "{key}"
        );
    }
    assert_eq!(values(&dom, "config_last_reload_successful"), ["true"]);
    assert_eq!(s["node"].as_str().map(|n| dom.contains(n)), Some(true));
    let names = |v: &Value, k: &str| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x[k].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(attrs(&dom, "data-token"), names(&s["tokens"], "name"));
    assert_eq!(attrs(&dom, "data-listener"), names(&s["listeners"], "name"));
    assert_eq!(attrs(&dom, "data-output"), names(&s["outputs"], "output"));
    let out = &s["outputs"][0];
    assert_eq!(attrs(&dom, "data-indexer"), names(&out["indexers"], "url"));
    assert_eq!(
        values(&dom, "up"),
        ["false"],
        "the unreachable indexer is shown down"
    );
    assert!(dom.contains(">down<"));
    assert_eq!(
        values(&dom, "dead_letters"),
        [out["dead_letters"].to_string()]
    );
    assert_eq!(
        values(&dom, "pending_acks"),
        [out["indexers"][0]["pending_acks"].to_string()]
    );
    let errors = values(&dom, "last_errors");
    assert!(
        errors.first().is_some_and(|n| n != "0"),
        "the page lists the send errors"
    );
    assert!(dom.contains("no answer"), "the error text is shown");
    // Token values never reach the page.
    for secret in [TOKEN, ACK_TOKEN] {
        assert!(!dom.contains(secret));
        assert!(!s.to_string().contains(secret));
    }
    // Three charts, drawn whether or not they have points yet.
    assert_eq!(dom.matches("<svg data-chart=").count(), 3);
    server.stop().await;
}
