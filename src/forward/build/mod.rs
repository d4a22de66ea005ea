//! Batch building off the async runtime: the planner (`plan.rs`) cuts the
//! queue into jobs of whole records; up to `build_threads` jobs build at
//! once on blocking threads (`job.rs`: read, gunzip, enrich, gzip); the
//! engine takes their batches strictly in job order, so batches leave in
//! queue order however many cores build them. Each job hands its batches
//! over a channel of [`JOB_BACKLOG`], so memory is bounded by
//! `build_threads × (JOB_BACKLOG + 1)` bodies, not by the backlog.

pub mod cut;
pub mod job;
pub mod plan;
pub mod reread;

use super::batch::{BatchLimits, BodyPool};
use super::context::{TokenMeta, TokenMetas};
use super::event::{Overrides, Resolver, TokenDefaults};
use super::output_metrics::BuildMetrics;
use crate::enrich::EnricherSlot;
use crate::queue::{Queue, RecordId};
use job::Built;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// How long stopping waits for blocking work still running (a job deep in
/// a large record finishes its current batch first).
const STOP_WAIT: Duration = Duration::from_secs(30);

/// Batches a job may have built ahead of the engine: one more than a job's
/// usual full batches (`plan::JOB_BATCHES`), so a builder finishes its job
/// and takes the next while the engine still sends an earlier one.
pub const JOB_BACKLOG: usize = plan::JOB_BATCHES as usize + 1;

/// What builder threads share, read-only.
pub struct BuildShared {
    /// The queue.
    pub queue: Arc<Queue>,
    /// Token name → its metadata defaults.
    pub tokens: Arc<TokenMetas>,
    /// The output's `index`, `sourcetype`, `source`, `host` overrides.
    pub overrides: [Option<String>; 4],
    /// This node's hostname (default `host`).
    pub hostname: Arc<str>,
    /// Enrichment (holding `None`: forward as received).
    pub enricher: Arc<EnricherSlot>,
    /// Body caps.
    pub limits: BatchLimits,
    /// Body buffers for reuse (`build_threads × (JOB_BACKLOG + 1)` kept).
    pub bodies: BodyPool,
    /// Whether events may go to `/raw` (the transport says).
    pub allow_raw: bool,
    /// `server.max_event_bytes`.
    pub max_event_bytes: u64,
    /// Counters.
    pub metrics: BuildMetrics,
    /// Records' streams kept open for reading them again.
    pub rereads: reread::Rereads,
    /// Which events go, and whether rollups.
    pub routing: super::routing::Routing,
}

impl BuildShared {
    /// The metadata resolver for events that came with `token`.
    pub fn resolver<'a>(
        &'a self,
        tokens: &'a HashMap<String, TokenMeta>,
        token: &str,
    ) -> Resolver<'a> {
        let t = tokens.get(token);
        let [index, sourcetype, source, host] = &self.overrides;
        Resolver {
            overrides: Overrides {
                index: index.as_deref(),
                sourcetype: sourcetype.as_deref(),
                source: source.as_deref(),
                host: host.as_deref(),
            },
            token: TokenDefaults {
                index: t.and_then(|t| t.index.as_deref()),
                sourcetype: t.and_then(|t| t.sourcetype.as_deref()),
                source: t.and_then(|t| t.source.as_deref()),
            },
            hostname: &self.hostname,
        }
    }
}

fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "a build, rebuild or dead-letter task of an output failed");
    }
}

/// The jobs being built, oldest first, and every blocking task of the
/// output (jobs, rebuilds, dead-letter reads), so none outlives it: the
/// last handle on the queue is then never dropped on a stray thread.
pub struct Builders {
    shared: Arc<BuildShared>,
    threads: usize,
    running: VecDeque<mpsc::Receiver<Built>>,
    tasks: JoinSet<()>,
}

impl Builders {
    /// Up to `threads` jobs at once.
    pub fn new(shared: Arc<BuildShared>, threads: usize) -> Builders {
        Builders {
            shared,
            threads: threads.max(1),
            running: VecDeque::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Runs `work` on a blocking thread with what builders share (resends,
    /// dead letters).
    pub fn run_blocking(&mut self, work: impl FnOnce(&BuildShared) + Send + 'static) {
        let shared = Arc::clone(&self.shared);
        self.tasks.spawn_blocking(move || work(&shared));
        // Collect finished tasks so the set stays small; a panic is logged.
        while let Some(done) = self.tasks.try_join_next() {
            log_panic(done);
        }
    }

    /// Whether another job may start.
    pub fn has_room(&self) -> bool {
        self.running.len() < self.threads
    }

    /// Whether no job is running or waiting to be taken.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Starts building a job on a blocking thread.
    pub fn start(&mut self, job: Vec<(RecordId, u64)>) {
        let (tx, rx) = mpsc::channel(JOB_BACKLOG);
        self.run_blocking(move |shared| {
            job::build_job(shared, &job, |b| tx.blocking_send(b).is_ok());
        });
        self.running.push_back(rx);
    }

    /// The next report in queue order; `None` once every job is done.
    /// Cancel-safe: nothing is lost when the future is dropped.
    pub async fn next(&mut self) -> Option<Built> {
        while let Some(rx) = self.running.front_mut() {
            if let Some(b) = rx.recv().await {
                return Some(b);
            }
            self.running.pop_front();
        }
        None
    }

    /// The next report if one is ready now.
    pub fn try_next(&mut self) -> Option<Built> {
        while let Some(rx) = self.running.front_mut() {
            match rx.try_recv() {
                Ok(b) => return Some(b),
                Err(mpsc::error::TryRecvError::Empty) => return None,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.running.pop_front();
                }
            }
        }
        None
    }

    /// Abandons every job (their threads stop at their next batch).
    pub fn clear(&mut self) {
        self.running.clear();
    }

    /// Abandons every job and waits until all blocking tasks have ended.
    pub async fn stop(&mut self) {
        self.clear();
        let all = async {
            while let Some(done) = self.tasks.join_next().await {
                log_panic(done);
            }
        };
        if tokio::time::timeout(STOP_WAIT, all).await.is_err() {
            tracing::warn!("blocking work of an output still running at shutdown");
        }
    }
}

#[cfg(test)]
impl BuildShared {
    /// Defaults for unit tests: no tokens, no enrichment, 10 events per batch.
    pub(crate) fn for_tests(
        queue: Arc<Queue>,
        compression: super::batch::Compression,
    ) -> BuildShared {
        BuildShared {
            queue,
            tokens: Default::default(),
            overrides: [None, None, None, None],
            hostname: "n".into(),
            enricher: Arc::new(EnricherSlot::new(None)),
            limits: BatchLimits {
                max_events: 10,
                max_bytes: 1 << 20,
                max_compressed_bytes: 1 << 20,
                compression,
            },
            bodies: BodyPool::new(0),
            allow_raw: false,
            max_event_bytes: 1 << 20,
            metrics: BuildMetrics::bind(&crate::metrics::Metrics::new().unwrap(), "out", false),
            rereads: Default::default(),
            routing: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::batch::Compression;
    use crate::queue::QueueLimits;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stop_waits_for_every_blocking_task() {
        let dir = tempfile::tempdir().unwrap();
        let limits = QueueLimits::roomy();
        let queue = Arc::new(Queue::open(dir.path(), limits).unwrap());
        let shared = BuildShared::for_tests(Arc::clone(&queue), Compression::None);
        let mut builders = Builders::new(Arc::new(shared), 2);
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        builders.run_blocking(move |_| {
            std::thread::sleep(Duration::from_millis(300));
            flag.store(true, Ordering::SeqCst);
        });
        builders.stop().await;
        assert!(
            done.load(Ordering::SeqCst),
            "stop returned before the task ended"
        );
        drop(builders);
        assert_eq!(Arc::strong_count(&queue), 1);
    }

    /// A resend rebuilt while the store is being reopened (after a disk-full
    /// write error) once found no index entry, took the record for gone and
    /// sent nothing: the engine then counted the batch delivered.
    #[tokio::test]
    async fn a_resend_during_a_reopen_is_an_error_not_an_empty_batch() {
        use crate::forward::source::{Route, Segment};
        let dir = tempfile::tempdir().unwrap();
        let queue = Arc::new(Queue::open(dir.path(), QueueLimits::roomy()).unwrap());
        queue.push_raw(b"a\nb\n", 2).await;
        let shared = BuildShared::for_tests(Arc::clone(&queue), Compression::None);
        let whole = [Segment {
            record: 0,
            first: 0,
            count: 2,
        }];
        let during = queue.while_reopening(|| job::rebuild(&shared, &whole, Route::Event));
        match during {
            Err((0, e)) => assert!(e.is_transient(), "{e}"),
            Err((r, e)) => panic!("record {r}: {e}"),
            Ok(body) => panic!("rebuilt as {:?}", body.map(|b| b.body.len())),
        }
        let after = job::rebuild(&shared, &whole, Route::Event).unwrap();
        assert!(after.is_some_and(|b| !b.body.is_empty()));
        queue.remove(0).unwrap();
        assert!(job::rebuild(&shared, &whole, Route::Event)
            .unwrap()
            .is_none());
    }

    /// A resend rebuilds a record's rollups and sends the positions the
    /// first send had: a reload of `final_pass_system` in between once
    /// changed their groups, so some sums went twice and some never.
    #[tokio::test]
    async fn a_resend_rebuilds_the_same_rollups_after_a_reload() {
        use crate::enrich::config::EnrichConfig;
        use crate::enrich::{Enricher, EnricherSlot};
        use crate::rollup::config::RollupSettings;
        let dir = tempfile::tempdir().unwrap();
        let queue = Arc::new(Queue::open(dir.path(), QueueLimits::roomy()).unwrap());
        let mut body = String::new();
        for system in ["dosd", "flowtrackd", "magic-firewall"] {
            body.push_str(&format!(
                "{{\"Datetime\":\"2026-11-20T10:00:04Z\",\"MitigationSystem\":\"{system}\",\"Outcome\":\"pass\",\"SampleInterval\":10,\"IPTotalLength\":100,\"IPDestinationAddress\":\"203.0.113.9\"}}\n"
            ));
        }
        queue.push_raw(body.as_bytes(), 3).await;
        let enricher = |final_pass: &str| {
            let config = EnrichConfig {
                final_pass_system: final_pass.into(),
                ..EnrichConfig::default()
            };
            Enricher::new(&config, &[]).unwrap().unwrap()
        };
        let mut shared = BuildShared::for_tests(Arc::clone(&queue), Compression::None);
        shared.routing.rollups = Some(Arc::new(RollupSettings::default()));
        shared.enricher = Arc::new(EnricherSlot::new(Some(enricher("magic-firewall"))));
        let text = |lines: Vec<Vec<u8>>| String::from_utf8(lines.concat()).unwrap();
        let first = text(job::rollup_lines(&shared, 0, 0, 10).unwrap().unwrap());
        shared.enricher.replace(Some(enricher("dosd")));
        let resent = text(job::rollup_lines(&shared, 0, 0, 10).unwrap().unwrap());
        assert_eq!(first.lines().count(), 3);
        assert_eq!(resent, first);
    }
}
