//! Reading queued records back for an output: decode the stored body (only
//! the accepted prefix) and serialize runs of its events as HEC JSON.

use super::event::{BadEvent, Resolver};
use crate::queue::{BodyEncoding, Queue, QueueError, Record, RecordId, RecordMeta};
use std::io::Read;

/// A run of consecutive events of one record, as carried by one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// The record.
    pub record: RecordId,
    /// Position of the first event in the record.
    pub first: u64,
    /// Number of events.
    pub count: u64,
}

/// A record read back and decoded.
#[derive(Debug)]
pub struct Loaded {
    /// Its id.
    pub id: RecordId,
    /// Its metadata.
    pub meta: RecordMeta,
    /// The accepted part of its body, decoded.
    pub decoded: Vec<u8>,
}

/// Reading a record back failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The stored body does not decode (corruption).
    #[error("record {id}: stored body does not decode: {reason}")]
    Body {
        /// The record.
        id: RecordId,
        /// Why.
        reason: String,
    },
}

/// Decodes the accepted prefix of a record's body.
pub fn decode(id: RecordId, record: &Record) -> Result<Vec<u8>, SourceError> {
    let want = record.meta.decoded_bytes;
    match record.meta.encoding {
        BodyEncoding::Identity => Ok(record.body[..record.body.len().min(want as usize)].to_vec()),
        BodyEncoding::Gzip => {
            let mut out = Vec::with_capacity(want.min(1 << 30) as usize);
            flate2::read::MultiGzDecoder::new(&record.body[..])
                .take(want)
                .read_to_end(&mut out)
                .map_err(|e| SourceError::Body {
                    id,
                    reason: e.to_string(),
                })?;
            Ok(out)
        }
    }
}

/// Reads and decodes a record (None once it has left the queue).
pub fn load(queue: &Queue, id: RecordId) -> Result<Option<Loaded>, SourceError> {
    let Some(record) = queue.get(id)? else {
        return Ok(None);
    };
    let decoded = decode(id, &record)?;
    Ok(Some(Loaded {
        id,
        meta: record.meta,
        decoded,
    }))
}

impl Loaded {
    /// Serializes events `first..first+count` as HEC JSON lines into `out`;
    /// returns the ones that cannot be read (for dead letters).
    pub fn write_events(
        &self,
        resolver: &Resolver<'_>,
        first: u64,
        count: u64,
        out: &mut Vec<u8>,
    ) -> Vec<BadEvent> {
        let mut bad = Vec::new();
        for e in resolver
            .events(&self.meta, &self.decoded)
            .skip(first as usize)
            .take(count as usize)
        {
            match e {
                Ok(e) => e.write_hec_json(out),
                Err(b) => bad.push(b),
            }
        }
        bad
    }

    /// Each event's serialized HEC JSON, from event `first` on (for batching).
    pub fn each_event<'s>(
        &'s self,
        resolver: &'s Resolver<'s>,
        first: u64,
    ) -> impl Iterator<Item = Result<Vec<u8>, BadEvent>> + 's {
        resolver
            .events(&self.meta, &self.decoded)
            .skip(first as usize)
            .map(|e| {
                e.map(|e| {
                    let mut v = Vec::with_capacity(512);
                    e.write_hec_json(&mut v);
                    v
                })
            })
    }
}
