//! The `s3` output: every record, whole and in queue order, into NDJSON
//! objects in an S3-compatible bucket (R2, MinIO, AWS). Not an engine
//! transport: the engine's unit is an event batch, an object's is a run of
//! whole records named by its record range. The contract:
//!
//! - an object holds the output's unreleased records `first..=last`, each
//!   once, as one gzip member (or plain lines);
//! - its range and key are stored and flushed before its upload starts, so
//!   after a crash the same records go to the same key again (no duplicate
//!   objects, nothing half-written left as the only copy);
//! - once the object is in the bucket that is stored and flushed too, before
//!   any of its records is released: after a crash mid-release the rest is
//!   released, and the object is not written again from a part of itself;
//! - a record is released for this output only once the object holding it
//!   is complete; until then it stays in the queue, whatever the bucket does;
//! - on shutdown the open object is completed and uploaded (tried for
//!   [`SHUTDOWN_WAIT`]; what does not make it is uploaded after the restart).
//!
//! Memory: the open object (at most `max_object_bytes`, or one record's
//! member when a single record is larger) plus the record being rendered,
//! which is compressed as it is rendered.

pub mod config;
pub mod object;
pub mod record;
pub mod renderer;
pub mod upload;

use super::batch::Compression;
use super::context::ForwardContext;
use super::output_metrics::OutputMetrics;
use super::read_failures::ReadFailures;
use super::status::{LastErrors, OutputStatus};
use crate::queue::{BegunObject, DeadLetter, Queue, QueueError, RecordId};
use config::S3Output;
use object::{object_key, OpenObject};
use record::{Member, Rendering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use upload::Bucket;

pub use upload::S3SetupError;

/// The label of the bucket in metrics.
pub const DESTINATION: &str = "bucket";
/// How long stopping keeps trying to upload the open object.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);
/// First wait after a failed upload or write.
const RETRY_INITIAL: Duration = Duration::from_millis(500);
/// Longest wait after failures.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Records looked at per pass.
const RECORDS_PER_PASS: usize = 64;

/// Starts the output; it ends when `shutdown` turns true and its open
/// object is uploaded (or [`SHUTDOWN_WAIT`] passed).
pub fn spawn(
    o: &S3Output,
    ctx: ForwardContext,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, S3SetupError> {
    let sink = S3Sink::new(o, ctx, shutdown, Bucket::new(o)?)?;
    Ok(tokio::spawn(sink.run()))
}

/// The output's renderer thread, writing members with `compression`.
fn start_renderer(
    o: &S3Output,
    ctx: &ForwardContext,
    compression: Compression,
) -> Result<renderer::Renderer, S3SetupError> {
    let rendering = Rendering {
        compression,
        enrich: o.enrich,
        routing: o.routing.clone(),
        node: Arc::clone(&ctx.hostname),
        max_event_bytes: ctx.max_event_bytes,
    };
    renderer::Renderer::start(
        &o.name,
        Arc::clone(&ctx.queue),
        rendering,
        Arc::clone(&ctx.tokens),
        Arc::clone(&ctx.enricher),
    )
    .map_err(|e| S3SetupError::Thread {
        output: o.name.clone(),
        source: e,
    })
}

/// A queue call that may flush (an fsync), run off the async runtime.
async fn off_runtime<T, F>(queue: &Arc<Queue>, f: F) -> Result<T, OffRuntimeError>
where
    T: Send + 'static,
    F: FnOnce(&Queue) -> Result<T, QueueError> + Send + 'static,
{
    let q = Arc::clone(queue);
    Ok(tokio::task::spawn_blocking(move || f(&q)).await??)
}

/// A queue call run off the runtime failed.
#[derive(Debug, thiserror::Error)]
enum OffRuntimeError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("the blocking task ended: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl S3Sink {
    fn new(
        o: &S3Output,
        ctx: ForwardContext,
        shutdown: watch::Receiver<bool>,
        bucket: Bucket,
    ) -> Result<S3Sink, S3SetupError> {
        let bucket = Arc::new(bucket);
        let m = OutputMetrics::bind(&ctx.metrics, &o.name, &[DESTINATION.to_string()]);
        let renderer = start_renderer(o, &ctx, o.compression)?;
        Ok(S3Sink {
            o: o.clone(),
            generation: ctx.queue.generation(),
            ctx,
            bucket,
            m,
            renderer,
            open: None,
            next: 0,
            read_failures: ReadFailures::new(),
            errors: LastErrors::default(),
            shutdown,
            stopping_since: None,
            dead_lettered: 0,
            corrupt: 0,
        })
    }
}

struct S3Sink {
    o: S3Output,
    ctx: ForwardContext,
    bucket: Arc<Bucket>,
    m: OutputMetrics,
    renderer: renderer::Renderer,
    open: Option<OpenObject>,
    /// Records below this are in an object (or released, or given up).
    next: RecordId,
    /// The queue's store generation `next` and the open object were read in.
    generation: u64,
    read_failures: ReadFailures,
    errors: LastErrors,
    shutdown: watch::Receiver<bool>,
    /// When stopping began (uploads then give up after [`SHUTDOWN_WAIT`]);
    /// the runtime's clock, as the waits that count it.
    stopping_since: Option<tokio::time::Instant>,
    dead_lettered: u64,
    corrupt: u64,
}

/// What reading a record gave.
enum Read {
    Member(Member),
    Gone,
    /// Try again later (the store is being reopened, or a retry is due).
    Later,
}

/// Resolves once a stop has waited [`SHUTDOWN_WAIT`] (`since`: when it
/// began, if it has); never while the output runs.
async fn stop_deadline(mut shutdown: watch::Receiver<bool>, since: Option<tokio::time::Instant>) {
    let since = match since {
        Some(t) => t,
        None => {
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            tokio::time::Instant::now()
        }
    };
    tokio::time::sleep_until(since + SHUTDOWN_WAIT).await;
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl S3Sink {
    async fn run(mut self) {
        tracing::info!(output = %self.o.name, bucket = %self.o.bucket, endpoint = ?self.o.endpoint, "s3 output started");
        self.m.dests[0].up.set(1);
        self.recover().await;
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.stopping() {
            self.follow_reopen().await;
            // Registered before looking, so an append meanwhile wakes the wait.
            let queue = Arc::clone(&self.ctx.queue);
            let appended = queue.appended();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let progressed = self.fill().await;
            if self.open.as_ref().is_some_and(|o| {
                o.due(
                    self.o.max_object_bytes,
                    self.o.max_object_age,
                    Instant::now(),
                )
            }) {
                self.close_open().await;
            }
            self.publish();
            if progressed {
                continue;
            }
            let mut shutdown = self.shutdown.clone();
            tokio::select! {
                _ = appended => {}
                _ = housekeeping.tick() => {}
                _ = shutdown.changed() => {}
            }
        }
        self.stopping_since
            .get_or_insert_with(tokio::time::Instant::now);
        // Everything the queue holds now goes into objects before exit,
        // as far as the wait allows.
        while self.fill().await {}
        self.close_open().await;
        self.publish();
        tracing::info!(output = %self.o.name, "s3 output stopped");
    }

    fn stopping(&mut self) -> bool {
        if *self.shutdown.borrow() {
            self.stopping_since
                .get_or_insert_with(tokio::time::Instant::now);
            return true;
        }
        false
    }

    /// Whether a stop has waited long enough: uploads give up then (the
    /// records stay queued for the next start).
    fn out_of_time(&self) -> bool {
        self.stopping_since
            .is_some_and(|t| t.elapsed() >= SHUTDOWN_WAIT)
    }

    /// After the queue reopened its store (following a write error), releases
    /// and appends the old store had not flushed may be undone: the open
    /// object may hold records that are no longer queued (their senders were
    /// answered 503 and send them again), and released records may be back.
    /// Both are read again from the store as it is now.
    async fn follow_reopen(&mut self) {
        if self.ctx.queue.generation() == self.generation {
            return;
        }
        tracing::warn!(output = %self.o.name, "queue store reopened; reading it again from the oldest record not yet in an object");
        self.open = None;
        self.next = 0;
        self.read_failures = ReadFailures::new();
        self.recover().await;
    }

    /// Objects a crash left begun: an uploaded one gets the rest of its
    /// releases, any other the same records to the same key. Records every
    /// output released but a crash left queued are removed first (an s3
    /// output may be the only output).
    async fn recover(&mut self) {
        self.generation = self.ctx.queue.generation();
        let names: Vec<String> = self.ctx.outputs.iter().cloned().collect();
        let swept = off_runtime(&self.ctx.queue, move |q| {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            q.sweep_released(&names)
        })
        .await;
        if let Err(e) = swept {
            tracing::warn!(output = %self.o.name, error = %e, "could not finish earlier releases");
        }
        // Without them, begun records would go to new keys beside their old
        // objects: nothing is read until they are known.
        let mut wait = RETRY_INITIAL;
        let begun = loop {
            match self.ctx.queue.begun_objects(&self.o.name) {
                Ok(b) => break b,
                Err(e) => {
                    tracing::error!(output = %self.o.name, error = %e, "cannot read the objects begun before the restart; trying again");
                    if !self.back_off(&mut wait).await {
                        return;
                    }
                }
            }
        };
        for b in begun {
            let ids: Vec<RecordId> = self
                .ctx
                .queue
                .ids_from(b.first)
                .take_while(|id| *id <= b.last)
                .filter(|id| !self.ctx.queue.is_released(*id, &self.o.name))
                .collect();
            if b.uploaded {
                tracing::info!(output = %self.o.name, key = %b.key, first = b.first, last = b.last, "releasing the records of an object written before the restart");
                if !self.release(&ids).await || !self.same_store() {
                    return;
                }
                self.end_object(b.first).await;
                self.next = self.next.max(b.last + 1);
                continue;
            }
            tracing::info!(output = %self.o.name, key = %b.key, first = b.first, last = b.last, "completing an object begun before the restart");
            // The key was stored with the compression of its day: the
            // object is written that way, whatever the config says now.
            let compression = if b.key.ends_with(".gz") {
                Compression::Gzip
            } else {
                Compression::None
            };
            let mut usual = None;
            let mut wait = RETRY_INITIAL;
            while compression != self.o.compression && usual.is_none() {
                match start_renderer(&self.o, &self.ctx, compression) {
                    Ok(r) => usual = Some(std::mem::replace(&mut self.renderer, r)),
                    Err(e) => {
                        tracing::error!(output = %self.o.name, error = %e, "cannot start a renderer for an object begun with other compression; trying again");
                        if !self.back_off(&mut wait).await {
                            return;
                        }
                    }
                }
            }
            let done = self.finish_begun(&b, ids).await;
            if let Some(r) = usual {
                self.renderer = r;
            }
            if !done || !self.same_store() {
                return;
            }
            // Its first record may have left meanwhile: the mark of the
            // range as begun goes too.
            self.end_object(b.first).await;
            self.next = self.next.max(b.last + 1);
        }
    }

    /// Writes begun object `b` again from its records `ids` still queued;
    /// false when stopping ran out of time.
    async fn finish_begun(&mut self, b: &BegunObject, ids: Vec<RecordId>) -> bool {
        let mut obj: Option<OpenObject> = None;
        for id in ids {
            loop {
                match self.read(id).await {
                    Read::Member(m) => {
                        match obj.as_mut() {
                            Some(o) => o.push(id, &m.bytes, m.events),
                            None => {
                                obj = Some(OpenObject::new(id, m.received_ms, m.bytes, m.events))
                            }
                        }
                        break;
                    }
                    Read::Gone => break,
                    Read::Later if self.stopping() && self.out_of_time() => return false,
                    Read::Later => tokio::time::sleep(RETRY_INITIAL).await,
                }
            }
        }
        match obj {
            Some(o) => self.complete(o, Some(b)).await,
            None => true,
        }
    }

    /// Adds the records waiting, in order, to the open object (closing it
    /// when the next one does not fit); true when it moved past any record
    /// (taken, or skipped as released or gone), so the caller looks again
    /// at once instead of waiting for an append.
    async fn fill(&mut self) -> bool {
        let queue = Arc::clone(&self.ctx.queue);
        let limit = queue.readable_before();
        let ids: Vec<RecordId> = queue
            .ids_from(self.next)
            .take_while(|id| *id < limit)
            .take(RECORDS_PER_PASS)
            .collect();
        let mut moved = false;
        for id in ids {
            if self.out_of_time() {
                return false;
            }
            if queue.is_released(id, &self.o.name) {
                self.next = id + 1;
                moved = true;
                continue;
            }
            let m = match self.read(id).await {
                Read::Member(m) => m,
                Read::Gone => {
                    self.next = id + 1;
                    moved = true;
                    continue;
                }
                Read::Later => return moved,
            };
            if let Some(o) = &self.open {
                if !o.fits(m.bytes.len(), self.o.max_object_bytes) {
                    self.close_open().await;
                    if self.open.is_some() {
                        // Not uploaded (stopping): this record waits for the restart.
                        return false;
                    }
                }
            }
            for (number, head) in &m.oversize {
                let head = String::from_utf8_lossy(head).into_owned();
                if !self.letter(id, *number, "oversize", head) {
                    // The record waits until its letters can be stored.
                    return moved;
                }
            }
            match self.open.as_mut() {
                Some(o) => o.push(id, &m.bytes, m.events),
                None => self.open = Some(OpenObject::new(id, m.received_ms, m.bytes, m.events)),
            }
            self.next = id + 1;
            moved = true;
            if self
                .open
                .as_ref()
                .is_some_and(|o| o.body.len() as u64 >= self.o.max_object_bytes)
            {
                self.close_open().await;
            }
        }
        moved
    }

    /// Renders record `id` on the renderer thread; a record that keeps
    /// failing is given up as corrupt (a dead letter, released here).
    async fn read(&mut self, id: RecordId) -> Read {
        match self.renderer.render(id).await {
            Some(Ok(Some(m))) => {
                self.read_failures.forget(id);
                Read::Member(m)
            }
            Some(Ok(None)) => Read::Gone,
            Some(Err(e)) if e.is_transient() => Read::Later,
            Some(Err(e)) => {
                tracing::error!(output = %self.o.name, record = id, error = %e, "a queued record cannot be read");
                if !self.read_failures.failed(id, Instant::now()) {
                    return Read::Later;
                }
                let letter =
                    serde_json::json!({ "record": id, "error": e.to_string() }).to_string();
                if !self.letter(id, 0, &format!("corrupt: {e}"), letter) {
                    // Released only with its letter stored: tried again later.
                    return Read::Later;
                }
                self.corrupt += 1;
                self.m.corrupt_records.inc();
                self.errors.note(
                    None,
                    format!("record {id} unreadable; dead-lettered as corrupt"),
                );
                self.release(&[id]).await;
                Read::Gone
            }
            None => {
                tracing::error!(output = %self.o.name, record = id, "the renderer thread is gone");
                Read::Later
            }
        }
    }

    /// Stores a dead letter; false when it could not be stored.
    fn letter(&mut self, record: RecordId, number: u64, reason: &str, event: String) -> bool {
        let letter = DeadLetter {
            output: self.o.name.clone(),
            record,
            event_number: number,
            reason: reason.to_string(),
            time_ms: now_ms(),
            event,
        };
        match self.ctx.queue.dead_letter(&letter) {
            Ok(_) => {
                self.dead_lettered += 1;
                self.m.dead_lettered.inc();
                true
            }
            Err(e) => {
                tracing::error!(output = %self.o.name, record, error = %e, "cannot store a dead letter; the record waits");
                false
            }
        }
    }

    async fn close_open(&mut self) {
        if let Some(o) = self.open.take() {
            if !self.complete(o, None).await {
                tracing::warn!(output = %self.o.name, "the open object was not finished (the stop's wait ran out, or the store was reopened); its records stay queued and go up later");
            }
        }
    }

    /// Stores the object's range, uploads it (to `key`, or the key of its
    /// range) until it is complete, stores that, then releases its records.
    /// False when stopping ran out of time first (the restart finishes it).
    async fn complete(&mut self, o: OpenObject, begun: Option<&BegunObject>) -> bool {
        if self.ctx.queue.generation() != self.generation {
            // The store was reopened: the object may hold records it lost
            // (their senders were answered 503). It is read again instead.
            return false;
        }
        let Some((first, last)) = o.range() else {
            return true;
        };
        // A begun object keeps its entry, even when its first record has
        // left: a second entry for the same key would outlive a crash
        // beside the first and rewrite the object from a part of it.
        let (first, last, key) = match begun {
            Some(b) => (b.first, b.last, b.key.clone()),
            None => (
                first,
                last,
                object_key(
                    &self.o.prefix,
                    &self.ctx.hostname,
                    first,
                    last,
                    o.first_received_ms,
                    self.o.compression,
                ),
            ),
        };
        let mut wait = RETRY_INITIAL;
        loop {
            let (name, k) = (self.o.name.clone(), key.clone());
            match off_runtime(&self.ctx.queue, move |q| {
                q.begin_object(&name, first, last, &k)
            })
            .await
            {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(output = %self.o.name, error = %e, "cannot record the object about to be written; trying again");
                    if !self.back_off(&mut wait).await {
                        return false;
                    }
                }
            }
        }
        let body = bytes::Bytes::from(o.body);
        let mut wait = RETRY_INITIAL;
        loop {
            let started = Instant::now();
            // An upload hanging at shutdown must not hold the stop past the wait.
            let put = self.bucket.put(&key, body.clone());
            let deadline = stop_deadline(self.shutdown.clone(), self.stopping_since);
            let put = tokio::select! {
                r = put => Some(r),
                _ = deadline => None,
            };
            let Some(put) = put else {
                self.stopping();
                return false;
            };
            match put {
                Ok(()) => {
                    self.m.request(0, "ok");
                    self.m.dests[0].up.set(1);
                    tracing::debug!(output = %self.o.name, key = %key, bytes = body.len(), records = o.records.len(), seconds = started.elapsed().as_secs_f64(), "object written");
                    break;
                }
                Err(e) => {
                    self.m.request(0, "error");
                    self.m.dests[0].up.set(0);
                    self.m.dests[0].retries.inc();
                    tracing::warn!(output = %self.o.name, key = %key, error = %e, "object upload failed; trying again");
                    self.errors.note(Some(DESTINATION), format!("{key}: {e}"));
                    self.publish();
                    if !self.back_off(&mut wait).await {
                        return false;
                    }
                }
            }
        }
        let mut wait = RETRY_INITIAL;
        loop {
            let name = self.o.name.clone();
            match off_runtime(&self.ctx.queue, move |q| q.object_uploaded(&name, first)).await {
                Ok(()) => break,
                Err(e) => {
                    // Until it is stored, a restart writes the same records to the same key.
                    tracing::error!(output = %self.o.name, key = %key, error = %e, "cannot record the object as written; trying again");
                    if !self.back_off(&mut wait).await {
                        return false;
                    }
                }
            }
        }
        self.m.delivered.inc_by(o.events);
        if !self.release(&o.records).await || !self.same_store() {
            // A reopen may have undone releases: the entry, marked uploaded,
            // has them done again when the store is read again.
            return false;
        }
        self.end_object(first).await;
        true
    }

    /// Whether the store is the one this output last read (no reopen since).
    fn same_store(&self) -> bool {
        self.ctx.queue.generation() == self.generation
    }

    /// Waits before the next try; false when stopping ran out of time.
    async fn back_off(&mut self, wait: &mut Duration) -> bool {
        if self.stopping() && self.out_of_time() {
            return false;
        }
        if self.stopping_since.is_some() {
            // The stop was seen: a signal that changed already must not cut
            // every wait short (that spun through the stop's whole wait).
            tokio::time::sleep(*wait).await;
        } else {
            let mut shutdown = self.shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(*wait) => {}
                _ = shutdown.changed() => {}
            }
        }
        *wait = (*wait * 2).min(RETRY_MAX);
        !(self.stopping() && self.out_of_time())
    }

    /// Releases `records` for this output; false when stopping ran out of
    /// time first (the rest is released after the restart).
    async fn release(&mut self, records: &[RecordId]) -> bool {
        let outputs: Vec<String> = self.ctx.outputs.iter().cloned().collect();
        let names: Vec<&str> = outputs.iter().map(String::as_str).collect();
        for &id in records {
            let mut wait = RETRY_INITIAL;
            // A release that fails is tried again: until it is stored the
            // record would be written again after a restart.
            while let Err(e) = self.ctx.queue.release(id, &self.o.name, &names) {
                tracing::error!(output = %self.o.name, record = id, error = %e, "releasing a written record failed; trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
                if self.out_of_time() {
                    return false;
                }
            }
        }
        true
    }

    async fn end_object(&mut self, first: RecordId) {
        if let Err(e) = self.ctx.queue.end_object(&self.o.name, first) {
            // Harmless but for a rewrite of the same object after a restart.
            tracing::warn!(output = %self.o.name, error = %e, "cannot forget a completed object");
        }
    }

    /// The status page's view of this output.
    fn publish(&self) {
        let queue = &self.ctx.queue;
        // Records below `next` are in the open object or written.
        let oldest = self
            .open
            .as_ref()
            .and_then(|o| o.range())
            .map(|(first, _)| first)
            .or_else(|| queue.ids_from(self.next).next())
            .and_then(|id| queue.received_ms(id))
            .map_or(0.0, |t| now_ms().saturating_sub(t) as f64 / 1000.0);
        self.m.oldest.set(oldest);
        let up = self.m.dests[0].up.get() == 1;
        self.ctx.board.publish(OutputStatus {
            output: self.o.name.clone(),
            kind: "s3",
            events_out: self.m.delivered.get(),
            resent: 0,
            dead_lettered: self.m.dead_lettered.get(),
            dead_letters: queue.dead_letter_count(&self.o.name) as u64,
            corrupt_records: self.corrupt,
            oldest_undelivered_age_s: oldest,
            paused: false,
            indexers_up: usize::from(up),
            indexers_total: 1,
            indexers: vec![super::stats::IndexerStats {
                url: DESTINATION.to_string(),
                up,
                pending_acks: 0,
            }],
            last_errors: self.errors.to_vec(),
        });
    }
}

#[cfg(test)]
mod tests;
