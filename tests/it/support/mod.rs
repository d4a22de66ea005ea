//! Test harness: a real Sluice on port 0 with real TLS, and real HTTP clients.
//! `hec_sink` is a Splunk indexer for Sluice to forward to; `process` runs
//! the real `sluice` binary and reads its queue directly.
#![allow(dead_code)]

pub mod hec_sink;
pub mod process;
pub mod s3;

use self::hec_sink::HecSink;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use sluice::app::{self, Running};
use sluice::config::Settings;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The token every test config defines, and its name.
pub const TOKEN: &str = "11111111-2222-4333-8444-555555555555";
/// A token with `ack = "durable"`.
pub const ACK_TOKEN: &str = "aaaaaaaa-2222-4333-8444-555555555555";
/// A disabled token.
pub const DISABLED_TOKEN: &str = "dddddddd-2222-4333-8444-555555555555";
/// A token allowed as `?token=`.
pub const QUERY_TOKEN: &str = "qqqqqqqq-2222-4333-8444-555555555555";
/// A token limited to index "cloudflare".
pub const INDEXED_TOKEN: &str = "iiiiiiii-2222-4333-8444-555555555555";
/// A valid channel.
pub const CHANNEL: &str = "0AA9A7A8-5B0E-4A7B-9C1D-2E3F4A5B6C7D";

/// The HEC endpoints the tests call.
pub const EVENT: &str = "/services/collector/event";
pub const RAW: &str = "/services/collector/raw";
pub const ACK: &str = "/services/collector/ack";
pub const HEALTH: &str = "/services/collector/health";

/// A valid channel GUID numbered `n` (lower-case).
pub fn channel_n(n: u32) -> String {
    format!("{n:08x}-1111-4222-8333-444444444444")
}

/// A HEC answer body: `{"text":..,"code":..}`.
pub fn hec(text: &str, code: u16) -> Value {
    json!({"text": text, "code": code})
}

/// `{"text":"Success","code":0}`.
pub fn success() -> Value {
    hec("Success", 0)
}

/// `{"text":"Success","code":0,"ackId":id}`.
pub fn success_ack(id: u64) -> Value {
    json!({"text": "Success", "code": 0, "ackId": id})
}

/// `{"text":"HEC is healthy","code":17}`.
pub fn healthy() -> Value {
    hec("HEC is healthy", 17)
}

/// Config text for a test server in `data_dir`, plus `extra` TOML appended
/// to the `[server]` section (e.g. `max_body_bytes = 1000`).
pub fn config_text(data_dir: &Path, server_extra: &str, queue_extra: &str) -> String {
    format!(
        r#"
data_dir = "{dir}"

[server]
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
shutdown_grace = "300ms"
workers = 2
{server_extra}

[queue]
min_free_bytes = 0
{queue_extra}

[log]
level = "warn"

# An indexer nobody listens on: events stay queued (Splunk down), which is
# what the ingest tests inspect.
[[outputs]]
name = "unreachable"
type = "splunk"
urls = ["http://127.0.0.1:9"]
token = "unused"
retry_initial = "1s"
retry_max = "5s"

[[tokens]]
name = "plain"
token = "{TOKEN}"

[[tokens]]
name = "acked"
token = "{ACK_TOKEN}"
ack = "durable"

[[tokens]]
name = "off"
token = "{DISABLED_TOKEN}"
disabled = true

[[tokens]]
name = "query"
token = "{QUERY_TOKEN}"
allow_query_token = true

[[tokens]]
name = "indexed"
token = "{INDEXED_TOKEN}"
index = "cloudflare"
allowed_indexes = ["cloudflare"]
"#,
        dir = data_dir.display()
    )
}

/// `text` (from [`config_text`]) with its unreachable output replaced by `outputs`.
pub fn with_outputs(text: &str, outputs: &str) -> String {
    let start = text
        .find("# An indexer nobody listens on")
        .expect("harness config has the unreachable output");
    let end = start
        + text[start..]
            .find("retry_max = \"5s\"\n")
            .expect("end of that output")
        + 18;
    format!("{}{}{outputs}", &text[..start], &text[end..])
}

/// The test config (plus `server_extra` in `[server]`) with its unreachable
/// output replaced by `outputs`.
pub fn config_with_outputs(data_dir: &Path, server_extra: &str, outputs: &str) -> String {
    with_outputs(&config_text(data_dir, server_extra, ""), outputs)
}

/// A running in-process Sluice and what clients need to reach it.
pub struct TestServer {
    /// The running app (None after shutdown).
    pub running: Option<Running>,
    /// `https://127.0.0.1:PORT`.
    pub base: String,
    /// `http://127.0.0.1:PORT` of the metrics listener.
    pub metrics_base: String,
    /// The generated CA to trust.
    pub ca: PathBuf,
    /// Data dir (kept by the caller's TempDir).
    pub data_dir: PathBuf,
}

impl TestServer {
    /// Starts Sluice on `data_dir` with extra `[server]` / `[queue]` settings.
    pub async fn start_with(data_dir: &Path, server_extra: &str, queue_extra: &str) -> TestServer {
        TestServer::start_text(data_dir, &config_text(data_dir, server_extra, queue_extra)).await
    }

    /// Starts Sluice from full config text.
    pub async fn start_text(data_dir: &Path, text: &str) -> TestServer {
        // From a file, as in production, so a reload reads it again.
        std::fs::create_dir_all(data_dir).expect("data dir");
        let path = data_dir.join("sluice.toml");
        std::fs::write(&path, text).expect("config file");
        let config = Settings::load(&path, sluice::setting::Secrets::Read).expect("test config");
        let running = app::start(config).await.expect("sluice starts");
        let ep = running.endpoints.clone();
        TestServer {
            base: format!("https://127.0.0.1:{}", ep.hec.port()),
            metrics_base: format!("http://127.0.0.1:{}", ep.metrics.port()),
            ca: ep.generated_ca.clone().expect("generated CA"),
            data_dir: data_dir.to_path_buf(),
            running: Some(running),
        }
    }

    /// Starts Sluice with the default test config.
    pub async fn start(data_dir: &Path) -> TestServer {
        TestServer::start_with(data_dir, "", "").await
    }

    /// An HTTP/1.1-only client trusting the generated CA.
    pub fn http1(&self) -> reqwest::Client {
        client(&self.ca, false)
    }

    /// An HTTP/2 client (negotiated by ALPN) trusting the generated CA.
    pub fn http2(&self) -> reqwest::Client {
        client(&self.ca, true)
    }

    /// `base` + path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The queue's current totals.
    pub fn queue_stats(&self) -> sluice::queue::QueueStats {
        self.running.as_ref().expect("running").queue().stats()
    }

    /// The metrics text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.metrics_base))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// Asserts the metrics text contains `needle`.
    pub async fn assert_metrics_contain(&self, needle: &str) {
        let metrics = self.metrics().await;
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }

    /// The queue's dead letters.
    pub fn dead_letters(&self) -> Vec<(u64, sluice::queue::DeadLetter)> {
        let running = self.running.as_ref().expect("running");
        running.queue().dead_letters().expect("dead letters")
    }

    /// Waits (up to 60 s) until the queue holds no record.
    pub async fn wait_queue_empty(&self) {
        for _ in 0..600 {
            if self.queue_stats().records == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("queue did not drain: {:?}", self.queue_stats());
    }

    /// Graceful shutdown (drain, stop, flush).
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
    }
}

/// A fresh temporary data dir and Sluice started in it from the config text
/// `config(data_dir)`; the TempDir must live as long as the server.
pub async fn start_in_tempdir(
    config: impl FnOnce(&Path) -> String,
) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_text(dir.path(), &config(dir.path())).await;
    (dir, server)
}

/// Waits (up to `within`) until `sink` acknowledged `n` events, then until
/// the queue of `server` is empty.
pub async fn wait_delivered(server: &TestServer, sink: &HecSink, n: usize, within: Duration) {
    assert!(
        sink.wait_for(within, |s| s.acknowledged().len() >= n).await,
        "delivered {} of {n}",
        sink.acknowledged().len()
    );
    server.wait_queue_empty().await;
}

/// POSTs `body` gzipped to `/raw` as Logpush does (a channel, the network
/// analytics sourcetype, then `more_query` such as `&source=x`) with the
/// plain token; asserts 200.
pub async fn post_logpush(
    server: &TestServer,
    client: &reqwest::Client,
    body: &[u8],
    more_query: &str,
) {
    let url = server.url(&format!(
        "{RAW}?channel={CHANNEL}&sourcetype=cloudflare:network_analytics{more_query}"
    ));
    let resp = process::post_gzip(client, &url, TOKEN, gzip(body))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// Polls `<base>/services/collector/ack?channel=<channel>` for `id` with `token`.
pub async fn poll_ack(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    channel: &str,
    id: u64,
) -> (u16, Value) {
    let url = format!("{base}{ACK}?channel={channel}");
    let resp = process::authorized_post(client, &url, token)
        .body(json!({ "acks": [id] }).to_string())
        .send()
        .await
        .unwrap();
    answer(resp).await
}

/// A client certificate for `name` (client auth) signed by the CA in the PEM
/// file `ca`, whose key is `ca.key` beside it (as Sluice and the test sink
/// generate them): (certificate, key) as PEM.
pub fn client_cert_signed_by(ca: &Path, name: &str) -> (String, String) {
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, Issuer, KeyPair};
    let ca_pem = std::fs::read_to_string(ca).expect("CA");
    let ca_key = std::fs::read_to_string(ca.with_file_name("ca.key")).expect("CA key");
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&ca_key).expect("CA key"))
        .expect("issuer");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec![name.to_string()]).expect("params");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer).expect("client certificate");
    (cert.pem(), key.serialize_pem())
}

/// A reqwest client trusting `ca`.
pub fn client(ca: &Path, http2: bool) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("read CA");
    let b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA pem"));
    let b = if http2 { b } else { b.http1_only() };
    b.build().expect("client")
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// `../shared/samples/<name>`.
pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/samples")
        .join(name)
}

/// All sample NDJSON lines (2,100 lines across the three files).
pub fn sample_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for f in [
        "nal-rfc3339.ndjson",
        "nal-unixnano.ndjson",
        "nal-legacy-unix.ndjson",
    ] {
        let text = std::fs::read_to_string(sample(f)).expect("sample file");
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string),
        );
    }
    lines
}

/// Status and parsed JSON body of a response.
pub async fn answer(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

/// Reports a test that cannot run here. Written to the process's stderr
/// directly (the test harness captures `println!`), so `cargo test` and CI
/// show it; `.ci/run` lists every `SKIPPED:` line at the end.
pub fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}
