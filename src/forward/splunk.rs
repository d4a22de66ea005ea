//! The HEC client of a `splunk` output: one HTTP client per indexer (its own
//! cookie jar, so sticky load balancers see the same cookie on `/event` and
//! `/ack`), a persisted channel GUID per indexer, and Splunk's answers
//! classified for the forwarding loop.

use super::source::Route;
use crate::config::outputs::SplunkOutput;
use crate::hec::ack::AckReply;
use crate::hec::Channel;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The client could not be set up; names the file.
#[derive(Debug, thiserror::Error)]
pub enum SplunkSetupError {
    /// A TLS or channel file could not be read or written.
    #[error("output {output}: {path}: {message}")]
    File {
        /// Output name.
        output: String,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// reqwest refused the settings.
    #[error("output {output}: HTTP client: {message}")]
    Client {
        /// Output name.
        output: String,
        /// reqwest's message.
        message: String,
    },
}

/// What an indexer made of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted; no indexer ack to wait for (`use_ack = false`).
    Delivered,
    /// Accepted; delivered once this ack id turns true.
    AckPending(u64),
    /// Accepted without an ackId although acks are on (Splunk Cloud tokens).
    AckUnavailable,
    /// 400 naming the first bad event: events before it were indexed.
    InvalidEvent {
        /// `invalid-event-number`.
        number: u64,
        /// Splunk's answer, for the dead letter.
        reason: String,
    },
    /// Refused for its content or size (400, 413): split, or dead-letter a single event.
    Rejected {
        /// HTTP status.
        status: u16,
        /// Splunk's answer.
        reason: String,
    },
    /// 401/403: the token is refused; pause, keep everything.
    Unauthorized {
        /// HTTP status.
        status: u16,
    },
    /// Transient (429, 503, 5xx, timeout, reset): try again later.
    Retry {
        /// `Retry-After`, when given.
        after: Option<Duration>,
        /// For logs and metrics (`503`, `error`).
        code: String,
    },
}

#[derive(Deserialize)]
struct HecAnswer {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    text: Option<String>,
    #[serde(rename = "ackId", default)]
    ack_id: Option<u64>,
    #[serde(rename = "invalid-event-number", default)]
    invalid_event_number: Option<u64>,
}

/// One indexer.
pub struct Indexer {
    /// Base URL (also the metrics label).
    pub url: String,
    /// The channel sent on every request to it.
    pub channel: Channel,
    client: reqwest::Client,
}

/// The client of one `splunk` output.
pub struct SplunkClient {
    /// Output name.
    pub name: String,
    /// Indexers in config order.
    pub indexers: Vec<Indexer>,
    auth: String,
    use_ack: bool,
    gzip: bool,
}

fn file_err(output: &str, path: &Path, message: impl std::fmt::Display) -> SplunkSetupError {
    SplunkSetupError::File {
        output: output.to_string(),
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Channel GUIDs per output and indexer URL, kept across restarts.
fn channels(data_dir: &Path, cfg: &SplunkOutput) -> Result<Vec<Channel>, SplunkSetupError> {
    let path = data_dir.join("channels.json");
    let mut all: BTreeMap<String, BTreeMap<String, String>> = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| file_err(&cfg.name, &path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(file_err(&cfg.name, &path, e)),
    };
    let mine = all.entry(cfg.name.clone()).or_default();
    let mut changed = false;
    let mut out = Vec::new();
    for url in &cfg.urls {
        let ch = match mine.get(url).and_then(|c| Channel::parse(c)) {
            Some(c) => c,
            None => {
                let c = Channel::random();
                mine.insert(url.clone(), c.to_string());
                changed = true;
                c
            }
        };
        out.push(ch);
    }
    if changed {
        crate::private_fs::create_dir(data_dir).map_err(|e| file_err(&cfg.name, data_dir, e))?;
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(&all).unwrap_or_default();
        crate::private_fs::write(&tmp, text).map_err(|e| file_err(&cfg.name, &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| file_err(&cfg.name, &path, e))?;
    }
    Ok(out)
}

impl SplunkClient {
    /// Builds the clients; channels are loaded from (or added to) `<data_dir>/channels.json`.
    pub fn new(cfg: &SplunkOutput, data_dir: &Path) -> Result<SplunkClient, SplunkSetupError> {
        let channels = channels(data_dir, cfg)?;
        let mut indexers = Vec::new();
        for (url, channel) in cfg.urls.iter().zip(channels) {
            let mut b = reqwest::Client::builder()
                .use_rustls_tls()
                .cookie_store(true)
                .timeout(Duration::from_secs(60))
                .connect_timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(cfg.concurrency)
                .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")));
            if let Some(ca) = &cfg.ca_file {
                let pem = std::fs::read(ca).map_err(|e| file_err(&cfg.name, ca, e))?;
                for cert in reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| file_err(&cfg.name, ca, e))?
                {
                    b = b.add_root_certificate(cert);
                }
            }
            if let Some((cert, key)) = &cfg.client_identity {
                let mut pem = std::fs::read(cert).map_err(|e| file_err(&cfg.name, cert, e))?;
                pem.extend(std::fs::read(key).map_err(|e| file_err(&cfg.name, key, e))?);
                let id =
                    reqwest::Identity::from_pem(&pem).map_err(|e| file_err(&cfg.name, cert, e))?;
                b = b.identity(id);
            }
            if cfg.insecure_skip_verify {
                b = b.danger_accept_invalid_certs(true);
            }
            let client = b.build().map_err(|e| SplunkSetupError::Client {
                output: cfg.name.clone(),
                message: e.to_string(),
            })?;
            indexers.push(Indexer {
                url: url.clone(),
                channel,
                client,
            });
        }
        Ok(SplunkClient {
            name: cfg.name.clone(),
            indexers,
            auth: format!("Splunk {}", cfg.token.expose()),
            use_ack: cfg.use_ack,
            gzip: cfg.compression == crate::config::outputs::Compression::Gzip,
        })
    }

    fn post(&self, indexer: usize, path: &str) -> reqwest::RequestBuilder {
        let ix = &self.indexers[indexer];
        ix.client
            .post(format!("{}{path}", ix.url))
            .header("Authorization", &self.auth)
            .header("X-Splunk-Request-Channel", ix.channel.to_string())
    }

    /// Sends one batch body: HEC JSON to `/event`, or lines to `/raw` with
    /// their metadata as query parameters.
    pub async fn send(
        &self,
        indexer: usize,
        body: bytes::Bytes,
        route: Route,
        query: Option<&str>,
    ) -> (SendOutcome, String) {
        let path = match (route, query) {
            (Route::Event, _) => "/services/collector/event".to_string(),
            (Route::Raw, Some(q)) if !q.is_empty() => format!("/services/collector/raw?{q}"),
            (Route::Raw, _) => "/services/collector/raw".to_string(),
        };
        let mut req = self.post(indexer, &path).body(body);
        if self.gzip {
            req = req.header("Content-Encoding", "gzip");
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(output = %self.name, error = %e, "send failed");
                return (
                    SendOutcome::Retry {
                        after: None,
                        code: "error".into(),
                    },
                    "error".into(),
                );
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        let answer: Option<HecAnswer> = serde_json::from_str(&text).ok();
        let code = status.to_string();
        let outcome = match status {
            200 => match (self.use_ack, answer.and_then(|a| a.ack_id)) {
                (false, _) => SendOutcome::Delivered,
                (true, Some(id)) => SendOutcome::AckPending(id),
                (true, None) => SendOutcome::AckUnavailable,
            },
            400 => match answer.as_ref().and_then(|a| a.invalid_event_number) {
                Some(number) => SendOutcome::InvalidEvent {
                    number,
                    reason: text.clone(),
                },
                None => SendOutcome::Rejected {
                    status,
                    reason: text.clone(),
                },
            },
            413 => SendOutcome::Rejected {
                status,
                reason: text.clone(),
            },
            401 | 403 => SendOutcome::Unauthorized { status },
            _ => SendOutcome::Retry {
                after: retry_after,
                code: code.clone(),
            },
        };
        if let Some(a) = serde_json::from_str::<HecAnswer>(&text)
            .ok()
            .filter(|_| status != 200)
        {
            tracing::debug!(output = %self.name, status, code = ?a.code, text = ?a.text, "indexer refused a batch");
        }
        (outcome, code)
    }

    /// Polls `/services/collector/ack`; an unparseable answer is an error
    /// (never counted as delivered).
    pub async fn poll_acks(&self, indexer: usize, ids: &[u64]) -> Result<AckReply, String> {
        let body = serde_json::json!({ "acks": ids }).to_string();
        let resp = self
            .post(indexer, "/services/collector/ack")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("ack poll answered {status}: {text}"));
        }
        serde_json::from_str::<AckReply>(&text).map_err(|e| format!("unparseable ack reply: {e}"))
    }

    /// `GET /services/collector/health`: true on 200.
    pub async fn healthy(&self, indexer: usize) -> bool {
        let ix = &self.indexers[indexer];
        ix.client
            .get(format!("{}/services/collector/health", ix.url))
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 200)
    }
}
