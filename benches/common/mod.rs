//! Shared by the benchmarks; each uses the helpers it needs.
#![allow(dead_code)]

/// This process's resident memory, MB.
pub fn rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb / 1024)
}

/// CPU seconds (user + system) this process has used, from `/proc/self/stat`.
pub fn cpu_seconds() -> f64 {
    cpu_seconds_of("self")
}

/// CPU seconds (user + system) process `pid` ("self": this one) has used.
pub fn cpu_seconds_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the state.
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz.max(1.0)
}

/// Peak resident memory of this process so far, MB.
pub fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb / 1024)
}

/// The metadata of a Logpush batch as Sluice stores it: `/raw`, token
/// `logpush`, sourcetype `cloudflare:network_analytics`, index `cloudflare`.
pub fn logpush_meta(
    events: u64,
    decoded_bytes: u64,
    encoding: sluice::queue::BodyEncoding,
) -> sluice::queue::RecordMeta {
    sluice::queue::RecordMeta {
        endpoint: sluice::queue::DataEndpoint::Raw,
        token: "logpush".into(),
        channel: None,
        sourcetype: Some("cloudflare:network_analytics".into()),
        source: Some("cloudflare:logpush".into()),
        host: None,
        index: Some("cloudflare".into()),
        received_ms: 0,
        events,
        encoding,
        decoded_bytes,
    }
}

/// Queue limits that never refuse (benchmarks fill what they measure).
pub fn limits() -> sluice::queue::QueueLimits {
    sluice::queue::QueueLimits {
        max_bytes: u64::MAX,
        min_free_bytes: 0,
        cache_bytes: 32 << 20,
    }
}

/// Fills a queue at `dir` with `records` Logpush batches of `lines`
/// `--scenario ddos` samples each (gzip level 1), the k-th sent at
/// `start + k × every_s`; returns (samples, drops).
pub async fn fill_scenario(
    dir: &std::path::Path,
    records: usize,
    lines: usize,
    start: time::OffsetDateTime,
    every_s: usize,
) -> (u64, u64) {
    use sluice::loadgen::scenario::{Scenario, ScenarioOptions, Timestamps};
    use std::io::Write;
    let q = sluice::queue::Queue::open(dir, limits()).expect("queue");
    let mut scenario = Scenario::new(ScenarioOptions {
        timestamps: Timestamps::Rfc3339,
        legacy_names: false,
        seed: 7,
    });
    let (mut samples, mut drops) = (0u64, 0u64);
    for k in 0..records {
        let at = start + time::Duration::seconds((k * every_s) as i64);
        let mut body = Vec::new();
        let truth = scenario.next_batch_at(lines, at, &mut body);
        samples += truth.records;
        drops += truth
            .by_system_outcome
            .iter()
            .filter(|(k, _)| k.ends_with("/drop"))
            .map(|(_, n)| n)
            .sum::<u64>();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).expect("gzip");
        let stored = gz.finish().expect("gzip");
        let meta = logpush_meta(
            truth.records,
            body.len() as u64,
            sluice::queue::BodyEncoding::Gzip,
        );
        let p = q.append(&meta, &stored).expect("append");
        q.commit(p).await.expect("commit");
    }
    q.flush().expect("flush");
    (samples, drops)
}
