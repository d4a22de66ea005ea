//! `[[outputs]]`: where queued events are delivered (public config keys).

use super::{invalid, ConfigError};
use crate::hec::TokenSecret;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One `[[outputs]]` table as written; [`OutputConfig::resolve`] turns it into an [`Output`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Name used in metrics, logs and release markers.
    pub name: String,
    /// `splunk` or `file`.
    #[serde(rename = "type")]
    pub kind: OutputKind,
    /// Splunk: indexer base URLs, load balanced.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Splunk: HEC token.
    pub token: Option<TokenSecret>,
    /// Splunk: environment variable holding the HEC token.
    pub token_env: Option<String>,
    /// Splunk: index override (else each event keeps its own).
    pub index: Option<String>,
    /// Splunk: sourcetype override.
    pub sourcetype: Option<String>,
    /// Splunk: source override.
    pub source: Option<String>,
    /// Splunk: host override (default: each event's, else this node's hostname).
    pub host: Option<String>,
    /// Splunk: CA bundle to trust for the indexers.
    pub ca_file: Option<PathBuf>,
    /// Splunk: client certificate (PEM) for mTLS to the indexers.
    pub client_cert: Option<PathBuf>,
    /// Splunk: key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Splunk: do not verify the indexers' certificates (discouraged).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// Threads building batches (read, decode, enrich, compress); default: the number of cores.
    pub build_threads: Option<usize>,
    /// Splunk: events per request.
    pub max_events: Option<usize>,
    /// Splunk: uncompressed bytes per request.
    pub max_bytes: Option<u64>,
    /// Splunk: compressed bytes per request (Splunk Cloud: 1 MB).
    pub max_compressed_bytes: Option<u64>,
    /// Splunk: how long a partial batch may wait for more events.
    #[serde(default, with = "humantime_serde")]
    pub linger: Option<Duration>,
    /// Splunk: requests in flight per indexer.
    pub concurrency: Option<usize>,
    /// Splunk: use indexer acknowledgements.
    pub use_ack: Option<bool>,
    /// Splunk: how often to poll `/services/collector/ack`.
    #[serde(default, with = "humantime_serde")]
    pub ack_poll_interval: Option<Duration>,
    /// Splunk: resend a batch whose ack is not true after this long.
    #[serde(default, with = "humantime_serde")]
    pub ack_timeout: Option<Duration>,
    /// Splunk: first retry delay.
    #[serde(default, with = "humantime_serde")]
    pub retry_initial: Option<Duration>,
    /// Splunk: longest retry delay.
    #[serde(default, with = "humantime_serde")]
    pub retry_max: Option<Duration>,
    /// Splunk: undelivered this long → dead letters (default: never).
    #[serde(default, with = "humantime_serde")]
    pub dead_letter_after: Option<Duration>,
    /// File: directory of the NDJSON files.
    pub path: Option<PathBuf>,
    /// File: start a new file at this size.
    pub rotate_bytes: Option<u64>,
    /// File: start a new file after this long.
    #[serde(default, with = "humantime_serde")]
    pub rotate_interval: Option<Duration>,
}

/// Output type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Splunk HEC indexers.
    Splunk,
    /// NDJSON archive files.
    File,
}

/// Body compression of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip.
    #[default]
    Gzip,
    /// No compression.
    None,
}

/// A validated output with its defaults applied.
#[derive(Debug, Clone)]
pub enum Output {
    /// Splunk HEC.
    Splunk(Box<SplunkOutput>),
    /// NDJSON files.
    File(FileOutput),
}

impl Output {
    /// The output's name.
    pub fn name(&self) -> &str {
        match self {
            Output::Splunk(s) => &s.name,
            Output::File(f) => &f.name,
        }
    }
}

/// A Splunk HEC output.
#[derive(Debug, Clone)]
pub struct SplunkOutput {
    /// Name.
    pub name: String,
    /// Indexer base URLs.
    pub urls: Vec<String>,
    /// HEC token.
    pub token: TokenSecret,
    /// Metadata overrides.
    pub index: Option<String>,
    /// Sourcetype override.
    pub sourcetype: Option<String>,
    /// Source override.
    pub source: Option<String>,
    /// Host override.
    pub host: Option<String>,
    /// CA bundle.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// Skip certificate verification.
    pub insecure_skip_verify: bool,
    /// Request compression.
    pub compression: Compression,
    /// Events per request.
    pub max_events: usize,
    /// Uncompressed bytes per request.
    pub max_bytes: u64,
    /// Compressed bytes per request.
    pub max_compressed_bytes: u64,
    /// Partial-batch wait.
    pub linger: Duration,
    /// Requests in flight per indexer.
    pub concurrency: usize,
    /// Indexer acknowledgements.
    pub use_ack: bool,
    /// Ack poll interval.
    pub ack_poll_interval: Duration,
    /// Ack timeout before resending.
    pub ack_timeout: Duration,
    /// First retry delay.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Dead-letter age, if any.
    pub dead_letter_after: Option<Duration>,
    /// Batch builder threads.
    pub build_threads: usize,
}

/// An NDJSON file output.
#[derive(Debug, Clone)]
pub struct FileOutput {
    /// Name.
    pub name: String,
    /// Directory of the files.
    pub path: PathBuf,
    /// Rotation size.
    pub rotate_bytes: u64,
    /// Rotation age.
    pub rotate_interval: Duration,
    /// File compression.
    pub compression: Compression,
    /// Batch builder threads.
    pub build_threads: usize,
}

/// `build_threads` default: one builder per core.
pub fn default_build_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

const SPLUNK_ONLY: &[&str] = &[
    "urls",
    "token",
    "token_env",
    "index",
    "sourcetype",
    "source",
    "host",
    "ca_file",
    "client_cert",
    "client_key",
    "insecure_skip_verify",
    "max_events",
    "max_bytes",
    "max_compressed_bytes",
    "linger",
    "concurrency",
    "use_ack",
    "ack_poll_interval",
    "ack_timeout",
    "retry_initial",
    "retry_max",
    "dead_letter_after",
];
const FILE_ONLY: &[&str] = &["path", "rotate_bytes", "rotate_interval"];

impl OutputConfig {
    /// Which keys are set, for "this key does not apply to this type" errors.
    fn set_keys(&self) -> Vec<&'static str> {
        let flags = [
            ("urls", !self.urls.is_empty()),
            ("token", self.token.is_some()),
            ("token_env", self.token_env.is_some()),
            ("index", self.index.is_some()),
            ("sourcetype", self.sourcetype.is_some()),
            ("source", self.source.is_some()),
            ("host", self.host.is_some()),
            ("ca_file", self.ca_file.is_some()),
            ("client_cert", self.client_cert.is_some()),
            ("client_key", self.client_key.is_some()),
            ("insecure_skip_verify", self.insecure_skip_verify),
            ("max_events", self.max_events.is_some()),
            ("max_bytes", self.max_bytes.is_some()),
            ("max_compressed_bytes", self.max_compressed_bytes.is_some()),
            ("linger", self.linger.is_some()),
            ("concurrency", self.concurrency.is_some()),
            ("use_ack", self.use_ack.is_some()),
            ("ack_poll_interval", self.ack_poll_interval.is_some()),
            ("ack_timeout", self.ack_timeout.is_some()),
            ("retry_initial", self.retry_initial.is_some()),
            ("retry_max", self.retry_max.is_some()),
            ("dead_letter_after", self.dead_letter_after.is_some()),
            ("path", self.path.is_some()),
            ("rotate_bytes", self.rotate_bytes.is_some()),
            ("rotate_interval", self.rotate_interval.is_some()),
        ];
        flags
            .iter()
            .filter(|(_, on)| *on)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Applies defaults and checks values; `key` prefixes error keys (`outputs[0]`).
    pub fn resolve(&self, key: &str, data_dir: &Path) -> Result<Output, ConfigError> {
        let k = |name: &str| format!("{key}.{name}");
        if self.name.trim().is_empty() {
            return Err(invalid(k("name"), "must not be empty"));
        }
        let foreign = match self.kind {
            OutputKind::Splunk => FILE_ONLY,
            OutputKind::File => SPLUNK_ONLY,
        };
        if let Some(bad) = self.set_keys().into_iter().find(|s| foreign.contains(s)) {
            return Err(invalid(
                k(bad),
                format!("does not apply to type = \"{}\"", self.kind_name()),
            ));
        }
        let build_threads = match self.build_threads {
            Some(0) => return Err(invalid(k("build_threads"), "must be above 0")),
            Some(n) => n,
            None => default_build_threads(),
        };
        match self.kind {
            OutputKind::File => {
                let rotate_bytes = self.rotate_bytes.unwrap_or(256 << 20);
                if rotate_bytes < 4096 {
                    return Err(invalid(k("rotate_bytes"), "must be at least 4096"));
                }
                let rotate_interval = self.rotate_interval.unwrap_or(Duration::from_secs(3600));
                if rotate_interval < Duration::from_secs(1) {
                    return Err(invalid(k("rotate_interval"), "must be at least 1s"));
                }
                Ok(Output::File(FileOutput {
                    name: self.name.clone(),
                    path: self
                        .path
                        .clone()
                        .unwrap_or_else(|| data_dir.join("archive")),
                    rotate_bytes,
                    rotate_interval,
                    compression: self.compression,
                    build_threads,
                }))
            }
            OutputKind::Splunk => self
                .resolve_splunk(&k, build_threads)
                .map(|s| Output::Splunk(Box::new(s))),
        }
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            OutputKind::Splunk => "splunk",
            OutputKind::File => "file",
        }
    }

    fn resolve_splunk(
        &self,
        k: &dyn Fn(&str) -> String,
        build_threads: usize,
    ) -> Result<SplunkOutput, ConfigError> {
        if self.urls.is_empty() {
            return Err(invalid(k("urls"), "at least one indexer URL is required"));
        }
        for (i, u) in self.urls.iter().enumerate() {
            let ok = (u.starts_with("https://") || u.starts_with("http://"))
                && reqwest::Url::parse(u).is_ok_and(|p| p.host().is_some());
            if !ok {
                return Err(invalid(
                    format!("{}[{i}]", k("urls")),
                    format!("{u:?} is not an http(s) URL"),
                ));
            }
        }
        let token = match (&self.token, &self.token_env) {
            (Some(_), Some(_)) => {
                return Err(invalid(k("token_env"), "set token or token_env, not both"))
            }
            (Some(t), None) => t.clone(),
            (None, Some(var)) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => TokenSecret::new(v.trim().to_string()),
                _ => {
                    return Err(invalid(
                        k("token_env"),
                        format!("environment variable {var} is not set"),
                    ))
                }
            },
            (None, None) => return Err(invalid(k("token"), "set token or token_env")),
        };
        let client_identity = match (&self.client_cert, &self.client_key) {
            (Some(c), Some(key)) => Some((c.clone(), key.clone())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(k("client_key"), "client_cert needs client_key"))
            }
            (None, Some(_)) => {
                return Err(invalid(k("client_cert"), "client_key needs client_cert"))
            }
        };
        let positive = |name: &str, v: u64| {
            if v == 0 {
                Err(invalid(k(name), "must be above 0"))
            } else {
                Ok(v)
            }
        };
        let max_events = positive("max_events", self.max_events.unwrap_or(10_000) as u64)? as usize;
        let max_bytes = positive("max_bytes", self.max_bytes.unwrap_or(8 << 20))?;
        let max_compressed_bytes = positive(
            "max_compressed_bytes",
            self.max_compressed_bytes.unwrap_or(1_000_000),
        )?;
        let concurrency = positive("concurrency", self.concurrency.unwrap_or(4) as u64)? as usize;
        let retry_initial = self.retry_initial.unwrap_or(Duration::from_millis(500));
        let retry_max = self.retry_max.unwrap_or(Duration::from_secs(60));
        if retry_initial.is_zero() || retry_max < retry_initial {
            return Err(invalid(
                k("retry_max"),
                "retry_initial must be above 0 and at most retry_max",
            ));
        }
        let ack_poll_interval = self.ack_poll_interval.unwrap_or(Duration::from_secs(10));
        let ack_timeout = self.ack_timeout.unwrap_or(Duration::from_secs(300));
        if ack_poll_interval.is_zero() || ack_timeout < ack_poll_interval {
            return Err(invalid(
                k("ack_timeout"),
                "ack_poll_interval must be above 0 and at most ack_timeout",
            ));
        }
        Ok(SplunkOutput {
            name: self.name.clone(),
            urls: self
                .urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            token,
            index: self.index.clone(),
            sourcetype: self.sourcetype.clone(),
            source: self.source.clone(),
            host: self.host.clone(),
            ca_file: self.ca_file.clone(),
            client_identity,
            insecure_skip_verify: self.insecure_skip_verify,
            compression: self.compression,
            max_events,
            max_bytes,
            max_compressed_bytes,
            linger: self.linger.unwrap_or(Duration::from_millis(200)),
            concurrency,
            use_ack: self.use_ack.unwrap_or(true),
            ack_poll_interval,
            ack_timeout,
            retry_initial,
            retry_max,
            dead_letter_after: self.dead_letter_after,
            build_threads,
        })
    }
}

/// Resolves every output; with none configured, the embedded default is a
/// file output under the data dir, so Sluice still does the whole job.
pub fn resolve_outputs(
    configs: &[OutputConfig],
    data_dir: &Path,
) -> Result<Vec<Output>, ConfigError> {
    if configs.is_empty() {
        return Ok(vec![Output::File(FileOutput {
            name: "archive".into(),
            path: data_dir.join("archive"),
            rotate_bytes: 256 << 20,
            rotate_interval: Duration::from_secs(3600),
            compression: Compression::Gzip,
            build_threads: default_build_threads(),
        })]);
    }
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(configs.len());
    for (i, c) in configs.iter().enumerate() {
        let key = format!("outputs[{i}]");
        if !names.insert(c.name.as_str()) {
            return Err(invalid(
                format!("{key}.name"),
                format!("duplicate name {:?}", c.name),
            ));
        }
        out.push(c.resolve(&key, data_dir)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Outputs {
        #[serde(default)]
        outputs: Vec<OutputConfig>,
    }

    fn outputs(toml: &str) -> Result<Vec<Output>, ConfigError> {
        let c: Outputs = toml::from_str(toml).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        resolve_outputs(&c.outputs, Path::new("data"))
    }

    #[test]
    fn default_is_a_file_archive() {
        let o = outputs("").unwrap();
        assert!(matches!(&o[..], [Output::File(f)] if f.path == Path::new("data/archive")));
    }

    #[test]
    fn splunk_defaults_and_durations() {
        let o = outputs(
            "[[outputs]]\nname=\"splunk\"\ntype=\"splunk\"\nurls=[\"https://idx1:8088/\"]\ntoken=\"t\"\nlinger=\"1s\"\n",
        )
        .unwrap();
        let Output::Splunk(s) = &o[0] else {
            panic!("splunk")
        };
        assert_eq!(s.urls, vec!["https://idx1:8088".to_string()]);
        assert_eq!(s.linger, Duration::from_secs(1));
        assert_eq!(s.ack_timeout, Duration::from_secs(300));
        assert_eq!(
            (s.max_events, s.max_compressed_bytes, s.concurrency),
            (10_000, 1_000_000, 4)
        );
        assert!(s.use_ack);
        assert!(!format!("{s:?}").contains("\"t\""));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[[outputs]]\nname=\"s\"\ntype=\"splunk\"\ntoken=\"t\"\n", "outputs[0].urls"),
            ("[[outputs]]\nname=\"s\"\ntype=\"splunk\"\nurls=[\"idx1:8088\"]\ntoken=\"t\"\n", "outputs[0].urls[0]"),
            ("[[outputs]]\nname=\"s\"\ntype=\"splunk\"\nurls=[\"https://i\"]\n", "outputs[0].token"),
            ("[[outputs]]\nname=\"f\"\ntype=\"file\"\nurls=[\"https://i\"]\n", "outputs[0].urls"),
            ("[[outputs]]\nname=\"s\"\ntype=\"splunk\"\nurls=[\"https://i\"]\ntoken=\"t\"\npath=\"x\"\n", "outputs[0].path"),
            ("[[outputs]]\nname=\"s\"\ntype=\"splunk\"\nurls=[\"https://i\"]\ntoken=\"t\"\nlinger=\"soon\"\n", "soon"),
            ("[[outputs]]\nname=\"s\"\ntype=\"kafka\"\n", "kafka"),
            ("[[outputs]]\nname=\"a\"\ntype=\"file\"\n[[outputs]]\nname=\"a\"\ntype=\"file\"\n", "outputs[1].name"),
        ];
        for (toml, needle) in cases {
            let e = outputs(toml).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle} not in {e}");
        }
    }
}
