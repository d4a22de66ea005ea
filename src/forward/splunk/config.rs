//! `[[outputs]]` with `type = "splunk"`: the keys as written, their
//! defaults, and their resolution into the client's settings and the
//! engine's.

use super::super::batch::{BatchLimits, Compression};
use super::super::config::{build_threads, positive};
use super::super::context::EngineSettings;
use super::super::routing::{EventsRoute, Routing};
use crate::hec::TokenSecret;
use crate::rollup::config::RollupSettings;
use crate::setting::{self, Invalid, Secrets};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `max_events` default.
pub const MAX_EVENTS: usize = 10_000;
/// `max_bytes` default (uncompressed bytes per request).
pub const MAX_BYTES: u64 = 8 << 20;
/// `max_compressed_bytes` default (Splunk Cloud's limit is 1 MB).
pub const MAX_COMPRESSED_BYTES: u64 = 1_000_000;
/// `linger` default.
pub const LINGER: Duration = Duration::from_millis(200);
/// `concurrency` default (requests in flight per indexer).
pub const CONCURRENCY: usize = 4;
/// `ack_poll_interval` default.
pub const ACK_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// `ack_timeout` default.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(300);
/// `retry_initial` default.
pub const RETRY_INITIAL: Duration = Duration::from_millis(500);
/// `retry_max` default.
pub const RETRY_MAX: Duration = Duration::from_secs(60);
/// `stats_interval` default.
pub const STATS_INTERVAL: Duration = Duration::from_secs(60);

/// One `type = "splunk"` output as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkConfig {
    /// Name used in metrics, logs and release markers.
    pub name: String,
    /// Indexer base URLs, load balanced.
    #[serde(default)]
    pub urls: Vec<String>,
    /// HEC token.
    pub token: Option<TokenSecret>,
    /// Environment variable holding the HEC token.
    pub token_env: Option<String>,
    /// Index override (else each event keeps its own).
    pub index: Option<String>,
    /// Sourcetype override.
    pub sourcetype: Option<String>,
    /// Source override.
    pub source: Option<String>,
    /// Host override (default: each event's, else this node's hostname).
    pub host: Option<String>,
    /// CA bundle to trust for the indexers.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS to the indexers.
    pub client_cert: Option<PathBuf>,
    /// Key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Do not verify the indexers' certificates (discouraged).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// Events per request.
    pub max_events: Option<usize>,
    /// Uncompressed bytes per request.
    pub max_bytes: Option<u64>,
    /// Compressed bytes per request.
    pub max_compressed_bytes: Option<u64>,
    /// How long a partial batch may wait for more events.
    #[serde(default, with = "humantime_serde")]
    pub linger: Option<Duration>,
    /// Requests in flight per indexer.
    pub concurrency: Option<usize>,
    /// Use indexer acknowledgements.
    pub use_ack: Option<bool>,
    /// How often to poll `/services/collector/ack`.
    #[serde(default, with = "humantime_serde")]
    pub ack_poll_interval: Option<Duration>,
    /// Resend a batch whose ack is not true after this long.
    #[serde(default, with = "humantime_serde")]
    pub ack_timeout: Option<Duration>,
    /// First retry delay.
    #[serde(default, with = "humantime_serde")]
    pub retry_initial: Option<Duration>,
    /// Longest retry delay.
    #[serde(default, with = "humantime_serde")]
    pub retry_max: Option<Duration>,
    /// Undelivered this long → dead letters (default: never).
    #[serde(default, with = "humantime_serde")]
    pub dead_letter_after: Option<Duration>,
    /// Threads building batches; default: the number of cores.
    pub build_threads: Option<usize>,
    /// How often a `sluice:stats` event goes to the indexers; `0s`: never.
    #[serde(default, with = "humantime_serde")]
    pub stats_interval: Option<Duration>,
    /// Which events go: `all` (default), `drops`, `none`.
    #[serde(default)]
    pub events: EventsRoute,
    /// Whether each record's rollups go, as metric events.
    #[serde(default)]
    pub rollups: bool,
}

/// A resolved `splunk` output.
#[derive(Debug, Clone)]
pub struct SplunkOutput {
    /// How the engine drives it (name, caps, retries, builders).
    pub engine: EngineSettings,
    /// Indexer base URLs, without a trailing `/`.
    pub urls: Vec<String>,
    /// HEC token.
    pub token: TokenSecret,
    /// CA bundle.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// Skip certificate verification.
    pub insecure_skip_verify: bool,
    /// Indexer acknowledgements.
    pub use_ack: bool,
}

impl SplunkConfig {
    /// Applies defaults and checks values; `key` is the table's key (`outputs[0]`).
    pub fn resolve(
        &self,
        key: &str,
        secrets: Secrets,
        rollup: &Arc<RollupSettings>,
    ) -> Result<SplunkOutput, Invalid> {
        let k = |name: &str| format!("{key}.{name}");
        if self.urls.is_empty() {
            return Err(Invalid::new(
                k("urls"),
                "at least one indexer URL is required",
            ));
        }
        for (i, u) in self.urls.iter().enumerate() {
            let ok = (u.starts_with("https://") || u.starts_with("http://"))
                && reqwest::Url::parse(u).is_ok_and(|p| p.host().is_some());
            if !ok {
                return Err(Invalid::new(
                    format!("{}[{i}]", k("urls")),
                    format!("{u:?} is not an http(s) URL"),
                ));
            }
        }
        let token = setting::secret(
            self.token.as_ref(),
            self.token_env.as_deref(),
            &format!("{key}."),
            secrets,
        )?;
        let client_identity = match (&self.client_cert, &self.client_key) {
            (Some(c), Some(key)) => Some((c.clone(), key.clone())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(Invalid::new(
                    k("client_key"),
                    "client_cert needs client_key",
                ))
            }
            (None, Some(_)) => {
                return Err(Invalid::new(
                    k("client_cert"),
                    "client_key needs client_cert",
                ))
            }
        };
        let max_events = positive(&k("max_events"), self.max_events.unwrap_or(MAX_EVENTS))?;
        let max_bytes = positive(&k("max_bytes"), self.max_bytes.unwrap_or(MAX_BYTES))?;
        let max_compressed_bytes = positive(
            &k("max_compressed_bytes"),
            self.max_compressed_bytes.unwrap_or(MAX_COMPRESSED_BYTES),
        )?;
        let concurrency = positive(&k("concurrency"), self.concurrency.unwrap_or(CONCURRENCY))?;
        let retry_initial = self.retry_initial.unwrap_or(RETRY_INITIAL);
        let retry_max = self.retry_max.unwrap_or(RETRY_MAX);
        if retry_initial.is_zero() || retry_max < retry_initial {
            return Err(Invalid::new(
                k("retry_max"),
                "retry_initial must be above 0 and at most retry_max",
            ));
        }
        let ack_poll_interval = self.ack_poll_interval.unwrap_or(ACK_POLL_INTERVAL);
        let ack_timeout = self.ack_timeout.unwrap_or(ACK_TIMEOUT);
        if ack_poll_interval.is_zero() || ack_timeout < ack_poll_interval {
            return Err(Invalid::new(
                k("ack_timeout"),
                "ack_poll_interval must be above 0 and at most ack_timeout",
            ));
        }
        Ok(SplunkOutput {
            engine: EngineSettings {
                name: self.name.clone(),
                routing: Routing::resolve(key, self.events, self.rollups, rollup)?,
                limits: BatchLimits {
                    max_events,
                    max_bytes,
                    max_compressed_bytes,
                    compression: self.compression,
                },
                overrides: [
                    self.index.clone(),
                    self.sourcetype.clone(),
                    self.source.clone(),
                    self.host.clone(),
                ],
                concurrency,
                linger: self.linger.unwrap_or(LINGER),
                ack_poll_interval,
                ack_timeout,
                retry_initial,
                retry_max,
                dead_letter_after: self.dead_letter_after,
                build_threads: build_threads(&k("build_threads"), self.build_threads)?,
                stats_interval: Some(self.stats_interval.unwrap_or(STATS_INTERVAL))
                    .filter(|d| !d.is_zero()),
            },
            urls: self
                .urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            token,
            ca_file: self.ca_file.clone(),
            client_identity,
            insecure_skip_verify: self.insecure_skip_verify,
            use_ack: self.use_ack.unwrap_or(true),
        })
    }
}
