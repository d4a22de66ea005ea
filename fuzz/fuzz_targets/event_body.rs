//! `/event` bodies: the streaming scanner must never panic, must agree with
//! itself whatever the chunking, and its accepted prefix must re-split cleanly.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::hec::event::{EventRules, EventScanner};
use sluice::hec::split::objects;

const ANY: EventRules<'static> = EventRules {
    allowed_indexes: &[],
    max_event_bytes: 1 << 20,
};

fn scan(data: &[u8], chunk: usize) -> Result<u64, (u16, u64, u64)> {
    let mut s = EventScanner::new(ANY);
    for c in data.chunks(chunk.max(1)) {
        s.feed(c)
            .map_err(|r| (r.status.code, r.event_number, r.accepted_bytes))?;
    }
    s.finish()
        .map_err(|r| (r.status.code, r.event_number, r.accepted_bytes))
}

fuzz_target!(|data: &[u8]| {
    let whole = scan(data, data.len());
    let split = scan(data, 1 + data.first().copied().unwrap_or(0) as usize % 17);
    assert_eq!(whole, split);
    match whole {
        Ok(n) => assert_eq!(objects(data).filter(|o| o.is_ok()).count() as u64, n),
        Err((_, k, prefix)) => {
            let kept = &data[..prefix as usize];
            assert_eq!(objects(kept).filter(|o| o.is_ok()).count() as u64, k);
        }
    }
});
