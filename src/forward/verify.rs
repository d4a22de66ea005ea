//! `sluice queue verify`: reads every queued record back the way outputs
//! read it (stored chunks, decoding, event splitting) and reports the ones
//! that cannot be read, before an output meets them.

use super::stream::{EventStream, SourceError};
use crate::queue::{Queue, RecordId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A record that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    /// The record.
    pub record: RecordId,
    /// Events read before the failure.
    pub events_read: u64,
    /// Why.
    pub error: String,
}

/// What a verification found (also the admin API's JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Records read.
    pub records: u64,
    /// Events read.
    pub events: u64,
    /// Records that cannot be read back.
    pub unreadable: Vec<Unreadable>,
}

/// Reads every record; memory stays at one record's stream.
pub fn verify(queue: &Arc<Queue>, max_event_bytes: u64) -> VerifyReport {
    let mut report = VerifyReport::default();
    let ids: Vec<RecordId> = queue.ids_from(0).collect();
    for id in ids {
        let mut read = 0;
        let result = read_all(queue, id, max_event_bytes, &mut read);
        match result {
            Ok(None) => continue,
            Ok(Some(expected)) if expected == read => {}
            Ok(Some(expected)) => report.unreadable.push(Unreadable {
                record: id,
                events_read: read,
                error: format!("holds {read} events, its header says {expected}"),
            }),
            Err(e) => report.unreadable.push(Unreadable {
                record: id,
                events_read: read,
                error: e.to_string(),
            }),
        }
        report.records += 1;
        report.events += read;
    }
    report
}

/// Reads a record to its end; returns the events its header announces
/// (None when it is gone).
fn read_all(
    queue: &Arc<Queue>,
    id: RecordId,
    max_event_bytes: u64,
    read: &mut u64,
) -> Result<Option<u64>, SourceError> {
    let Some(mut stream) = EventStream::open(queue, id, max_event_bytes)? else {
        return Ok(None);
    };
    let expected = stream.meta().events;
    while stream.peek()?.is_some() {
        stream.advance();
        *read += 1;
    }
    Ok(Some(expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{BodyEncoding, DataEndpoint, QueueLimits, RecordMeta};

    #[tokio::test]
    async fn reports_a_record_whose_body_does_not_decode() {
        let dir = tempfile::tempdir().unwrap();
        let q = Arc::new(Queue::open(dir.path(), QueueLimits::roomy()).unwrap());
        let meta = |encoding, len: usize, events| {
            RecordMeta::plain(DataEndpoint::Raw, encoding, len as u64, events)
        };
        let p = q
            .append(&meta(BodyEncoding::Identity, 4, 2), b"a\nb\n")
            .unwrap();
        q.commit(p).await.unwrap();
        let p = q
            .append(&meta(BodyEncoding::Gzip, 100, 1), b"not gzip at all")
            .unwrap();
        q.commit(p).await.unwrap();
        let r = verify(&q, 1 << 20);
        assert_eq!((r.records, r.events), (2, 2));
        assert_eq!(r.unreadable.len(), 1);
        assert_eq!(r.unreadable[0].record, 1);
    }
}
