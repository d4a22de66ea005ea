//! Outputs: from queued records to delivered events. Building blocks so far:
//! `event` (record → events with resolved metadata and `event_id`) and
//! `batch` (request bodies under event, byte and compressed-byte caps). The
//! forwarding loop, the Splunk and file outputs and queue release join them
//! in the forwarding issue.

pub mod batch;
pub mod event;
