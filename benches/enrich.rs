//! Enrichment, per core, printed as numbers (not asserted): throughput of
//! NDJSON in through enrichment and HEC JSON serialization (what an output
//! does per sample), the same for the `loadgen --scenario ddos` traffic, and
//! `_raw` bytes per sample against Cloudflare's line for each trim mode.
//! Run: `cargo bench --bench enrich`.

mod common;
use common::logpush_meta;

use sluice::enrich::config::{EnrichConfig, TrimMode};
use sluice::enrich::{enrich_line, Enricher};
use sluice::forward::event::{Overrides, Resolver, TokenDefaults};
use sluice::forward::source::render;
use sluice::forward::stream::{EventStream, Item};
use sluice::loadgen::scenario::{Scenario, ScenarioOptions, Timestamps};
use sluice::queue::BodyEncoding;
use std::path::Path;
use std::time::{Duration, Instant};

const FILES: [&str; 3] = [
    "nal-rfc3339.ndjson",
    "nal-unixnano.ndjson",
    "nal-legacy-unix.ndjson",
];

fn sample_lines(file: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/samples");
    let text = std::fs::read_to_string(dir.join(file)).expect("sample file");
    text.lines().map(str::to_string).collect()
}

fn enricher(trim: TrimMode, assets: bool) -> Enricher {
    let config = EnrichConfig {
        trim,
        assets: assets
            .then(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/assets.example.csv")),
        ..EnrichConfig::default()
    };
    Enricher::new(&config, &[])
        .expect("assets")
        .expect("enabled")
}

fn batch(lines: &[String], n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend_from_slice(lines[i % lines.len()].as_bytes());
        out.push(b'\n');
    }
    out
}

/// Serializes every event of a `/raw` record as the Splunk output does; returns bytes written.
fn forward_once(decoded: &[u8], events: u64, enrich: Option<&Enricher>) -> usize {
    let meta = logpush_meta(events, decoded.len() as u64, BodyEncoding::Identity);
    let resolver = Resolver {
        overrides: Overrides::default(),
        token: TokenDefaults::default(),
        hostname: "bench",
    };
    // The way an output reads a record: as a stream of events.
    let mut stream = EventStream::new(0, meta.clone(), decoded, 1 << 20);
    let mut total = 0;
    let mut out = Vec::new();
    loop {
        let number = stream.position();
        let Ok(Some(Item::Event(bytes))) = stream.peek() else {
            break;
        };
        if let Ok(e) = resolver.event(&meta, bytes, number) {
            out.clear();
            render(&e, enrich.map(|en| (en, "logpush")), true, &mut out);
            total += out.len();
        }
        stream.advance();
    }
    total
}

fn measure(name: &str, decoded: &[u8], events: u64, enrich: Option<&Enricher>) {
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        std::hint::black_box(forward_once(decoded, events, enrich));
        rounds += 1;
    }
    let s = start.elapsed().as_secs_f64();
    println!(
        "{name:<44} {:>7.1} MB/s in  {:>9.0} samples/s",
        (decoded.len() as u64 * rounds) as f64 / s / 1e6,
        (events * rounds) as f64 / s
    );
}

/// `-- count N`: renders the 10,000-sample record N times with `empty`
/// trim and nothing else, for an instruction count that the machine's
/// noise cannot blur: run it under `valgrind --tool=cachegrind
/// --cache-sim=no` with N = 1 and 2; the difference is the cost of 10,000
/// samples.
fn count(rounds: usize) {
    let mut all = Vec::new();
    for f in FILES {
        all.extend(sample_lines(f));
    }
    let decoded = batch(&all, 10_000);
    let e = enricher(TrimMode::Empty, false);
    for _ in 0..rounds {
        std::hint::black_box(forward_once(&decoded, 10_000, Some(&e)));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "count") {
        return count(args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(1));
    }
    println!("== throughput per core: decoded /raw record → HEC JSON lines (one thread) ==");
    let mut all = Vec::new();
    for f in FILES {
        all.extend(sample_lines(f));
    }
    let n = 10_000;
    let decoded = batch(&all, n);
    println!(
        "input: {n} sample lines from ../shared/samples, {:.1} MB",
        decoded.len() as f64 / 1e6
    );
    measure(
        "enrichment off (line as a JSON string)",
        &decoded,
        n as u64,
        None,
    );
    for trim in [TrimMode::None, TrimMode::Empty, TrimMode::Compact] {
        let e = enricher(trim, false);
        measure(
            &format!("enriched, trim = {trim:?}"),
            &decoded,
            n as u64,
            Some(&e),
        );
    }
    let e = enricher(TrimMode::Empty, true);
    measure(
        "enriched, trim = Empty, asset table",
        &decoded,
        n as u64,
        Some(&e),
    );

    let mut scenario = Scenario::new(ScenarioOptions {
        timestamps: Timestamps::Rfc3339,
        legacy_names: false,
        seed: 1,
    });
    let mut generated = Vec::new();
    scenario.next_batch(n, &mut generated);
    println!(
        "input: {n} lines of loadgen --scenario ddos, {:.1} MB",
        generated.len() as f64 / 1e6
    );
    let e = enricher(TrimMode::Empty, false);
    measure("scenario, trim = Empty", &generated, n as u64, Some(&e));

    println!();
    println!("== _raw bytes per sample (the enriched event object vs Cloudflare's line) ==");
    for f in FILES {
        let lines = sample_lines(f);
        let original: usize = lines.iter().map(String::len).sum();
        let mut row = format!(
            "{f:<26} cloudflare {:>6.0} B",
            original as f64 / lines.len() as f64
        );
        for trim in [TrimMode::None, TrimMode::Empty, TrimMode::Compact] {
            let e = enricher(trim, false);
            let enriched: usize = lines
                .iter()
                .map(|l| enrich_line(&e, l.as_bytes(), "logpush").map_or(l.len(), |v| v.len()))
                .sum();
            row.push_str(&format!(
                "  {trim:?} {:>6.0} B ({:+.1} %)",
                enriched as f64 / lines.len() as f64,
                (enriched as f64 / original as f64 - 1.0) * 100.0
            ));
        }
        println!("{row}");
    }
}
