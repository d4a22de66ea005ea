//! `[rollup]`: how a record's samples are summed into metric events for
//! outputs with `rollups = true`. Resolved once into [`RollupSettings`].

use super::Dimension;
use crate::setting::Invalid;
use serde::Deserialize;
use std::time::Duration;

/// `interval` default.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// `top_n` default.
pub const TOP_N: usize = 20;
/// `index` default.
pub const INDEX: &str = "cloudflare_metrics";
/// The longest interval: a day (Splunk's metric rollups stop there too).
const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// `[rollup]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollupConfig {
    /// Width of a rollup's time bucket, whole seconds.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Dimensions each rollup is grouped by (names as in the metric events).
    pub dimensions: Option<Vec<String>>,
    /// Per record and interval, values of a dimension kept before the rest fold into `other`.
    pub top_n: Option<usize>,
    /// The Splunk metrics index rollups go to.
    pub index: Option<String>,
}

/// `[rollup]` resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupSettings {
    /// Bucket width in seconds.
    pub interval_s: u64,
    /// Grouping dimensions, in the order written.
    pub dimensions: Vec<Dimension>,
    /// Values kept per dimension, record and interval.
    pub top_n: usize,
    /// The metrics index.
    pub index: String,
    /// `[enrich] final_pass_system` and the tokens' own as at start, for
    /// `counted` (a reload does not change them: see `Accumulator::new`).
    pub final_pass: FinalPass,
}

/// The last mitigation system a passing packet crosses, per token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalPass {
    /// For tokens that set none.
    pub default: String,
    /// Token name → its own.
    pub per_token: std::collections::HashMap<String, String>,
}

impl FinalPass {
    /// The final pass system for events accepted with `token`.
    pub fn for_token(&self, token: &str) -> &str {
        self.per_token
            .get(token)
            .map_or(self.default.as_str(), String::as_str)
    }
}

impl Default for RollupSettings {
    fn default() -> RollupSettings {
        let final_pass = FinalPass {
            default: "magic-firewall".into(),
            per_token: Default::default(),
        };
        RollupConfig::default()
            .resolve(final_pass)
            .unwrap_or_else(|_| unreachable!("the defaults are valid"))
    }
}

impl RollupConfig {
    /// Applies defaults and checks values.
    pub fn resolve(&self, final_pass: FinalPass) -> Result<RollupSettings, Invalid> {
        let interval = self.interval.unwrap_or(INTERVAL);
        if interval < Duration::from_secs(1)
            || interval > MAX_INTERVAL
            || interval.subsec_nanos() != 0
            || MAX_INTERVAL.as_secs() % interval.as_secs() != 0
        {
            // Intervals that divide a day line up with minutes, hours and
            // days, as `mstats span=` buckets do.
            return Err(Invalid::new(
                "rollup.interval",
                "must be whole seconds from 1s to 1d that divide a day (10s, 1m, 5m, 1h …)",
            ));
        }
        let dimensions = match &self.dimensions {
            None => Dimension::ALL.to_vec(),
            Some(names) => {
                let mut dims = Vec::with_capacity(names.len());
                for (i, name) in names.iter().enumerate() {
                    let key = format!("rollup.dimensions[{i}]");
                    let d = Dimension::from_name(name).ok_or_else(|| {
                        let known: Vec<&str> = Dimension::ALL.iter().map(|d| d.name()).collect();
                        Invalid::new(
                            &key,
                            format!("unknown dimension {name:?} (one of {})", known.join(", ")),
                        )
                    })?;
                    if dims.contains(&d) {
                        return Err(Invalid::new(key, format!("{name:?} is listed twice")));
                    }
                    dims.push(d);
                }
                dims
            }
        };
        let top_n = self.top_n.unwrap_or(TOP_N);
        if top_n == 0 {
            return Err(Invalid::new("rollup.top_n", "must be above 0"));
        }
        let index = self.index.clone().unwrap_or_else(|| INDEX.to_string());
        check_index(&index)?;
        Ok(RollupSettings {
            interval_s: interval.as_secs(),
            dimensions,
            top_n,
            index,
            final_pass,
        })
    }
}

/// Splunk's rule for index names: lower-case letters, digits, `_` and `-`,
/// not starting with `_` or `-`, at most 80 characters. A wrong name would
/// have every rollup refused by the indexer.
fn check_index(name: &str) -> Result<(), Invalid> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    let ok = !name.is_empty()
        && name.len() <= 80
        && name.chars().all(ok_char)
        && !name.starts_with(['_', '-']);
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "rollup.index",
            format!("{name:?} is not a Splunk index name (a-z, 0-9, _ and -, not first _ or -)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(toml: &str) -> Result<RollupSettings, String> {
        let c: RollupConfig = toml::from_str(toml).map_err(|e| e.to_string())?;
        c.resolve(RollupSettings::default().final_pass)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = resolve("").unwrap();
        assert_eq!(s.interval_s, 60);
        assert_eq!(s.top_n, 20);
        assert_eq!(s.index, "cloudflare_metrics");
        let names: Vec<&str> = s.dimensions.iter().map(|d| d.name()).collect();
        assert_eq!(
            names,
            [
                "mitigation_system",
                "outcome",
                "counted",
                "attack_id",
                "attack_vector",
                "colo_code",
                "direction",
                "ip_protocol",
                "dest_subnet",
                "dest_port"
            ]
        );
        assert_eq!(s, RollupSettings::default());
    }

    #[test]
    fn set_values_are_taken() {
        let s = resolve(
            "interval = \"5m\"\ndimensions = [\"outcome\", \"mitigation_system\"]\ntop_n = 3\nindex = \"nal_metrics\"\n",
        )
        .unwrap();
        assert_eq!(s.interval_s, 300);
        assert_eq!(
            s.dimensions,
            [Dimension::Outcome, Dimension::MitigationSystem]
        );
        assert_eq!((s.top_n, s.index.as_str()), (3, "nal_metrics"));
        assert!(resolve("dimensions = []").unwrap().dimensions.is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        for (toml, needle) in [
            ("interval = \"500ms\"", "rollup.interval"),
            ("interval = \"1500ms\"", "rollup.interval"),
            ("interval = \"2d\"", "rollup.interval"),
            ("interval = \"7m\"", "rollup.interval"),
            ("interval = \"13s\"", "rollup.interval"),
            (
                "dimensions = [\"outcome\", \"colo\"]",
                "rollup.dimensions[1]",
            ),
            ("dimensions = [\"outcome\", \"outcome\"]", "listed twice"),
            ("top_n = 0", "rollup.top_n"),
            ("index = \"Metrics\"", "rollup.index"),
            ("index = \"_internal\"", "rollup.index"),
            ("index = \"\"", "rollup.index"),
            ("intervall = \"1m\"", "intervall"),
        ] {
            let e = resolve(toml).unwrap_err();
            assert!(e.contains(needle), "{toml}: {needle} not in {e}");
        }
    }
}
