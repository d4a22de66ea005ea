//! The `/event` scanner under `max_event_bytes`: whatever the input and the
//! chunking, it holds at most the cap between chunks, agrees with itself, and
//! never accepts an object longer than the cap.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::hec::event::{EventRules, EventScanner};
use sluice::hec::split::objects;

fn scan(data: &[u8], chunk: usize, cap: u64) -> Result<u64, (u16, u64, u64)> {
    let rules = EventRules {
        allowed_indexes: &[],
        max_event_bytes: cap,
    };
    let mut s = EventScanner::new(rules);
    for c in data.chunks(chunk.max(1)) {
        s.feed(c)
            .map_err(|r| (r.status.code, r.event_number, r.accepted_bytes))?;
        // Between chunks (a refusal ends the body, so only after an Ok).
        assert!(s.buffered() as u64 <= cap, "held {} over a cap of {cap}", s.buffered());
    }
    s.finish()
        .map_err(|r| (r.status.code, r.event_number, r.accepted_bytes))
}

fuzz_target!(|input: &[u8]| {
    let Some((&cap, data)) = input.split_first() else {
        return;
    };
    let cap = 8 + u64::from(cap);
    let whole = scan(data, data.len(), cap);
    let chunked = scan(data, 1 + data.first().copied().unwrap_or(0) as usize % 13, cap);
    assert_eq!(whole, chunked);
    let accepted = match whole {
        Ok(_) => data,
        Err((_, _, prefix)) => &data[..prefix as usize],
    };
    for o in objects(accepted).flatten() {
        assert!(o.len() as u64 <= cap, "accepted an object of {} over {cap}", o.len());
    }
});
