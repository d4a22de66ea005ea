//! The `s3` output against a real S3 API (moto in server mode, behind a
//! proxy that can take the bucket down or hang an upload): every accepted
//! line is in exactly one object, exactly as received; an outage loses
//! nothing; kill -9 mid-upload, then a restart, writes the same object
//! again and loses nothing.

use crate::support::process::*;
use crate::support::s3::*;
use crate::support::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(120);

/// Lines in `objects`, each with how often it appears.
fn counts(objects: &[(String, Vec<u8>)]) -> HashMap<String, usize> {
    let mut c = HashMap::new();
    for (key, bytes) in objects {
        for l in object_lines(key, bytes) {
            *c.entry(l).or_default() += 1;
        }
    }
    c
}

fn count_of(lines: &[String]) -> HashMap<String, usize> {
    let mut c = HashMap::new();
    for l in lines {
        *c.entry(l.clone()).or_default() += 1;
    }
    c
}

/// `prefix/dt=YYYY-MM-DD/hour=HH/<node>-<first>-<last>.<ext>`: (first, last).
fn range_of(key: &str, prefix: &str, ext: &str) -> (u64, u64) {
    let rest = key.strip_prefix(&format!("{prefix}/dt=")).expect(key);
    let (date, rest) = rest.split_once("/hour=").expect(key);
    assert_eq!(date.len(), 10, "{key}");
    let (hour, file) = rest.split_once('/').expect(key);
    assert!(hour.parse::<u8>().unwrap() < 24, "{key}");
    let stem = file.strip_suffix(ext).expect(key);
    let mut parts = stem.rsplitn(3, '-');
    let last = parts.next().unwrap().parse().expect(key);
    let first = parts.next().unwrap().parse().expect(key);
    assert!(!parts.next().unwrap().is_empty(), "node in {key}");
    (first, last)
}

/// Record ranges of the objects do not overlap.
fn assert_disjoint(objects: &[(String, Vec<u8>)], prefix: &str, ext: &str) {
    let mut ranges: Vec<(u64, u64)> = objects
        .iter()
        .map(|(k, _)| range_of(k, prefix, ext))
        .collect();
    ranges.sort();
    for w in ranges.windows(2) {
        assert!(w[0].1 < w[1].0, "overlapping objects {ranges:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_line_is_in_exactly_one_object_as_received() {
    let Some(moto) = Moto::start("s3::every_accepted_line").await else {
        return;
    };
    let outputs = format!(
        "{}{}",
        s3_output(
            "s3",
            moto.addr,
            "gz",
            "max_object_bytes = 65536\nmax_object_age = \"1s\""
        ),
        s3_output(
            "s3plain",
            moto.addr,
            "plain",
            "compression = \"none\"\nmax_object_age = \"1s\""
        ),
    );
    let (_dir, mut server) = start_in_tempdir(|dir| config_with_outputs(dir, "", &outputs)).await;
    let client = server.http2();
    let samples = sample_lines();
    let mut sent = Vec::new();
    for b in 0..12 {
        let batch: Vec<String> = samples.iter().skip(b * 7).take(150).cloned().collect();
        post_logpush(&server, &client, batch.join("\n").as_bytes(), "").await;
        sent.extend(batch);
    }
    // One record of more than 16 MiB: a multipart upload where uncompressed.
    let big: Vec<String> = samples.iter().cycle().take(11_500).cloned().collect();
    assert!(big.iter().map(|l| l.len() + 1).sum::<usize>() > 16 << 20);
    post_logpush(&server, &client, big.join("\n").as_bytes(), "").await;
    sent.extend(big);
    let deadline = Instant::now() + WAIT;
    while server.queue_stats().records > 0 {
        assert!(
            Instant::now() < deadline,
            "queue not emptied: {:?}",
            server.queue_stats()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let want = count_of(&sent);
    let gz = moto.objects("gz").await;
    assert!(gz.len() >= 3, "small objects: {}", gz.len());
    assert_eq!(counts(&gz), want, "gzip objects hold every line once");
    assert_disjoint(&gz, "gz", ".ndjson.gz");
    let plain = moto.objects("plain").await;
    assert_eq!(counts(&plain), want, "plain objects hold every line once");
    assert_disjoint(&plain, "plain", ".ndjson");
    assert!(
        plain.iter().any(|(_, b)| b.len() > 16 << 20),
        "a multipart object"
    );
    server
        .assert_metrics_contain(
            "sluice_output_requests_total{code=\"ok\",indexer=\"bucket\",output=\"s3\"}",
        )
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_down_for_a_while_loses_nothing() {
    let Some(moto) = Moto::start("s3::the_bucket_down").await else {
        return;
    };
    let proxy = Proxy::start(moto.addr).await;
    proxy.set(Mode::Refuse);
    let outputs = s3_output("s3", proxy.addr, "down", "max_object_age = \"1s\"");
    let (_dir, mut server) = start_in_tempdir(|dir| config_with_outputs(dir, "", &outputs)).await;
    let client = server.http1();
    let samples = sample_lines();
    let mut sent = Vec::new();
    for b in 0..5 {
        let batch: Vec<String> = samples.iter().skip(b * 11).take(40).cloned().collect();
        post_logpush(&server, &client, batch.join("\n").as_bytes(), "").await;
        sent.extend(batch);
    }
    // Uploads fail meanwhile, and nothing leaves the queue.
    let deadline = Instant::now() + WAIT;
    while !server
        .metrics()
        .await
        .contains("code=\"error\",indexer=\"bucket\",output=\"s3\"")
    {
        assert!(Instant::now() < deadline, "no failed upload counted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(server.queue_stats().records, 5);
    assert!(moto.objects("down").await.is_empty());
    proxy.set(Mode::Flow);
    let deadline = Instant::now() + WAIT;
    while server.queue_stats().records > 0 {
        assert!(
            Instant::now() < deadline,
            "queue not emptied after the outage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let objects = moto.objects("down").await;
    assert_eq!(counts(&objects), count_of(&sent));
    server.stop().await;
}

fn crash_config(dir: &Path, proxy: &Proxy) -> std::path::PathBuf {
    let outputs = s3_output("s3", proxy.addr, "crash", "max_object_age = \"1s\"");
    let text = with_outputs(&json_log_config(dir, &[]), &outputs);
    write_file(dir, "sluice.toml", &text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_upload_then_restart_writes_every_acknowledged_line_once() {
    let Some(moto) = Moto::start("s3::kill_9_mid_upload").await else {
        return;
    };
    let proxy = Proxy::start(moto.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = crash_config(dir.path(), &proxy);
    let mut accepted: Vec<String> = Vec::new();
    let (proc, hec, _) = tokio::task::block_in_place(|| Sluice::run_listening(&cfg));
    let mut proc = proc;
    let client = client(&dir.path().join("tls/ca.pem"), false);
    let url = format!(
        "https://127.0.0.1:{}{RAW}?channel={CHANNEL}&sourcetype=cloudflare:network_analytics",
        hec.port()
    );
    let send = |round: u32| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let mut ok = Vec::new();
            for batch in 0..6 {
                let lines: Vec<String> = (0..50)
                    .map(|i| format!("{{\"round\":{round},\"batch\":{batch},\"i\":{i}}}"))
                    .collect();
                let resp = post(&client, &url, TOKEN, lines.join("\n").as_bytes(), false).await;
                if resp.is_ok_and(|r| r.status() == 200) {
                    ok.extend(lines);
                }
            }
            ok
        }
    };
    accepted.extend(send(0).await);
    let deadline = Instant::now() + WAIT;
    while moto.objects("crash").await.is_empty() {
        assert!(Instant::now() < deadline, "no object written");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The next object's upload hangs: its range is stored, nothing released.
    proxy.set(Mode::Stall);
    accepted.extend(send(1).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = tokio::task::block_in_place(|| proc.kill9());
    assert!(!status.success());
    proxy.set(Mode::Flow);
    let mut proc = tokio::task::block_in_place(|| {
        let mut p = Sluice::run(&cfg);
        p.wait_for_stderr("the begun object completed", |l| {
            l.contains("completing an object begun before the restart")
        });
        p
    });
    let want = count_of(&accepted);
    let deadline = Instant::now() + WAIT;
    loop {
        let got = counts(&moto.objects("crash").await);
        if want.keys().all(|k| got.contains_key(k)) {
            assert_eq!(got, want, "every acknowledged line once");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} lines in objects",
            got.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_disjoint(&moto.objects("crash").await, "crash", ".ndjson.gz");
    proc.sigterm();
    let status = tokio::task::block_in_place(|| proc.wait_exit(Duration::from_secs(60)));
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_the_open_object_is_uploaded_before_exit() {
    let Some(moto) = Moto::start("s3::on_shutdown").await else {
        return;
    };
    // An object that would stay open for an hour.
    let outputs = s3_output("s3", moto.addr, "stop", "max_object_age = \"1h\"");
    let (dir, mut server) = start_in_tempdir(|dir| config_with_outputs(dir, "", &outputs)).await;
    let client = server.http1();
    let lines: Vec<String> = sample_lines().into_iter().take(120).collect();
    post_logpush(&server, &client, lines.join("\n").as_bytes(), "").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(moto.objects("stop").await.is_empty(), "still open");
    server.stop().await;
    let objects = moto.objects("stop").await;
    assert_eq!(objects.len(), 1);
    assert_eq!(counts(&objects), count_of(&lines));
    // And the queue let the record go.
    let queue = open_queue(dir.path());
    assert_eq!(queue.stats().records, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_upload_does_not_hold_the_stop_and_goes_up_after_the_restart() {
    let Some(moto) = Moto::start("s3::a_hanging_upload").await else {
        return;
    };
    let proxy = Proxy::start(moto.addr).await;
    proxy.set(Mode::Stall);
    let dir = tempfile::tempdir().unwrap();
    let outputs = s3_output("s3", proxy.addr, "hang", "max_object_age = \"1s\"");
    let text = config_with_outputs(dir.path(), "", &outputs);
    let mut server = TestServer::start_text(dir.path(), &text).await;
    let lines: Vec<String> = sample_lines().into_iter().take(60).collect();
    post_logpush(&server, &server.http1(), lines.join("\n").as_bytes(), "").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t0 = Instant::now();
    server.stop().await;
    let took = t0.elapsed();
    assert!(
        took < sluice::forward::s3::SHUTDOWN_WAIT + Duration::from_secs(20),
        "stop took {took:?}"
    );
    assert!(moto.objects("hang").await.is_empty());
    proxy.set(Mode::Flow);
    let mut server = TestServer::start_text(dir.path(), &text).await;
    let deadline = Instant::now() + WAIT;
    while server.queue_stats().records > 0 {
        assert!(Instant::now() < deadline, "not uploaded after the restart");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(counts(&moto.objects("hang").await), count_of(&lines));
    server.stop().await;
}
