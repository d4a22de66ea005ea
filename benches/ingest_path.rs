//! Per-core costs of the ingest path, printed as numbers (not asserted):
//! gunzip, `/raw` line counting, `/event` validation, and durable appends.
//! Run: `cargo bench --bench ingest_path`.

mod common;
use common::{logpush_meta, rss_mb};

use flate2::write::GzEncoder;
use flate2::Compression;
use sluice::hec::event::EventRules;
use sluice::ingest::decode::{scan_body, Scan};
use sluice::queue::{BodyEncoding, DataEndpoint, Queue, QueueLimits};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

const ANY: EventRules<'static> = EventRules {
    allowed_indexes: &[],
    max_event_bytes: 1 << 20,
};

fn sample_ndjson(lines: usize) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/samples");
    let mut all = Vec::new();
    for f in [
        "nal-rfc3339.ndjson",
        "nal-unixnano.ndjson",
        "nal-legacy-unix.ndjson",
    ] {
        let text = std::fs::read_to_string(dir.join(f)).expect("sample file");
        all.extend(text.lines().map(str::to_string));
    }
    let mut out = Vec::new();
    for i in 0..lines {
        out.extend_from_slice(all[i % all.len()].as_bytes());
        out.push(b'\n');
    }
    out
}

fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn report(name: &str, bytes: usize, events: usize, iters: usize, t: Instant) {
    let s = t.elapsed().as_secs_f64();
    println!(
        "{name:<38} {:>8.1} MB/s  {:>10.0} events/s",
        (bytes * iters) as f64 / s / 1e6,
        (events * iters) as f64 / s
    );
}

fn main() {
    let lines = 10_000;
    let raw = sample_ndjson(lines);
    let gz = gzip(&raw, 6);
    println!(
        "batch: {lines} lines, {:.1} MB decoded, {:.2} MB gzip (ratio {:.1})",
        raw.len() as f64 / 1e6,
        gz.len() as f64 / 1e6,
        raw.len() as f64 / gz.len() as f64
    );
    let iters = 20;

    let t = Instant::now();
    for _ in 0..iters {
        let mut out = Vec::with_capacity(raw.len());
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .expect("gunzip");
    }
    report("gunzip only", raw.len(), lines, iters, t);

    let t = Instant::now();
    for _ in 0..iters {
        let s = scan_body(&gz, BodyEncoding::Gzip, DataEndpoint::Raw, ANY, u64::MAX).expect("scan");
        assert!(matches!(s, Scan::Accepted { events, .. } if events == lines as u64));
    }
    report("/raw gzip: gunzip + line count", raw.len(), lines, iters, t);

    let t = Instant::now();
    for _ in 0..iters {
        scan_body(
            &raw,
            BodyEncoding::Identity,
            DataEndpoint::Raw,
            ANY,
            u64::MAX,
        )
        .expect("scan");
    }
    report("/raw identity: line count", raw.len(), lines, iters, t);

    let mut event_body = Vec::new();
    for line in raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        event_body.extend_from_slice(b"{\"event\":");
        event_body.extend_from_slice(line);
        event_body.extend_from_slice(b",\"time\":\"1700000000.5\"}\n");
    }
    let event_gz = gzip(&event_body, 6);
    let t = Instant::now();
    for _ in 0..iters {
        let s = scan_body(
            &event_gz,
            BodyEncoding::Gzip,
            DataEndpoint::Event,
            ANY,
            u64::MAX,
        )
        .expect("scan");
        assert!(matches!(s, Scan::Accepted { events, .. } if events == lines as u64));
    }
    report(
        "/event gzip: gunzip + split + validate",
        event_body.len(),
        lines,
        iters,
        t,
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let queue = Queue::open(
        dir.path(),
        QueueLimits {
            max_bytes: u64::MAX,
            min_free_bytes: 0,
            cache_bytes: 32 << 20,
        },
    )
    .expect("queue");
    let meta = logpush_meta(lines as u64, raw.len() as u64, BodyEncoding::Gzip);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let queue = std::sync::Arc::new(queue);
    for concurrency in [1usize, 8] {
        let records = 200;
        let t = Instant::now();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for w in 0..concurrency {
                let (q, m, body) = (queue.clone(), meta.clone(), gz.clone());
                tasks.push(tokio::spawn(async move {
                    for _ in (w..records).step_by(concurrency) {
                        let p = q.append(&m, &body).expect("append");
                        q.commit(p).await.expect("commit");
                    }
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
        });
        let s = t.elapsed().as_secs_f64();
        println!(
            "durable append+flush, {concurrency} writers       {:>8.1} records/s {:>10.0} events/s ({:.1} MB/s stored)",
            records as f64 / s,
            (records * lines) as f64 / s,
            (records * gz.len()) as f64 / s / 1e6
        );
    }
    let stats = queue.stats();
    println!(
        "after storing {:.0} MB in the queue: process RSS {} MB (sled cache_bytes 32 MiB)",
        stats.bytes as f64 / 1e6,
        rss_mb()
    );
}
