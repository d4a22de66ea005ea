//! Enrichment of any line: never panics; when the line is a sample, the
//! enriched event is one valid JSON object that keeps every field not
//! trimmed, and enriching it again changes nothing.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::enrich::config::{EnrichConfig, TrimMode};
use sluice::enrich::{enrich_line, Enricher};

fuzz_target!(|data: &[u8]| {
    // Numbers beyond f64 are passed through as received, but serde_json's
    // `Value` cannot hold them: check only what `Value` can read.
    if serde_json::from_slice::<serde_json::Value>(data.trim_ascii()).is_err() {
        for trim in [TrimMode::None, TrimMode::Empty, TrimMode::Compact] {
            let config = EnrichConfig {
                trim,
                ..EnrichConfig::default()
            };
            if let Ok(Some(e)) = Enricher::new(&config, &[]) {
                let _ = enrich_line(&e, data, "t");
            }
        }
        return;
    }
    for trim in [TrimMode::None, TrimMode::Empty, TrimMode::Compact] {
        let config = EnrichConfig {
            trim,
            ..EnrichConfig::default()
        };
        let Ok(Some(e)) = Enricher::new(&config, &[]) else {
            return;
        };
        let Some(out) = enrich_line(&e, data, "t") else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert!(v.is_object());
        assert!(v.get("est_packets").is_some() && v.get("counted").is_some());
        if trim == TrimMode::None {
            let orig: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(data.trim_ascii()).expect("it parsed once");
            for k in orig.keys() {
                let derived = sluice::enrich::DERIVED_FIELDS.contains(&k.as_str());
                let renamed = sluice::enrich::sample::LEGACY_NAMES
                    .iter()
                    .any(|(old, _)| old == k);
                assert!(derived || renamed || v.get(k).is_some(), "{k} lost");
            }
        }
        let again = enrich_line(&e, &out, "t").expect("still a sample");
        let w: serde_json::Value = serde_json::from_slice(&again).expect("valid JSON");
        assert_eq!(v, w, "idempotent");
    }
});
