//! Outputs: from queued records to delivered events. Building blocks so far:
//! `event` (record → events with resolved metadata, `event_id`, HEC JSON),
//! `batch` (request bodies under event, byte and compressed-byte caps),
//! `acks` (indexer-ack bookkeeping, per-record delivery counting) and `file`
//! (the archive writer). The forwarding loop, the Splunk client and queue
//! release wiring join them in the forwarding issue.

pub mod acks;
pub mod batch;
pub mod engine;
pub mod event;
pub mod file;
pub mod read_failures;
pub mod source;
pub mod splunk;
pub mod stream;
pub mod verify;
