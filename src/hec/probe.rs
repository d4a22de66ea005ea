//! Cloudflare Logpush's destination-validation probe.

use serde::Deserialize;

/// Longest decoded body that can still be a probe.
pub const MAX_PROBE_BYTES: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Probe<'a> {
    content: &'a str,
}

/// Whether a decoded body is exactly Logpush's `{"content":"tests"}` probe.
pub fn is_logpush_probe(decoded: &[u8]) -> bool {
    decoded.len() <= MAX_PROBE_BYTES
        && serde_json::from_slice::<Probe<'_>>(decoded).is_ok_and(|p| p.content == "tests")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_probe_only() {
        assert!(is_logpush_probe(br#"{"content":"tests"}"#));
        assert!(is_logpush_probe(b"{\"content\": \"tests\"}\n"));
        assert!(!is_logpush_probe(br#"{"content":"tests","x":1}"#));
        assert!(!is_logpush_probe(br#"{"content":"test"}"#));
        assert!(!is_logpush_probe(br#"{"event":"tests"}"#));
    }
}
