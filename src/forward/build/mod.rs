//! Batch building off the async runtime: the planner (`plan.rs`) cuts the
//! queue into jobs of whole records; up to `build_threads` jobs build at
//! once on blocking threads (`job.rs`: read, gunzip, enrich, gzip); the
//! engine takes their batches strictly in job order, so batches leave in
//! queue order however many cores build them. Each job hands its batches
//! over a channel of [`JOB_BACKLOG`], so memory is bounded by
//! `build_threads × (JOB_BACKLOG + 1)` bodies, not by the backlog.

pub mod job;
pub mod plan;

use super::batch::BatchLimits;
use super::context::TokenMeta;
use super::event::{Overrides, Resolver, TokenDefaults};
use super::output_metrics::BuildMetrics;
use crate::enrich::EnricherSlot;
use crate::queue::{Queue, RecordId};
use job::Built;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Batches a job may have built ahead of the engine.
pub const JOB_BACKLOG: usize = 2;

/// What builder threads share, read-only.
pub struct BuildShared {
    /// The queue.
    pub queue: Arc<Queue>,
    /// Token name → its metadata defaults.
    pub tokens: Arc<HashMap<String, TokenMeta>>,
    /// The output's `index`, `sourcetype`, `source`, `host` overrides.
    pub overrides: [Option<String>; 4],
    /// This node's hostname (default `host`).
    pub hostname: Arc<str>,
    /// Enrichment (holding `None`: forward as received).
    pub enricher: Arc<EnricherSlot>,
    /// Body caps.
    pub limits: BatchLimits,
    /// Whether events may go to `/raw` (the transport says).
    pub allow_raw: bool,
    /// `server.max_event_bytes`.
    pub max_event_bytes: u64,
    /// Counters.
    pub metrics: BuildMetrics,
}

impl BuildShared {
    /// The metadata resolver for events that came with `token`.
    pub fn resolver<'a>(&'a self, token: &str) -> Resolver<'a> {
        let t = self.tokens.get(token);
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

/// The jobs being built, oldest first.
pub struct Builders {
    shared: Arc<BuildShared>,
    threads: usize,
    running: VecDeque<mpsc::Receiver<Built>>,
}

impl Builders {
    /// Up to `threads` jobs at once.
    pub fn new(shared: Arc<BuildShared>, threads: usize) -> Builders {
        Builders {
            shared,
            threads: threads.max(1),
            running: VecDeque::new(),
        }
    }

    /// What builders share (for resends and dead letters).
    pub fn shared(&self) -> &Arc<BuildShared> {
        &self.shared
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
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            job::build_job(&shared, &job, |b| tx.blocking_send(b).is_ok());
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
}
