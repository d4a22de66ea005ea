//! The admin side stays closed: the metrics listener (metrics, status page,
//! `/api/status`) behind basic auth or client certificates, and the HEC
//! listener only for `server.allow_cidrs`.

use crate::support::*;
use std::time::Duration;

fn with_server(extra: &str) -> impl Fn(&std::path::Path) -> String + '_ {
    move |dir| config_text(dir, extra, "")
}

async fn get(client: &reqwest::Client, url: &str) -> Result<reqwest::Response, reqwest::Error> {
    client.get(url).send().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_basic_auth_guards_every_page_of_the_listener() {
    let extra = "metrics_user = \"prometheus\"\nmetrics_password = \"m3trics-pw\"";
    let (_dir, mut server) = start_in_tempdir(with_server(extra)).await;
    let plain = reqwest::Client::new();
    for path in ["/metrics", "/", "/api/status", "/nope"] {
        let url = format!("{}{path}", server.metrics_base);
        let resp = get(&plain, &url).await.unwrap();
        assert_eq!(resp.status(), 401, "{path} without credentials");
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Basic realm="), "{challenge}");
        let wrong = plain
            .get(&url)
            .basic_auth("prometheus", Some("nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path} with a wrong password");
        let ok = plain
            .get(&url)
            .basic_auth("prometheus", Some("m3trics-pw"))
            .send()
            .await
            .unwrap();
        let want = if path == "/nope" { 404 } else { 200 };
        assert_eq!(ok.status(), want, "{path} with the credentials");
        let body = ok.text().await.unwrap();
        assert!(
            !body.contains("m3trics-pw") && !body.contains(TOKEN),
            "no secret in {path}"
        );
    }
    let status: serde_json::Value = plain
        .get(format!("{}/api/status", server.metrics_base))
        .basic_auth("prometheus", Some("m3trics-pw"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["listeners"][1]["auth"], "basic");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_client_certificates_are_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    // The local CA Sluice would generate, made first so the config can name it.
    let g = sluice::bootstrap::ensure_tls(dir.path(), [127, 0, 0, 1].into()).unwrap();
    let extra = format!(
        "metrics_tls = true\nmetrics_client_ca = {:?}",
        g.ca.display().to_string()
    );
    let mut server = TestServer::start_with(dir.path(), &extra, "").await;
    let url = server.metrics_base.replace("http://", "https://") + "/metrics";
    let ca = std::fs::read(&g.ca).unwrap();
    let trusting = || {
        reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
    };
    let anonymous = trusting().build().unwrap();
    assert!(
        get(&anonymous, &url).await.is_err(),
        "a client without a certificate got in"
    );
    let (cert, key) = client_cert_signed_by(&g.ca, "prometheus");
    let identity = reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap();
    let prometheus = trusting().identity(identity).build().unwrap();
    let resp = get(&prometheus, &url).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("sluice_build_info"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_cidrs_closes_other_peers_and_reloads() {
    let (dir, mut server) = start_in_tempdir(with_server(
        "allow_cidrs = [\"192.0.2.0/24\", \"2001:db8::/32\"]",
    ))
    .await;
    let send = |client: reqwest::Client, url: String| async move {
        client
            .post(url)
            .header("Authorization", format!("Splunk {TOKEN}"))
            .body("{\"allowed\":false}")
            .send()
            .await
    };
    for http2 in [false, true] {
        let refused = send(client(&server.ca, http2), server.url(RAW)).await;
        assert!(
            refused.is_err(),
            "127.0.0.1 is not in allow_cidrs: {refused:?}"
        );
    }
    assert_eq!(
        server.queue_stats().events,
        0,
        "nothing from a refused peer is queued"
    );
    server
        .assert_metrics_contain("sluice_ingest_denied_connections_total 2")
        .await;

    // Opened by a reload, for new connections.
    let cfg = dir.path().join("sluice.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("\"192.0.2.0/24\"", "\"127.0.0.0/8\"")).unwrap();
    let r = server
        .running
        .as_ref()
        .unwrap()
        .reload("test")
        .await
        .unwrap();
    assert_eq!(r.allow_cidrs, 2);
    assert!(r.restart_needed.is_empty(), "{:?}", r.restart_needed);
    let resp = send(client(&server.ca, true), server.url(RAW))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(server.queue_stats().events, 1);
    server.stop().await;
}
