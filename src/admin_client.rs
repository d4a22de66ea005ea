//! How the CLI reaches a queue: sled locks its store, so the CLI opens it
//! directly when Sluice is stopped and asks the running Sluice's admin API
//! (on the metrics listener) when it is not.

use crate::app::ADMIN_ADDR_FILE;
use crate::config::{Config, ConfigError};
use crate::queue::{DeadLetter, Queue, QueueError, QueueLimits, QueueStats};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// A dead letter with its sequence number (the admin API's JSON shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeqLetter {
    /// Sequence number (for `show`, `replay`, `purge`).
    pub seq: u64,
    /// The letter.
    #[serde(flatten)]
    pub letter: DeadLetter,
}

/// The CLI could not reach the queue.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No store at the configured path.
    #[error("no queue at {0}")]
    Missing(String),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The config's outputs are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The running Sluice did not answer as expected.
    #[error("queue {path} is in use; asking the running Sluice at {url}: {message}")]
    Api {
        /// Store path.
        path: String,
        /// URL asked.
        url: String,
        /// What went wrong.
        message: String,
    },
}

/// Either the store itself or the running Sluice's admin API.
pub enum QueueAccess {
    /// Sluice is stopped: the store, opened directly.
    Direct(Box<Queue>),
    /// Sluice runs: its admin API base URL.
    Running {
        /// `http://addr`.
        base: String,
        /// Store path (for messages).
        path: String,
    },
}

fn admin_addr(config: &Config) -> SocketAddr {
    let recorded = std::fs::read_to_string(config.data_dir.join(ADMIN_ADDR_FILE))
        .ok()
        .and_then(|a| a.trim().parse::<SocketAddr>().ok());
    let mut addr = recorded.unwrap_or(config.server.metrics_listen);
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr
}

impl QueueAccess {
    /// Opens the store, or finds the running Sluice that holds it.
    pub fn open(config: &Config) -> Result<QueueAccess, AdminError> {
        let path = config.queue_path();
        if !path.exists() {
            return Err(AdminError::Missing(path.display().to_string()));
        }
        let limits = QueueLimits {
            max_bytes: config.queue.max_bytes,
            min_free_bytes: 0,
            cache_bytes: 8 << 20,
        };
        match Queue::open(&path, limits) {
            Ok(q) => Ok(QueueAccess::Direct(Box::new(q))),
            Err(QueueError::Locked { .. }) => Ok(QueueAccess::Running {
                base: format!("http://{}", admin_addr(config)),
                path: path.display().to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        post: bool,
        path_q: &str,
    ) -> Result<T, AdminError> {
        let QueueAccess::Running { base, path } = self else {
            return Err(AdminError::Missing("admin API".into()));
        };
        let url = format!("{base}{path_q}");
        let api = |message: String| AdminError::Api {
            path: path.clone(),
            url: url.clone(),
            message,
        };
        let client = reqwest::Client::new();
        let req = if post {
            client.post(&url)
        } else {
            client.get(&url)
        };
        let resp = req
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| api(e.to_string()))?;
        resp.json::<T>().await.map_err(|e| api(e.to_string()))
    }

    /// Records, events, bytes, oldest age.
    pub async fn stats(&self) -> Result<QueueStats, AdminError> {
        match self {
            QueueAccess::Direct(q) => Ok(q.stats()),
            QueueAccess::Running { .. } => self.call(false, "/admin/queue/stats").await,
        }
    }

    /// Dead letters, optionally of one output or one sequence number.
    pub async fn dead(
        &self,
        seq: Option<u64>,
        output: Option<&str>,
    ) -> Result<Vec<SeqLetter>, AdminError> {
        match self {
            QueueAccess::Direct(q) => Ok(q
                .dead_selected(seq, output)?
                .into_iter()
                .map(|(seq, letter)| SeqLetter { seq, letter })
                .collect()),
            QueueAccess::Running { .. } => {
                self.call(false, &format!("/admin/dead{}", query(seq, output)))
                    .await
            }
        }
    }

    /// Replays dead letters to the output that gave up on them.
    pub async fn replay(
        &self,
        config: &Config,
        seq: Option<u64>,
        output: Option<&str>,
    ) -> Result<u64, AdminError> {
        match self {
            QueueAccess::Direct(q) => {
                let outputs = config.resolve_outputs()?;
                let names: Vec<&str> = outputs.iter().map(|o| o.name()).collect();
                Ok(q.replay_dead(seq, output, &names).await?)
            }
            QueueAccess::Running { .. } => {
                let v: serde_json::Value = self
                    .call(true, &format!("/admin/dead/replay{}", query(seq, output)))
                    .await?;
                Ok(v["replayed"].as_u64().unwrap_or(0))
            }
        }
    }

    /// Deletes dead letters.
    pub async fn purge(&self, seq: Option<u64>, output: Option<&str>) -> Result<u64, AdminError> {
        match self {
            QueueAccess::Direct(q) => Ok(q.purge_dead(seq, output)?),
            QueueAccess::Running { .. } => {
                let v: serde_json::Value = self
                    .call(true, &format!("/admin/dead/purge{}", query(seq, output)))
                    .await?;
                Ok(v["purged"].as_u64().unwrap_or(0))
            }
        }
    }
}

fn query(seq: Option<u64>, output: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let Some(s) = seq {
        q.append_pair("seq", &s.to_string());
    }
    if let Some(o) = output {
        q.append_pair("output", o);
    }
    let q = q.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}
