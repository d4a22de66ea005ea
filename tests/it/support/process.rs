//! Helpers for the integration tests that run the real `sluice` binary, edit
//! the test config, read the queue directly, or send HEC requests with plain
//! reqwest clients. Reached as `crate::support::process`.
#![allow(dead_code)]

use crate::support::{answer, config_text};
use flate2::read::MultiGzDecoder;
use serde_json::Value;
use sluice::queue::{BodyEncoding, DataEndpoint, Queue, QueueLimits};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a subprocess may take to start listening (slow shared machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a subprocess may take to exit after SIGTERM (grace + flush).
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The test config text with `(from, to)` string replacements applied; each
/// `from` must occur (so a changed harness fails loudly, not silently).
///
/// `support::config_text` already sets `shutdown_grace` and `min_free_bytes`,
/// so passing them again as "extra" TOML is a duplicate key: replace instead.
pub fn config_replacing(data_dir: &Path, replacements: &[(&str, &str)]) -> String {
    let mut text = config_text(data_dir, "", "");
    for (from, to) in replacements {
        assert!(text.contains(from), "config text lacks {from:?}:\n{text}");
        text = text.replace(from, to);
    }
    text
}

/// The test config with info-level JSON logs (so the subprocess reports its
/// ports), plus replacements.
pub fn json_log_config(data_dir: &Path, replacements: &[(&str, &str)]) -> String {
    let mut all = vec![("level = \"warn\"", "level = \"info\"\nformat = \"json\"")];
    all.extend_from_slice(replacements);
    config_replacing(data_dir, &all)
}

/// Queue limits for opening a store directly in a test.
pub fn open_limits() -> QueueLimits {
    QueueLimits {
        max_bytes: u64::MAX,
        min_free_bytes: 0,
        cache_bytes: 8 << 20,
    }
}

/// Opens `<data_dir>/queue` directly (Sluice must not be running).
pub fn open_queue(data_dir: &Path) -> Queue {
    Queue::open(&data_dir.join("queue"), open_limits()).expect("open the queue directly")
}

/// Every event stored in the queue, decoded: `/raw` lines (CR stripped, blank
/// lines skipped) and `/event` objects' `event` value (strings as is, other
/// values as JSON text). Also checks each record's event count.
pub fn queued_events(queue: &Queue) -> Vec<String> {
    let mut out = Vec::new();
    for id in queue.ids_from(0) {
        let rec = queue
            .get(id)
            .expect("read record")
            .unwrap_or_else(|| panic!("record {id} listed but missing"));
        let decoded = match rec.meta.encoding {
            BodyEncoding::Identity => rec.body.clone(),
            BodyEncoding::Gzip => {
                let mut d = Vec::new();
                MultiGzDecoder::new(&rec.body[..])
                    .read_to_end(&mut d)
                    .unwrap_or_else(|e| panic!("record {id}: bad gzip: {e}"));
                d
            }
        };
        let n = usize::try_from(rec.meta.decoded_bytes).unwrap_or(usize::MAX);
        let kept = &decoded[..n.min(decoded.len())];
        let before = out.len();
        match rec.meta.endpoint {
            DataEndpoint::Raw => {
                for line in kept.split(|b| *b == b'\n') {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    out.push(String::from_utf8_lossy(line).into_owned());
                }
            }
            DataEndpoint::Event => {
                for v in serde_json::Deserializer::from_slice(kept).into_iter::<Value>() {
                    let v = v.unwrap_or_else(|e| panic!("record {id}: bad JSON: {e}"));
                    let objs = match v {
                        Value::Array(a) => a,
                        o => vec![o],
                    };
                    for o in objs {
                        out.push(match &o["event"] {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        });
                    }
                }
            }
        }
        assert_eq!(
            (out.len() - before) as u64,
            rec.meta.events,
            "record {id}: stored event count differs from its body"
        );
    }
    out
}

/// The set of queued events.
pub fn queued_event_set(queue: &Queue) -> HashSet<String> {
    queued_events(queue).into_iter().collect()
}

/// Collected output of one stream of a subprocess.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    /// Everything read so far, one line each.
    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
    }
}

fn pump(
    stream: impl Read + Send + 'static,
    lines: Lines,
    tx: Option<mpsc::Sender<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            lines
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(line.clone());
            if let Some(tx) = &tx {
                let _ = tx.send(line);
            }
        }
    })
}

/// A running `sluice` subprocess; killed (SIGKILL) and reaped on drop.
pub struct Sluice {
    /// The child (None once reaped).
    pub child: Option<Child>,
    /// Its stderr, line by line.
    pub stderr: Lines,
    /// Its stdout, line by line.
    pub stdout: Lines,
    rx: Receiver<String>,
    readers: Vec<JoinHandle<()>>,
}

/// The binary under test.
pub fn sluice_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sluice")
}

/// A `sluice` command with a clean environment for the variables Sluice reads.
pub fn sluice_command() -> Command {
    let mut cmd = Command::new(sluice_bin());
    cmd.env_remove("SLUICE_LOG")
        .env_remove("SLUICE_HEC_TOKEN")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    cmd
}

impl Sluice {
    /// Spawns `cmd` with piped stdout/stderr collected by reader threads.
    pub fn spawn(mut cmd: Command) -> Sluice {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn sluice");
        let (tx, rx) = mpsc::channel();
        let stderr = Lines::default();
        let stdout = Lines::default();
        let readers = vec![
            pump(
                child.stderr.take().expect("stderr"),
                stderr.clone(),
                Some(tx),
            ),
            pump(child.stdout.take().expect("stdout"), stdout.clone(), None),
        ];
        Sluice {
            child: Some(child),
            stderr,
            stdout,
            rx,
            readers,
        }
    }

    /// `sluice run --config <config>`.
    pub fn run(config: &Path) -> Sluice {
        let mut cmd = sluice_command();
        cmd.arg("run").arg("--config").arg(config);
        Sluice::spawn(cmd)
    }

    /// `sluice run --config <config>` once it listens: the process and its
    /// (HEC, metrics) addresses.
    pub fn run_listening(config: &Path) -> (Sluice, SocketAddr, SocketAddr) {
        let mut p = Sluice::run(config);
        let (hec, metrics) = p.wait_listening();
        (p, hec, metrics)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// Waits (bounded) for a stderr line matching `pred`: `Ok(line)`, or
    /// `Err(status)` when the process ended first. Panics on timeout.
    pub fn try_wait_for_stderr(
        &mut self,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String, ExitStatus> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) if pred(&line) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no {what} from sluice within {START_TIMEOUT:?}; stderr:\n{}",
                    self.stderr.text()
                ),
                // stderr closed: the process is ending.
                Err(RecvTimeoutError::Disconnected) => return Err(self.wait_exit(EXIT_TIMEOUT)),
            }
        }
    }

    /// Like `try_wait_for_stderr`, but panics (with stderr) if the process ends first.
    pub fn wait_for_stderr(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        match self.try_wait_for_stderr(what, pred) {
            Ok(line) => line,
            Err(status) => panic!(
                "sluice ended ({status}) before {what}; stderr:\n{}",
                self.stderr.text()
            ),
        }
    }

    /// Waits for the JSON "listening" log line; returns (HEC, metrics) addresses.
    pub fn wait_listening(&mut self) -> (SocketAddr, SocketAddr) {
        let line = self.wait_for_stderr("JSON \"listening\" log line", |l| {
            serde_json::from_str::<Value>(l)
                .map(|v| v["fields"]["hec"].is_string())
                .unwrap_or(false)
        });
        let v: Value = serde_json::from_str(&line).expect("JSON log line");
        let f = &v["fields"];
        assert_eq!(f["message"], "listening", "{line}");
        let addr = |k: &str| -> SocketAddr {
            f[k].as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no {k} address in {line}"))
        };
        (addr("hec"), addr("metrics"))
    }

    /// Sends `signal`, as `kill` takes it (`-TERM`, `-HUP`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed: {status}");
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        self.signal("-TERM");
    }

    /// Waits (bounded) for exit; on timeout kills it and panics.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("child");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                self.join_readers();
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                panic!(
                    "sluice did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr.text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits for exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.sigterm();
        self.wait_exit(EXIT_TIMEOUT)
    }

    /// SIGKILL, then reaps the process.
    pub fn kill9(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("child");
        child.kill().expect("SIGKILL sluice");
        let status = child.wait().expect("reap sluice");
        self.join_readers();
        status
    }

    /// Whether the process has exited (reaps it if so).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten();
        if status.is_some() {
            self.child = None;
            self.join_readers();
        }
        status
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs a short-lived `sluice` command to completion (bounded); returns
/// (exit status, stdout, stderr).
pub fn run_to_end(mut cmd: Command) -> (ExitStatus, String, String) {
    cmd.stdin(Stdio::null());
    let mut p = Sluice::spawn(cmd);
    let status = p.wait_exit(EXIT_TIMEOUT);
    (status, p.stdout.text(), p.stderr.text())
}

/// Writes `text` to `<dir>/<name>` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

/// A client trusting `ca` with a request timeout, so no test can hang on a
/// dead server.
pub fn client_with_timeout(ca: &Path, http2: bool, timeout: Duration) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("read CA");
    let b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA pem"));
    let b = if http2 { b } else { b.http1_only() };
    b.build().expect("client")
}

/// A POST to `url` with `Authorization: Splunk <token>`, to add to.
pub fn authorized_post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("Authorization", format!("Splunk {token}"))
}

/// A HEC data request: POST `url` with `Authorization: Splunk <token>`,
/// gzip-compressed (with `Content-Encoding: gzip`) when `gzip`.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &[u8],
    gzip: bool,
) -> reqwest::Result<reqwest::Response> {
    if gzip {
        return post_gzip(client, url, token, crate::support::gzip(body)).await;
    }
    let req = authorized_post(client, url, token);
    req.body(body.to_vec()).send().await
}

/// Like [`post`] with a body that is gzip already (sent as it is, with
/// `Content-Encoding: gzip`).
pub async fn post_gzip(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    gzipped: Vec<u8>,
) -> reqwest::Result<reqwest::Response> {
    let req = authorized_post(client, url, token);
    req.header("Content-Encoding", "gzip")
        .body(gzipped)
        .send()
        .await
}

/// [`post`], then the answer's status and JSON body; panics when the request
/// gets no answer.
pub async fn post_answer(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &[u8],
    gzip: bool,
) -> (u16, Value) {
    let resp = post(client, url, token, body, gzip).await.expect("request");
    answer(resp).await
}

/// `/event` body with one object per event.
pub fn event_body(events: &[String]) -> Vec<u8> {
    events
        .iter()
        .map(|e| serde_json::json!({ "event": e }).to_string())
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

/// `/raw` body with one line per event.
pub fn raw_body(events: &[String]) -> Vec<u8> {
    let mut s = events.join("\n");
    s.push('\n');
    s.into_bytes()
}
