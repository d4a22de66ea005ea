//! The forwarding loop of one output, a small select loop over the units
//! around it: the planner and builders (`build/`) turn queued records into
//! batches on blocking threads; the transport carries them; the breaker
//! (`breaker.rs`) picks a destination; the ack tracker (`acks.rs`) follows
//! indexer acks; `outcome.rs` decides what each answer means for a batch
//! (deliver, split, resend, pause, dead-letter); `dead_letters.rs` handles
//! events that can never be delivered; a record is released once all its
//! events are delivered or dead-lettered (`acks::DeliveryLedger`).
//!
//! Batches remember which events they carry (`batches.rs`), and their bytes
//! only while a send is out: a resend rebuilds the body from the queue, which
//! holds every record until all outputs released it; an invalid-event-number
//! answer is cut from the body it answers (`build/cut.rs`).

mod batches;
mod dead_letters;
mod outcome;
mod owed;
mod report;
#[cfg(test)]
mod tests;

use super::acks::{AckTracker, DeliveryLedger};
use super::batch::BodyPool;
use super::breaker::Breaker;
use super::build::job::{rebuild, Built};
use super::build::plan::{Plan, Planner};
use super::build::{BuildShared, Builders, JOB_BACKLOG};
use super::context::{EngineSettings, ForwardContext};
use super::output_metrics::{BuildMetrics, OutputMetrics};
use super::read_failures::ReadFailures;
use super::status::LastErrors;
use super::stream::SourceError;
use super::transport::{Answer, Request, Transport, TransportError};
use crate::hec::ack::AckReply;
use crate::queue::{DeadLetter, RecordId};
use batches::{BatchId, BatchState, Batches};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};

/// The longest the loop sleeps with nothing to do (it also wakes on appends
/// and answers).
const IDLE: Duration = Duration::from_secs(1);

/// How long shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// What the loop's spawned work reports.
enum Event {
    Sent {
        batch: BatchId,
        dest: usize,
        answer: Answer,
    },
    Rebuilt {
        batch: BatchId,
        dest: usize,
        built: Result<Option<Request>, (RecordId, SourceError)>,
    },
    Polled {
        dest: usize,
        reply: Result<AckReply, TransportError>,
    },
    Health {
        dest: usize,
        healthy: bool,
    },
    /// Dead letters for `covers` events of `record` were stored, in the
    /// store of `generation`; `unstored` could not be (each stands for one
    /// event).
    Lettered {
        record: RecordId,
        covers: u64,
        unstored: Vec<DeadLetter>,
        generation: u64,
    },
}

/// What woke the loop.
enum Step {
    Event(Event),
    Built(Option<Built>),
    Poll,
    Housekeeping,
    Wake,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The loop's state.
pub struct Engine<T: Transport> {
    s: EngineSettings,
    ctx: ForwardContext,
    transport: Arc<T>,
    m: OutputMetrics,
    planner: Planner,
    builders: Builders,
    ledger: DeliveryLedger,
    batches: Batches,
    /// Batches to send again, oldest first.
    resend: VecDeque<BatchId>,
    /// Resends wait until then after a record failed to read.
    resend_after: Option<Instant>,
    /// A built batch no destination could take yet.
    ready: Option<(BatchId, Request)>,
    tracker: AckTracker,
    /// Sends (and rebuilds for a send) not answered yet.
    inflight: usize,
    /// Dead letters being written.
    lettering: usize,
    /// Events of each record in dead letters being written.
    lettering_events: HashMap<RecordId, u64>,
    polling: Vec<bool>,
    breaker: Breaker,
    /// The token was refused: no sends until then.
    paused_until: Option<Instant>,
    warned_no_ack: bool,
    /// The queue's store generation this state was built against.
    generation: u64,
    read_failures: ReadFailures,
    /// Records given up as corrupt and not yet released.
    corrupt: HashSet<RecordId>,
    /// Releases and dead letters to store again.
    owed: owed::Owed,
    /// Shutting down: answers are taken, nothing new is sent.
    draining: bool,
    /// When the next `sluice:stats` event is due (`None`: never).
    stats: Option<super::stats::StatsClock>,
    /// For the status page.
    errors: LastErrors,
    /// Records given up as corrupt since start.
    corrupt_given_up: u64,
    tx: mpsc::UnboundedSender<Event>,
}

impl<T: Transport> Engine<T> {
    /// Starts the loop of one output; it ends when `shutdown` turns true.
    pub fn spawn(
        s: EngineSettings,
        ctx: ForwardContext,
        transport: T,
        shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let (engine, rx) = Engine::new(s, ctx, transport);
        tokio::spawn(engine.run(rx, shutdown))
    }

    fn new(
        s: EngineSettings,
        ctx: ForwardContext,
        transport: T,
    ) -> (Engine<T>, mpsc::UnboundedReceiver<Event>) {
        let dests = transport.destinations().len();
        let m = OutputMetrics::bind(&ctx.metrics, &s.name, transport.destinations());
        // One output measures enrichment, so each sample counts once.
        let measure = ctx.outputs.first() == Some(&s.name);
        let shared = BuildShared {
            queue: Arc::clone(&ctx.queue),
            tokens: Arc::clone(&ctx.tokens),
            overrides: s.overrides.clone(),
            hostname: Arc::clone(&ctx.hostname),
            enricher: Arc::clone(&ctx.enricher),
            limits: s.limits,
            bodies: BodyPool::new(s.build_threads * (JOB_BACKLOG + 1)),
            allow_raw: transport.allows_raw(),
            max_event_bytes: ctx.max_event_bytes,
            metrics: BuildMetrics::bind(&ctx.metrics, &s.name, measure),
            rereads: Default::default(),
            routing: s.routing.clone(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let outputs: Vec<&str> = ctx.outputs.iter().map(String::as_str).collect();
        if let Err(e) = ctx.queue.sweep_released(&outputs) {
            tracing::warn!(output = %s.name, error = %e, "could not finish earlier releases");
        }
        let stats = s
            .stats_interval
            .map(|every| super::stats::StatsClock::new(every, Instant::now()));
        let with_rollups = s.routing.rollups.is_some();
        let engine = Engine {
            builders: Builders::new(Arc::new(shared), s.build_threads),
            breaker: Breaker::new(dests, s.retry_initial, s.retry_max),
            generation: ctx.queue.generation(),
            s,
            ctx,
            transport: Arc::new(transport),
            m,
            planner: Planner::new(),
            ledger: DeliveryLedger::new(with_rollups),
            batches: Batches::default(),
            resend: VecDeque::new(),
            resend_after: None,
            ready: None,
            tracker: AckTracker::new(),
            inflight: 0,
            lettering: 0,
            lettering_events: HashMap::new(),
            polling: vec![false; dests],
            paused_until: None,
            warned_no_ack: false,
            read_failures: ReadFailures::new(),
            corrupt: HashSet::new(),
            owed: owed::Owed::default(),
            draining: false,
            stats,
            errors: LastErrors::default(),
            corrupt_given_up: 0,
            tx,
        };
        engine.set_dest_gauges();
        (engine, rx)
    }

    fn max_inflight(&self) -> usize {
        self.s.concurrency.max(1) * self.breaker.len()
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Event>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut poll = tokio::time::interval(self.s.ack_poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut housekeeping = tokio::time::interval(IDLE);
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let queue = Arc::clone(&self.ctx.queue);
            let appended = queue.appended();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let wait = self.prepare(Instant::now());
            let take = self.can_take(Instant::now()) && !self.builders.is_empty();
            let step = tokio::select! {
                Some(ev) = rx.recv() => Step::Event(ev),
                b = self.builders.next(), if take => Step::Built(b),
                _ = poll.tick() => Step::Poll,
                _ = housekeeping.tick() => Step::Housekeeping,
                _ = &mut appended => Step::Wake,
                _ = tokio::time::sleep(wait) => Step::Wake,
                // A dropped sender means shutdown too (never a busy loop).
                changed = shutdown.changed() => match changed {
                    Ok(()) => Step::Wake,
                    Err(_) => break,
                },
            };
            match step {
                Step::Event(ev) => self.handle(ev),
                Step::Built(Some(b)) => self.take_built(b),
                Step::Built(None) | Step::Wake => {}
                Step::Poll => self.poll_acks(),
                Step::Housekeeping => {
                    self.report_stats(Instant::now());
                    self.publish_status(Instant::now());
                    self.retry_owed();
                    self.expire_waiting();
                    self.update_oldest();
                }
            }
        }
        self.drain(&mut rx).await;
        let transport = Arc::clone(&self.transport);
        match tokio::task::spawn_blocking(move || transport.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(output = %self.s.name, error = %e, "closing the output"),
            Err(e) => tracing::error!(output = %self.s.name, error = %e, "closing the output"),
        }
        tracing::info!(output = %self.s.name, "output stopped");
    }

    /// Lets requests in flight finish so their answers are not wasted.
    async fn drain(&mut self, rx: &mut mpsc::UnboundedReceiver<Event>) {
        self.draining = true;
        self.builders.clear();
        let deadline = tokio::time::Instant::now() + DRAIN;
        while self.inflight + self.lettering > 0 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(ev)) => self.handle(ev),
                _ => break,
            }
        }
        self.retry_owed();
        self.builders.stop().await;
    }

    /// Everything that needs no waiting: follow a reopened store, probe
    /// destinations, plan jobs, send what can be sent. Returns how long the
    /// loop may sleep.
    fn prepare(&mut self, now: Instant) -> Duration {
        self.follow_reopen();
        for dest in self.breaker.due_probes(now) {
            self.probe(dest);
        }
        let mut wait = self.breaker.next_due(now).unwrap_or(IDLE);
        wait = wait.min(self.plan_jobs(now));
        wait.min(self.dispatch(now))
    }

    /// After the queue reopened its store (following a write error), releases
    /// and removals the old store had not flushed may be undone: start over
    /// from the oldest record this output has not released. Batches in flight
    /// are forgotten (their answers match nothing) and sent again: at least once.
    fn follow_reopen(&mut self) {
        let generation = self.ctx.queue.generation();
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        tracing::warn!(output = %self.s.name, "queue store reopened; reading it again from the oldest record not yet delivered");
        self.planner.reset();
        self.builders.clear();
        self.ledger = DeliveryLedger::new(self.s.routing.rollups.is_some());
        self.batches.clear();
        self.resend.clear();
        self.ready = None;
        self.tracker = AckTracker::new();
        self.corrupt.clear();
        self.lettering_events.clear();
        self.forget_owed();
    }

    /// Starts build jobs while builders have room.
    fn plan_jobs(&mut self, now: Instant) -> Duration {
        while self.builders.has_room() && !self.draining && !self.owed.is_full() {
            let mut empty = Vec::new();
            let Engine {
                planner,
                ledger,
                ctx,
                s,
                ..
            } = self;
            let plan = planner.plan(
                &ctx.queue,
                &s.name,
                s.limits.max_events as u64,
                s.linger,
                now,
                now_ms(),
                |record, events| {
                    ledger.track(record, events);
                    if events == 0 {
                        empty.push(record);
                    }
                },
            );
            for record in empty {
                self.count_delivered(record, 0);
            }
            match plan {
                Plan::Job(job) => self.builders.start(job),
                Plan::Wait(d) => return d,
                Plan::Idle => return IDLE,
            }
        }
        IDLE
    }

    fn paused(&mut self, now: Instant) -> Option<Duration> {
        match self.paused_until {
            Some(t) if t > now => Some(t - now),
            _ => {
                self.paused_until = None;
                None
            }
        }
    }

    /// Whether a new batch may be taken from the builders now.
    fn can_take(&mut self, now: Instant) -> bool {
        let resends_wait = self.resend.is_empty() || self.resend_after.is_some_and(|t| t > now);
        !self.draining
            && self.paused(now).is_none()
            && self.ready.is_none()
            && resends_wait
            && self.inflight < self.max_inflight()
            && self.breaker.any_closed()
    }

    /// Sends what waits (resends first, then the batch that found no
    /// destination) while there is room.
    fn dispatch(&mut self, now: Instant) -> Duration {
        if self.draining {
            return IDLE;
        }
        if let Some(wait) = self.paused(now) {
            return wait;
        }
        let mut wait = IDLE;
        while self.inflight < self.max_inflight() && !self.resend.is_empty() {
            if let Some(t) = self.resend_after.filter(|t| *t > now) {
                wait = t - now;
                break;
            }
            let Some(dest) = self.breaker.pick() else {
                break;
            };
            let Some(batch) = self.resend.pop_front() else {
                break;
            };
            let Some(st) = self.batches.get(batch) else {
                continue;
            };
            self.inflight += 1;
            let (segments, route) = (st.segments.clone(), st.route);
            let tx = self.tx.clone();
            self.builders.run_blocking(move |shared| {
                let built = rebuild(shared, &segments, route);
                let _ = tx.send(Event::Rebuilt { batch, dest, built });
            });
        }
        if self.inflight < self.max_inflight() {
            if let Some((batch, request)) = self.ready.take() {
                match self.breaker.pick() {
                    Some(dest) => self.start_send(batch, dest, request),
                    None => self.ready = Some((batch, request)),
                }
            }
        }
        wait
    }

    /// A builder's report, taken when a batch may be sent at once.
    fn take_built(&mut self, built: Built) {
        self.accept_built(built, true);
    }

    /// A builder's report. A batch is sent at once only when `send` says so
    /// (the loop checked the pause, resends and room); otherwise it waits
    /// as the ready batch.
    fn accept_built(&mut self, built: Built, send: bool) {
        match built {
            Built::Batch(b) => {
                let batch = self.batches.insert(BatchState::new(b.route, b.segments));
                let room = send && !self.draining && self.inflight < self.max_inflight();
                let dest = if room { self.breaker.pick() } else { None };
                match dest {
                    Some(dest) => self.start_send(batch, dest, b.request),
                    None => self.ready = Some((batch, b.request)),
                }
            }
            Built::Unsendable(record, u) => self.dead_letter_unsendable(record, u),
            Built::Skipped { record, count } => self.count_delivered(record, count),
            Built::Rollups { record, count } => {
                if self.ledger.add_rollups(record, count) {
                    self.record_done(record);
                }
            }
            Built::Failed {
                record,
                read,
                error,
            } => self.read_failed(record, Some(read), error),
        }
    }

    fn start_send(&mut self, batch: BatchId, dest: usize, request: Request) {
        if self.draining {
            self.resend.push_front(batch);
            return;
        }
        let Some(st) = self.batches.get_mut(batch) else {
            return;
        };
        st.first_sent.get_or_insert_with(Instant::now);
        st.sent = Some(request.clone());
        self.inflight += 1;
        let (transport, tx) = (Arc::clone(&self.transport), self.tx.clone());
        tokio::spawn(async move {
            let answer = transport.send(dest, request).await;
            let _ = tx.send(Event::Sent {
                batch,
                dest,
                answer,
            });
        });
    }

    fn probe(&mut self, dest: usize) {
        let (transport, tx) = (Arc::clone(&self.transport), self.tx.clone());
        tokio::spawn(async move {
            let healthy = transport.healthy(dest).await;
            let _ = tx.send(Event::Health { dest, healthy });
        });
    }

    /// Polls every destination that owes acks (one poll at a time each) and
    /// resends batches whose ack did not come in time.
    fn poll_acks(&mut self) {
        let now = Instant::now();
        for t in self.tracker.expire(now, self.s.ack_timeout) {
            if let Some(st) = self.batches.get(t.batch) {
                let label = &self.transport.destinations()[t.indexer];
                tracing::warn!(output = %self.s.name, indexer = %label, events = st.events, "no indexer ack in time; resending (possible duplicates)");
                let note = format!(
                    "no indexer ack within {:?}; resending {} events",
                    self.s.ack_timeout, st.events
                );
                self.errors.note(Some(label), note);
                self.m.resent.inc_by(st.events);
                self.retry_later(t.batch, false);
            }
        }
        for dest in 0..self.polling.len() {
            let ids = self.tracker.to_poll(dest);
            if ids.is_empty() || self.polling[dest] {
                continue;
            }
            self.polling[dest] = true;
            let (transport, tx) = (Arc::clone(&self.transport), self.tx.clone());
            tokio::spawn(async move {
                let reply = transport.poll_acks(dest, ids).await;
                let _ = tx.send(Event::Polled { dest, reply });
            });
        }
        self.set_dest_gauges();
    }

    fn set_dest_gauges(&self) {
        let now = Instant::now();
        for (i, d) in self.m.dests.iter().enumerate() {
            d.up.set(i64::from(self.breaker.is_up(i, now)));
            d.pending_acks.set(self.tracker.pending(i) as i64);
        }
    }

    fn update_oldest(&self) {
        let queue = &self.ctx.queue;
        let id = self.ledger.oldest().or_else(|| {
            let limit = queue.readable_before();
            queue
                .ids_from(self.planner.position())
                .next()
                .filter(|i| *i < limit)
        });
        let age = id
            .and_then(|i| queue.received_ms(i))
            .map_or(0.0, |t| now_ms().saturating_sub(t) as f64 / 1000.0);
        self.m.oldest.set(age);
    }

    /// Counts `n` more events of `record` as handled; releases it when all are.
    fn count_delivered(&mut self, record: RecordId, n: u64) {
        if self.ledger.delivered(record, n) {
            self.record_done(record);
        }
    }

    /// Every event of `record` was handled: release it.
    fn record_done(&mut self, record: RecordId) {
        self.corrupt.remove(&record);
        self.read_failures.forget(record);
        self.release(record);
    }
}
