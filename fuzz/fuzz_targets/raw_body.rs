//! `/raw` bodies, gzip or not: decoding under a cap never panics, and the
//! streaming line count equals the count of complete-body lines.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::hec::event::EventRules;
use sluice::hec::raw::lines;
use sluice::ingest::decode::{scan_body, Scan};
use sluice::queue::{BodyEncoding, DataEndpoint};

const ANY: EventRules<'static> = EventRules {
    allowed_indexes: &[],
    max_event_bytes: 1 << 20,
};

fuzz_target!(|data: &[u8]| {
    let _ = scan_body(data, BodyEncoding::Gzip, DataEndpoint::Raw, ANY, 1 << 20);
    match scan_body(
        data,
        BodyEncoding::Identity,
        DataEndpoint::Raw,
        ANY,
        1 << 20,
    ) {
        Ok(Scan::Accepted { events, .. }) => assert_eq!(events, lines(data).count() as u64),
        Ok(Scan::Rejected(r)) => assert_eq!(lines(data).count(), 0, "{r:?}"),
        Ok(Scan::Probe) | Err(_) => {}
    }
});
