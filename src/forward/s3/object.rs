//! An object being filled: whole records, each one gzip member (a
//! concatenation of members is one gzip file to every reader), so sizes are
//! exact before a record is added and a record is never split. Its key
//! names its record range, which is what makes a resend idempotent.

use super::super::batch::Compression;
use crate::queue::RecordId;
use std::time::Instant;

/// Where an object goes: `<prefix>/dt=YYYY-MM-DD/hour=HH/<node>-<first>-<last>.ndjson[.gz]`,
/// date and hour of the first record's receive time in UTC.
pub fn object_key(
    prefix: &str,
    node: &str,
    first: RecordId,
    last: RecordId,
    first_received_ms: u64,
    compression: Compression,
) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp((first_received_ms / 1000) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let node: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let ext = match compression {
        Compression::Gzip => "ndjson.gz",
        Compression::None => "ndjson",
    };
    let path = format!(
        "dt={:04}-{:02}-{:02}/hour={:02}/{node}-{first}-{last}.{ext}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour()
    );
    if prefix.is_empty() {
        path
    } else {
        format!("{prefix}/{path}")
    }
}

/// The object being filled.
#[derive(Debug)]
pub struct OpenObject {
    /// Its bytes so far (gzip members or plain NDJSON).
    pub body: Vec<u8>,
    /// Records in it, in order.
    pub records: Vec<RecordId>,
    /// Events written.
    pub events: u64,
    /// Receive time of its first record.
    pub first_received_ms: u64,
    /// When it was opened.
    pub opened: Instant,
}

impl OpenObject {
    /// An object holding one record's bytes.
    pub fn new(record: RecordId, received_ms: u64, member: Vec<u8>, events: u64) -> OpenObject {
        OpenObject {
            body: member,
            records: vec![record],
            events,
            first_received_ms: received_ms,
            opened: Instant::now(),
        }
    }

    /// Whether a record of `len` bytes still fits under `max` (an empty
    /// object takes any record: a large one gets an object of its own).
    pub fn fits(&self, len: usize, max: u64) -> bool {
        self.records.is_empty() || (self.body.len() + len) as u64 <= max
    }

    /// Adds a record's bytes.
    pub fn push(&mut self, record: RecordId, member: &[u8], events: u64) {
        self.body.extend_from_slice(member);
        self.records.push(record);
        self.events += events;
    }

    /// First and last record.
    pub fn range(&self) -> Option<(RecordId, RecordId)> {
        Some((*self.records.first()?, *self.records.last()?))
    }

    /// Whether it must be closed now: full, or open for `max_age`.
    pub fn due(&self, max_bytes: u64, max_age: std::time::Duration, now: Instant) -> bool {
        self.body.len() as u64 >= max_bytes || now.duration_since(self.opened) >= max_age
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keys_follow_the_first_records_hour_in_utc() {
        // 2026-12-03T07:59:59.900Z
        let ms = 1_796_284_799_900;
        assert_eq!(
            object_key("cf/nal", "edge-1", 4, 9, ms, Compression::Gzip),
            "cf/nal/dt=2026-12-03/hour=07/edge-1-4-9.ndjson.gz"
        );
        assert_eq!(
            object_key("", "a b/c", 0, 0, ms + 100, Compression::None),
            "dt=2026-12-03/hour=08/a_b_c-0-0.ndjson"
        );
    }

    #[test]
    fn a_record_too_large_gets_an_object_of_its_own() {
        let mut o = OpenObject::new(1, 0, vec![0; 600], 3);
        assert!(o.fits(400, 1000));
        assert!(!o.fits(401, 1000));
        o.push(2, &[0; 400], 2);
        assert_eq!((o.range(), o.events), (Some((1, 2)), 5));
        let big = OpenObject::new(3, 0, vec![0; 5000], 1);
        assert!(big.due(1000, Duration::from_secs(60), Instant::now()));
        assert!(!o.due(1001, Duration::from_secs(60), o.opened));
        assert!(o.due(
            1001,
            Duration::from_secs(60),
            o.opened + Duration::from_secs(60)
        ));
    }
}
