//! The `splunk` output's transport: one HTTP client per indexer (its own
//! cookie jar, so sticky load balancers see the same cookie on `/event` and
//! `/ack`), a persisted channel GUID per indexer, and Splunk's answers
//! classified (`classify.rs`) for the engine.

pub mod classify;
pub mod config;

use super::source::Route;
use super::transport::{Answer, Request, SendOutcome, Transport, TransportError};
use crate::hec::ack::AckReply;
use crate::hec::Channel;
use config::SplunkOutput;
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
    /// Their URLs (the metrics label).
    urls: Vec<String>,
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
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| file_err(&cfg.engine.name, &path, e))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(file_err(&cfg.engine.name, &path, e)),
    };
    let mine = all.entry(cfg.engine.name.clone()).or_default();
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
        crate::private_fs::create_dir(data_dir)
            .map_err(|e| file_err(&cfg.engine.name, data_dir, e))?;
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(&all).unwrap_or_default();
        crate::private_fs::write(&tmp, text).map_err(|e| file_err(&cfg.engine.name, &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| file_err(&cfg.engine.name, &path, e))?;
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
                .pool_max_idle_per_host(cfg.engine.concurrency)
                .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")));
            if let Some(ca) = &cfg.ca_file {
                let pem = std::fs::read(ca).map_err(|e| file_err(&cfg.engine.name, ca, e))?;
                for cert in reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| file_err(&cfg.engine.name, ca, e))?
                {
                    b = b.add_root_certificate(cert);
                }
            }
            if let Some((cert, key)) = &cfg.client_identity {
                let mut pem =
                    std::fs::read(cert).map_err(|e| file_err(&cfg.engine.name, cert, e))?;
                pem.extend(std::fs::read(key).map_err(|e| file_err(&cfg.engine.name, key, e))?);
                let id = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| file_err(&cfg.engine.name, cert, e))?;
                b = b.identity(id);
            }
            if cfg.insecure_skip_verify {
                b = b.danger_accept_invalid_certs(true);
            }
            let client = b.build().map_err(|e| SplunkSetupError::Client {
                output: cfg.engine.name.clone(),
                message: e.to_string(),
            })?;
            indexers.push(Indexer {
                url: url.clone(),
                channel,
                client,
            });
        }
        Ok(SplunkClient {
            name: cfg.engine.name.clone(),
            urls: indexers.iter().map(|i| i.url.clone()).collect(),
            indexers,
            auth: format!("Splunk {}", cfg.token.expose()),
            use_ack: cfg.use_ack,
            gzip: cfg.engine.limits.compression == super::batch::Compression::Gzip,
        })
    }

    fn post(&self, indexer: usize, path: &str) -> reqwest::RequestBuilder {
        let ix = &self.indexers[indexer];
        ix.client
            .post(format!("{}{path}", ix.url))
            .header("Authorization", &self.auth)
            .header("X-Splunk-Request-Channel", ix.channel.to_string())
    }

    async fn send_batch(&self, indexer: usize, request: Request) -> Answer {
        let path = match (request.route, request.query.as_deref()) {
            (Route::Event, _) => "/services/collector/event".to_string(),
            (Route::Raw, Some(q)) if !q.is_empty() => format!("/services/collector/raw?{q}"),
            (Route::Raw, _) => "/services/collector/raw".to_string(),
        };
        let mut req = self.post(indexer, &path).body(request.body);
        if self.gzip {
            req = req.header("Content-Encoding", "gzip");
        }
        let no_answer = |e: reqwest::Error| {
            tracing::debug!(output = %self.name, indexer = %self.indexers[indexer].url, error = %e, "send failed");
            Answer {
                outcome: SendOutcome::Retry { after: None },
                code: "error".into(),
                detail: Some(format!("no answer: {}", error_chain(&e))),
            }
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return no_answer(e),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return no_answer(e),
        };
        let answer = classify::classify(status, &headers, &body, self.use_ack);
        if status != 200 {
            tracing::debug!(output = %self.name, status, answer = %String::from_utf8_lossy(&body), "indexer refused a batch");
        }
        answer
    }

    /// Posts a JSON body to `path`; the answer's body when it is 200.
    async fn post_json(
        &self,
        indexer: usize,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<bytes::Bytes, TransportError> {
        let resp = self
            .post(indexer, path)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(TransportError::Http)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(TransportError::Http)?;
        if status != 200 {
            return Err(TransportError::Status {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(body)
    }

    async fn poll(&self, indexer: usize, ids: Vec<u64>) -> Result<AckReply, TransportError> {
        let body = serde_json::json!({ "acks": ids }).to_string();
        let reply = self
            .post_json(indexer, "/services/collector/ack", body)
            .await?;
        serde_json::from_slice::<AckReply>(&reply).map_err(TransportError::Parse)
    }

    async fn stats(&self, indexer: usize, event: bytes::Bytes) -> Result<(), TransportError> {
        self.post_json(indexer, "/services/collector/event", event)
            .await
            .map(drop)
    }

    async fn health(&self, indexer: usize) -> bool {
        let ix = &self.indexers[indexer];
        ix.client
            .get(format!("{}/services/collector/health", ix.url))
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 200)
    }
}

impl Transport for SplunkClient {
    fn kind(&self) -> &'static str {
        "splunk"
    }

    fn destinations(&self) -> &[String] {
        &self.urls
    }

    fn allows_raw(&self) -> bool {
        true
    }

    fn send(
        &self,
        dest: usize,
        request: Request,
    ) -> impl std::future::Future<Output = Answer> + Send {
        self.send_batch(dest, request)
    }

    /// An unparseable answer is an error, never counted as delivered.
    fn poll_acks(
        &self,
        dest: usize,
        ids: Vec<u64>,
    ) -> impl std::future::Future<Output = Result<AckReply, TransportError>> + Send {
        self.poll(dest, ids)
    }

    /// `GET /services/collector/health`: true on 200.
    fn healthy(&self, dest: usize) -> impl std::future::Future<Output = bool> + Send {
        self.health(dest)
    }

    fn close(&self) -> Result<(), TransportError> {
        Ok(())
    }

    /// `POST /services/collector/event` on the indexer's channel; its ack
    /// id, if any, is not polled (the event is a report, not data).
    fn send_stats(
        &self,
        dest: usize,
        event: bytes::Bytes,
    ) -> impl std::future::Future<Output = Result<(), TransportError>> + Send {
        self.stats(dest, event)
    }
}

/// An error and its sources on one line: reqwest's own text rarely says
/// what failed (refused, reset, certificate).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
