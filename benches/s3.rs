//! The `s3` output against a local S3 API (moto in server mode, which must
//! be installed: `pip install 'moto[server]'`): a queue of `--scenario ddos`
//! records (a Logpush batch of 30,000 samples each) drained by
//!   1. the s3 output alone: objects and bytes per million samples, upload
//!      throughput;
//!   2. a file output alone (the same engine, builders and enrichment as a
//!      splunk output), then the file and s3 outputs side by side: how long
//!      the file output takes to deliver everything in each case.
//!
//! Run: `cargo bench --bench s3 [-- SAMPLES]` (default 1,000,000).

mod common;
use common::{cpu_seconds, cpu_seconds_of, fill_scenario, limits};

use sluice::enrich::config::EnrichConfig;
use sluice::enrich::{Enricher, EnricherSlot};
use sluice::forward::batch::Compression;
use sluice::forward::config::Output;
use sluice::forward::context::{ForwardContext, TokenMeta, TokenMetas};
use sluice::forward::file::config::FileConfig;
use sluice::forward::s3::config::S3Config;
use sluice::metrics::Metrics;
use sluice::queue::Queue;
use sluice::rollup::config::RollupSettings;
use sluice::setting::Secrets;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PER_RECORD: usize = 30_000;
const BUCKET: &str = "bench";

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn moto() -> (Moto, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto: pip install 'moto[server]'");
    let m = Moto(child);
    let http = reqwest::Client::new();
    for _ in 0..300 {
        let ok = http
            .put(format!("http://127.0.0.1:{port}/{BUCKET}"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return (m, port);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("moto did not start");
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

fn s3_output(port: u16, prefix: &str) -> Output {
    std::env::set_var("SLUICE_BENCH_S3_KEY", "bench");
    let c = S3Config {
        name: "s3".into(),
        bucket: BUCKET.into(),
        prefix: prefix.into(),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        access_key_id_env: Some("SLUICE_BENCH_S3_KEY".into()),
        secret_access_key_env: Some("SLUICE_BENCH_S3_KEY".into()),
        ..S3Config::default()
    };
    Output::S3(
        c.resolve(
            "outputs[1]",
            Secrets::Read,
            &Arc::new(RollupSettings::default()),
        )
        .expect("s3 output"),
    )
}

fn file_output(work: &Path) -> Output {
    let file = FileConfig {
        name: "archive".into(),
        path: Some(work.join("archive")),
        compression: Compression::None,
        ..FileConfig::default()
    };
    Output::File(
        file.resolve("outputs[0]", work, &Arc::new(RollupSettings::default()))
            .expect("file output"),
    )
}

/// Drains a copy of `source` with `outputs`; returns, per output, the
/// seconds until it delivered `samples` events, and the CPU seconds Sluice
/// and the S3 server (process `moto`) used.
async fn drain(
    source: &Path,
    work: &Path,
    outputs: &[Output],
    samples: u64,
    moto: u32,
) -> (Vec<f64>, f64, f64) {
    let queue_dir = work.join("queue");
    copy_dir(source, &queue_dir);
    let queue = Arc::new(Queue::open(&queue_dir, limits()).expect("queue"));
    let metrics = Metrics::new().expect("metrics");
    let ctx = ForwardContext {
        queue: Arc::clone(&queue),
        metrics: metrics.clone(),
        outputs: Arc::new(outputs.iter().map(|o| o.name().to_string()).collect()),
        tokens: Arc::new(TokenMetas::new(HashMap::from([(
            "logpush".to_string(),
            TokenMeta::default(),
        )]))),
        hostname: "bench".into(),
        enricher: Arc::new(EnricherSlot::new(
            Enricher::new(&EnrichConfig::default(), &[]).expect("enricher"),
        )),
        board: Default::default(),
        max_event_bytes: 1 << 20,
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let cpu0 = cpu_seconds();
    let moto_cpu0 = cpu_seconds_of(&moto.to_string());
    let t0 = Instant::now();
    let tasks: Vec<_> = outputs
        .iter()
        .map(|o| sluice::forward::spawn(o, ctx.clone(), work, rx.clone()).expect("output"))
        .collect();
    let mut done: Vec<Option<f64>> = vec![None; outputs.len()];
    while done.iter().any(Option::is_none) {
        for (i, o) in outputs.iter().enumerate() {
            let delivered = metrics
                .output_events
                .with_label_values(&[o.name(), "delivered"])
                .get();
            if done[i].is_none() && delivered >= samples {
                done[i] = Some(t0.elapsed().as_secs_f64());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = cpu_seconds() - cpu0;
    let moto_cpu = cpu_seconds_of(&moto.to_string()) - moto_cpu0;
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
    (done.into_iter().flatten().collect(), cpu, moto_cpu)
}

fn main() {
    sluice::allocator::tune();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}

async fn run() {
    let want: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let records = want.div_ceil(PER_RECORD);
    let (moto, port) = moto().await;
    let pid = moto.0.id();
    let base = tempfile::tempdir().expect("tempdir");
    let source = base.path().join("source");
    let start = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let (samples, _) = fill_scenario(&source, records, PER_RECORD, start, 30).await;
    let per_m = |n: f64| n * 1e6 / samples as f64;
    println!(
        "{samples} samples in {records} records; {} cores; moto on loopback",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let work = base.path().join("s3-alone");
    let (secs, cpu, moto_cpu) =
        drain(&source, &work, &[s3_output(port, "alone")], samples, pid).await;
    let objects = list(port, "alone").await;
    let bytes: u64 = objects.iter().sum();
    println!(
        "s3 alone: {:.1} s, {:.0} samples/s, {:.1} MB/s uploaded, CPU {cpu:.1} s (moto {moto_cpu:.1} s); per million samples: {:.1} objects, {:.1} MB",
        secs[0],
        samples as f64 / secs[0],
        bytes as f64 / 1e6 / secs[0],
        per_m(objects.len() as f64),
        per_m(bytes as f64) / 1e6,
    );
    let _ = std::fs::remove_dir_all(&work);

    let work = base.path().join("file-alone");
    let (alone, cpu_alone, _) = drain(&source, &work, &[file_output(&work)], samples, pid).await;
    let _ = std::fs::remove_dir_all(&work);
    let work = base.path().join("both");
    let both_outputs = [file_output(&work), s3_output(port, "both")];
    let (both, cpu_both, moto_both) = drain(&source, &work, &both_outputs, samples, pid).await;
    println!(
        "file output alone: {:.1} s (CPU {cpu_alone:.1} s); beside the s3 output: {:.1} s ({:+.1} %), s3 done at {:.1} s (CPU {cpu_both:.1} s, moto {moto_both:.1} s)",
        alone[0],
        both[0],
        (both[0] / alone[0] - 1.0) * 100.0,
        both[1],
    );
}

/// Sizes of the objects under `prefix`.
async fn list(port: u16, prefix: &str) -> Vec<u64> {
    use futures_util::StreamExt;
    use object_store::ObjectStore;
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_allow_http(true)
        .with_access_key_id("bench")
        .with_secret_access_key("bench")
        .build()
        .expect("store");
    let p = object_store::path::Path::from(prefix);
    let mut l = store.list(Some(&p));
    let mut out = Vec::new();
    while let Some(m) = l.next().await {
        out.push(m.expect("object").size);
    }
    out
}
