//! `[enrich]`: how network analytics samples are enriched on the way out.

use super::sample::{current_name, system_name};
use crate::setting::Invalid;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::PathBuf;

/// `[enrich]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// Enrich samples at all; `false` forwards every line as it came.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// The last mitigation system a passing packet crosses: passes count only there.
    #[serde(default = "default_final_pass_system")]
    pub final_pass_system: String,
    /// How much of what Cloudflare sends is left out of `_raw`.
    #[serde(default)]
    pub trim: TrimMode,
    /// Cloudflare fields also sent as indexed `fields`, under snake_case names.
    #[serde(default = "default_indexed_fields")]
    pub indexed_fields: Vec<String>,
    /// CSV of `cidr,<col>,…`: each column becomes `asset_<col>` on matching samples.
    pub assets: Option<PathBuf>,
}

/// `trim`: what enrichment leaves out of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TrimMode {
    /// Keep every field.
    None,
    /// Drop `""`/null fields and header groups that do not apply to the sample.
    #[default]
    Empty,
    /// Also drop what the Splunk app restores by eval or lookup (README lists them).
    Compact,
}

fn enabled_by_default() -> bool {
    true
}

fn default_final_pass_system() -> String {
    "magic-firewall".to_string()
}

fn default_indexed_fields() -> Vec<String> {
    [
        "MitigationSystem",
        "Outcome",
        "ColoCode",
        "AttackID",
        "Direction",
    ]
    .map(String::from)
    .to_vec()
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            enabled: true,
            final_pass_system: default_final_pass_system(),
            trim: TrimMode::default(),
            indexed_fields: default_indexed_fields(),
            assets: None,
        }
    }
}

/// Checks a `final_pass_system` value (a typo would silently stop counting passes).
pub fn check_system(key: &str, value: &str) -> Result<(), Invalid> {
    if system_name(value).is_none() {
        return Err(Invalid::new(
            key,
            format!("{value:?} is not a mitigation system (dosd, flowtrackd or magic-firewall)"),
        ));
    }
    Ok(())
}

impl EnrichConfig {
    /// Checks what the types cannot (the asset table is checked when loaded).
    pub fn validate(&self) -> Result<(), Invalid> {
        check_system("enrich.final_pass_system", &self.final_pass_system)?;
        let mut seen = HashSet::new();
        for (i, f) in self.indexed_fields.iter().enumerate() {
            let key = format!("enrich.indexed_fields[{i}]");
            let pascal = f.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && f.chars().all(|c| c.is_ascii_alphanumeric());
            if !pascal {
                return Err(Invalid::new(
                    key,
                    format!("{f:?} is not a Cloudflare field name (PascalCase, e.g. AttackID)"),
                ));
            }
            if !seen.insert(indexed_name(f)) {
                return Err(Invalid::new(key, format!("{f:?} is listed twice")));
            }
        }
        Ok(())
    }

    /// `(Cloudflare field, indexed name)` pairs, legacy names mapped to current ones.
    pub fn indexed(&self) -> Vec<(String, String)> {
        self.indexed_fields
            .iter()
            .map(|f| (current_name(f).unwrap_or(f).to_string(), indexed_name(f)))
            .collect()
    }
}

/// The snake_case name a Cloudflare field is indexed under: `AttackID` →
/// `attack_id`, `IPv4DSCP` → `ipv4_dscp`, `ColoCode` → `colo_code`.
pub fn indexed_name(field: &str) -> String {
    let field = current_name(field)
        .unwrap_or(field)
        .replace("IPv4", "Ipv4")
        .replace("IPv6", "Ipv6");
    let c: Vec<char> = field.chars().collect();
    let mut out = String::with_capacity(c.len() + 4);
    for (i, &ch) in c.iter().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            let prev = c[i - 1];
            let next_lower = c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_names_are_snake_case() {
        for (field, name) in [
            ("MitigationSystem", "mitigation_system"),
            ("Outcome", "outcome"),
            ("ColoCode", "colo_code"),
            ("AttackID", "attack_id"),
            ("Direction", "direction"),
            ("IPv4DSCP", "ipv4_dscp"),
            ("IPv4Dscp", "ipv4_dscp"),
            ("IPProtocolName", "ip_protocol_name"),
            ("TCPFlagsString", "tcp_flags_string"),
            ("SourceASNDescription", "source_asn_name"),
            ("RuleID", "rule_id"),
        ] {
            assert_eq!(indexed_name(field), name, "{field}");
        }
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = EnrichConfig::default();
        assert!(c.validate().is_ok());
        c.final_pass_system = "magic_firewall".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("enrich.final_pass_system"), "{e}");
        let mut c = EnrichConfig::default();
        c.indexed_fields.push("attack_id".into());
        assert!(c.validate().unwrap_err().to_string().contains("[5]"));
        let mut c = EnrichConfig::default();
        c.indexed_fields.push("Attack-ID".into());
        assert!(c.validate().is_err());
        let mut c = EnrichConfig::default();
        c.indexed_fields.push("TCPMss".into());
        c.indexed_fields.push("TCPMSS".into());
        assert!(c.validate().unwrap_err().to_string().contains("twice"));
    }
}
