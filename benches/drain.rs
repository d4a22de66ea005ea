//! Draining one pre-filled queue into a `file` output (`compression =
//! "none"`, a cheap sink) with enrichment on (`empty` trim), once per
//! `build_threads` value, each run from an identical copy of the queue.
//! Prints events/s, the process's CPU time over the drain (user + system,
//! `/proc/self/stat`), µs of CPU per event, events/s per core used and RSS.
//! Run: `cargo bench --bench drain [-- EVENTS [THREADS …] [xROUNDS] [plain]]`
//! (default 500000 events, threads 1 2, 3 rounds). The runs of a round go
//! one after the other (1, 2, 1, 2, …) so a noisy neighbour slows both
//! alike; each line gives the median over the rounds. `plain`: enrichment
//! off, the floor that reading, decoding and writing set.

mod common;
use common::{cpu_seconds, logpush_meta, peak_rss_mb, rss_mb};

use flate2::write::GzEncoder;
use sluice::enrich::config::EnrichConfig;
use sluice::enrich::{Enricher, EnricherSlot};
use sluice::forward::batch::Compression;
use sluice::forward::config::Output;
use sluice::forward::context::{ForwardContext, TokenMeta, TokenMetas};
use sluice::forward::file::config::FileConfig;
use sluice::metrics::Metrics;
use sluice::queue::{BodyEncoding, Queue, QueueLimits};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LINES_PER_RECORD: usize = 10_000;

fn limits() -> QueueLimits {
    QueueLimits {
        max_bytes: u64::MAX,
        min_free_bytes: 0,
        cache_bytes: 32 << 20,
    }
}

fn sample_lines() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/samples");
    let mut lines = Vec::new();
    for f in [
        "nal-rfc3339.ndjson",
        "nal-unixnano.ndjson",
        "nal-legacy-unix.ndjson",
    ] {
        let text = std::fs::read_to_string(dir.join(f)).expect("sample file");
        lines.extend(text.lines().map(str::to_string));
    }
    lines
}

/// Fills a queue with Logpush-shaped records: gzip NDJSON on `/raw`.
async fn fill(dir: &Path, events: usize) -> u64 {
    let lines = sample_lines();
    let q = Queue::open(dir, limits()).expect("queue");
    let mut decoded_total = 0u64;
    let mut k = 0;
    while k < events {
        let n = LINES_PER_RECORD.min(events - k);
        let mut body = Vec::new();
        for i in 0..n {
            body.extend_from_slice(lines[(k + i) % lines.len()].as_bytes());
            body.push(b'\n');
        }
        decoded_total += body.len() as u64;
        // Level 1 keeps filling a 10 GB backlog short; decoding costs about the same.
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).expect("gzip");
        let stored = gz.finish().expect("gzip");
        let meta = logpush_meta(n as u64, body.len() as u64, BodyEncoding::Gzip);
        let p = q.append(&meta, &stored).expect("append");
        q.commit(p).await.expect("commit");
        k += n;
    }
    q.flush().expect("flush");
    decoded_total
}

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

/// Drains a copy of `source` with `threads` builders; returns (seconds, CPU seconds).
async fn drain(source: &Path, work: &Path, threads: usize, enrich: bool) -> (f64, f64) {
    let queue_dir = work.join("queue");
    copy_dir(source, &queue_dir);
    let queue = Arc::new(Queue::open(&queue_dir, limits()).expect("queue"));
    let file = FileConfig {
        name: "archive".into(),
        path: Some(work.join("archive")),
        compression: Compression::None,
        build_threads: Some(threads),
        ..FileConfig::default()
    };
    let output = Output::File(
        file.resolve("outputs[0]", work, &Default::default())
            .expect("file output"),
    );
    let config = EnrichConfig {
        enabled: enrich,
        ..EnrichConfig::default()
    };
    let enricher = Enricher::new(&config, &[]).expect("enricher");
    let ctx = ForwardContext {
        queue: Arc::clone(&queue),
        metrics: Metrics::new().expect("metrics"),
        outputs: Arc::new(vec!["archive".into()]),
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
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let task = sluice::forward::spawn(&output, ctx, work, rx).expect("output");
    while queue.stats().records > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (secs, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let _ = stop.send(true);
    let _ = task.await;
    (secs, cpu)
}

fn main() {
    // As the binary does, so the RSS printed is the service's.
    sluice::allocator::tune();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn run() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let enrich = !args.iter().any(|a| a == "plain");
    let rounds: usize = args
        .iter()
        .find_map(|a| a.strip_prefix('x').and_then(|n| n.parse().ok()))
        .unwrap_or(3)
        .max(1);
    let numbers: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let events = numbers.first().copied().unwrap_or(500_000);
    let threads: Vec<usize> = match numbers.get(1..) {
        Some(rest) if !rest.is_empty() => rest.to_vec(),
        _ => vec![1, 2],
    };
    let base = tempfile::tempdir().expect("tempdir");
    let source = base.path().join("source");
    let decoded = fill(&source, events).await;
    println!(
        "queue: {events} events in {} records, {:.2} GB decoded; {} cores; enrichment {}; median of {rounds} rounds",
        events.div_ceil(LINES_PER_RECORD),
        decoded as f64 / 1e9,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if enrich { "on (empty trim)" } else { "off" },
    );
    let mut runs: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); threads.len()];
    let mut peak = vec![0u64; threads.len()];
    for round in 0..rounds {
        for (i, &t) in threads.iter().enumerate() {
            let work = base.path().join(format!("run-{round}-{t}"));
            // Peak RSS counts from here (not the fill, not an earlier run).
            let _ = std::fs::write("/proc/self/clear_refs", "5");
            let (secs, cpu) = drain(&source, &work, t, enrich).await;
            runs[i].0.push(secs);
            runs[i].1.push(cpu);
            peak[i] = peak[i].max(peak_rss_mb());
            let _ = std::fs::remove_dir_all(&work);
        }
    }
    let mut first = None;
    for (i, t) in threads.iter().enumerate() {
        let (secs, cpu) = (median(runs[i].0.clone()), median(runs[i].1.clone()));
        let rate = events as f64 / secs;
        let speedup = first.map_or(1.0, |f: f64| rate / f);
        first.get_or_insert(rate);
        let all: Vec<String> = runs[i]
            .0
            .iter()
            .map(|s| format!("{:.0}k", events as f64 / s / 1e3))
            .collect();
        println!(
            "build_threads = {t}: {rate:.0} events/s ({:.0} MB/s decoded; runs {}), {secs:.2} s; CPU {cpu:.2} s = {:.2} µs/event, {:.0} events/s per core used; {speedup:.2}× the first; RSS {} MB (peak {} MB)",
            decoded as f64 / secs / 1e6,
            all.join(" "),
            cpu / events as f64 * 1e6,
            events as f64 / cpu,
            rss_mb(),
            peak[i]
        );
    }
}
