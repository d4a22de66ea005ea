//! End to end with indexer acks, on loopback: `sluice loadgen` → Sluice →
//! a sink that only gunzips, counts and acks. Prints events/s, MB/s and the
//! process RSS while a backlog drains. Client, Sluice and sink share the
//! machine's cores. Run:
//! `cargo bench --bench forward_e2e [-- SECONDS BACKLOG_GB [TRIM [INPUT]]]`
//! with TRIM `off` (enrichment off), `none`, `empty` (default) or `compact`,
//! and INPUT `files` (the shared samples, default) or `ddos` (the
//! `loadgen --scenario ddos` generator, gzip level 1).

mod common;
use common::rss_mb;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use flate2::read::MultiGzDecoder;
use sluice::app;
use sluice::config::Settings;
use sluice::loadgen::scenario::{ScenarioOptions, Timestamps};
use sluice::loadgen::{self, Input, LoadgenOptions};
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TOKEN: &str = "11111111-2222-4333-8444-555555555555";

#[derive(Default)]
struct Sink {
    events: AtomicU64,
    bytes: AtomicU64,
    down: AtomicBool,
    next_ack: Mutex<HashMap<String, u64>>,
}

async fn event(req: HttpRequest, body: web::Bytes, sink: web::Data<Sink>) -> HttpResponse {
    if sink.down.load(Ordering::Relaxed) {
        return HttpResponse::ServiceUnavailable().body(r#"{"text":"Server is busy","code":9}"#);
    }
    let mut text = Vec::new();
    if MultiGzDecoder::new(&body[..])
        .read_to_end(&mut text)
        .is_err()
    {
        return HttpResponse::BadRequest().body(r#"{"text":"Invalid data format","code":6}"#);
    }
    let n = memchr::memchr_iter(b'\n', &text).count() as u64;
    sink.events.fetch_add(n, Ordering::Relaxed);
    sink.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
    let channel = req
        .headers()
        .get("x-splunk-request-channel")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let id = {
        let mut m = sink.next_ack.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(channel).or_default();
        *e += 1;
        *e - 1
    };
    HttpResponse::Ok().body(format!(r#"{{"text":"Success","code":0,"ackId":{id}}}"#))
}

async fn ack(body: web::Bytes) -> HttpResponse {
    let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let acks: serde_json::Map<String, serde_json::Value> = req["acks"]
        .as_array()
        .map(|a| a.iter().map(|id| (id.to_string(), true.into())).collect())
        .unwrap_or_default();
    HttpResponse::Ok().json(serde_json::json!({ "acks": acks }))
}

fn main() {
    // The same allocator settings as the `sluice` binary.
    sluice::allocator::tune();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let secs: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(15);
    let backlog_gb: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let trim = args.get(3).map_or("empty", String::as_str);
    let enrich = match trim {
        "off" => "enabled = false".to_string(),
        t => format!("trim = {t:?}"),
    };
    let ddos = args.get(4).is_some_and(|a| a == "ddos");
    println!(
        "enrichment: {trim}; input: {}",
        if ddos {
            "loadgen --scenario ddos"
        } else {
            "shared sample files"
        }
    );

    let sink = web::Data::new(Sink::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let sink_addr = listener.local_addr().expect("addr");
    let s2 = sink.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(s2.clone())
            .app_data(web::PayloadConfig::new(1 << 30))
            .route("/services/collector/event", web::post().to(event))
            .route("/services/collector/raw", web::post().to(event))
            .route("/services/collector/ack", web::post().to(ack))
            .route(
                "/services/collector/health",
                web::get().to(HttpResponse::Ok),
            )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);

    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        r#"
data_dir = "{dir}"
[server]
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
shutdown_grace = "100ms"
[queue]
min_free_bytes = 0
max_bytes = 107374182400
[log]
level = "warn"
[[tokens]]
name = "bench"
token = "{TOKEN}"
ack = "durable"
[[outputs]]
name = "splunk"
type = "splunk"
urls = ["http://{sink_addr}"]
token = "x"
ack_poll_interval = "200ms"
retry_initial = "100ms"
retry_max = "1s"
max_compressed_bytes = 8388608
[enrich]
{enrich}
"#,
        dir = dir.path().display()
    );
    let running = app::start(Settings::parse(&text).expect("config"))
        .await
        .expect("start");
    let url = format!("https://127.0.0.1:{}", running.endpoints.hec.port());
    let ca = running.endpoints.generated_ca.clone();
    let files: Vec<PathBuf> = [
        "nal-rfc3339.ndjson",
        "nal-unixnano.ndjson",
        "nal-legacy-unix.ndjson",
    ]
    .iter()
    .map(|f| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/samples")
            .join(f)
    })
    .collect();
    let opts = |duration: Option<Duration>, events: Option<u64>| LoadgenOptions {
        url: url.clone(),
        token: TOKEN.into(),
        ca: ca.clone(),
        insecure: false,
        input: if ddos {
            Input::Scenario(ScenarioOptions {
                timestamps: Timestamps::Rfc3339,
                legacy_names: false,
                seed: 1,
            })
        } else {
            Input::Files(files.clone())
        },
        batch_lines: 10_000,
        concurrency: 4,
        duration,
        events,
        http1: false,
        rate: None,
        gzip_level: if ddos { 1 } else { 6 },
    };

    // 1. Steady state: ingest and forward at once.
    let start = Instant::now();
    let report = loadgen::run(opts(Some(Duration::from_secs(secs)), None), |_| {})
        .await
        .expect("loadgen");
    while sink.events.load(Ordering::Relaxed) < report.events_accepted {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = start.elapsed().as_secs_f64();
    let delivered = sink.events.load(Ordering::Relaxed);
    println!(
        "end to end (ingest + forward + acks): {} events accepted in {:.1}s, all delivered after {took:.1}s: {:.0} events/s, {:.1} MB/s decoded; ingest alone {:.0} events/s",
        report.events_accepted,
        report.elapsed_seconds,
        delivered as f64 / took,
        report.decoded_bytes_accepted as f64 / took / 1e6,
        report.events_per_second
    );

    // 2. A backlog built while the indexer refuses (503), then drained.
    sink.down.store(true, Ordering::Relaxed);
    let bytes_per_event =
        report.decoded_bytes_accepted as f64 / report.events_accepted.max(1) as f64;
    let target = (backlog_gb * 1e9 / bytes_per_event) as u64;
    let fill = loadgen::run(opts(None, Some(target)), |_| {})
        .await
        .expect("loadgen");
    let q = running.queue().stats();
    println!(
        "backlog: {} events, {:.2} GB decoded, {:.2} GB stored; RSS {} MB",
        q.events,
        fill.decoded_bytes_accepted as f64 / 1e9,
        q.bytes as f64 / 1e9,
        rss_mb()
    );
    let base = sink.events.load(Ordering::Relaxed);
    let start = Instant::now();
    sink.down.store(false, Ordering::Relaxed);
    let mut peak = 0;
    while running.queue().stats().records > 0 {
        peak = peak.max(rss_mb());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = start.elapsed().as_secs_f64();
    let drained = sink.events.load(Ordering::Relaxed) - base;
    println!(
        "drain: {drained} events in {took:.1}s: {:.0} events/s; peak RSS while draining {peak} MB (sluice + sink + idle loadgen in one process)",
        drained as f64 / took
    );
    running.shutdown().await.expect("shutdown");
}
