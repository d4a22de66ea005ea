//! Building request bodies from queued records, on a builder thread: read a
//! record as a stream, resolve and render each event (enriching samples),
//! and pack them into batches under the output's caps. Also rebuilds a
//! batch from its segments for a resend, and renders segments for dead
//! letters. No async here: this is the CPU-heavy side of an output.

use super::super::batch::{BatchBuilder, BatchLimits};
use super::super::rollups::{count_until, sample_of, split, Accumulator};
use super::super::source::{raw_query, render, write_segment, Route, Segment, Unsendable};
use super::super::stream::{EventStream, Item, SourceError};
use super::super::transport::Request;
use super::BuildShared;
use crate::enrich::Enricher;
use crate::queue::RecordId;
use std::time::{SystemTime, UNIX_EPOCH};

/// A built batch: the events it carries (as positions in the queue) and its body.
#[derive(Debug)]
pub struct Batch {
    /// The endpoint.
    pub route: Route,
    /// The runs of events it carries, in order.
    pub segments: Vec<Segment>,
    /// Events in it.
    pub events: u64,
    /// The body and its query.
    pub request: Request,
}

/// What a builder reports, in queue order.
#[derive(Debug)]
pub enum Built {
    /// A batch ready to send.
    Batch(Batch),
    /// An event that cannot be sent as it is (dead-letter it).
    Unsendable(RecordId, Unsendable),
    /// `count` events of `record` this output does not send (`events`):
    /// handled as they are.
    Skipped {
        /// The record.
        record: RecordId,
        /// Events left out.
        count: u64,
    },
    /// `record` has `count` rollup events, numbered after its last event.
    /// Reported before any batch that carries them.
    Rollups {
        /// The record.
        record: RecordId,
        /// Rollup events.
        count: u64,
    },
    /// Reading `record` failed; its events from `read` on were not batched.
    /// Every batch with its earlier events was reported before this.
    Failed {
        /// The record.
        record: RecordId,
        /// Events of it batched before the failure (counted from 0).
        read: u64,
        /// Why.
        error: SourceError,
    },
}

/// The batch being filled. Its body is taken from the pool with its first
/// event, so the empty batch left at a job's end costs no buffer.
struct Open {
    builder: Option<BatchBuilder>,
    segments: Vec<Segment>,
    route: Option<Route>,
    query: Option<String>,
}

impl Open {
    fn new() -> Open {
        Open {
            builder: None,
            segments: Vec::new(),
            route: None,
            query: None,
        }
    }

    /// Whether an event of `len` bytes still fits.
    fn fits(&mut self, len: usize) -> bool {
        self.builder.as_mut().is_none_or(|b| b.fits(len))
    }

    fn builder(&mut self, shared: &BuildShared) -> &mut BatchBuilder {
        self.builder
            .get_or_insert_with(|| BatchBuilder::new(shared.limits, &shared.bodies))
    }

    fn push(&mut self, shared: &BuildShared, record: RecordId, position: u64, bytes: &[u8]) {
        self.builder(shared).push(bytes);
        self.note(record, position);
    }

    /// Adds the event staged in the builder (see [`BatchBuilder::stage`]).
    fn commit(&mut self, shared: &BuildShared, record: RecordId, position: u64, scratch: &[u8]) {
        self.builder(shared).commit(scratch);
        self.note(record, position);
    }

    fn note(&mut self, record: RecordId, position: u64) {
        match self.segments.last_mut() {
            Some(s) if s.record == record && s.first + s.count == position => s.count += 1,
            _ => self.segments.push(Segment {
                record,
                first: position,
                count: 1,
            }),
        }
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Finishes a body and counts its bytes.
pub(super) fn finish(shared: &BuildShared, builder: BatchBuilder) -> bytes::Bytes {
    let body = builder.finish();
    shared
        .metrics
        .bytes_uncompressed
        .inc_by(body.uncompressed_bytes);
    shared
        .metrics
        .bytes_compressed
        .inc_by(body.body.len() as u64);
    shared.bodies.share(body.body)
}

/// Emits the open batch, if it holds events; false when the receiver is gone.
fn emit_open(shared: &BuildShared, open: &mut Open, emit: &mut impl FnMut(Built) -> bool) -> bool {
    if open.segments.is_empty() {
        return true;
    }
    let full = std::mem::replace(open, Open::new());
    let Some(builder) = full.builder else {
        return true;
    };
    let events = full.segments.iter().map(|s| s.count).sum();
    let route = full.route.unwrap_or(Route::Event);
    emit(Built::Batch(Batch {
        route,
        segments: full.segments,
        events,
        request: Request {
            body: finish(shared, builder),
            route,
            query: full.query,
        },
    }))
}

/// Reports a read failure after the batch holding the record's earlier
/// events, so the engine never counts those events as lost.
fn fail(
    shared: &BuildShared,
    open: &mut Open,
    emit: &mut impl FnMut(Built) -> bool,
    record: RecordId,
    read: u64,
    error: SourceError,
) -> bool {
    emit_open(shared, open, emit)
        && emit(Built::Failed {
            record,
            read,
            error,
        })
}

/// Adds an event rendered elsewhere (a rollup: HEC JSON for `/event`) as
/// event `position` of `record`; false when the receiver is gone.
fn push_whole(
    shared: &BuildShared,
    open: &mut Open,
    emit: &mut impl FnMut(Built) -> bool,
    record: RecordId,
    position: u64,
    line: &[u8],
) -> bool {
    let cut = open.route.is_some_and(|r| r != Route::Event) || !open.fits(line.len());
    if cut && !emit_open(shared, open, emit) {
        return false;
    }
    open.route = Some(Route::Event);
    open.push(shared, record, position, line);
    true
}

/// Builds the batches of a job: records in order, each from its first
/// unsent event. Stops early when `emit` says the receiver is gone.
pub fn build_job(
    shared: &BuildShared,
    job: &[(RecordId, u64)],
    mut emit: impl FnMut(Built) -> bool,
) {
    let enricher = shared.enricher.current();
    let enrich = enricher.as_deref();
    let routing = &shared.routing;
    let lag = shared.metrics.sample_lag.as_ref().map(|h| h.local());
    let mut enriched = [0u64; 2];
    let now = now_secs();
    let mut open = Open::new();
    let mut line = Vec::new();
    'records: for &(id, first) in job {
        let mut stream = match EventStream::open(&shared.queue, id, shared.max_event_bytes) {
            Ok(Some(s)) => s,
            // Gone: released by every output meanwhile.
            Ok(None) => continue,
            Err(error) => {
                if !fail(shared, &mut open, &mut emit, id, first, error) {
                    break;
                }
                continue;
            }
        };
        let meta = stream.meta().clone();
        let tokens = shared.tokens.current();
        let resolver = shared.resolver(&tokens, &meta.token);
        let mut acc = routing
            .rollups
            .as_deref()
            .map(|r| Accumulator::new(r, &meta));
        // Rollups need the samples sent before a failed read too.
        let skipped_to = match acc.as_mut() {
            Some(acc) => count_until(&mut stream, &resolver, &meta, first, acc),
            None => stream.skip_to(first),
        };
        if let Err(error) = skipped_to {
            if !fail(shared, &mut open, &mut emit, id, first, error) {
                break;
            }
            continue;
        }
        let mut skipped = 0u64;
        let ended = loop {
            let position = stream.position();
            let item = match stream.peek() {
                Ok(Some(item)) => item,
                Ok(None) => break true,
                Err(error) => {
                    // Left-out events before the failure are handled; the
                    // retry starts at `position`.
                    if skipped > 0
                        && !emit(Built::Skipped {
                            record: id,
                            count: skipped,
                        })
                    {
                        break 'records;
                    }
                    if !fail(shared, &mut open, &mut emit, id, position, error) {
                        break 'records;
                    }
                    break false;
                }
            };
            let bytes = match item {
                Item::Event(bytes) => bytes,
                Item::Oversize(head) => {
                    let head = head.to_vec();
                    stream.advance();
                    if !emit(Built::Unsendable(
                        id,
                        Unsendable::Oversize {
                            number: position,
                            head,
                        },
                    )) {
                        break 'records;
                    }
                    continue;
                }
            };
            let event = match resolver.event(&meta, bytes, position) {
                Ok(e) => e,
                Err(bad) => {
                    stream.advance();
                    if !emit(Built::Unsendable(id, Unsendable::Bad(bad))) {
                        break 'records;
                    }
                    continue;
                }
            };
            if routing.reads_samples() {
                let sample = sample_of(&event);
                if let (Some(acc), Some(s)) = (acc.as_mut(), sample.as_ref()) {
                    acc.add(s);
                }
                if !routing.sends(sample.as_ref()) {
                    skipped += 1;
                    stream.advance();
                    continue;
                }
            }
            // Rendered straight into an uncompressed body (no copy).
            let (rendered, len) = {
                let builder = open.builder(shared);
                let rendered = render(
                    &event,
                    enrich.map(|en| (en, meta.token.as_str())),
                    shared.allow_raw,
                    builder.stage(&mut line),
                );
                (rendered, builder.staged_len(&line))
            };
            let route = rendered.route;
            // One route per request; a /raw request carries one record's
            // metadata in its query string.
            let other_record =
                route == Route::Raw && open.segments.last().is_some_and(|s| s.record != id);
            let cut = open.route.is_some_and(|r| r != route) || other_record || !open.fits(len);
            if cut {
                // The event opens the next batch.
                open.builder(shared).take_staged(&mut line);
                if !emit_open(shared, &mut open, &mut emit) {
                    break 'records;
                }
            }
            if open.route.is_none() && route == Route::Raw {
                open.query = Some(raw_query(&event));
            }
            open.route = Some(route);
            if cut {
                open.push(shared, id, position, &line);
            } else {
                open.commit(shared, id, position, &line);
            }
            if let (Some(lag), Some(t)) = (&lag, rendered.sample_time) {
                lag.observe((now - t).max(0.0));
            }
            enriched[usize::from(rendered.enriched)] += 1;
            stream.advance();
        };
        if !ended {
            continue;
        }
        if let Some(acc) = acc {
            let lines = acc.finish(&shared.hostname, id, &resolver, &meta);
            if !emit(Built::Rollups {
                record: id,
                count: lines.len() as u64,
            }) {
                break;
            }
            for (k, line) in lines.iter().enumerate() {
                if !push_whole(
                    shared,
                    &mut open,
                    &mut emit,
                    id,
                    meta.events + k as u64,
                    line,
                ) {
                    break 'records;
                }
            }
        }
        if skipped > 0
            && !emit(Built::Skipped {
                record: id,
                count: skipped,
            })
        {
            break;
        }
    }
    emit_open(shared, &mut open, &mut emit);
    if let (Some(e), Some(p)) = (&shared.metrics.enriched, &shared.metrics.passed) {
        if enrich.is_some() {
            p.inc_by(enriched[0]);
            e.inc_by(enriched[1]);
        }
    }
}

/// The body of a batch rebuilt from the queue for a resend (`None` when
/// none of its events is left to send). A record that cannot be read is
/// returned with the error.
pub fn rebuild(
    shared: &BuildShared,
    segments: &[Segment],
    route: Route,
) -> Result<Option<Request>, (RecordId, SourceError)> {
    let mut query = None;
    let mut builder = BatchBuilder::new(
        BatchLimits::unlimited(shared.limits.compression),
        &shared.bodies,
    );
    let mut stream: Option<EventStream<'static>> = None;
    let mut line = Vec::new();
    let enricher = shared.enricher.current();
    for whole in segments {
        let events = match shared.queue.events_of(whole.record) {
            Ok(Some(events)) => events,
            // Gone from the queue: nothing left to send.
            Ok(None) => continue,
            Err(e) => return Err((whole.record, e.into())),
        };
        let (own, rollups) = split(*whole, events);
        if let Some((from, count)) = rollups {
            // After the record's own events: written below, once they are.
            let lines =
                rollup_lines(shared, whole.record, from, count).map_err(|e| (whole.record, e))?;
            if let Some(seg) = own {
                write_own(
                    shared,
                    &mut stream,
                    &mut query,
                    &mut builder,
                    &mut line,
                    seg,
                    route,
                    enricher.as_deref(),
                )?;
            }
            for l in lines.unwrap_or_default() {
                builder.push(&l);
            }
            continue;
        }
        let Some(seg) = own else { continue };
        write_own(
            shared,
            &mut stream,
            &mut query,
            &mut builder,
            &mut line,
            seg,
            route,
            enricher.as_deref(),
        )?;
    }
    if let Some(done) = stream {
        shared.rereads.keep(&shared.queue, done);
    }
    if builder.is_empty() {
        return Ok(None);
    }
    Ok(Some(Request {
        body: finish(shared, builder),
        route,
        query,
    }))
}

/// Appends the events of `seg` (a record's own) for a resend of `route`,
/// continuing `stream` when it stands before them.
#[allow(clippy::too_many_arguments)]
fn write_own(
    shared: &BuildShared,
    stream: &mut Option<EventStream<'static>>,
    query: &mut Option<String>,
    builder: &mut BatchBuilder,
    line: &mut Vec<u8>,
    seg: Segment,
    route: Route,
    enrich: Option<&Enricher>,
) -> Result<(), (RecordId, SourceError)> {
    // Segments of one record come in order: one stream serves them.
    if stream
        .as_ref()
        .is_none_or(|s| s.id() != seg.record || s.position() > seg.first)
    {
        if let Some(done) = stream.take() {
            shared.rereads.keep(&shared.queue, done);
        }
        *stream = shared
            .rereads
            .open(&shared.queue, seg.record, seg.first, shared.max_event_bytes)
            .map_err(|e| (seg.record, e))?;
    }
    // A record already gone from the queue has nothing left to send.
    let Some(source) = stream.as_mut() else {
        return Ok(());
    };
    let token = source.meta().token.clone();
    let tokens = shared.tokens.current();
    let resolver = shared.resolver(&tokens, &token);
    line.clear();
    let q =
        write_segment(source, &resolver, enrich, seg, route, line).map_err(|e| (seg.record, e))?;
    if query.is_none() {
        *query = q;
    }
    builder.push(line);
    Ok(())
}

/// Rollup events `from..from + count` of `record`, computed again from the
/// queue (`None`: the record is gone).
pub(super) fn rollup_lines(
    shared: &BuildShared,
    record: RecordId,
    from: u64,
    count: u64,
) -> Result<Option<Vec<Vec<u8>>>, SourceError> {
    let Some(settings) = shared.routing.rollups.as_deref() else {
        return Ok(Some(Vec::new()));
    };
    let Some(mut stream) = EventStream::open(&shared.queue, record, shared.max_event_bytes)? else {
        return Ok(None);
    };
    let meta = stream.meta().clone();
    let tokens = shared.tokens.current();
    let resolver = shared.resolver(&tokens, &meta.token);
    let mut acc = Accumulator::new(settings, &meta);
    count_until(&mut stream, &resolver, &meta, meta.events, &mut acc)?;
    let mut lines = acc.finish(&shared.hostname, record, &resolver, &meta);
    let clamp = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).min(lines.len());
    let (start, end) = (clamp(from), clamp(from.saturating_add(count)));
    lines.truncate(end);
    Ok(Some(lines.split_off(start)))
}

/// The events of `seg` as HEC JSON lines, as far as they can be read (for
/// dead letters: what could not be read stays empty).
pub fn segment_text(shared: &BuildShared, whole: Segment) -> Vec<u8> {
    let mut text = Vec::new();
    let Ok(Some(events)) = shared.queue.events_of(whole.record) else {
        return text;
    };
    let (own, rollups) = split(whole, events);
    if let Some(seg) = own {
        if let Ok(Some(mut stream)) =
            shared
                .rereads
                .open(&shared.queue, seg.record, seg.first, shared.max_event_bytes)
        {
            let token = stream.meta().token.clone();
            let tokens = shared.tokens.current();
            let resolver = shared.resolver(&tokens, &token);
            let enricher = shared.enricher.current();
            let read = write_segment(
                &mut stream,
                &resolver,
                enricher.as_deref(),
                seg,
                Route::Event,
                &mut text,
            );
            if read.is_ok() {
                shared.rereads.keep(&shared.queue, stream);
            }
        }
    }
    if let Some((from, count)) = rollups {
        if let Ok(Some(lines)) = rollup_lines(shared, whole.record, from, count) {
            for l in lines {
                text.extend_from_slice(&l);
            }
        }
    }
    text
}
