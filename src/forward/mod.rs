//! Outputs: from queued records to delivered events. Building blocks so far:
//! `event` (record → events with resolved metadata and `event_id`), `batch`
//! (request bodies under event, byte and compressed-byte caps) and `acks`
//! (indexer-ack bookkeeping, per-record delivery counting). The forwarding
//! loop, the Splunk and file outputs and queue release join them in the
//! forwarding issue.

pub mod acks;
pub mod batch;
pub mod event;
