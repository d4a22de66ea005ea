//! Test harness: a real Sluice on port 0 with real TLS, and real HTTP clients.
#![allow(dead_code)]

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::Value;
use sluice::app::{self, Running};
use sluice::config::Config;
use std::io::Write;
use std::path::{Path, PathBuf};

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
        let config = Config::parse(text).expect("test config");
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

    /// Graceful shutdown (drain, stop, flush).
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
    }
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
