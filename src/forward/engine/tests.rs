//! The engine against a scripted transport: failure handling
//! (invalid-event-number, bisection, a refused token, ack timeouts, a
//! failing destination, `dead_letter_after`) and queue order with parallel
//! builders, each checked by what was sent, delivered, dead-lettered and
//! released — without HTTP.

use super::*;
use crate::forward::batch::BatchLimits;
use crate::forward::batch::Compression;
use crate::forward::transport::SendOutcome;
use crate::metrics::Metrics;
use crate::queue::{BodyEncoding, DataEndpoint, Queue, QueueLimits, RecordMeta};
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Decides the answer to a send: (destination, events in it, attempt number from 0).
type Script = dyn Fn(usize, &[String], usize) -> SendOutcome + Send + Sync;

#[derive(Default)]
struct Log {
    /// (destination, events, when)
    sends: Mutex<Vec<(usize, Vec<String>, Instant)>>,
    /// Ack ids that read true.
    acked: Mutex<HashSet<u64>>,
    next_ack: AtomicU64,
    unhealthy: Mutex<HashSet<usize>>,
    /// (destination, stats event) of each stats send.
    stats: Mutex<Vec<(usize, serde_json::Value)>>,
    /// Each send's body.
    bodies: Mutex<Vec<Vec<u8>>>,
}

impl Log {
    fn sends(&self) -> Vec<(usize, Vec<String>, Instant)> {
        self.sends.lock().unwrap().clone()
    }
    /// Events of sends answered `Delivered` are judged by the test itself.
    fn events(&self) -> Vec<String> {
        self.sends().into_iter().flat_map(|s| s.1).collect()
    }
}

struct Fake {
    dests: Vec<String>,
    script: Box<Script>,
    log: Arc<Log>,
}

impl Transport for Fake {
    fn kind(&self) -> &'static str {
        "scripted"
    }

    fn destinations(&self) -> &[String] {
        &self.dests
    }
    fn allows_raw(&self) -> bool {
        false
    }
    fn send(&self, dest: usize, request: Request) -> impl Future<Output = Answer> + Send {
        let events: Vec<String> = request
            .body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_slice(l).unwrap();
                v["event"].as_str().unwrap().to_string()
            })
            .collect();
        self.log.bodies.lock().unwrap().push(request.body.to_vec());
        let attempt = {
            let mut sends = self.log.sends.lock().unwrap();
            sends.push((dest, events.clone(), Instant::now()));
            sends.len() - 1
        };
        let mut outcome = (self.script)(dest, &events, attempt);
        if outcome == SendOutcome::AckPending(u64::MAX) {
            outcome = SendOutcome::AckPending(self.log.next_ack.fetch_add(1, Ordering::SeqCst));
        }
        std::future::ready(Answer {
            outcome,
            code: "200".into(),
            detail: None,
        })
    }
    fn poll_acks(
        &self,
        _dest: usize,
        ids: Vec<u64>,
    ) -> impl Future<Output = Result<AckReply, TransportError>> + Send {
        let acked = self.log.acked.lock().unwrap();
        let reply = AckReply::from_pairs(ids.into_iter().map(|id| (id, acked.contains(&id))));
        std::future::ready(Ok(reply))
    }
    fn healthy(&self, dest: usize) -> impl Future<Output = bool> + Send {
        std::future::ready(!self.log.unhealthy.lock().unwrap().contains(&dest))
    }
    fn close(&self) -> Result<(), TransportError> {
        Ok(())
    }
    fn send_stats(
        &self,
        dest: usize,
        event: bytes::Bytes,
    ) -> impl Future<Output = Result<(), TransportError>> + Send {
        let v = serde_json::from_slice(&event).unwrap();
        self.log.stats.lock().unwrap().push((dest, v));
        std::future::ready(Ok(()))
    }
}

const MS: Duration = Duration::from_millis(1);

fn settings() -> EngineSettings {
    EngineSettings {
        routing: Default::default(),
        name: "out".into(),
        limits: BatchLimits {
            max_events: 3,
            max_bytes: 1 << 20,
            max_compressed_bytes: u64::MAX,
            compression: Compression::None,
        },
        overrides: [None, None, None, None],
        concurrency: 1,
        linger: Duration::ZERO,
        ack_poll_interval: 20 * MS,
        ack_timeout: 10_000 * MS,
        retry_initial: 10 * MS,
        retry_max: 50 * MS,
        dead_letter_after: None,
        build_threads: 2,
        stats_interval: None,
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    queue: Arc<Queue>,
    metrics: Metrics,
    log: Arc<Log>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Queues `records` (record i holds events `r{i}e{j}`), then starts the engine.
async fn rig(
    s: EngineSettings,
    dests: usize,
    records: &[usize],
    script: impl Fn(usize, &[String], usize) -> SendOutcome + Send + Sync + 'static,
) -> Rig {
    rig_failing(s, dests, records, 0, script).await
}

/// [`rig`] whose queue fails its next `failing_writes` releases and dead letters.
async fn rig_failing(
    s: EngineSettings,
    dests: usize,
    records: &[usize],
    failing_writes: u64,
    script: impl Fn(usize, &[String], usize) -> SendOutcome + Send + Sync + 'static,
) -> Rig {
    let bodies: Vec<(String, usize)> = records
        .iter()
        .enumerate()
        .map(|(i, n)| ((0..*n).map(|j| format!("r{i}e{j}\n")).collect(), *n))
        .collect();
    rig_bodies(s, dests, &bodies, failing_writes, script).await
}

/// [`rig_failing`] with the records' bodies given (text, lines).
async fn rig_bodies(
    s: EngineSettings,
    dests: usize,
    records: &[(String, usize)],
    failing_writes: u64,
    script: impl Fn(usize, &[String], usize) -> SendOutcome + Send + Sync + 'static,
) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let limits = QueueLimits::roomy();
    let queue = Arc::new(Queue::open(dir.path(), limits).unwrap());
    for (body, n) in records {
        let meta = RecordMeta {
            received_ms: now_ms(),
            token: "t".into(),
            ..RecordMeta::plain(
                DataEndpoint::Raw,
                BodyEncoding::Identity,
                body.len() as u64,
                *n as u64,
            )
        };
        let p = queue.append(&meta, body.as_bytes()).unwrap();
        queue.commit(p).await.unwrap();
    }
    queue.fail_writes(failing_writes);
    let ctx = ForwardContext::for_tests(&queue, &[&s.name], 1 << 20);
    let metrics = ctx.metrics.clone();
    let log = Arc::new(Log::default());
    let fake = Fake {
        dests: (0..dests).map(|d| format!("d{d}")).collect(),
        script: Box::new(script),
        log: Arc::clone(&log),
    };
    let (stop, rx) = watch::channel(false);
    let task = Engine::spawn(s, ctx, fake, rx);
    Rig {
        _dir: dir,
        queue,
        metrics,
        log,
        stop,
        task,
    }
}

impl Rig {
    /// Waits (generously: a slow shared machine) until the queue is empty.
    async fn drained(&self) {
        for _ in 0..1000 {
            if self.queue.ids_from(0).next().is_none() {
                return;
            }
            tokio::time::sleep(20 * MS).await;
        }
        panic!(
            "records left: {:?}; sends: {:?}",
            self.queue.ids_from(0).collect::<Vec<_>>(),
            self.log.events()
        );
    }

    fn counted(&self, result: &str) -> u64 {
        self.metrics
            .output_events
            .with_label_values(&["out", result])
            .get()
    }

    /// (record, event number, text) of every dead letter.
    fn letters(&self) -> Vec<(u64, u64, String)> {
        self.queue
            .dead_letters()
            .unwrap()
            .into_iter()
            .map(|(_, l)| (l.record, l.event_number, l.event))
            .collect()
    }

    /// Stops the engine; once it returned, none of its threads may still
    /// hold the queue (its last handle must not drop on a stray thread).
    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
        assert_eq!(
            Arc::strong_count(&self.queue),
            1,
            "the queue is held after stop"
        );
    }
}

fn all_events(records: &[usize]) -> Vec<String> {
    records
        .iter()
        .enumerate()
        .flat_map(|(i, n)| (0..*n).map(move |j| format!("r{i}e{j}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_builders_keep_queue_order() {
    let records: Vec<usize> = (0..40).map(|i| 1 + i % 5).collect();
    let r = rig(settings(), 1, &records, |_, _, _| SendOutcome::Delivered).await;
    r.drained().await;
    assert_eq!(r.log.events(), all_events(&records));
    assert!(r.log.sends().iter().all(|s| s.1.len() <= 3));
    assert_eq!(r.counted("delivered"), records.iter().sum::<usize>() as u64);
    r.stop().await;
}

/// One record of three events whose first send is answered
/// invalid-event-number 1; every later send is delivered.
async fn second_event_invalid(failing_writes: u64) -> Rig {
    rig_failing(
        settings(),
        1,
        &[3],
        failing_writes,
        |_, _, attempt| match attempt {
            0 => SendOutcome::InvalidEvent {
                number: 1,
                reason: "{\"code\":6}".into(),
            },
            _ => SendOutcome::Delivered,
        },
    )
    .await
}

/// Event 1 became the one dead letter; the other two were delivered.
fn one_letter_for_the_second_event(r: &Rig) {
    let letters = r.letters();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!((letters[0].0, letters[0].1), (0, 1));
    assert!(letters[0].2.contains("r0e1"), "{letters:?}");
    assert_eq!((r.counted("delivered"), r.counted("dead_lettered")), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_event_number_keeps_the_head_letters_one_and_resends_the_tail() {
    let r = second_event_invalid(0).await;
    r.drained().await;
    let sends: Vec<Vec<String>> = r.log.sends().into_iter().map(|s| s.1).collect();
    assert_eq!(sends, vec![vec!["r0e0", "r0e1", "r0e2"], vec!["r0e2"]]);
    one_letter_for_the_second_event(&r);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_is_bisected_down_to_the_bad_event() {
    let mut s = settings();
    s.limits.max_events = 8;
    let r = rig(s, 1, &[7], |_, events, _| {
        if events.iter().any(|e| e == "r0e5") {
            SendOutcome::Rejected {
                status: 400,
                reason: "{\"code\":12}".into(),
            }
        } else {
            SendOutcome::Delivered
        }
    })
    .await;
    r.drained().await;
    let letters = r.letters();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].1, 5);
    // Every good event was accepted exactly once.
    let mut accepted: Vec<String> = r
        .log
        .sends()
        .into_iter()
        .filter(|s| !s.1.iter().any(|e| e == "r0e5"))
        .flat_map(|s| s.1)
        .collect();
    accepted.sort();
    let mut want = all_events(&[7]);
    want.retain(|e| e != "r0e5");
    assert_eq!(accepted, want);
    assert_eq!((r.counted("delivered"), r.counted("dead_lettered")), (6, 1));
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_pauses_the_output_and_keeps_everything() {
    let mut s = settings();
    s.retry_max = 300 * MS;
    let r = rig(s, 1, &[2], |_, _, attempt| match attempt {
        0 => SendOutcome::Unauthorized { status: 403 },
        _ => SendOutcome::Delivered,
    })
    .await;
    r.drained().await;
    let sends = r.log.sends();
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[0].1, sends[1].1);
    assert!(
        sends[1].2 - sends[0].2 >= 300 * MS,
        "paused for retry_max before trying again"
    );
    assert!(r.letters().is_empty());
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_that_never_turns_true_is_resent() {
    let mut s = settings();
    s.ack_timeout = 150 * MS;
    let r = rig(s, 1, &[3], |_, _, _| SendOutcome::AckPending(u64::MAX)).await;
    // The first id (0) never turns true; the resend's (1) does.
    r.log.acked.lock().unwrap().insert(1);
    r.drained().await;
    let sends = r.log.sends();
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[0].1, sends[1].1);
    assert_eq!((r.counted("resent"), r.counted("delivered")), (3, 3));
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_destination_is_left_until_healthy() {
    let r = rig(settings(), 2, &[3, 3, 3, 3], |dest, _, _| match dest {
        0 => SendOutcome::Retry { after: None },
        _ => SendOutcome::Delivered,
    })
    .await;
    r.log.unhealthy.lock().unwrap().insert(0);
    r.drained().await;
    let to_first = r.log.sends().iter().filter(|s| s.0 == 0).count();
    assert!(to_first >= 1 && to_first < r.log.sends().len());
    // Each event was delivered by the healthy destination.
    let mut delivered: Vec<String> = r
        .log
        .sends()
        .into_iter()
        .filter(|s| s.0 == 1)
        .flat_map(|s| s.1)
        .collect();
    delivered.sort();
    let mut want = all_events(&[3, 3, 3, 3]);
    want.sort();
    assert_eq!(delivered, want);
    let retries = r
        .metrics
        .output_retries
        .with_label_values(&["out", "d0"])
        .get();
    assert_eq!(retries, to_first as u64);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_after_gives_up_while_no_destination_takes_anything() {
    let mut s = settings();
    s.dead_letter_after = Some(300 * MS);
    let r = rig(s, 1, &[3, 2], |_, _, _| SendOutcome::Retry { after: None }).await;
    r.log.unhealthy.lock().unwrap().insert(0);
    r.drained().await;
    let mut letters: Vec<(u64, u64)> = r.letters().iter().map(|l| (l.0, l.1)).collect();
    letters.sort();
    assert_eq!(letters, vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]);
    assert_eq!((r.counted("delivered"), r.counted("dead_lettered")), (0, 5));
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_during_a_token_pause_even_with_dead_letter_after() {
    let mut s = settings();
    s.retry_max = 1_500 * MS;
    // On: batches waiting are checked every second, and must only be held.
    s.dead_letter_after = Some(Duration::from_secs(600));
    let r = rig(s, 1, &[3, 3, 3], |_, _, attempt| match attempt {
        0 => SendOutcome::Unauthorized { status: 401 },
        _ => SendOutcome::Delivered,
    })
    .await;
    r.drained().await;
    let sends = r.log.sends();
    let first = sends[0].2;
    assert!(
        sends[1..].iter().all(|s| s.2 - first >= 1_500 * MS),
        "sent during the pause: {:?}",
        sends.iter().map(|s| s.2 - first).collect::<Vec<_>>()
    );
    // The refused batch goes first when sending resumes.
    assert_eq!(sends[1].1, sends[0].1);
    assert!(r.letters().is_empty());
    r.stop().await;
}

/// Found by the damaged-store test: a release that failed without closing the
/// store (sled's cleaner met the damaged page) left its record queued until
/// a restart. Now it is tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_fails_is_tried_again() {
    let r = rig_failing(settings(), 1, &[2, 2], 2, |_, _, _| SendOutcome::Delivered).await;
    r.drained().await;
    assert_eq!(r.log.events(), all_events(&[2, 2]));
    assert_eq!(r.counted("delivered"), 4);
    r.stop().await;
}

/// A dead letter that could not be stored is stored later; until then its
/// record stays queued, and it counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_that_fails_to_store_is_tried_again() {
    let r = second_event_invalid(1).await;
    r.drained().await;
    one_letter_for_the_second_event(&r);
    r.stop().await;
}

/// Splunk refusing every event one by one (say an index the token may not
/// use): each answer delivers nothing and letters one event. The rest is
/// resent in halves cut from the body that was sent, so a batch of n costs
/// about n·log2(n) events on the wire, not n²/2, and the record is decoded
/// from the queue a bounded number of times, not once per letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_event_by_event_costs_n_log_n_not_n_squared() {
    let n = 64usize;
    let mut s = settings();
    s.limits.max_events = n;
    s.concurrency = 2;
    let r = rig(s, 1, &[n], |_, _, _| SendOutcome::InvalidEvent {
        number: 0,
        reason: "{\"code\":7}".into(),
    })
    .await;
    r.drained().await;
    let mut letters = r.letters();
    letters.sort();
    let numbers: Vec<u64> = letters.iter().map(|l| l.1).collect();
    assert_eq!(numbers, (0..n as u64).collect::<Vec<_>>());
    for (_, k, text) in &letters {
        assert!(text.contains(&format!("\"r0e{k}\"")), "{text}");
    }
    assert_eq!(
        (r.counted("delivered"), r.counted("dead_lettered")),
        (0, n as u64)
    );
    let sent = r.log.events().len();
    let bound = n * (n.ilog2() as usize + 1);
    assert!(sent <= bound, "{sent} events sent for {n} (bound {bound})");
    let opened = r.queue.readers_opened();
    assert!(opened <= 4, "the record was decoded {opened} times");
    r.stop().await;
}

/// A batch refused whole, every event of it bad: bisection rebuilds halves
/// and letters single events from the queue, each continuing a stream
/// already open at an earlier event instead of decoding the record from
/// its start again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bisecting_a_bad_batch_reads_its_record_a_few_times_not_once_per_event() {
    let n = 32usize;
    let mut s = settings();
    s.limits.max_events = n;
    let r = rig(s, 1, &[n], |_, _, _| SendOutcome::Rejected {
        status: 400,
        reason: "{\"code\":12}".into(),
    })
    .await;
    r.drained().await;
    assert_eq!(r.letters().len(), n);
    assert_eq!(
        (r.counted("delivered"), r.counted("dead_lettered")),
        (0, n as u64)
    );
    let opened = r.queue.readers_opened();
    assert!(
        opened <= n as u64 / 2,
        "the record was decoded {opened} times"
    );
    r.stop().await;
}

/// The stats event goes to a destination outside the queue, with the
/// output's index override, and says what the output did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_events_report_the_output_outside_the_queue() {
    let mut s = settings();
    s.stats_interval = Some(Duration::from_secs(1));
    s.overrides[0] = Some("ops".into());
    let r = rig(s, 2, &[3, 2], |_, _, _| SendOutcome::Delivered).await;
    r.drained().await;
    let mut last = None;
    for _ in 0..300 {
        last = r.log.stats.lock().unwrap().last().cloned();
        if last
            .as_ref()
            .is_some_and(|(_, v)| v["event"]["events_out"] == 5)
        {
            break;
        }
        tokio::time::sleep(20 * MS).await;
    }
    let (_, v) = last.expect("a stats event");
    assert_eq!(v["sourcetype"], "sluice:stats");
    assert_eq!(v["index"], "ops");
    let e = &v["event"];
    assert_eq!(e["output"], "out");
    assert_eq!(e["events_out"], 5);
    assert_eq!(e["queue_records"], 0, "the queue drained: {e}");
    assert_eq!(e["indexers_total"], 2);
    assert_eq!(e["indexers"][0]["url"], "d0");
    assert_eq!(e["version"], env!("CARGO_PKG_VERSION"));
    // Data sends never carry it.
    assert!(r.log.events().iter().all(|ev| !ev.contains("sluice:stats")));
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_go_after_the_drops_and_a_resend_rebuilds_them_the_same() {
    let sample = |system: &str, outcome: &str, n: u32| {
        format!(
            r#"{{"MitigationSystem":"{system}","Datetime":"2026-11-20T10:00:0{n}Z","Outcome":"{outcome}","SampleInterval":100,"IPTotalLength":60}}"#
        )
    };
    let lines = [
        sample("dosd", "drop", 1),
        sample("dosd", "pass", 2),
        sample("magic-firewall", "pass", 3),
        sample("flowtrackd", "drop", 4),
    ];
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut s = settings();
    s.limits.max_events = 100;
    s.routing = super::super::routing::Routing::resolve(
        "out",
        super::super::routing::EventsRoute::Drops,
        true,
        &Arc::new(crate::rollup::config::RollupSettings::default()),
    )
    .unwrap();
    // The first send fails: the batch, rollups and all, is rebuilt from the queue.
    let r = rig_bodies(s, 1, &[(body, 4)], 0, |_, _, attempt| match attempt {
        0 => SendOutcome::Retry { after: None },
        _ => SendOutcome::Delivered,
    })
    .await;
    r.drained().await;
    let bodies = r.log.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0], bodies[1], "the resend is the same body");
    let events: Vec<serde_json::Value> = bodies[1]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    // The two drops, then one rollup per system and outcome (passes included).
    assert_eq!(events[0]["event"], lines[0].as_str());
    assert_eq!(events[1]["event"], lines[3].as_str());
    let rollups = &events[2..];
    assert_eq!(rollups.len(), 4);
    assert!(rollups.iter().all(|e| e["event"] == "metric"));
    let packets: u64 = rollups
        .iter()
        .map(|e| e["fields"]["metric_name:nal.est_packets"].as_u64().unwrap())
        .sum();
    assert_eq!(packets, 400);
    // Two passes left out count as handled: 2 drops + 4 rollups delivered.
    assert_eq!(r.counted("delivered"), 6);
    r.stop().await;
}
