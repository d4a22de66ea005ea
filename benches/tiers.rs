//! What tiering saves: one hour of `--scenario ddos` traffic, laid out as
//! Logpush sends it (one record per `--every` seconds), drained through a
//! real output once per routing:
//!   (a) every event, enriched with `empty` trim (today's default);
//!   (b) rollups + drops (`events = "drops"`, `rollups = true`);
//!   (c) rollups only (`events = "none"`, `rollups = true`).
//! Prints, per routing, the events and the bytes Splunk would get: HEC
//! JSON bodies, the same gzipped (level 1, as the splunk output sends), and
//! license bytes (the events' `_raw`; a metric event counts 150 bytes per
//! measurement, Splunk's rule), with the reduction against (a), and the
//! scenario's share of drops.
//! Run: `cargo bench --bench tiers [-- SAMPLES_PER_S [EVERY_S]]` (default
//! 300 samples/s, a record every 30 s: 1.08 M samples).

mod common;
use common::{fill_scenario, limits};

use flate2::write::GzEncoder;
use sluice::enrich::config::EnrichConfig;
use sluice::enrich::{Enricher, EnricherSlot};
use sluice::forward::batch::Compression;
use sluice::forward::config::Output;
use sluice::forward::context::{ForwardContext, TokenMeta, TokenMetas};
use sluice::forward::file::config::FileConfig;
use sluice::forward::routing::EventsRoute;
use sluice::metrics::Metrics;
use sluice::queue::Queue;
use sluice::rollup::config::RollupSettings;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Splunk licenses a metric measurement as this many bytes.
const METRIC_LICENSE_BYTES: u64 = 150;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// What one routing sent.
#[derive(Default)]
struct Sent {
    events: u64,
    metric_events: u64,
    hec_bytes: u64,
    gzip_bytes: u64,
    license_bytes: u64,
}

/// Drains a copy of `source` into an uncompressed file output with
/// `events` / `rollups`, then measures what it wrote.
async fn drain(source: &Path, work: &Path, events: EventsRoute, rollups: bool) -> Sent {
    let queue_dir = work.join("queue");
    copy_dir(source, &queue_dir);
    let queue = Arc::new(Queue::open(&queue_dir, limits()).expect("queue"));
    let file = FileConfig {
        name: "tier".into(),
        path: Some(work.join("out")),
        compression: Compression::None,
        events,
        rollups,
        ..FileConfig::default()
    };
    let rollup = Arc::new(RollupSettings::default());
    let output = Output::File(file.resolve("outputs[0]", work, &rollup).expect("output"));
    let enricher = Enricher::new(&EnrichConfig::default(), &[]).expect("enricher");
    let ctx = ForwardContext {
        queue: Arc::clone(&queue),
        metrics: Metrics::new().expect("metrics"),
        outputs: Arc::new(vec!["tier".into()]),
        tokens: Arc::new(TokenMetas::new(HashMap::from([(
            "logpush".to_string(),
            TokenMeta::default(),
        )]))),
        hostname: "bench".into(),
        enricher: Arc::new(EnricherSlot::new(enricher)),
        board: Default::default(),
        max_event_bytes: 1 << 20,
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = sluice::forward::spawn(&output, ctx, work, rx).expect("output");
    while queue.stats().records > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    let _ = task.await;
    measure(&work.join("out"))
}

fn measure(dir: &Path) -> Sent {
    let mut sent = Sent::default();
    let mut gz = GzEncoder::new(Count(0), flate2::Compression::fast());
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let file = std::fs::File::open(entry.expect("entry").path()).expect("open");
        for line in std::io::BufReader::new(file).split(b'\n') {
            let line = line.expect("read");
            if line.is_empty() {
                continue;
            }
            sent.hec_bytes += line.len() as u64 + 1;
            gz.write_all(&line).expect("gzip");
            gz.write_all(b"\n").expect("gzip");
            let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
            if v["event"] == "metric" {
                sent.metric_events += 1;
                let measures = v["fields"].as_object().map_or(0, |f| {
                    f.keys().filter(|k| k.starts_with("metric_name:")).count()
                });
                sent.license_bytes += METRIC_LICENSE_BYTES * measures as u64;
            } else {
                sent.events += 1;
                sent.license_bytes += v["event"].to_string().len() as u64;
            }
        }
    }
    sent.gzip_bytes = gz.finish().expect("gzip").0;
    sent
}

/// A writer that only counts.
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}

async fn run() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let per_s = args.first().copied().unwrap_or(300);
    let every_s = args.get(1).copied().unwrap_or(30).clamp(1, 3600);
    let base = tempfile::tempdir().expect("tempdir");
    let source = base.path().join("source");
    let start = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let (samples, drops) =
        fill_scenario(&source, 3600 / every_s, per_s * every_s, start, every_s).await;
    println!(
        "one hour of --scenario ddos: {samples} samples at {per_s}/s, a record every {every_s} s; drops {:.1} % of samples",
        drops as f64 * 100.0 / samples as f64
    );
    println!(
        "{:<22} {:>10} {:>9} {:>14} {:>12} {:>14} {:>10} {:>10}",
        "routing",
        "events",
        "metrics",
        "HEC bytes",
        "gzip bytes",
        "license bytes",
        "HEC vs a",
        "lic. vs a"
    );
    let runs = [
        ("(a) all events", EventsRoute::All, false),
        ("(b) rollups + drops", EventsRoute::Drops, true),
        ("(c) rollups only", EventsRoute::None, true),
    ];
    let mut first: Option<(u64, u64)> = None;
    for (i, (label, events, rollups)) in runs.into_iter().enumerate() {
        let work = base.path().join(format!("run-{i}"));
        let s = drain(&source, &work, events, rollups).await;
        let (hec0, lic0) = *first.get_or_insert((s.hec_bytes, s.license_bytes));
        let change = |now: u64, was: u64| (now as f64 / was as f64 - 1.0) * 100.0;
        println!(
            "{label:<22} {:>10} {:>9} {:>14} {:>12} {:>14} {:>9.2}% {:>9.2}%",
            s.events,
            s.metric_events,
            s.hec_bytes,
            s.gzip_bytes,
            s.license_bytes,
            change(s.hec_bytes, hec0),
            change(s.license_bytes, lic0),
        );
        let _ = std::fs::remove_dir_all(&work);
    }
}
