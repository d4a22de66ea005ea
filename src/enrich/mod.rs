//! Enrichment of network analytics samples on the way out: pure functions
//! over one sample. `sample` parses a line once (borrowed, no `Value` tree),
//! normalizes names and derives fields; `trim` decides what stays in
//! `_raw`; `assets` tags destinations. The forwarder calls [`Enricher::sample`]
//! for each line and writes what it returns; a line that is not a sample
//! passes unchanged.

pub mod assets;
pub mod sample;
pub mod trim;

use crate::config::enrich::{EnrichConfig, TrimMode};
use crate::config::TokenConfig;
use assets::{AssetError, AssetTable};
use sample::{Derived, Sample};
use std::collections::HashMap;
use std::io::Write;
use trim::Facts;

/// Names of the derived fields (lowercase, so they never collide with Cloudflare's).
pub const DERIVED_FIELDS: [&str; 5] = [
    "est_packets",
    "est_bytes",
    "mitigation_system_name",
    "counted",
    "ip_version",
];

/// Enrichment settings, ready to apply.
#[derive(Debug)]
pub struct Enricher {
    trim: TrimMode,
    final_pass_system: String,
    per_token: HashMap<String, String>,
    indexed: Vec<(String, String)>,
    assets: Option<AssetTable>,
}

/// One sample, enriched: write it with [`Enriched::write_event`].
#[derive(Debug)]
pub struct Enriched<'a> {
    sample: Sample<'a>,
    facts: Facts<'a>,
    derived: Derived,
    time: Option<f64>,
    enricher: &'a Enricher,
}

impl Enricher {
    /// Builds the enricher (`None` when `enabled = false`), loading the asset table.
    pub fn new(
        config: &EnrichConfig,
        tokens: &[TokenConfig],
    ) -> Result<Option<Enricher>, AssetError> {
        if !config.enabled {
            return Ok(None);
        }
        let assets = config.assets.as_deref().map(AssetTable::load).transpose()?;
        Ok(Some(Enricher {
            trim: config.trim,
            final_pass_system: config.final_pass_system.clone(),
            per_token: tokens
                .iter()
                .filter_map(|t| Some((t.name.clone(), t.final_pass_system.clone()?)))
                .collect(),
            indexed: config.indexed(),
            assets,
        }))
    }

    /// The final pass system for events accepted with `token`.
    pub fn final_pass_system(&self, token: &str) -> &str {
        self.per_token
            .get(token)
            .map_or(self.final_pass_system.as_str(), String::as_str)
    }

    /// Enriches `bytes` (a `/raw` line or an `/event` object's `event`)
    /// when it is a network analytics sample; `None` leaves it as it is.
    pub fn sample<'a>(&'a self, bytes: &'a [u8], token: &str) -> Option<Enriched<'a>> {
        let t = bytes.trim_ascii();
        if t.first() != Some(&b'{') {
            return None;
        }
        let mut sample = Sample::parse(t)?;
        sample.normalize_names();
        let derived = sample.derived(self.final_pass_system(token));
        let facts = Facts::of(&sample);
        let time = sample.time();
        Some(Enriched {
            sample,
            facts,
            derived,
            time,
            enricher: self,
        })
    }

    fn is_asset_field(&self, key: &str) -> bool {
        self.assets
            .as_ref()
            .is_some_and(|a| a.columns().iter().any(|c| c == key))
    }
}

fn write_key(out: &mut Vec<u8>, key: &str, first: &mut bool) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    // Keys that arrived without escapes need none; others are re-escaped.
    if key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
    } else {
        let _ = serde_json::to_writer(&mut *out, key);
        out.push(b':');
    }
}

fn write_str(out: &mut Vec<u8>, value: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

impl Enriched<'_> {
    /// `time` from `Datetime` (epoch seconds), when it parses.
    pub fn time(&self) -> Option<f64> {
        self.time
    }

    /// The derived fields.
    pub fn derived(&self) -> &Derived {
        &self.derived
    }

    /// Appends the enriched sample as one JSON object: Cloudflare's fields in
    /// their order (renamed, trimmed), then the derived fields and asset tags.
    pub fn write_event(&self, out: &mut Vec<u8>) {
        let e = self.enricher;
        let mut first = true;
        out.push(b'{');
        for (key, value) in self.sample.pairs() {
            // Ours are recomputed (enriching an enriched sample changes nothing).
            if DERIVED_FIELDS.contains(&key.as_ref()) || e.is_asset_field(key) {
                continue;
            }
            if !trim::keep(e.trim, key, value, &self.facts) {
                continue;
            }
            write_key(out, key, &mut first);
            out.extend_from_slice(value.get().as_bytes());
        }
        let d = &self.derived;
        write_key(out, "est_packets", &mut first);
        let _ = write!(out, "{}", d.est_packets);
        write_key(out, "est_bytes", &mut first);
        let _ = write!(out, "{}", d.est_bytes);
        if let Some(name) = d.mitigation_system_name {
            write_key(out, "mitigation_system_name", &mut first);
            write_str(out, name);
        }
        write_key(out, "counted", &mut first);
        out.extend_from_slice(if d.counted { b"true" } else { b"false" });
        if let Some(v) = d.ip_version {
            write_key(out, "ip_version", &mut first);
            let _ = write!(out, "{v}");
        }
        if let (Some(table), Some(dst)) = (&e.assets, self.facts.destination()) {
            for (col, value) in table.tags(dst) {
                write_key(out, col, &mut first);
                write_str(out, value);
            }
        }
        out.push(b'}');
    }

    /// Appends the indexed fields as `"name":"value",` pairs (each with a
    /// trailing comma); absent and empty values are left out.
    pub fn write_indexed_fields(&self, out: &mut Vec<u8>) {
        for (field, name) in &self.enricher.indexed {
            let Some(raw) = self.sample.raw_value(field) else {
                continue;
            };
            let v = raw.get();
            if v == "\"\"" || v == "null" || v.starts_with('{') || v.starts_with('[') {
                continue;
            }
            write_str(out, name);
            out.push(b':');
            if v.starts_with('"') {
                out.extend_from_slice(v.as_bytes());
            } else {
                write_str(out, v);
            }
            out.push(b',');
        }
    }
}

/// Enriches one line as the forwarder would, returning the event object
/// (for tools and tests; `None` when the line is not a sample).
pub fn enrich_line(enricher: &Enricher, line: &[u8], token: &str) -> Option<Vec<u8>> {
    let e = enricher.sample(line, token)?;
    let mut out = Vec::with_capacity(line.len() + 160);
    e.write_event(&mut out);
    Some(out)
}
