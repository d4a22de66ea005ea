//! Enrichment of network analytics samples on the way out (issue 4). So far:
//! `sample` — one line parsed once into borrowed key/value pairs, legacy
//! names normalized, `time` from `Datetime`, and the derived fields. Joined to
//! the forwarder with the `[enrich]` config, trimming and asset tags.

pub mod sample;
