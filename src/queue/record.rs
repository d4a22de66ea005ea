//! The stored form of one accepted request.

use serde::{Deserialize, Serialize};

/// Which HEC data endpoint accepted the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataEndpoint {
    /// `/services/collector[/event[/1.0]]`: concatenated JSON objects.
    Event,
    /// `/services/collector/raw[/1.0]`: one event per line.
    Raw,
}

/// How the stored body is encoded (as it was received).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    /// Plain bytes.
    Identity,
    /// gzip, possibly several members.
    Gzip,
}

/// Everything about a request except its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMeta {
    /// Endpoint that accepted it.
    pub endpoint: DataEndpoint,
    /// Name of the accepting token.
    pub token: String,
    /// Data channel, when the client sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// `sourcetype` from the query string (`/raw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sourcetype: Option<String>,
    /// `source` from the query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `host` from the query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `index` from the query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Receive time, milliseconds since the Unix epoch.
    pub received_ms: u64,
    /// Number of events accepted from the body.
    pub events: u64,
    /// Encoding of `body`.
    pub encoding: BodyEncoding,
    /// Decoded bytes that hold the accepted events: the whole body, or the
    /// prefix before an invalid event that Splunk would also have kept.
    pub decoded_bytes: u64,
}

impl RecordMeta {
    /// A body's shape alone: no token, no query metadata, received at time 0
    /// (for reading bodies that are not queued records, such as one sent).
    pub fn bare(
        endpoint: DataEndpoint,
        encoding: BodyEncoding,
        decoded_bytes: u64,
        events: u64,
    ) -> RecordMeta {
        RecordMeta {
            endpoint,
            token: String::new(),
            channel: None,
            sourcetype: None,
            source: None,
            host: None,
            index: None,
            received_ms: 0,
            events,
            encoding,
            decoded_bytes,
        }
    }

    /// A record from token "t" without query metadata, received at time 0
    /// (unit tests).
    #[cfg(test)]
    pub(crate) fn plain(
        endpoint: DataEndpoint,
        encoding: BodyEncoding,
        decoded_bytes: u64,
        events: u64,
    ) -> RecordMeta {
        RecordMeta {
            token: "t".into(),
            ..RecordMeta::bare(endpoint, encoding, decoded_bytes, events)
        }
    }
}

/// One queued request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its metadata.
    pub meta: RecordMeta,
    /// The body exactly as received.
    pub body: Vec<u8>,
}

/// A stored value could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("corrupt queue record: {0}")]
pub struct CorruptRecord(pub String);

const RECORD_VERSION: u8 = 1;

/// Body bytes per stored chunk. sled 0.34 keeps large values resident
/// (its cache accounting misses them), so bodies are stored in chunks small
/// enough for its page cache to evict: memory stays flat with the backlog.
pub const CHUNK_BYTES: usize = 16 * 1024;

/// Key of part `part` of record `id`: part 0 is the header, 1.. the body chunks.
pub fn part_key(id: u64, part: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&id.to_be_bytes());
    k[8..].copy_from_slice(&part.to_be_bytes());
    k
}

/// The record id of a part key.
pub fn id_of_part(key: &[u8]) -> Option<u64> {
    key.get(..8)
        .and_then(|k| k.try_into().ok())
        .map(u64::from_be_bytes)
}

/// The decoded header of a stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The record's metadata.
    pub meta: RecordMeta,
    /// Number of body chunks (parts 1..=chunks).
    pub chunks: u32,
}

impl Header {
    /// Encodes as `[version u8][chunks u32 BE][meta JSON]`.
    pub fn encode(meta: &RecordMeta, chunks: u32) -> Vec<u8> {
        // Serializing a struct of strings and integers cannot fail.
        let meta_json = serde_json::to_vec(meta).unwrap_or_default();
        let mut out = Vec::with_capacity(5 + meta_json.len());
        out.push(RECORD_VERSION);
        out.extend_from_slice(&chunks.to_be_bytes());
        out.extend_from_slice(&meta_json);
        out
    }

    /// Decodes a stored header.
    pub fn decode(bytes: &[u8]) -> Result<Header, CorruptRecord> {
        if bytes.len() < 5 || bytes[0] != RECORD_VERSION {
            return Err(CorruptRecord("unknown record version".into()));
        }
        let chunks = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let meta = serde_json::from_slice(&bytes[5..]).map_err(|e| CorruptRecord(e.to_string()))?;
        Ok(Header { meta, chunks })
    }
}

/// The small per-record summary kept in the index tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Events in the record.
    pub events: u64,
    /// Stored bytes of the record.
    pub bytes: u64,
    /// Receive time, ms since the epoch.
    pub received_ms: u64,
}

impl IndexEntry {
    /// Fixed 24-byte big-endian form.
    pub fn encode(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(&self.events.to_be_bytes());
        out[8..16].copy_from_slice(&self.bytes.to_be_bytes());
        out[16..].copy_from_slice(&self.received_ms.to_be_bytes());
        out
    }

    /// Parses the 24-byte form.
    pub fn decode(bytes: &[u8]) -> Result<IndexEntry, CorruptRecord> {
        let arr: [u8; 24] = bytes
            .try_into()
            .map_err(|_| CorruptRecord("bad index entry".into()))?;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&arr[i..i + 8]);
            u64::from_be_bytes(w)
        };
        Ok(IndexEntry {
            events: word(0),
            bytes: word(8),
            received_ms: word(16),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let meta = RecordMeta {
            endpoint: DataEndpoint::Raw,
            token: "logpush".into(),
            channel: Some("0aa9a7a8-5b0e-4a7b-9c1d-2e3f4a5b6c7d".into()),
            sourcetype: Some("cloudflare:network_analytics".into()),
            source: None,
            host: None,
            index: None,
            received_ms: 1,
            events: 2,
            encoding: BodyEncoding::Gzip,
            decoded_bytes: 10,
        };
        let enc = Header::encode(&meta, 3);
        assert_eq!(Header::decode(&enc).unwrap(), Header { meta, chunks: 3 });
        assert!(Header::decode(&enc[..3]).is_err());
        assert!(part_key(1, 0) < part_key(1, 1));
        assert!(part_key(1, u32::MAX) < part_key(2, 0));
        assert_eq!(id_of_part(&part_key(7, 3)), Some(7));
        let e = IndexEntry {
            events: 1,
            bytes: 2,
            received_ms: 3,
        };
        assert_eq!(IndexEntry::decode(&e.encode()).unwrap(), e);
    }
}
