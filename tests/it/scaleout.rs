//! Two Sluice nodes behind HAProxy running the committed
//! `deploy/haproxy/sluice.cfg` (only its ports changed), as deploy/README.md
//! "Scaling out" describes them.
//!
//! Logpush-shaped traffic with indexer acks (gzip'd batches of sample lines,
//! 16 channels, HTTP/1.1 and HTTP/2) shows that the channel hash keeps each
//! channel on one node, so `/ack` through the balancer finds its ids, while
//! the channels still spread over both nodes, and that the `:8443` entry
//! spreads one channel over both. Then, under continuous load, node 1 is
//! killed with SIGKILL and restarted, and node 2 leaves with `sluice drain`:
//! once HAProxy has taken the dead node out no request fails, through the
//! restart and the drain, and every line any node answered 200 for reaches
//! the indexer.

use crate::support::hec_sink::*;
use crate::support::process::*;
use crate::support::*;
use serde_json::{json, Value};
use sluice::forward::event::EventId;
use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TEST: &str =
    "haproxy_spreads_channels_over_two_nodes_and_a_killed_or_drained_node_loses_nothing";
/// Channels of the acked load: enough that the consistent hash gives both
/// nodes some.
const CHANNELS: usize = 16;
/// Lines per request, as a small Logpush batch.
const LINES: usize = 50;
/// HAProxy retries a request elsewhere only when the whole request fits in
/// one buffer (16 KB with its headers): the batches must stay below that for
/// a node's 503 or a refused connection to be invisible to clients.
const RETRYABLE_BODY: usize = 12 * 1024;
/// Bound of every wait (slow shared machine).
const WAIT: Duration = Duration::from_secs(120);
/// Longer than HAProxy's own `timeout server` (60 s), so a stuck node shows
/// as HAProxy's answer rather than a client timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);
/// Pause between the background load's requests.
const PAUSE: Duration = Duration::from_millis(100);
/// Lines of each process's output in failure messages.
const TAIL: usize = 40;

/// HAProxy's path: on PATH, else where Debian and source builds put it (a
/// user's PATH may lack the sbin directories).
fn find_haproxy() -> Option<PathBuf> {
    ["haproxy", "/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| {
            Command::new(p)
                .arg("-v")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// `N` distinct free loopback ports: bound together so none repeats, then
/// released for the nodes and HAProxy to bind.
fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    std::array::from_fn(|i| held[i].local_addr().expect("local address").port())
}

/// The repository root, where HAProxy starts so that the config's relative
/// certificate paths work as committed.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A node's config in `dir`: HEC on `port` with the test certificate that
/// HAProxy verifies, the harness's tokens (the same on both nodes, as the
/// deploy guide requires), forwarding with acks to `sink`.
fn node_config(dir: &Path, port: u16, sink: &HecSink) -> PathBuf {
    let certs = repo().join("deploy/haproxy");
    let cert = certs.join("test-localhost.pem").display().to_string();
    let key = certs.join("test-localhost.key").display().to_string();
    let tls = format!("workers = 2\ntls_cert = {cert:?}\ntls_key = {key:?}\n");
    // With its newline, so that `metrics_listen` keeps port 0.
    let listen = format!("\nlisten = \"127.0.0.1:{port}\"");
    let text = json_log_config(
        dir,
        &[
            ("\nlisten = \"127.0.0.1:0\"", listen.as_str()),
            ("workers = 2\n", tls.as_str()),
        ],
    );
    let outputs = splunk_output_acking(&[sink.url()], Some("5s"), "max_events = 40");
    write_file(dir, "sluice.toml", &with_outputs(&text, &outputs))
}

/// The committed HAProxy config with the test's ports, written into `dir`.
fn haproxy_config(dir: &Path, nodes: [u16; 2], hec: u16, spread: u16, stats: u16) -> PathBuf {
    let committed = std::fs::read_to_string(repo().join("deploy/haproxy/sluice.cfg"))
        .expect("read deploy/haproxy/sluice.cfg");
    let replacements = [
        ("127.0.0.1:18088", format!("127.0.0.1:{}", nodes[0])),
        ("127.0.0.1:18089", format!("127.0.0.1:{}", nodes[1])),
        ("bind :8088 ", format!("bind 127.0.0.1:{hec} ")),
        ("bind :8443 ", format!("bind 127.0.0.1:{spread} ")),
        ("dst_port 8443", format!("dst_port {spread}")),
        ("bind 127.0.0.1:8404", format!("bind 127.0.0.1:{stats}")),
    ];
    let mut text = committed;
    for (from, to) in &replacements {
        assert!(
            text.contains(from),
            "deploy/haproxy/sluice.cfg no longer contains {from:?}: update {TEST}"
        );
        text = text.replace(from, to);
    }
    write_file(dir, "haproxy.cfg", &text)
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Every process's output so far, for failure messages.
#[derive(Default)]
struct Logs(Vec<(&'static str, Lines)>);

impl Logs {
    fn add(&mut self, name: &'static str, lines: &Lines) {
        self.0.push((name, lines.clone()));
    }

    fn text(&self) -> String {
        self.0
            .iter()
            .map(|(name, lines)| format!("\n--- {name}:\n{}", tail(&lines.text(), TAIL)))
            .collect()
    }
}

/// Batches of real sample lines, each line made unique (a first field naming
/// its batch and place), so that every accepted line can be found at the
/// indexer by its event id.
struct Batches {
    samples: Vec<String>,
    next: AtomicUsize,
}

impl Batches {
    fn new() -> Batches {
        Batches {
            samples: sample_lines(),
            next: AtomicUsize::new(0),
        }
    }

    fn next_batch(&self) -> Vec<String> {
        let batch = self.next.fetch_add(1, Ordering::Relaxed);
        (0..LINES)
            .map(|k| {
                let sample = &self.samples[(batch * LINES + k) % self.samples.len()];
                let fields = sample
                    .strip_prefix('{')
                    .expect("sample lines are JSON objects");
                format!("{{\"sluice_scaleout\":\"{batch}.{k}\",{fields}")
            })
            .collect()
    }
}

/// One request through the balancer and what it got.
struct Sent {
    channel: String,
    /// Event ids of its lines (what the indexer's events carry).
    ids: Vec<String>,
    /// Status, body and HTTP version; Err: no complete answer.
    answer: Result<(u16, Value, reqwest::Version), String>,
}

impl Sent {
    fn accepted(&self) -> bool {
        matches!(&self.answer, Ok((200, ..)))
    }

    fn ack_id(&self) -> Option<u64> {
        let (_, body, _) = self.answer.as_ref().ok()?;
        body["ackId"].as_u64()
    }

    fn version(&self) -> Option<reqwest::Version> {
        self.answer.as_ref().ok().map(|(_, _, v)| *v)
    }

    fn describe(&self) -> String {
        match &self.answer {
            Ok((status, body, version)) => {
                format!("channel {}: {version:?} {status} {body}", self.channel)
            }
            Err(e) => format!("channel {}: no answer: {e}", self.channel),
        }
    }
}

/// POSTs `lines` gzip'd to `<base>/raw` as Logpush does, with `token`.
async fn send(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    channel: &str,
    lines: Vec<String>,
) -> Sent {
    let url = format!("{base}{RAW}?channel={channel}&sourcetype=cloudflare:network_analytics");
    let body = gzip(lines.join("\n").as_bytes());
    assert!(
        body.len() < RETRYABLE_BODY,
        "a {} byte batch is too large for HAProxy to retry",
        body.len()
    );
    let answer = match post_gzip(client, &url, token, body).await {
        Ok(resp) => {
            let (status, version) = (resp.status().as_u16(), resp.version());
            match resp.text().await {
                Ok(text) => {
                    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                    Ok((status, body, version))
                }
                Err(e) => Err(format!("{status}, then {e}")),
            }
        }
        Err(e) => Err(e.to_string()),
    };
    let ids = lines
        .iter()
        .map(|l| EventId::of(l.as_bytes()).to_string())
        .collect();
    Sent {
        channel: channel.to_string(),
        ids,
        answer,
    }
}

/// Acked load through the balancer in the background: the channels in
/// turn, each over HTTP/1.1 and HTTP/2 in turn, until stopped.
struct Loader {
    stop: Arc<AtomicBool>,
    /// Every request with when it started.
    log: Arc<Mutex<Vec<(Instant, Sent)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Loader {
    fn start(clients: &[reqwest::Client; 2], base: &str, batches: &Arc<Batches>) -> Loader {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (stop, log) = (stop.clone(), log.clone());
            let (clients, base, batches) = (clients.clone(), base.to_string(), batches.clone());
            async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let channel = channel_n((n % CHANNELS) as u32);
                    let client = &clients[n / CHANNELS % 2];
                    let started = Instant::now();
                    let lines = batches.next_batch();
                    let sent = send(client, &base, ACK_TOKEN, &channel, lines).await;
                    log.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((started, sent));
                    n += 1;
                    tokio::time::sleep(PAUSE).await;
                }
            }
        });
        Loader { stop, log, task }
    }

    /// Of the requests started at or after `since`: how many were accepted,
    /// and the others described.
    fn since(&self, since: Instant) -> (usize, Vec<String>) {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let mut accepted = 0;
        let mut failed = Vec::new();
        for (_, sent) in log.iter().filter(|(at, _)| *at >= since) {
            if sent.accepted() {
                accepted += 1;
            } else {
                failed.push(sent.describe());
            }
        }
        (accepted, failed)
    }

    /// Waits (bounded) until `n` requests started at or after `since` were accepted.
    async fn wait_accepted(&self, since: Instant, n: usize, what: &str, logs: &Logs) {
        let deadline = Instant::now() + WAIT;
        loop {
            let (accepted, failed) = self.since(since);
            if accepted >= n {
                return;
            }
            assert!(
                !self.task.is_finished(),
                "the background load stopped ({what}){}",
                logs.text()
            );
            assert!(
                Instant::now() < deadline,
                "{what}: {accepted} of {n} requests accepted within {WAIT:?}; \
                 {} failed, e.g. {:?}{}",
                failed.len(),
                &failed[..failed.len().min(10)],
                logs.text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the load; every request with when it started.
    async fn finish(self) -> Vec<(Instant, Sent)> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the background load");
        std::mem::take(&mut *self.log.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// `wait` arguments: how HAProxy should hold a node.
const UP: bool = true;
const DOWN: bool = false;

/// HAProxy's stats page (CSV), where it shows which nodes it sends to.
struct Stats {
    plain: reqwest::Client,
    csv: String,
}

impl Stats {
    /// The servers of backend `sluice` (the spread backend's track them):
    /// name → (status, last check).
    async fn servers(&self) -> Result<BTreeMap<String, (String, String)>, String> {
        let resp = self.plain.get(&self.csv).send().await;
        let csv = resp.map_err(|e| e.to_string())?.text().await;
        let csv = csv.map_err(|e| e.to_string())?;
        let mut rows = csv.lines();
        let header: Vec<&str> = rows
            .next()
            .and_then(|h| h.strip_prefix("# "))
            .ok_or_else(|| format!("no CSV header in {csv:?}"))?
            .split(',')
            .collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .ok_or_else(|| format!("no {name} column in the stats CSV"))
        };
        let (px, sv, status, check) = (
            col("pxname")?,
            col("svname")?,
            col("status")?,
            col("check_status")?,
        );
        let mut out = BTreeMap::new();
        for row in rows {
            let f: Vec<&str> = row.split(',').collect();
            let field = |i: usize| f.get(i).copied().unwrap_or_default().to_string();
            if field(px) == "sluice" && field(sv).starts_with("sluice") {
                out.insert(field(sv), (field(status), field(check)));
            }
        }
        Ok(out)
    }

    /// Waits (bounded) until HAProxy holds `sluice1` and `sluice2` as
    /// `want` says. UP means "UP" after a passed check: HAProxy starts
    /// servers UP before it has checked them.
    async fn wait(&self, want: [bool; 2], logs: &Logs) {
        let deadline = Instant::now() + WAIT;
        loop {
            let seen = self.servers().await;
            let reached = seen.as_ref().is_ok_and(|s| {
                ["sluice1", "sluice2"].iter().zip(want).all(|(name, up)| {
                    s.get(*name).is_some_and(|(status, check)| {
                        if up {
                            status == "UP" && check == "L7OK"
                        } else {
                            status == "DOWN"
                        }
                    })
                })
            });
            if reached {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "HAProxy did not get to sluice1, sluice2 {want:?} (true: up) within {WAIT:?}; \
                 it reports {seen:?}{}",
                logs.text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `sluice_ingest_events_total` of `token` on the node whose metrics listen on `addr`.
async fn ingested(plain: &reqwest::Client, addr: SocketAddr, token: &str) -> u64 {
    let text = plain
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("a node's metrics")
        .text()
        .await
        .expect("a node's metrics text");
    let prefix = format!("sluice_ingest_events_total{{token=\"{token}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("a counter value"))
}

/// Records in a node's queue when it opened it (its "queue open" log line).
fn queued_at_start(p: &mut Sluice) -> u64 {
    let line = p.wait_for_stderr("\"queue open\" log line", |l| l.contains("queue open"));
    let v: Value = serde_json::from_str(&line).expect("JSON log line");
    v["fields"]["records"]
        .as_u64()
        .expect("records in the log line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_spreads_channels_over_two_nodes_and_a_killed_or_drained_node_loses_nothing() {
    let Some(haproxy) = find_haproxy() else {
        if std::env::var_os("SLUICE_REQUIRE_HAPROXY").is_some() {
            panic!("haproxy is not installed, and SLUICE_REQUIRE_HAPROXY is set");
        }
        skipped(TEST, "haproxy is not installed");
        return;
    };
    let sink = HecSink::start(SinkOptions::default()).await;
    let [port1, port2, hec_port, spread_port, stats_port] = free_ports::<5>();
    let (dir1, dir2, work) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let cfg1 = node_config(dir1.path(), port1, &sink);
    let cfg2 = node_config(dir2.path(), port2, &sink);
    let mut logs = Logs::default();
    let (mut node1, _, metrics1) = tokio::task::block_in_place(|| Sluice::run_listening(&cfg1));
    logs.add("node 1", &node1.stderr);
    let (mut node2, _, metrics2) = tokio::task::block_in_place(|| Sluice::run_listening(&cfg2));
    logs.add("node 2", &node2.stderr);

    let haproxy_cfg = haproxy_config(
        work.path(),
        [port1, port2],
        hec_port,
        spread_port,
        stats_port,
    );
    let check = tokio::task::block_in_place(|| {
        Command::new(&haproxy)
            .current_dir(repo())
            .args(["-c", "-f"])
            .arg(&haproxy_cfg)
            .output()
            .expect("run haproxy -c")
    });
    assert!(
        check.status.success(),
        "haproxy -c refused the committed config with the test's ports:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    // The harness's process wrapper suits HAProxy too: output collected,
    // SIGKILL when dropped (a failing test leaves nothing running).
    let mut balancer = {
        let mut cmd = Command::new(&haproxy);
        cmd.current_dir(repo())
            .args(["-db", "-f"])
            .arg(&haproxy_cfg);
        Sluice::spawn(cmd)
    };
    logs.add("haproxy stdout", &balancer.stdout);
    logs.add("haproxy stderr", &balancer.stderr);
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let stats = Stats {
        plain: plain.clone(),
        csv: format!("http://127.0.0.1:{stats_port}/;csv"),
    };
    stats.wait([UP, UP], &logs).await;

    // The balancer's certificate is signed by the same test CA as the nodes'.
    let ca = repo().join("deploy/haproxy/test-ca.pem");
    let clients = [
        client_with_timeout(&ca, false, REQUEST_TIMEOUT),
        client_with_timeout(&ca, true, REQUEST_TIMEOUT),
    ];
    let hec = format!("https://127.0.0.1:{hec_port}");
    let batches = Arc::new(Batches::new());
    // Event ids of every line a node answered 200 for.
    let mut accepted: HashSet<String> = HashSet::new();

    // Two requests per channel, one over each protocol.
    let mut ack_ids: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for round in 0..2 {
        for i in 0..CHANNELS {
            let http2 = (round + i) % 2 == 1;
            let channel = channel_n(i as u32);
            let lines = batches.next_batch();
            let client = &clients[usize::from(http2)];
            let sent = send(client, &hec, ACK_TOKEN, &channel, lines).await;
            assert!(sent.accepted(), "{}{}", sent.describe(), logs.text());
            let version = if http2 {
                reqwest::Version::HTTP_2
            } else {
                reqwest::Version::HTTP_11
            };
            assert_eq!(sent.version(), Some(version), "{}", sent.describe());
            let id = sent
                .ack_id()
                .unwrap_or_else(|| panic!("no ackId: {}", sent.describe()));
            ack_ids.entry(channel).or_default().push(id);
            accepted.extend(sent.ids);
        }
    }
    // Each node numbers a channel's ack ids from 0: a channel that reached
    // both nodes would have got an id twice.
    for (channel, ids) in &ack_ids {
        let distinct: HashSet<&u64> = ids.iter().collect();
        assert_eq!(
            distinct.len(),
            ids.len(),
            "channel {channel} got ack ids {ids:?}: it reached both nodes"
        );
    }
    // Ack ids live in the memory of the node that issued them: through the
    // balancer they turn true only if each /ack reaches its channel's node.
    let mut pending = ack_ids;
    let deadline = Instant::now() + WAIT;
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "ack ids still not true through the balancer after {WAIT:?}: {pending:?}{}",
            logs.text()
        );
        for (channel, ids) in &mut pending {
            let url = format!("{hec}{ACK}?channel={channel}");
            let resp = authorized_post(&clients[1], &url, ACK_TOKEN)
                .body(json!({ "acks": ids }).to_string())
                .send()
                .await
                .expect("an /ack through the balancer");
            let (status, body) = answer(resp).await;
            assert_eq!(status, 200, "/ack on {channel}: {body}");
            // A node forgets an id once it has reported it true, as Splunk does.
            ids.retain(|id| body["acks"][id.to_string()].as_bool() != Some(true));
        }
        pending.retain(|_, ids| !ids.is_empty());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (on1, on2) = (
        ingested(&plain, metrics1, "acked").await,
        ingested(&plain, metrics2, "acked").await,
    );
    assert!(
        on1 > 0 && on2 > 0,
        "the channel hash put every channel on one node: {on1} and {on2} events"
    );
    assert_eq!(
        on1 + on2,
        accepted.len() as u64,
        "each accepted request was queued by exactly one node"
    );

    // The :8443 entry ignores the channel: one channel's requests (Logpush
    // with its plain token) reach both nodes.
    let spread = format!("https://127.0.0.1:{spread_port}");
    for _ in 0..8 {
        let lines = batches.next_batch();
        let sent = send(&clients[1], &spread, TOKEN, CHANNEL, lines).await;
        assert!(sent.accepted(), "{}{}", sent.describe(), logs.text());
        accepted.extend(sent.ids);
    }
    let (on1, on2) = (
        ingested(&plain, metrics1, "plain").await,
        ingested(&plain, metrics2, "plain").await,
    );
    assert!(
        on1 > 0 && on2 > 0,
        "one channel through :8443 stayed on one node: {on1} and {on2} events"
    );

    // Lost indexer acks keep what node 1 accepts in its queue until the
    // kill, so only its restart can deliver it.
    sink.faults().acks(AckMode::Lost);
    let loader = Loader::start(&clients, &hec, &batches);
    let started = Instant::now();
    loader
        .wait_accepted(started, 2 * CHANNELS, "load before the kill", &logs)
        .await;
    let status = tokio::task::block_in_place(|| node1.kill9());
    assert!(!status.success(), "SIGKILL: {status}");
    // Node 2's batches sent meanwhile are sent again after their ack timeout.
    sink.faults().acks(AckMode::Immediate);
    // Requests while HAProxy still sends to the dead node may fail: not
    // counted. Once it is out, every channel hashes to node 2.
    stats.wait([DOWN, UP], &logs).await;
    let node1_out = Instant::now();
    loader
        .wait_accepted(node1_out, 2 * CHANNELS, "load with node 1 down", &logs)
        .await;

    let mut node1 = tokio::task::block_in_place(|| {
        let mut p = Sluice::run(&cfg1);
        let queued = queued_at_start(&mut p);
        assert!(
            queued > 0,
            "the kill left nothing queued on node 1 to deliver after the restart"
        );
        p.wait_listening();
        p
    });
    logs.add("node 1 after the restart", &node1.stderr);
    stats.wait([UP, UP], &logs).await;
    let node1_back = Instant::now();
    loader
        .wait_accepted(node1_back, CHANNELS, "load with node 1 back", &logs)
        .await;

    // Slow indexer acks keep node 2 draining for a while under the load.
    sink.faults().acks(AckMode::Delayed(Duration::from_secs(3)));
    let slow = Instant::now();
    loader
        .wait_accepted(slow, CHANNELS, "load before the drain", &logs)
        .await;
    let drain = std::thread::spawn(move || {
        let mut cmd = sluice_command();
        cmd.args(["drain", "--timeout", "120s", "--config"])
            .arg(&cfg2);
        cmd.output().expect("run sluice drain")
    });
    let deadline = Instant::now() + WAIT + Duration::from_secs(60);
    while !drain.is_finished() {
        assert!(
            Instant::now() < deadline,
            "sluice drain did not end{}",
            logs.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = drain.join().expect("the drain thread");
    assert!(
        out.status.success(),
        "sluice drain failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        logs.text()
    );
    let status = tokio::task::block_in_place(|| node2.wait_exit(EXIT_TIMEOUT));
    assert!(
        status.success(),
        "the drained node exits 0: {status}{}",
        logs.text()
    );
    stats.wait([UP, DOWN], &logs).await;
    let node2_out = Instant::now();
    loader
        .wait_accepted(node2_out, CHANNELS, "load on node 1 alone", &logs)
        .await;
    sink.faults().acks(AckMode::Immediate);

    let log = loader.finish().await;
    let mut failed_before = 0;
    let mut failed_after = Vec::new();
    for (at, sent) in log {
        if sent.accepted() {
            accepted.extend(sent.ids);
        } else if at < node1_out {
            failed_before += 1;
        } else {
            failed_after.push(sent.describe());
        }
    }
    assert!(
        failed_after.is_empty(),
        "{} requests failed after HAProxy had taken the killed node out (through its \
         restart and the other node's drain; {failed_before} failed before), e.g. {:?}{}",
        failed_after.len(),
        &failed_after[..failed_after.len().min(10)],
        logs.text()
    );

    // Everything answered 200, by either node, before or after the kill,
    // reaches the indexer (at least once).
    let deadline = Instant::now() + WAIT;
    let missing = loop {
        let got: HashSet<String> = sink
            .acknowledged()
            .iter()
            .filter_map(IndexedEvent::event_id)
            .collect();
        let missing: Vec<&String> = accepted.iter().filter(|id| !got.contains(*id)).collect();
        if missing.is_empty() || Instant::now() >= deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        missing.is_empty(),
        "{} of {} accepted lines did not reach the indexer within {WAIT:?}, e.g. event ids {:?}{}",
        missing.len(),
        accepted.len(),
        &missing[..missing.len().min(10)],
        logs.text()
    );

    // HAProxy holds no data; it exits on SIGTERM with that signal's status.
    let _ = tokio::task::block_in_place(|| balancer.terminate());
    let status = tokio::task::block_in_place(|| node1.terminate());
    assert!(
        status.success(),
        "node 1 stops cleanly: {status}{}",
        logs.text()
    );
    sink.stop().await;
}
