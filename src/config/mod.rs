//! The TOML configuration: `Config` is the file as written (sections whose
//! types live beside the components that own them: `[enrich]` in
//! `enrich/config.rs`, `[[outputs]]` in `forward/config.rs` and each output
//! type's folder); [`Settings`] is it parsed, checked and resolved once —
//! defaults applied, secrets read, outputs resolved, the asset table loaded —
//! and is what `run`, `validate` and the queue commands get.

use crate::enrich::assets::AssetError;
use crate::enrich::config::{check_system, EnrichConfig};
use crate::enrich::Enricher;
use crate::forward::config::{resolve_outputs, Output, OutputConfig};
use crate::hec::TokenSecret;
use crate::rollup::config::{FinalPass, RollupConfig, RollupSettings};
use crate::setting::{self, Invalid, Secrets};
use serde::Deserialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why a configuration could not be used; always names the file or key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type…).
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid config{}: `{key}`: {message}", origin(.path))]
    Invalid {
        /// The config file, when there is one.
        path: Option<PathBuf>,
        /// The offending key, e.g. `tokens[1].ack`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl From<Invalid> for ConfigError {
    fn from(e: Invalid) -> ConfigError {
        ConfigError::Invalid {
            path: None,
            key: e.key,
            message: e.message,
        }
    }
}

fn origin(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" file {}", p.display()))
        .unwrap_or_default()
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Generated certificates, token, queue and channel ids live here.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The HEC listener.
    #[serde(default)]
    pub server: ServerConfig,
    /// Accepted HEC tokens; none means one generated on first start.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// The durable queue.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Where queued events go; none means a file archive under the data dir.
    #[serde(default)]
    pub outputs: Vec<OutputConfig>,
    /// Enrichment of network analytics samples on the way out.
    #[serde(default)]
    pub enrich: EnrichConfig,
    /// Rollups of samples into metric events, for outputs with `rollups = true`.
    #[serde(default)]
    pub rollup: RollupConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

/// `[server]`: the HEC listener and the metrics listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// This node's name: events' default `host`, rollup ids, `s3` object
    /// keys (default: the hostname).
    pub node_name: Option<String>,
    /// Address of the HEC listener.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// PEM certificate chain; generated into the data dir when unset.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle; when set, clients must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
    /// Serve TLS (default). `false` serves plain HTTP, with a warning.
    #[serde(default = "yes")]
    pub tls: bool,
    /// Address of the Prometheus `/metrics` listener (read-only; the admin API is a Unix socket in the data dir).
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: SocketAddr,
    /// Cap on a request body as received (compressed): above it, 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Cap on a request body after gunzip: above it, 413.
    #[serde(default = "default_max_decoded_bytes")]
    pub max_decoded_bytes: u64,
    /// Largest `/event` object or `/raw` line: an object over it is refused
    /// (400 code 6 with `invalid-event-number`); a line over it is accepted
    /// and becomes a dead letter with reason `oversize` on the way out.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: u64,
    /// How long a request's body may take to arrive once its headers did;
    /// after it, 408 and nothing is queued.
    #[serde(default = "default_body_timeout", with = "humantime_serde")]
    pub body_timeout: Duration,
    /// How long `/health` and new requests answer 503 code 23 before the listener closes.
    #[serde(default = "default_shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// HTTP worker threads; default: one per CPU.
    pub workers: Option<usize>,
    /// Pending client ack ids kept per channel; the oldest is dropped beyond it.
    #[serde(default = "default_ack_max_per_channel")]
    pub ack_max_per_channel: usize,
    /// Pending client ack ids kept in all; beyond it, 503 code 9.
    #[serde(default = "default_ack_max_total")]
    pub ack_max_total: usize,
    /// A channel unused this long is forgotten with its pending ack ids.
    #[serde(default = "default_ack_channel_idle", with = "humantime_serde")]
    pub ack_channel_idle: Duration,
    /// Peers allowed on the HEC listener (empty: any); others are disconnected.
    #[serde(default)]
    pub allow_cidrs: Vec<ipnet::IpNet>,
    /// Basic-auth user on the metrics listener (with `metrics_password`).
    pub metrics_user: Option<String>,
    /// Basic-auth password on the metrics listener.
    pub metrics_password: Option<TokenSecret>,
    /// Environment variable holding `metrics_password`.
    pub metrics_password_env: Option<String>,
    /// Serve the metrics listener over TLS, with the HEC certificate.
    #[serde(default)]
    pub metrics_tls: bool,
    /// Require client certificates signed by this CA on the metrics listener.
    pub metrics_client_ca: Option<PathBuf>,
}

/// A token's client-facing acknowledgement mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    /// No acks: `/ack` answers code 14 and channels are optional.
    #[default]
    None,
    /// An ack id turns true once the request is flushed to the queue.
    Durable,
    /// An ack id turns true once every output delivered every event of it.
    Delivered,
}

/// `[[tokens]]`: one accepted HEC token and the defaults for its events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Name used in metrics, logs and queue records (never the secret).
    pub name: String,
    /// The token value (redacted in `Debug`).
    pub token: Option<TokenSecret>,
    /// Environment variable holding the token value.
    pub token_env: Option<String>,
    /// Default index for events from this token.
    pub index: Option<String>,
    /// Default sourcetype.
    pub sourcetype: Option<String>,
    /// Default source.
    pub source: Option<String>,
    /// Acknowledgement mode.
    #[serde(default)]
    pub ack: AckMode,
    /// Pending client ack ids this token may hold; beyond it its requests get
    /// 503 code 9. Default: `server.ack_max_total` divided by the number of
    /// ack-enabled tokens.
    pub ack_max: Option<usize>,
    /// Accept the token as `?token=` in the query string.
    #[serde(default)]
    pub allow_query_token: bool,
    /// Indexes events may name; empty means any.
    #[serde(default)]
    pub allowed_indexes: Vec<String>,
    /// Refuse this token with 403 code 1.
    #[serde(default)]
    pub disabled: bool,
    /// This token's `enrich.final_pass_system` (e.g. `dosd` for Spectrum-only traffic).
    pub final_pass_system: Option<String>,
}

/// `[queue]`: the durable queue and its watermarks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Directory of the sled store; default `<data_dir>/queue`.
    pub path: Option<PathBuf>,
    /// Stored bytes above which requests get 503 code 9 (accepting again below 90 %).
    #[serde(default = "default_queue_max_bytes")]
    pub max_bytes: u64,
    /// Free space on the queue's filesystem below which requests get 503 code 9.
    #[serde(default = "default_min_free_bytes")]
    pub min_free_bytes: u64,
    /// sled page cache size; memory does not grow with the backlog.
    #[serde(default = "default_cache_bytes")]
    pub cache_bytes: u64,
}

/// `[log]`: level and format of the service log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace` or a tracing filter; `SLUICE_LOG` overrides.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `text` or `json`.
    #[serde(default)]
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn yes() -> bool {
    true
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8088))
}
fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9108))
}
fn default_max_body_bytes() -> u64 {
    64 << 20
}
fn default_max_decoded_bytes() -> u64 {
    1 << 30
}
fn default_max_event_bytes() -> u64 {
    1 << 20
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(5)
}
fn default_ack_max_per_channel() -> usize {
    100_000
}
fn default_ack_max_total() -> usize {
    1_000_000
}
fn default_ack_channel_idle() -> Duration {
    Duration::from_secs(600)
}
fn default_queue_max_bytes() -> u64 {
    10 << 30
}
fn default_min_free_bytes() -> u64 {
    1 << 30
}
fn default_cache_bytes() -> u64 {
    32 << 20
}
fn default_log_level() -> String {
    "info".to_string()
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            node_name: None,
            listen: default_listen(),
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            tls: true,
            metrics_listen: default_metrics_listen(),
            max_body_bytes: default_max_body_bytes(),
            max_decoded_bytes: default_max_decoded_bytes(),
            max_event_bytes: default_max_event_bytes(),
            body_timeout: default_body_timeout(),
            shutdown_grace: default_shutdown_grace(),
            workers: None,
            ack_max_per_channel: default_ack_max_per_channel(),
            ack_max_total: default_ack_max_total(),
            ack_channel_idle: default_ack_channel_idle(),
            allow_cidrs: Vec::new(),
            metrics_user: None,
            metrics_password: None,
            metrics_password_env: None,
            metrics_tls: false,
            metrics_client_ca: None,
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            path: None,
            max_bytes: default_queue_max_bytes(),
            min_free_bytes: default_min_free_bytes(),
            cache_bytes: default_cache_bytes(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_log_level(),
            format: LogFormat::Text,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: default_data_dir(),
            server: ServerConfig::default(),
            tokens: Vec::new(),
            queue: QueueConfig::default(),
            outputs: Vec::new(),
            enrich: EnrichConfig::default(),
            rollup: RollupConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// A token ready for use: its secret resolved from the file or environment.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token's settings.
    pub config: TokenConfig,
    /// The token value.
    pub secret: TokenSecret,
}

impl AsRef<Token> for Token {
    fn as_ref(&self) -> &Token {
        self
    }
}

/// The configuration resolved once.
pub struct Settings {
    /// The file it came from (`None`: the embedded defaults).
    pub path: Option<PathBuf>,
    /// Generated certificates, token, queue and channel ids live here.
    pub data_dir: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// Configured tokens with their secrets; none means one generated in the
    /// data dir on first start.
    pub tokens: Vec<Token>,
    /// Where the queue's sled store lives.
    pub queue_path: PathBuf,
    /// `[queue]`.
    pub queue: QueueConfig,
    /// The outputs (the embedded file archive when none is configured).
    pub outputs: Vec<Output>,
    /// `[enrich]`.
    pub enrich: EnrichConfig,
    /// The enricher built from it, asset table loaded (`None`: enrichment off).
    pub enricher: Option<Enricher>,
    /// `[rollup]`, resolved.
    pub rollup: Arc<RollupSettings>,
    /// `[log]`.
    pub log: LogConfig,
    /// `server.metrics_password` resolved (set with `metrics_user`).
    pub metrics_password: Option<TokenSecret>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("path", &self.path)
            .field("data_dir", &self.data_dir)
            .field("server", &self.server)
            .field("tokens", &self.tokens)
            .field("queue_path", &self.queue_path)
            .field("queue", &self.queue)
            .field("outputs", &self.outputs)
            .field("enrich", &self.enrich)
            .field("enricher", &self.enricher.is_some())
            .field("log", &self.log)
            .finish()
    }
}

/// A TOML error as "line L, column C: what": toml's own text quotes the
/// offending line, which may hold a token or password, and this message
/// reaches logs, the admin socket and the journal.
fn parse_message(e: &toml::de::Error, text: &str) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", e.message())
        }
        None => e.message().to_string(),
    }
}

impl Config {
    /// Parses TOML text (types and keys; values are checked by [`Settings::resolve`]).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: parse_message(&e, text),
        })
    }

    /// Checks every value of its own sections that the types alone cannot.
    fn check(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if let Some(n) = &s.node_name {
            // It becomes part of object keys and ids: a path segment.
            let ok = !n.is_empty()
                && n.len() <= 64
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                return Err(invalid(
                    "server.node_name",
                    "1 to 64 characters from a-z, A-Z, 0-9, -, _ and .",
                ));
            }
        }
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            return Err(invalid(
                if s.tls_cert.is_some() {
                    "server.tls_key"
                } else {
                    "server.tls_cert"
                },
                "tls_cert and tls_key must be set together",
            ));
        }
        if !s.tls && s.client_ca.is_some() {
            return Err(invalid(
                "server.client_ca",
                "client certificates need tls = true",
            ));
        }
        if s.max_body_bytes == 0 {
            return Err(invalid("server.max_body_bytes", "must be above 0"));
        }
        if s.max_decoded_bytes < s.max_body_bytes.min(1 << 20) {
            return Err(invalid(
                "server.max_decoded_bytes",
                "must be at least 1 MiB (or max_body_bytes)",
            ));
        }
        if s.max_event_bytes < 1024 || s.max_event_bytes > s.max_decoded_bytes {
            return Err(invalid(
                "server.max_event_bytes",
                "must be at least 1 KiB and at most max_decoded_bytes",
            ));
        }
        if s.body_timeout < Duration::from_secs(1) {
            return Err(invalid("server.body_timeout", "must be at least 1s"));
        }
        if s.workers == Some(0) {
            return Err(invalid("server.workers", "must be above 0"));
        }
        if s.ack_max_per_channel == 0 || s.ack_max_total < s.ack_max_per_channel {
            return Err(invalid(
                "server.ack_max_total",
                "ack_max_per_channel must be above 0 and at most ack_max_total",
            ));
        }
        if s.metrics_tls && !s.tls {
            return Err(invalid(
                "server.metrics_tls",
                "the metrics listener serves the HEC certificate: needs tls = true",
            ));
        }
        if s.metrics_client_ca.is_some() && !s.metrics_tls {
            return Err(invalid(
                "server.metrics_client_ca",
                "client certificates need metrics_tls = true",
            ));
        }
        let password = s.metrics_password.is_some() || s.metrics_password_env.is_some();
        match (&s.metrics_user, password) {
            (Some(u), _) if u.is_empty() || u.contains(':') => {
                return Err(invalid(
                    "server.metrics_user",
                    "must be non-empty without ':'",
                ))
            }
            (Some(_), false) => {
                return Err(invalid(
                    "server.metrics_password",
                    "metrics_user needs metrics_password or metrics_password_env",
                ))
            }
            (None, true) => {
                return Err(invalid(
                    "server.metrics_user",
                    "metrics_password needs metrics_user",
                ))
            }
            _ => {}
        }
        if s.listen == s.metrics_listen && s.listen.port() != 0 {
            return Err(invalid(
                "server.metrics_listen",
                "must differ from server.listen",
            ));
        }
        if self.queue.max_bytes == 0 {
            return Err(invalid("queue.max_bytes", "must be above 0"));
        }
        if self.queue.cache_bytes < (1 << 20) {
            return Err(invalid("queue.cache_bytes", "must be at least 1 MiB"));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid("log.level", "not a level or tracing filter"));
        }
        self.enrich.validate()?;
        let mut names = HashSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let key = |k: &str| format!("tokens[{i}].{k}");
            if t.name.trim().is_empty() {
                return Err(invalid(key("name"), "must not be empty"));
            }
            if !names.insert(t.name.as_str()) {
                return Err(invalid(key("name"), format!("duplicate name {:?}", t.name)));
            }
            match t.ack_max {
                Some(_) if t.ack == AckMode::None => {
                    return Err(invalid(
                        key("ack_max"),
                        "needs ack = \"durable\" or \"delivered\"",
                    ))
                }
                Some(n) if n == 0 || n > s.ack_max_total => {
                    return Err(invalid(
                        key("ack_max"),
                        "must be above 0 and at most server.ack_max_total",
                    ))
                }
                _ => {}
            }
            if let Some(system) = &t.final_pass_system {
                check_system(&key("final_pass_system"), system)?;
            }
            if let Some(index) = &t.index {
                if !t.allowed_indexes.is_empty() && !t.allowed_indexes.contains(index) {
                    return Err(invalid(key("index"), "not in allowed_indexes"));
                }
            }
        }
        Ok(())
    }

    /// Resolves every token's secret (reading `token_env` variables).
    fn resolve_tokens(&self, secrets: Secrets) -> Result<Vec<Token>, ConfigError> {
        let mut tokens: Vec<Token> = Vec::with_capacity(self.tokens.len());
        for (i, t) in self.tokens.iter().enumerate() {
            let prefix = format!("tokens[{i}].");
            let secret =
                setting::secret(t.token.as_ref(), t.token_env.as_deref(), &prefix, secrets)?;
            let repeated = tokens.iter().any(|s| s.secret.matches(secret.expose()));
            if secrets == Secrets::Read && repeated {
                return Err(invalid(
                    format!("{prefix}token"),
                    "same value as an earlier token",
                ));
            }
            tokens.push(Token {
                config: t.clone(),
                secret,
            });
        }
        Ok(tokens)
    }
}

impl Settings {
    /// Reads a config file and resolves it (`secrets`: whether to read them).
    pub fn load(path: &Path, secrets: Secrets) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Settings::from_file_text(path, &text, secrets)
    }

    /// Resolves `text`, read from `path` (errors name it).
    pub fn from_file_text(
        path: &Path,
        text: &str,
        secrets: Secrets,
    ) -> Result<Settings, ConfigError> {
        let named = |e: ConfigError| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            ConfigError::Invalid { key, message, .. } => ConfigError::Invalid {
                path: Some(path.to_path_buf()),
                key,
                message,
            },
            other => other,
        };
        let config = Config::parse(text).map_err(named)?;
        let mut settings = Settings::resolve(config, secrets).map_err(named)?;
        settings.path = Some(path.to_path_buf());
        Ok(settings)
    }

    /// Parses TOML text and resolves it (tests and benchmarks).
    pub fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::resolve(Config::parse(text)?, Secrets::Read)
    }

    /// The embedded defaults, resolved.
    pub fn embedded() -> Result<Settings, ConfigError> {
        Settings::resolve(Config::default(), Secrets::Read)
    }

    /// Checks and resolves everything, once.
    pub fn resolve(config: Config, secrets: Secrets) -> Result<Settings, ConfigError> {
        config.check()?;
        let tokens = config.resolve_tokens(secrets)?;
        let s = &config.server;
        let metrics_password = match &s.metrics_user {
            Some(_) => Some(setting::named_secret(
                s.metrics_password.as_ref(),
                s.metrics_password_env.as_deref(),
                "server.metrics_password",
                secrets,
            )?),
            None => None,
        };
        let per_token = final_pass_overrides(&tokens);
        let final_pass = FinalPass {
            default: config.enrich.final_pass_system.clone(),
            per_token: per_token.iter().cloned().collect(),
        };
        let rollup = Arc::new(config.rollup.resolve(final_pass)?);
        let outputs = resolve_outputs(&config.outputs, &config.data_dir, secrets, &rollup)?;
        let assets_err = |e: AssetError| invalid("enrich.assets", e.to_string());
        let enricher = Enricher::new(&config.enrich, &per_token).map_err(assets_err)?;
        if let (None, Some(path)) = (&enricher, &config.enrich.assets) {
            // Enrichment is off, but a table named is still checked.
            crate::enrich::assets::AssetTable::load(path).map_err(assets_err)?;
        }
        let queue_path = config
            .queue
            .path
            .clone()
            .unwrap_or_else(|| config.data_dir.join("queue"));
        Ok(Settings {
            path: None,
            data_dir: config.data_dir,
            server: config.server,
            tokens,
            queue_path,
            queue: config.queue,
            outputs,
            enrich: config.enrich,
            enricher,
            rollup,
            log: config.log,
            metrics_password,
        })
    }

    /// (token name, `final_pass_system`) for the tokens that set one.
    pub fn final_pass_overrides(&self) -> Vec<(String, String)> {
        final_pass_overrides(&self.tokens)
    }
}

fn final_pass_overrides(tokens: &[Token]) -> Vec<(String, String)> {
    tokens
        .iter()
        .filter_map(|t| Some((t.config.name.clone(), t.config.final_pass_system.clone()?)))
        .collect()
}

pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: None,
        key: key.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests;
