//! How the CLI reaches a queue: sled locks its store, so the CLI opens it
//! directly when Sluice is stopped and asks the running Sluice over the admin
//! socket when it is not.

use super::{
    socket_path, ApiError, Drained, Purged, Reloaded, Replayed, Select, SeqLetter, DEAD_PATH,
    DEAD_PURGE_PATH, DEAD_REPLAY_PATH, DRAIN_PATH, QUEUE_STATS_PATH, QUEUE_VERIFY_PATH,
    RELOAD_PATH,
};
use crate::config::Settings;
use crate::forward::verify::{verify, VerifyReport};
use crate::queue::{Queue, QueueError, QueueLimits, QueueStats};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The CLI could not reach the queue.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No store at the configured path.
    #[error("no queue at {0}")]
    Missing(String),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The running Sluice did not answer as expected.
    #[error("queue {path} is in use; asking the running Sluice on {socket}: {message}")]
    Api {
        /// Store path.
        path: String,
        /// The admin socket.
        socket: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Either the store itself or the running Sluice's admin socket.
pub enum QueueAccess {
    /// Sluice is stopped: the store, opened directly.
    Direct(std::sync::Arc<Queue>),
    /// Sluice runs: its admin socket.
    Running {
        /// `<data_dir>/admin.sock`.
        socket: PathBuf,
        /// Store path (for messages).
        path: String,
    },
}

impl QueueAccess {
    /// Opens the store, or finds the running Sluice that holds it.
    pub fn open(config: &Settings) -> Result<QueueAccess, AdminError> {
        let path = config.queue_path.clone();
        if !path.exists() {
            return Err(AdminError::Missing(path.display().to_string()));
        }
        let limits = QueueLimits {
            max_bytes: config.queue.max_bytes,
            min_free_bytes: 0,
            cache_bytes: 8 << 20,
        };
        match Queue::open(&path, limits) {
            Ok(q) => Ok(QueueAccess::Direct(std::sync::Arc::new(q))),
            Err(QueueError::Locked { .. }) => Ok(QueueAccess::Running {
                socket: socket_path(&config.data_dir),
                path: path.display().to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: hyper::Method,
        path_q: &str,
    ) -> Result<T, AdminError> {
        let QueueAccess::Running { socket, path } = self else {
            return Err(AdminError::Missing("admin API".into()));
        };
        let api = |message: String| AdminError::Api {
            path: path.clone(),
            socket: socket.clone(),
            message,
        };
        let (status, body) = request(socket, method, path_q)
            .await
            .map_err(|e| api(e.to_string()))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ApiError>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| format!("HTTP {status}"));
            return Err(api(message));
        }
        serde_json::from_slice(&body).map_err(|e| api(e.to_string()))
    }

    /// Records, events, bytes, oldest age.
    pub async fn stats(&self) -> Result<QueueStats, AdminError> {
        match self {
            QueueAccess::Direct(q) => Ok(q.stats()),
            QueueAccess::Running { .. } => self.call(hyper::Method::GET, QUEUE_STATS_PATH).await,
        }
    }

    /// Reads every record back as outputs do; reports the unreadable ones.
    pub async fn verify(&self, config: &Settings) -> Result<VerifyReport, AdminError> {
        match self {
            QueueAccess::Direct(q) => {
                let q = std::sync::Arc::clone(q);
                let max = config.server.max_event_bytes;
                Ok(tokio::task::spawn_blocking(move || verify(&q, max))
                    .await
                    .map_err(|e| AdminError::Missing(e.to_string()))?)
            }
            QueueAccess::Running { .. } => self.call(hyper::Method::GET, QUEUE_VERIFY_PATH).await,
        }
    }

    /// Dead letters, optionally of one output or one sequence number.
    pub async fn dead(&self, select: &Select) -> Result<Vec<SeqLetter>, AdminError> {
        match self {
            QueueAccess::Direct(q) => Ok(q
                .dead_selected(select.seq, select.output.as_deref())?
                .into_iter()
                .map(|(seq, letter)| SeqLetter { seq, letter })
                .collect()),
            QueueAccess::Running { .. } => {
                let path = format!("{DEAD_PATH}{}", select.query());
                self.call(hyper::Method::GET, &path).await
            }
        }
    }

    /// Replays dead letters to the output that gave up on them.
    pub async fn replay(&self, config: &Settings, select: &Select) -> Result<u64, AdminError> {
        match self {
            QueueAccess::Direct(q) => {
                let names: Vec<&str> = config.outputs.iter().map(|o| o.name()).collect();
                Ok(q.replay_dead(select.seq, select.output.as_deref(), &names)
                    .await?)
            }
            QueueAccess::Running { .. } => {
                let path = format!("{DEAD_REPLAY_PATH}{}", select.query());
                let r: Replayed = self.call(hyper::Method::POST, &path).await?;
                Ok(r.replayed)
            }
        }
    }

    /// Deletes dead letters.
    pub async fn purge(&self, select: &Select) -> Result<u64, AdminError> {
        match self {
            QueueAccess::Direct(q) => Ok(q.purge_dead(select.seq, select.output.as_deref())?),
            QueueAccess::Running { .. } => {
                let path = format!("{DEAD_PURGE_PATH}{}", select.query());
                let r: Purged = self.call(hyper::Method::POST, &path).await?;
                Ok(r.purged)
            }
        }
    }
}

/// The running Sluice of a data dir, reached over its admin socket.
pub struct Node {
    socket: PathBuf,
}

impl Node {
    /// The node serving `config`'s data dir (not contacted yet).
    pub fn of(config: &Settings) -> Node {
        Node {
            socket: socket_path(&config.data_dir),
        }
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: hyper::Method,
        path_q: &str,
    ) -> Result<T, NodeError> {
        let (status, body) = request(&self.socket, method, path_q)
            .await
            .map_err(|e| match e {
                CallError::Connect(source) => NodeError::NotRunning {
                    socket: self.socket.clone(),
                    source,
                },
                e => NodeError::Call {
                    socket: self.socket.clone(),
                    message: e.to_string(),
                },
            })?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ApiError>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| format!("HTTP {status}"));
            return Err(NodeError::Refused(message));
        }
        serde_json::from_slice(&body).map_err(|e| NodeError::Call {
            socket: self.socket.clone(),
            message: e.to_string(),
        })
    }

    /// Asks the node to read its configuration again.
    pub async fn reload(&self) -> Result<Reloaded, NodeError> {
        self.call(hyper::Method::POST, RELOAD_PATH).await
    }

    /// Starts the drain phase (again, harmlessly, when it has started) and
    /// waits up to `wait` for the queue to empty.
    pub async fn drain(&self, wait: Duration) -> Result<Drained, NodeError> {
        let path = format!("{DRAIN_PATH}?wait_seconds={}", wait.as_secs());
        self.call(hyper::Method::POST, &path).await
    }

    /// Waits up to `limit` for the node to stop (its socket stops answering).
    pub async fn wait_stopped(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if tokio::net::UnixStream::connect(&self.socket).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

/// A request to the running node failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Nothing answers on the socket.
    #[error("no running Sluice answers on {socket}: {source}")]
    NotRunning {
        /// The admin socket.
        socket: PathBuf,
        /// Why connecting failed.
        source: std::io::Error,
    },
    /// The node answered with an error.
    #[error("{0}")]
    Refused(String),
    /// The exchange failed.
    #[error("admin socket {socket}: {message}")]
    Call {
        /// The admin socket.
        socket: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Why a request over the socket failed.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error(transparent)]
    Request(#[from] hyper::http::Error),
}

/// One HTTP/1.1 request over the admin socket.
async fn request(
    socket: &std::path::Path,
    method: hyper::Method,
    path_q: &str,
) -> Result<(hyper::StatusCode, Bytes), CallError> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(CallError::Connect)?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path_q)
        .header(hyper::header::HOST, "sluice")
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    conn.abort();
    Ok((status, body))
}
