//! A record's rollups as an output sends them. They are the record's
//! events numbered after its last one (`events`, `events + 1`, …), so the
//! batch, ack and release arithmetic treats them as any other event: a
//! builder computes them as it reads the record, and a resend or a dead
//! letter computes them again from the queue (the same record always gives
//! the same rollups).

use super::event::{OutEvent, Payload, Resolver};
use super::source::Segment;
use super::stream::{EventStream, Item, SourceError};
use crate::enrich::sample::Sample;
use crate::queue::{RecordId, RecordMeta};
use crate::rollup::config::RollupSettings;
use crate::rollup::{RecordRollup, Rollup, RollupMeta};

/// The event parsed as a network analytics sample (`None`: it is not one).
pub fn sample_of<'e>(e: &OutEvent<'e>) -> Option<Sample<'e>> {
    let bytes = match e.payload {
        Payload::Line(line) => line,
        Payload::Json(raw) => raw.get().as_bytes(),
    };
    let t = bytes.trim_ascii();
    if t.first() != Some(&b'{') {
        return None;
    }
    Sample::parse(t)
}

/// Sums a record's samples as the builder reads them.
pub struct Accumulator<'s> {
    rollup: RecordRollup<'s>,
    settings: &'s RollupSettings,
    final_pass: String,
    fallback_time: f64,
}

impl<'s> Accumulator<'s> {
    /// For the record of `meta`; `counted` follows the final pass systems
    /// in force at start, not a reload's: a resend must rebuild the rollups
    /// the first send had, group for group (a reload that changes them is
    /// reported as needing a restart for rollups).
    pub fn new(settings: &'s RollupSettings, meta: &RecordMeta) -> Accumulator<'s> {
        let final_pass = settings.final_pass.for_token(&meta.token);
        Accumulator {
            rollup: RecordRollup::new(settings),
            settings,
            final_pass: final_pass.to_string(),
            fallback_time: meta.received_ms as f64 / 1000.0,
        }
    }

    /// Counts `sample`.
    pub fn add(&mut self, sample: &Sample<'_>) {
        let derived = sample.derived(&self.final_pass);
        self.rollup.add(sample, &derived, self.fallback_time);
    }

    /// Counts the event when it is a sample.
    pub fn add_event(&mut self, e: &OutEvent<'_>) {
        if let Some(s) = sample_of(e) {
            self.add(&s);
        }
    }

    /// The record's rollups, each rendered as one HEC metric event line.
    pub fn finish(
        self,
        hostname: &str,
        record: RecordId,
        resolver: &Resolver<'_>,
        meta: &RecordMeta,
    ) -> Vec<Vec<u8>> {
        let rollups = self.rollup.finish(hostname, record, meta.received_ms);
        render(&rollups, self.settings, resolver, meta)
    }
}

/// Renders rollups with the record's host and source.
fn render(
    rollups: &[Rollup],
    settings: &RollupSettings,
    resolver: &Resolver<'_>,
    meta: &RecordMeta,
) -> Vec<Vec<u8>> {
    let of_record = resolver.of_record(meta);
    let m = RollupMeta {
        host: &of_record.host,
        source: of_record.source.as_deref(),
        index: &settings.index,
    };
    rollups
        .iter()
        .map(|r| {
            let mut line = Vec::with_capacity(512);
            r.write_hec(m, &mut line);
            line
        })
        .collect()
}

/// Counts the events of `stream` up to (not including) number `to` into
/// `acc`, leaving the stream there (a record read again after a failed
/// read: rollups need the samples already sent).
pub fn count_until(
    stream: &mut EventStream<'_>,
    resolver: &Resolver<'_>,
    meta: &RecordMeta,
    to: u64,
    acc: &mut Accumulator<'_>,
) -> Result<(), SourceError> {
    while stream.position() < to {
        let number = stream.position();
        match stream.peek()? {
            None => break,
            Some(Item::Event(bytes)) => {
                if let Ok(e) = resolver.event(meta, bytes, number) {
                    acc.add_event(&e);
                }
            }
            Some(Item::Oversize(_)) => {}
        }
        stream.advance();
    }
    Ok(())
}

/// `seg` of a record of `events` events, cut into its part of the record's
/// own events and its part of the rollups (`(from, count)`, rollups
/// numbered from 0).
pub fn split(seg: Segment, events: u64) -> (Option<Segment>, Option<(u64, u64)>) {
    let end = seg.first + seg.count;
    let own = (seg.first < events).then(|| Segment {
        count: end.min(events) - seg.first,
        ..seg
    });
    let from = seg.first.max(events);
    let rollups = (end > from).then(|| (from - events, end - from));
    (own, rollups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_splits_at_the_records_last_event() {
        let seg = |first, count| Segment {
            record: 3,
            first,
            count,
        };
        assert_eq!(split(seg(0, 5), 5), (Some(seg(0, 5)), None));
        assert_eq!(split(seg(2, 6), 5), (Some(seg(2, 3)), Some((0, 3))));
        assert_eq!(split(seg(6, 2), 5), (None, Some((1, 2))));
        assert_eq!(split(seg(0, 0), 0), (None, None));
    }
}
