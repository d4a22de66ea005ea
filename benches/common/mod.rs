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
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
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
