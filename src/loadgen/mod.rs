//! `sluice loadgen`: sends NDJSON to a HEC `/raw` endpoint the way Logpush does
//! (gzip batches, `?channel=<guid>&sourcetype=cloudflare:network_analytics`,
//! `Authorization: Splunk …`, HTTP/2) and reports throughput, HEC codes and
//! latency. The input is NDJSON files, or `--scenario ddos` (see
//! [`scenario`]), which also keeps the ground truth of what was accepted.

mod packet;
pub mod scenario;
pub mod truth;

use crate::hec::Channel;
use flate2::write::GzEncoder;
use flate2::Compression;
use scenario::{Scenario, ScenarioOptions, Truth};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Loadgen failures (setup only; request failures are counted, not fatal).
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// An input or CA file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No input lines.
    #[error("no NDJSON lines in {0}")]
    Empty(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}

/// What to send and how.
#[derive(Debug, Clone)]
pub struct LoadgenOptions {
    /// Base URL of the HEC listener, e.g. `https://127.0.0.1:8088`.
    pub url: String,
    /// HEC token.
    pub token: String,
    /// CA certificate to trust.
    pub ca: Option<PathBuf>,
    /// Skip certificate verification.
    pub insecure: bool,
    /// What to send.
    pub input: Input,
    /// Lines per request.
    pub batch_lines: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many events.
    pub events: Option<u64>,
    /// Use HTTP/1.1 instead of HTTP/2.
    pub http1: bool,
    /// Target events per second (paced per request); `None` sends as fast as possible.
    pub rate: Option<f64>,
    /// gzip level of request bodies (6 is Go's default, which Logpush uses).
    pub gzip_level: u32,
}

/// Where the lines come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// NDJSON files, sent round-robin and repeated.
    Files(Vec<PathBuf>),
    /// Generated traffic (`--scenario ddos`).
    Scenario(ScenarioOptions),
}

/// The final numbers.
#[derive(Debug, Clone, Serialize)]
pub struct LoadgenReport {
    /// Requests sent.
    pub requests: u64,
    /// Requests answered 200.
    pub accepted_requests: u64,
    /// Events sent.
    pub events_sent: u64,
    /// Events in requests answered 200.
    pub events_accepted: u64,
    /// Decoded (uncompressed) bytes accepted.
    pub decoded_bytes_accepted: u64,
    /// Answers by `HTTP status/HEC code` (or `error`).
    pub codes: BTreeMap<String, u64>,
    /// Wall time.
    pub elapsed_seconds: f64,
    /// Accepted events per second.
    pub events_per_second: f64,
    /// Accepted decoded MB (10^6 bytes) per second.
    pub decoded_mb_per_second: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// HTTP version used.
    pub http_version: String,
    /// With a scenario: the ground truth of the accepted events.
    #[serde(skip)]
    pub truth: Option<Truth>,
}

#[derive(Clone)]
struct Batch {
    gz: bytes::Bytes,
    lines: u64,
    decoded: u64,
    truth: Option<Truth>,
}

fn compress(raw: &[u8], level: u32) -> bytes::Bytes {
    let mut enc = GzEncoder::new(Vec::with_capacity(raw.len() / 8), Compression::new(level));
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(raw);
    enc.finish().unwrap_or_default().into()
}

/// Batches to send: a few pre-compressed ones cycled, or generated live.
enum Batches {
    Fixed(Vec<Batch>),
    Live(tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Batch>>),
}

impl Batches {
    async fn get(&self, n: u64) -> Option<Batch> {
        match self {
            Batches::Fixed(b) => b.get(n as usize % b.len().max(1)).cloned(),
            Batches::Live(rx) => rx.lock().await.recv().await,
        }
    }
}

/// Generates scenario batches on a thread of its own, so sending never waits on gzip.
fn live_batches(opts: ScenarioOptions, lines: usize, level: u32, depth: usize) -> Batches {
    let (tx, rx) = tokio::sync::mpsc::channel(depth.max(1));
    std::thread::spawn(move || {
        let mut scenario = Scenario::new(opts);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            let truth = scenario.next_batch(lines, &mut raw);
            let batch = Batch {
                gz: compress(&raw, level),
                lines: lines as u64,
                decoded: raw.len() as u64,
                truth: Some(truth),
            };
            if tx.blocking_send(batch).is_err() {
                break;
            }
        }
    });
    Batches::Live(tokio::sync::Mutex::new(rx))
}

fn read_lines(files: &[PathBuf]) -> Result<Vec<Vec<u8>>, LoadgenError> {
    let mut lines = Vec::new();
    for f in files {
        let data = std::fs::read(f).map_err(|source| LoadgenError::Read {
            path: f.clone(),
            source,
        })?;
        lines.extend(
            data.split(|&b| b == b'\n')
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .map(<[u8]>::to_vec),
        );
    }
    if lines.is_empty() {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        return Err(LoadgenError::Empty(names.join(", ")));
    }
    Ok(lines)
}

/// Pre-compresses a few distinct batches so sending costs no client CPU for gzip.
fn make_batches(lines: &[Vec<u8>], batch_lines: usize, level: u32) -> Vec<Batch> {
    let distinct = (lines.len() / batch_lines.max(1)).clamp(1, 8);
    (0..distinct)
        .map(|b| {
            let mut raw = Vec::new();
            for i in 0..batch_lines {
                raw.extend_from_slice(&lines[(b * batch_lines + i) % lines.len()]);
                raw.push(b'\n');
            }
            Batch {
                gz: compress(&raw, level),
                lines: batch_lines as u64,
                decoded: raw.len() as u64,
                truth: None,
            }
        })
        .collect()
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    accepted: AtomicU64,
    events_sent: AtomicU64,
    events_accepted: AtomicU64,
    decoded_accepted: AtomicU64,
}

/// Runs the load; `progress` is called about once a second with a status line.
pub async fn run(
    opts: LoadgenOptions,
    progress: impl Fn(String),
) -> Result<LoadgenReport, LoadgenError> {
    let batch_lines = opts.batch_lines.max(1);
    let level = opts.gzip_level.min(9);
    let batches = Arc::new(match &opts.input {
        Input::Files(files) => {
            Batches::Fixed(make_batches(&read_lines(files)?, batch_lines, level))
        }
        Input::Scenario(s) => live_batches(*s, batch_lines, level, opts.concurrency * 2),
    });
    let truth = Arc::new(Mutex::new(Truth::default()));
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .pool_max_idle_per_host(opts.concurrency)
        .timeout(Duration::from_secs(120))
        .user_agent(concat!("sluice-loadgen/", env!("CARGO_PKG_VERSION")));
    if opts.http1 {
        builder = builder.http1_only();
    } else {
        builder = builder.http2_adaptive_window(true);
        if opts.url.starts_with("http://") {
            builder = builder.http2_prior_knowledge();
        }
    }
    if let Some(ca) = &opts.ca {
        let pem = std::fs::read(ca).map_err(|source| LoadgenError::Read {
            path: ca.clone(),
            source,
        })?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| LoadgenError::Client(format!("{}: {e}", ca.display())))?;
        builder = builder.add_root_certificate(cert);
    }
    if opts.insecure {
        builder = builder.danger_accept_invalid_certs(true);
    }
    let client = builder
        .build()
        .map_err(|e| LoadgenError::Client(e.to_string()))?;
    let url = format!(
        "{}/services/collector/raw?channel={}&sourcetype=cloudflare:network_analytics",
        opts.url.trim_end_matches('/'),
        Channel::random()
    );
    let auth = format!("Splunk {}", opts.token);
    let counters = Arc::new(Counters::default());
    let codes = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let version = Arc::new(Mutex::new(String::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();

    let mut tasks = Vec::new();
    for _ in 0..opts.concurrency.max(1) {
        let (client, url, auth) = (client.clone(), url.clone(), auth.clone());
        let truth = Arc::clone(&truth);
        let (batches, counters, codes, latencies, version, stop, next) = (
            Arc::clone(&batches),
            Arc::clone(&counters),
            Arc::clone(&codes),
            Arc::clone(&latencies),
            Arc::clone(&version),
            Arc::clone(&stop),
            Arc::clone(&next),
        );
        let (limit_events, limit_time) = (opts.events, opts.duration);
        let pace = opts
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(batch_lines as f64 / r));
        tasks.push(tokio::spawn(async move {
            loop {
                if stop.load(Ordering::Relaxed)
                    || limit_time.is_some_and(|d| started.elapsed() >= d)
                {
                    break;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                if let Some(every) = pace {
                    let due = started + every.mul_f64(n as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let Some(batch) = batches.get(n).await else {
                    break;
                };
                if let Some(max) = limit_events {
                    let before = counters
                        .events_sent
                        .fetch_add(batch.lines, Ordering::Relaxed);
                    if before >= max {
                        counters
                            .events_sent
                            .fetch_sub(batch.lines, Ordering::Relaxed);
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                } else {
                    counters
                        .events_sent
                        .fetch_add(batch.lines, Ordering::Relaxed);
                }
                counters.requests.fetch_add(1, Ordering::Relaxed);
                let t0 = Instant::now();
                let result = client
                    .post(&url)
                    .header("Authorization", &auth)
                    .header("Content-Encoding", "gzip")
                    .header("Content-Type", "application/json")
                    .body(batch.gz.clone())
                    .send()
                    .await;
                let label = match result {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        {
                            let mut v = version.lock().unwrap_or_else(|e| e.into_inner());
                            if v.is_empty() {
                                *v = format!("{:?}", resp.version());
                            }
                        }
                        let body = resp.bytes().await.unwrap_or_default();
                        latencies
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(t0.elapsed().as_secs_f64());
                        let code = serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|v| v.get("code").and_then(|c| c.as_u64()))
                            .map_or_else(|| "?".to_string(), |c| c.to_string());
                        if status == 200 {
                            counters.accepted.fetch_add(1, Ordering::Relaxed);
                            counters
                                .events_accepted
                                .fetch_add(batch.lines, Ordering::Relaxed);
                            counters
                                .decoded_accepted
                                .fetch_add(batch.decoded, Ordering::Relaxed);
                            if let Some(t) = &batch.truth {
                                truth.lock().unwrap_or_else(|e| e.into_inner()).merge(t);
                            }
                        }
                        format!("{status}/{code}")
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "request failed");
                        "error".to_string()
                    }
                };
                *codes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(label)
                    .or_default() += 1;
            }
        }));
    }

    let mut all = futures_util::future::join_all(tasks);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = &mut all => break,
            _ = tick.tick() => {
                let secs = started.elapsed().as_secs_f64();
                let acc = counters.events_accepted.load(Ordering::Relaxed);
                progress(format!(
                    "t={secs:.0}s requests={} accepted_events={acc} events/s={:.0}",
                    counters.requests.load(Ordering::Relaxed),
                    acc as f64 / secs
                ));
            }
        }
    }

    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let mut lat = std::mem::take(&mut *latencies.lock().unwrap_or_else(|e| e.into_inner()));
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() - 1) as f64 * p).round() as usize] * 1000.0
        }
    };
    let events_accepted = counters.events_accepted.load(Ordering::Relaxed);
    let decoded = counters.decoded_accepted.load(Ordering::Relaxed);
    let codes = codes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let http_version = version.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(LoadgenReport {
        requests: counters.requests.load(Ordering::Relaxed),
        accepted_requests: counters.accepted.load(Ordering::Relaxed),
        events_sent: counters.events_sent.load(Ordering::Relaxed),
        events_accepted,
        decoded_bytes_accepted: decoded,
        codes,
        elapsed_seconds: elapsed,
        events_per_second: events_accepted as f64 / elapsed,
        decoded_mb_per_second: decoded as f64 / elapsed / 1e6,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        http_version,
        truth: matches!(opts.input, Input::Scenario(_))
            .then(|| truth.lock().unwrap_or_else(|e| e.into_inner()).clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cycle_lines() {
        let lines = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
        let b = make_batches(&lines, 2, 6);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].lines, 2);
        assert_eq!(b[0].decoded, 4);
    }
}
