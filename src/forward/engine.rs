//! The forwarding loop of one output: read records in order, pack events
//! into batches, send them (concurrently, across indexers), follow indexer
//! acks, resend what timed out or failed, dead-letter what can never be
//! delivered, and release each record once all its events are delivered.
//!
//! Batches remember only which events they carry (`Segment`s), not their
//! bytes: a resend rebuilds the body from the queue, which still holds every
//! record until all outputs released it. Memory therefore does not grow with
//! the number of batches waiting for acks.

mod dead_letters;

use super::acks::{AckTracker, BatchId, DeliveryLedger};
use super::batch::{BatchBuilder, BatchLimits};
use super::event::{Overrides, Resolver, TokenDefaults};
use super::file::ArchiveWriter;
use super::read_failures::ReadFailures;
use super::source::{raw_query, render, write_segment, Route, Segment, Unsendable};
use super::splunk::{SendOutcome, SplunkClient};
use super::stream::{EventStream, Item, SourceError};
use crate::config::outputs::{Compression, Output};
use crate::enrich::EnricherSlot;
use crate::hec::ack::AckReply;
use crate::metrics::Metrics;
use crate::queue::{Queue, RecordId};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};

/// Shared by every output.
#[derive(Clone)]
pub struct ForwardContext {
    /// The queue.
    pub queue: Arc<Queue>,
    /// Metrics.
    pub metrics: Metrics,
    /// Names of all outputs: a record leaves when each released it.
    pub outputs: Arc<Vec<String>>,
    /// Token name → its metadata defaults.
    pub tokens: Arc<HashMap<String, TokenMeta>>,
    /// This node's hostname (default `host`).
    pub hostname: Arc<str>,
    /// Enrichment of network analytics samples (holding `None`: forward as received).
    pub enricher: Arc<EnricherSlot>,
    /// `server.max_event_bytes`: a longer `/raw` line becomes a dead letter
    /// with reason `oversize` instead of being held whole.
    pub max_event_bytes: u64,
}

/// A token's metadata defaults, owned.
#[derive(Debug, Clone, Default)]
pub struct TokenMeta {
    /// `index`.
    pub index: Option<String>,
    /// `sourcetype`.
    pub sourcetype: Option<String>,
    /// `source`.
    pub source: Option<String>,
}

enum Sink {
    File(Arc<Mutex<ArchiveWriter>>),
    Splunk(Arc<SplunkClient>),
}

struct Settings {
    name: String,
    limits: BatchLimits,
    overrides: [Option<String>; 4],
    concurrency: usize,
    linger: Duration,
    ack_poll_interval: Duration,
    ack_timeout: Duration,
    retry_initial: Duration,
    retry_max: Duration,
    dead_letter_after: Option<Duration>,
}

struct BatchState {
    route: Route,
    segments: Vec<Segment>,
    events: u64,
    first_sent: Option<Instant>,
}

#[derive(Default, Clone, Copy)]
struct IndexerState {
    failures: u32,
    down_until: Option<Instant>,
    /// A `/services/collector/health` probe is out: the circuit is half open.
    probing: bool,
}

enum Event {
    Sent {
        batch: BatchId,
        indexer: usize,
        outcome: SendOutcome,
        code: String,
    },
    Polled {
        indexer: usize,
        reply: Result<AckReply, String>,
    },
    Health {
        indexer: usize,
        healthy: bool,
    },
}

/// A batch's request body, its route and (for `/raw`) its query string.
type Built = (bytes::Bytes, Route, Option<String>);

/// The loop's state.
struct Engine {
    s: Settings,
    ctx: ForwardContext,
    sink: Sink,
    next: (RecordId, u64),
    current: Option<EventStream<'static>>,
    ledger: DeliveryLedger,
    batches: HashMap<BatchId, BatchState>,
    next_batch: BatchId,
    resend: VecDeque<BatchId>,
    tracker: AckTracker,
    inflight: usize,
    polling: Vec<bool>,
    indexers: Vec<IndexerState>,
    rr: usize,
    paused_until: Option<Instant>,
    warned_no_ack: bool,
    /// The body `new_batch` just built, so a first send does not serialize twice.
    fresh: Option<(BatchId, bytes::Bytes, Option<String>)>,
    /// The queue's store generation this state was built against.
    generation: u64,
    /// Records that failed to read, to give up one that keeps failing.
    read_failures: ReadFailures,
    tx: mpsc::UnboundedSender<Event>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Jittered exponential backoff.
fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    let exp = initial.saturating_mul(1u32 << failures.min(16));
    let base = exp.min(max);
    let jitter = rand::random::<f64>() * 0.5 + 0.75;
    base.mul_f64(jitter).min(max)
}

/// Starts the loop of one output; it ends when `shutdown` turns true.
pub fn spawn(
    output: &Output,
    ctx: ForwardContext,
    data_dir: &std::path::Path,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, ForwardSetupError> {
    let (sink, s) = match output {
        Output::File(f) => {
            let w = ArchiveWriter::open(&f.path, f.rotate_bytes, f.rotate_interval, f.compression)
                .map_err(|e| ForwardSetupError(e.to_string()))?;
            let s = Settings {
                name: f.name.clone(),
                limits: BatchLimits {
                    max_events: 10_000,
                    max_bytes: 8 << 20,
                    max_compressed_bytes: u64::MAX,
                    compression: Compression::None,
                },
                overrides: [None, None, None, None],
                concurrency: 1,
                linger: Duration::from_millis(200),
                ack_poll_interval: Duration::from_secs(3600),
                ack_timeout: Duration::from_secs(3600),
                retry_initial: Duration::from_millis(500),
                retry_max: Duration::from_secs(30),
                dead_letter_after: None,
            };
            (Sink::File(Arc::new(Mutex::new(w))), s)
        }
        Output::Splunk(o) => {
            let client =
                SplunkClient::new(o, data_dir).map_err(|e| ForwardSetupError(e.to_string()))?;
            let s = Settings {
                name: o.name.clone(),
                limits: BatchLimits {
                    max_events: o.max_events,
                    max_bytes: o.max_bytes,
                    max_compressed_bytes: o.max_compressed_bytes,
                    compression: o.compression,
                },
                overrides: [
                    o.index.clone(),
                    o.sourcetype.clone(),
                    o.source.clone(),
                    o.host.clone(),
                ],
                concurrency: o.concurrency,
                linger: o.linger,
                ack_poll_interval: o.ack_poll_interval,
                ack_timeout: o.ack_timeout,
                retry_initial: o.retry_initial,
                retry_max: o.retry_max,
                dead_letter_after: o.dead_letter_after,
            };
            (Sink::Splunk(Arc::new(client)), s)
        }
    };
    let indexers = match &sink {
        Sink::File(_) => 1,
        Sink::Splunk(c) => c.indexers.len(),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let generation = ctx.queue.generation();
    let engine = Engine {
        s,
        ctx,
        sink,
        next: (0, 0),
        current: None,
        ledger: DeliveryLedger::new(),
        batches: HashMap::new(),
        next_batch: 0,
        resend: VecDeque::new(),
        tracker: AckTracker::new(),
        inflight: 0,
        polling: vec![false; indexers],
        indexers: vec![IndexerState::default(); indexers],
        rr: 0,
        paused_until: None,
        warned_no_ack: false,
        fresh: None,
        generation,
        read_failures: ReadFailures::new(),
        tx,
    };
    let outputs: Vec<&str> = engine.ctx.outputs.iter().map(String::as_str).collect();
    if let Err(e) = engine.ctx.queue.sweep_released(&outputs) {
        tracing::warn!(output = %engine.s.name, error = %e, "could not finish earlier releases");
    }
    engine.set_indexer_gauges();
    Ok(tokio::spawn(async move { engine.run(rx, shutdown).await }))
}

/// An output could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ForwardSetupError(pub String);

impl Engine {
    fn label(&self, indexer: usize) -> String {
        match &self.sink {
            Sink::File(_) => "file".to_string(),
            Sink::Splunk(c) => c.indexers[indexer].url.clone(),
        }
    }

    fn set_indexer_gauges(&self) {
        let now = Instant::now();
        for (i, st) in self.indexers.iter().enumerate() {
            let up = st.down_until.is_none_or(|t| t <= now);
            self.ctx
                .metrics
                .output_indexer_up
                .with_label_values(&[&self.s.name, &self.label(i)])
                .set(i64::from(up));
            self.ctx
                .metrics
                .output_pending_acks
                .with_label_values(&[&self.s.name, &self.label(i)])
                .set(self.tracker.pending(i) as i64);
        }
    }

    fn max_inflight(&self) -> usize {
        self.s.concurrency * self.indexers.len()
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Event>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut poll = tokio::time::interval(self.s.ack_poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let queue = Arc::clone(&self.ctx.queue);
            let appended = queue.appended();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let wait = self.fill().await;
            self.update_oldest();
            tokio::select! {
                Some(ev) = rx.recv() => self.handle(ev),
                _ = poll.tick() => {
                    self.poll_acks();
                    self.expire_waiting();
                }
                _ = &mut appended => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
        // Let requests in flight finish so their answers are not wasted.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.inflight > 0 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(ev)) => self.handle(ev),
                _ => break,
            }
        }
        if let Sink::File(w) = &self.sink {
            if let Err(e) = w.lock().unwrap_or_else(|e| e.into_inner()).close() {
                tracing::error!(output = %self.s.name, error = %e, "closing the archive file");
            }
        }
        tracing::info!(output = %self.s.name, "output stopped");
    }

    /// After the queue reopened its store (following a write error), releases
    /// and removals the old store had not flushed may be undone: start over
    /// from the oldest record this output has not released. Batches in flight
    /// are forgotten (their answers are ignored) and sent again: at least once.
    fn follow_reopen(&mut self) {
        let generation = self.ctx.queue.generation();
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        tracing::warn!(output = %self.s.name, "queue store reopened; reading it again from the oldest record not yet delivered");
        self.next = (0, 0);
        self.current = None;
        self.ledger = DeliveryLedger::new();
        self.batches.clear();
        self.resend.clear();
        self.tracker = AckTracker::new();
        self.fresh = None;
    }

    /// Starts as many sends as allowed; returns how long to sleep if idle.
    async fn fill(&mut self) -> Duration {
        self.follow_reopen();
        let idle = self.s.ack_poll_interval.min(Duration::from_secs(1));
        if let Some(t) = self.paused_until {
            let now = Instant::now();
            if t > now {
                return t - now;
            }
            self.paused_until = None;
        }
        while self.inflight < self.max_inflight() {
            let Some(indexer) = self.pick_indexer() else {
                return self.next_indexer_wait();
            };
            let batch = match self.resend.pop_front() {
                Some(b) => b,
                None => match self
                    .linger_wait()
                    .map_or_else(|| self.new_batch(), |_| Ok(None))
                {
                    Ok(Some(b)) => b,
                    Ok(None) => return self.linger_wait().unwrap_or(idle),
                    Err(e) => {
                        // new_batch leaves its cursor on the record that failed.
                        let record = self.next.0;
                        self.read_failed(record, e);
                        return self.s.retry_initial;
                    }
                },
            };
            let built = match self.fresh.take() {
                Some((b, body, query)) if b == batch => {
                    let route = self.batches.get(&b).map_or(Route::Event, |st| st.route);
                    Ok(Some((body, route, query)))
                }
                _ => self.body(batch),
            };
            match built {
                Ok(Some((body, route, query))) => {
                    self.start_send(batch, indexer, body, route, query)
                }
                Ok(None) => {}
                Err((record, e)) => {
                    self.resend.push_front(batch);
                    self.read_failed(record, e);
                    return self.s.retry_initial;
                }
            }
        }
        idle
    }

    /// Small requests wait up to `linger` so they travel in fewer batches.
    fn linger_wait(&self) -> Option<Duration> {
        if self.current.is_some() {
            return None;
        }
        let limit = self.ctx.queue.readable_before();
        let id = self
            .ctx
            .queue
            .ids_from(self.next.0)
            .next()
            .filter(|i| *i < limit)?;
        let age = Duration::from_millis(now_ms().saturating_sub(self.ctx.queue.received_ms(id)?));
        self.s.linger.checked_sub(age).filter(|w| !w.is_zero())
    }

    /// Round robin over indexers whose circuit is closed. One whose backoff
    /// ran out is probed with `/services/collector/health` before it gets
    /// batches again.
    fn pick_indexer(&mut self) -> Option<usize> {
        let now = Instant::now();
        let n = self.indexers.len();
        for k in 0..n {
            let i = (self.rr + k) % n;
            let st = self.indexers[i];
            match st.down_until {
                None => {
                    self.rr = (i + 1) % n;
                    return Some(i);
                }
                Some(t) if t <= now && !st.probing => self.probe(i),
                _ => {}
            }
        }
        None
    }

    fn probe(&mut self, indexer: usize) {
        let Sink::Splunk(c) = &self.sink else {
            // The file output has no health endpoint: just try again.
            self.indexers[indexer].down_until = None;
            return;
        };
        self.indexers[indexer].probing = true;
        let (c, tx) = (Arc::clone(c), self.tx.clone());
        tokio::spawn(async move {
            let healthy = c.healthy(indexer).await;
            let _ = tx.send(Event::Health { indexer, healthy });
        });
    }

    fn next_indexer_wait(&self) -> Duration {
        let now = Instant::now();
        self.indexers
            .iter()
            .filter(|s| !s.probing)
            .filter_map(|s| s.down_until)
            .map(|t| t.saturating_duration_since(now))
            .min()
            .unwrap_or(self.s.retry_initial)
    }

    fn resolver_for<'a>(&'a self, token: &str) -> Resolver<'a> {
        let t = self.ctx.tokens.get(token);
        let [index, sourcetype, source, host] = &self.s.overrides;
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
            hostname: &self.ctx.hostname,
        }
    }

    /// Packs the next events from the queue into a new batch. Records are
    /// read as streams; a read error stops the batch where it happened (the
    /// events before it still travel) and is returned on the next call, with
    /// the cursor on the record that failed.
    fn new_batch(&mut self) -> Result<Option<BatchId>, SourceError> {
        let limit = self.ctx.queue.readable_before();
        let mut builder = BatchBuilder::new(self.s.limits);
        let mut segments: Vec<Segment> = Vec::new();
        let mut route: Option<Route> = None;
        let mut query: Option<String> = None;
        let enricher = self.ctx.enricher.current();
        let enrich = enricher.as_deref();
        let allow_raw = matches!(self.sink, Sink::Splunk(_));
        // One output measures enrichment, so each sample counts once.
        let measure = self.ctx.outputs.first() == Some(&self.s.name) && enrich.is_some();
        let lag = measure.then(|| self.ctx.metrics.sample_lag.local());
        let mut enriched = [0u64; 2];
        let now = now_ms() as f64 / 1000.0;
        let mut unsendable: Vec<(RecordId, Unsendable)> = Vec::new();
        let mut failed: Option<SourceError> = None;
        let mut rendered_bytes = Vec::new();
        'records: loop {
            if self.current.as_ref().is_none_or(|c| c.id() != self.next.0) {
                self.current = None;
                let Some(id) = self
                    .ctx
                    .queue
                    .ids_from(self.next.0)
                    .next()
                    .filter(|id| *id < limit)
                else {
                    break;
                };
                self.next = (id, if id == self.next.0 { self.next.1 } else { 0 });
                if self.ctx.queue.is_released(id, &self.s.name) {
                    self.next = (id + 1, 0);
                    continue;
                }
                let opened = EventStream::open(&self.ctx.queue, id, self.ctx.max_event_bytes)
                    .and_then(|s| match s {
                        Some(mut s) => s.skip_to(self.next.1).map(|()| Some(s)),
                        None => Ok(None),
                    });
                match opened {
                    Ok(Some(stream)) => {
                        self.ledger.track(id, stream.meta().events);
                        self.current = Some(stream);
                    }
                    Ok(None) => {
                        self.next = (id + 1, 0);
                        continue;
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            let Some(mut current) = self.current.take() else {
                break;
            };
            let id = current.id();
            let meta = current.meta().clone();
            let resolver = self.resolver_for(&meta.token);
            let full = loop {
                let position = current.position();
                let item = match current.peek() {
                    Ok(Some(item)) => item,
                    Ok(None) => break false,
                    Err(e) => {
                        failed = Some(e);
                        break true;
                    }
                };
                let bytes = match item {
                    Item::Event(bytes) => bytes,
                    Item::Oversize(head) => {
                        let head = head.to_vec();
                        unsendable.push((
                            id,
                            Unsendable::Oversize {
                                number: position,
                                head,
                            },
                        ));
                        current.advance();
                        continue;
                    }
                };
                let event = match resolver.event(&meta, bytes, position) {
                    Ok(e) => e,
                    Err(bad) => {
                        unsendable.push((id, Unsendable::Bad(bad)));
                        current.advance();
                        continue;
                    }
                };
                rendered_bytes.clear();
                let rendered = render(
                    &event,
                    enrich.map(|en| (en, meta.token.as_str())),
                    allow_raw,
                    &mut rendered_bytes,
                );
                let r = rendered.route;
                // One route per request; a /raw request carries one
                // record's metadata in its query string.
                let other_record =
                    r == Route::Raw && segments.last().is_some_and(|s| s.record != id);
                if route.is_some_and(|b| b != r)
                    || other_record
                    || !builder.fits(rendered_bytes.len())
                {
                    break true;
                }
                if route.is_none() && r == Route::Raw {
                    query = Some(raw_query(&event));
                }
                route = Some(r);
                builder.push(&rendered_bytes);
                if let (Some(lag), Some(t)) = (&lag, rendered.sample_time) {
                    lag.observe((now - t).max(0.0));
                }
                enriched[usize::from(rendered.enriched)] += 1;
                match segments.last_mut() {
                    Some(s) if s.record == id && s.first + s.count == position => s.count += 1,
                    _ => segments.push(Segment {
                        record: id,
                        first: position,
                        count: 1,
                    }),
                }
                current.advance();
            };
            self.next = (id, current.position());
            if failed.is_some() {
                // Read again from this position on the next attempt.
                break 'records;
            }
            if full {
                self.current = Some(current);
                break 'records;
            }
            self.next = (id + 1, 0);
        }
        if measure {
            let m = &self.ctx.metrics.enrich_events;
            m.with_label_values(&["passed"]).inc_by(enriched[0]);
            m.with_label_values(&["enriched"]).inc_by(enriched[1]);
        }
        for (id, u) in unsendable {
            self.dead_letter_unsendable(id, u);
        }
        if segments.is_empty() {
            return match failed {
                Some(e) => Err(e),
                None => Ok(None),
            };
        }
        let events = segments.iter().map(|s| s.count).sum();
        let b = self.next_batch;
        self.next_batch += 1;
        let body = self.count_body(builder);
        self.fresh = Some((b, body, query));
        self.batches.insert(
            b,
            BatchState {
                route: route.unwrap_or(Route::Event),
                segments,
                events,
                first_sent: None,
            },
        );
        Ok(Some(b))
    }

    /// The request body of a batch, rebuilt from the queue. A record that
    /// cannot be read is returned as the error's record.
    fn body(&mut self, batch: BatchId) -> Result<Option<Built>, (RecordId, SourceError)> {
        let Some(state) = self.batches.get(&batch) else {
            return Ok(None);
        };
        let segments = state.segments.clone();
        let route = state.route;
        let mut query = None;
        let mut builder = BatchBuilder::new(BatchLimits {
            max_events: usize::MAX,
            max_bytes: u64::MAX,
            max_compressed_bytes: u64::MAX,
            compression: self.s.limits.compression,
        });
        let mut stream: Option<EventStream<'static>> = None;
        let mut line = Vec::new();
        let enricher = self.ctx.enricher.current();
        for seg in &segments {
            // Segments of one record come in order: one stream serves them.
            if stream
                .as_ref()
                .is_none_or(|s| s.id() != seg.record || s.position() > seg.first)
            {
                stream = EventStream::open(&self.ctx.queue, seg.record, self.ctx.max_event_bytes)
                    .map_err(|e| (seg.record, e))?;
            }
            // A record already gone from the queue has nothing left to send.
            let Some(source) = stream.as_mut() else {
                continue;
            };
            let token = source.meta().token.clone();
            let resolver = self.resolver_for(&token);
            line.clear();
            let q = write_segment(
                source,
                &resolver,
                enricher.as_deref(),
                *seg,
                route,
                &mut line,
            )
            .map_err(|e| (seg.record, e))?;
            query = query.or(q);
            builder.push(&line);
        }
        if builder.is_empty() {
            self.delivered(batch, false);
            return Ok(None);
        }
        Ok(Some((self.count_body(builder), route, query)))
    }

    /// Finishes a body and counts its bytes.
    fn count_body(&self, builder: BatchBuilder) -> bytes::Bytes {
        let body = builder.finish();
        let m = &self.ctx.metrics;
        m.output_bytes
            .with_label_values(&[&self.s.name, "uncompressed"])
            .inc_by(body.uncompressed_bytes);
        m.output_bytes
            .with_label_values(&[&self.s.name, "compressed"])
            .inc_by(body.body.len() as u64);
        body.body.into()
    }

    fn start_send(
        &mut self,
        batch: BatchId,
        indexer: usize,
        body: bytes::Bytes,
        route: Route,
        query: Option<String>,
    ) {
        if let Some(st) = self.batches.get_mut(&batch) {
            st.first_sent.get_or_insert_with(Instant::now);
        }
        self.inflight += 1;
        let tx = self.tx.clone();
        match &self.sink {
            Sink::File(w) => {
                let w = Arc::clone(w);
                tokio::task::spawn_blocking(move || {
                    let result = w
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .write_batch(&body);
                    let (outcome, code) = match result {
                        Ok(()) => (SendOutcome::Delivered, "ok".to_string()),
                        Err(e) => {
                            tracing::error!(error = %e, "archive write failed");
                            (
                                SendOutcome::Retry {
                                    after: None,
                                    code: "error".into(),
                                },
                                "error".to_string(),
                            )
                        }
                    };
                    let _ = tx.send(Event::Sent {
                        batch,
                        indexer,
                        outcome,
                        code,
                    });
                });
            }
            Sink::Splunk(c) => {
                let c = Arc::clone(c);
                tokio::spawn(async move {
                    let (outcome, code) = c.send(indexer, body, route, query.as_deref()).await;
                    let _ = tx.send(Event::Sent {
                        batch,
                        indexer,
                        outcome,
                        code,
                    });
                });
            }
        }
    }

    fn poll_acks(&mut self) {
        let now = Instant::now();
        for t in self.tracker.expire(now, self.s.ack_timeout) {
            if let Some(st) = self.batches.get(&t.batch) {
                tracing::warn!(output = %self.s.name, indexer = %self.label(t.indexer), events = st.events, "no indexer ack in time; resending (possible duplicates)");
                self.ctx
                    .metrics
                    .output_events
                    .with_label_values(&[&self.s.name, "resent"])
                    .inc_by(st.events);
                self.retry_later(t.batch, false);
            }
        }
        let Sink::Splunk(c) = &self.sink else {
            return;
        };
        for indexer in 0..self.indexers.len() {
            let ids = self.tracker.to_poll(indexer);
            if ids.is_empty() || self.polling[indexer] {
                continue;
            }
            self.polling[indexer] = true;
            let (c, tx) = (Arc::clone(c), self.tx.clone());
            tokio::spawn(async move {
                let reply = c.poll_acks(indexer, &ids).await;
                let _ = tx.send(Event::Polled { indexer, reply });
            });
        }
        self.set_indexer_gauges();
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Health { indexer, healthy } => {
                let st = &mut self.indexers[indexer];
                st.probing = false;
                if healthy {
                    tracing::info!(output = %self.s.name, indexer = %self.label(indexer), "indexer healthy again");
                    self.indexers[indexer] = IndexerState::default();
                } else {
                    st.failures = st.failures.saturating_add(1);
                    st.down_until = Some(
                        Instant::now()
                            + backoff(self.s.retry_initial, self.s.retry_max, st.failures - 1),
                    );
                }
                self.set_indexer_gauges();
            }
            Event::Polled { indexer, reply } => {
                self.polling[indexer] = false;
                match reply {
                    Ok(reply) => {
                        for (batch, sent) in self.tracker.acked(indexer, &reply) {
                            self.ctx
                                .metrics
                                .output_ack_latency
                                .with_label_values(&[&self.s.name])
                                .observe(sent.elapsed().as_secs_f64());
                            self.delivered(batch, false);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(output = %self.s.name, indexer = %self.label(indexer), error = %e, "ack poll failed")
                    }
                }
                self.set_indexer_gauges();
            }
            Event::Sent {
                batch,
                indexer,
                outcome,
                code,
            } => {
                self.inflight = self.inflight.saturating_sub(1);
                let label = self.label(indexer);
                self.ctx
                    .metrics
                    .output_requests
                    .with_label_values(&[&self.s.name, &label, &code])
                    .inc();
                self.outcome(batch, indexer, outcome);
                self.set_indexer_gauges();
            }
        }
    }

    fn outcome(&mut self, batch: BatchId, indexer: usize, outcome: SendOutcome) {
        let ok = !matches!(
            outcome,
            SendOutcome::Retry { .. } | SendOutcome::Unauthorized { .. }
        );
        if ok {
            self.indexers[indexer] = IndexerState::default();
        }
        match outcome {
            SendOutcome::Delivered => self.delivered(batch, true),
            SendOutcome::AckUnavailable => {
                if !self.warned_no_ack {
                    self.warned_no_ack = true;
                    tracing::warn!(output = %self.s.name, "indexer answered without ackId: the token has no indexer acknowledgements; counting 200 as delivered");
                }
                self.ctx
                    .metrics
                    .output_ack_unavailable
                    .with_label_values(&[&self.s.name])
                    .inc();
                self.delivered(batch, true);
            }
            SendOutcome::AckPending(id) => self.tracker.sent(indexer, id, batch, Instant::now()),
            SendOutcome::InvalidEvent { number, reason } => {
                self.invalid_event(batch, number, reason)
            }
            SendOutcome::Rejected { status, reason } => self.rejected(batch, status, reason),
            SendOutcome::Unauthorized { status } => {
                let wait = self.s.retry_max;
                tracing::error!(output = %self.s.name, status, pause = ?wait, "indexer refused the token; output paused, still queueing");
                self.paused_until = Some(Instant::now() + wait.min(Duration::from_secs(30)));
                self.retry_later(batch, true);
            }
            SendOutcome::Retry { after, code } => {
                let st = &mut self.indexers[indexer];
                st.failures = st.failures.saturating_add(1);
                let wait = after
                    .unwrap_or_else(|| {
                        backoff(self.s.retry_initial, self.s.retry_max, st.failures - 1)
                    })
                    .min(self.s.retry_max.max(after.unwrap_or_default()));
                st.down_until = Some(Instant::now() + wait);
                if st.failures == 1 {
                    tracing::warn!(output = %self.s.name, indexer = %self.label(indexer), code, "indexer failing; its circuit is open until a health check passes");
                }
                tracing::debug!(output = %self.s.name, indexer = %self.label(indexer), code, ?wait, "transient failure; retrying");
                self.ctx
                    .metrics
                    .output_retries
                    .with_label_values(&[&self.s.name, &self.label(indexer)])
                    .inc();
                self.retry_later(batch, true);
            }
        }
    }

    /// Every event of the batch is delivered: count it and release complete
    /// records. `observe` records the send-to-delivery latency (acked batches
    /// record theirs when the ack arrives).
    fn delivered(&mut self, batch: BatchId, observe: bool) {
        let Some(st) = self.batches.remove(&batch) else {
            return;
        };
        self.ctx
            .metrics
            .output_events
            .with_label_values(&[&self.s.name, "delivered"])
            .inc_by(st.events);
        if let Some(t) = st.first_sent.filter(|_| observe) {
            self.ctx
                .metrics
                .output_ack_latency
                .with_label_values(&[&self.s.name])
                .observe(t.elapsed().as_secs_f64());
        }
        for seg in st.segments {
            self.count_delivered(seg.record, seg.count);
        }
    }

    fn count_delivered(&mut self, record: RecordId, n: u64) {
        if self.ledger.delivered(record, n) {
            let outputs: Vec<&str> = self.ctx.outputs.iter().map(String::as_str).collect();
            if let Err(e) = self.ctx.queue.release(record, &self.s.name, &outputs) {
                tracing::error!(output = %self.s.name, record, error = %e, "releasing a delivered record");
            }
            if self.current.as_ref().is_some_and(|c| c.id() == record) && self.next.0 != record {
                self.current = None;
            }
        }
    }

    /// Splits the batch's segments at event offset `at` (events of the batch).
    fn split(segments: &[Segment], at: u64) -> (Vec<Segment>, Vec<Segment>) {
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut seen = 0;
        for s in segments {
            if seen + s.count <= at {
                before.push(*s);
            } else if seen >= at {
                after.push(*s);
            } else {
                let k = at - seen;
                before.push(Segment { count: k, ..*s });
                after.push(Segment {
                    first: s.first + k,
                    count: s.count - k,
                    ..*s
                });
            }
            seen += s.count;
        }
        (before, after)
    }

    /// How long the oldest event of a batch has waited since it was received.
    fn batch_age(&self, st: &BatchState) -> Duration {
        let oldest = st
            .segments
            .iter()
            .filter_map(|s| self.ctx.queue.received_ms(s.record))
            .min()
            .unwrap_or_else(now_ms);
        Duration::from_millis(now_ms().saturating_sub(oldest))
    }

    fn expired(&self, batch: BatchId) -> bool {
        match (self.s.dead_letter_after, self.batches.get(&batch)) {
            (Some(limit), Some(st)) => self.batch_age(st) >= limit,
            _ => false,
        }
    }

    fn give_up(&mut self, batch: BatchId) {
        if let Some(st) = self.batches.remove(&batch) {
            let reason = format!(
                "undelivered for longer than dead_letter_after ({:?})",
                self.s.dead_letter_after.unwrap_or_default()
            );
            for seg in st.segments {
                self.dead_letter_segment(seg, &reason);
            }
        }
    }

    /// Queues a batch to be sent again, unless its events have waited longer
    /// than `dead_letter_after`: then they become dead letters.
    fn retry_later(&mut self, batch: BatchId, front: bool) {
        if self.expired(batch) {
            self.give_up(batch);
        } else if front {
            self.resend.push_front(batch);
        } else {
            self.resend.push_back(batch);
        }
    }

    /// With `dead_letter_after`, events that waited too long are given up even
    /// while no indexer takes requests.
    fn expire_waiting(&mut self) {
        let Some(limit) = self.s.dead_letter_after else {
            return;
        };
        let waiting: Vec<BatchId> = self
            .resend
            .iter()
            .copied()
            .filter(|b| self.expired(*b))
            .collect();
        self.resend.retain(|b| !waiting.contains(b));
        for b in waiting {
            self.give_up(b);
        }
        loop {
            let limit_id = self.ctx.queue.readable_before();
            let Some(id) = self
                .ctx
                .queue
                .ids_from(self.next.0)
                .next()
                .filter(|i| *i < limit_id)
            else {
                return;
            };
            let old = self
                .ctx
                .queue
                .received_ms(id)
                .is_some_and(|t| Duration::from_millis(now_ms().saturating_sub(t)) >= limit);
            if !old {
                return;
            }
            let Ok(Some(b)) = self.new_batch() else {
                return;
            };
            let Some(st) = self.batches.remove(&b) else {
                return;
            };
            let is_old = |q: &Queue, r: RecordId| {
                q.received_ms(r)
                    .is_some_and(|t| Duration::from_millis(now_ms().saturating_sub(t)) >= limit)
            };
            let (old, young): (Vec<Segment>, Vec<Segment>) = st
                .segments
                .iter()
                .partition(|seg| is_old(&self.ctx.queue, seg.record));
            let reason = format!("undelivered for longer than dead_letter_after ({limit:?})");
            for seg in old {
                self.dead_letter_segment(seg, &reason);
            }
            if !young.is_empty() {
                self.enqueue_resend(st.route, young);
                return;
            }
        }
    }

    fn enqueue_resend(&mut self, route: Route, segments: Vec<Segment>) {
        if segments.is_empty() {
            return;
        }
        let events = segments.iter().map(|s| s.count).sum();
        let b = self.next_batch;
        self.next_batch += 1;
        self.batches.insert(
            b,
            BatchState {
                route,
                segments,
                events,
                first_sent: None,
            },
        );
        self.resend.push_front(b);
    }

    /// 400 with `invalid-event-number`: Splunk indexed the events before it.
    fn invalid_event(&mut self, batch: BatchId, number: u64, reason: String) {
        let Some(st) = self.batches.remove(&batch) else {
            return;
        };
        if number >= st.events {
            self.batches.insert(batch, st);
            return self.rejected(batch, 400, reason);
        }
        let (before, rest) = Engine::split(&st.segments, number);
        let (bad, after) = Engine::split(&rest, 1);
        let delivered: u64 = before.iter().map(|s| s.count).sum();
        self.ctx
            .metrics
            .output_events
            .with_label_values(&[&self.s.name, "delivered"])
            .inc_by(delivered);
        for s in before {
            self.count_delivered(s.record, s.count);
        }
        for s in bad {
            self.dead_letter_segment(s, &reason);
        }
        self.enqueue_resend(st.route, after);
    }

    /// Refused for content or size: bisect until the bad events stand alone.
    fn rejected(&mut self, batch: BatchId, status: u16, reason: String) {
        let Some(st) = self.batches.remove(&batch) else {
            return;
        };
        if st.events <= 1 {
            for s in st.segments {
                self.dead_letter_segment(s, &format!("{status} {reason}"));
            }
            return;
        }
        let (a, b) = Engine::split(&st.segments, st.events / 2);
        self.enqueue_resend(st.route, b);
        self.enqueue_resend(st.route, a);
    }

    fn update_oldest(&self) {
        let id = self.ledger.oldest().or_else(|| {
            let limit = self.ctx.queue.readable_before();
            self.ctx
                .queue
                .ids_from(self.next.0)
                .next()
                .filter(|i| *i < limit)
        });
        let age = id
            .and_then(|i| self.ctx.queue.received_ms(i))
            .map_or(0.0, |t| now_ms().saturating_sub(t) as f64 / 1000.0);
        self.ctx
            .metrics
            .output_oldest_undelivered
            .with_label_values(&[&self.s.name])
            .set(age);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_split_at_event_offsets() {
        let segs = vec![
            Segment {
                record: 1,
                first: 5,
                count: 3,
            },
            Segment {
                record: 2,
                first: 0,
                count: 2,
            },
        ];
        let (a, b) = Engine::split(&segs, 4);
        assert_eq!(a.iter().map(|s| s.count).sum::<u64>(), 4);
        assert_eq!(
            b,
            vec![Segment {
                record: 2,
                first: 1,
                count: 1
            }]
        );
        let (a, b) = Engine::split(&segs, 1);
        assert_eq!(
            a,
            vec![Segment {
                record: 1,
                first: 5,
                count: 1
            }]
        );
        assert_eq!(
            b[0],
            Segment {
                record: 1,
                first: 6,
                count: 2
            }
        );
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let i = Duration::from_millis(100);
        let m = Duration::from_secs(5);
        assert!(backoff(i, m, 0) <= Duration::from_millis(125));
        assert!(backoff(i, m, 10) <= m);
        assert!(backoff(i, m, 10) >= m.mul_f64(0.75));
    }
}
