//! The HEC listener (actix-web), the metrics listener and the admin socket.
//! The only module that names actix.

pub mod acks;
mod admin;
pub mod allow;
pub mod auth;
pub mod decode;
mod reply;
mod routes;
pub mod streams;

use crate::admin::Reloaded;
use crate::config::Token;
use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::status::StatusSource;
use acks::ClientAcks;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use allow::AllowList;
use arc_swap::ArcSwap;
use reply::Reply;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Request body caps.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Body as received.
    pub max_body_bytes: u64,
    /// Body after gunzip.
    pub max_decoded_bytes: u64,
    /// One `/event` object or `/raw` line.
    pub max_event_bytes: u64,
    /// Time for a body to arrive once its headers did.
    pub body_timeout: Duration,
}

/// What the admin socket asks of the running node; the node's main loop
/// (which also handles signals) carries it out, so a reload from SIGHUP and
/// one from `sluice reload` take the same path.
#[derive(Debug)]
pub enum Control {
    /// Read the configuration again; the answer says what changed or why not.
    Reload(tokio::sync::oneshot::Sender<Result<Reloaded, String>>),
    /// Stop once the queue is empty (the drain phase has started).
    Drain,
}

/// What the handlers reach beyond ingest: the outputs by name, the node's
/// main loop and the status page's source.
pub struct NodeLinks {
    /// Names of the outputs.
    pub outputs: Vec<String>,
    /// Requests to the node's main loop.
    pub control: tokio::sync::mpsc::Sender<Control>,
    /// What the status page shows.
    pub status: Arc<StatusSource>,
}

/// What the handlers share.
pub struct IngestState {
    /// Accepted tokens, replaced whole on reload (a request keeps the set it
    /// was authenticated against).
    pub tokens: ArcSwap<Vec<Arc<Token>>>,
    /// The durable queue.
    pub queue: Arc<Queue>,
    /// Client ack ids.
    pub acks: ClientAcks,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Body caps.
    pub limits: BodyLimits,
    /// Names of the outputs (dead-letter replay and gauges).
    pub outputs: Vec<String>,
    /// Requests to the node's main loop.
    pub control: tokio::sync::mpsc::Sender<Control>,
    /// What the status page shows.
    pub status: Arc<StatusSource>,
    /// Peers allowed on the HEC listener (replaced whole on reload).
    pub allow: ArcSwap<AllowList>,
    draining: AtomicBool,
    in_flight: AtomicUsize,
}

/// Counts a data or ack request as in flight while it lives.
pub(crate) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl IngestState {
    /// Shared state for both listeners.
    pub fn new(
        tokens: Vec<Token>,
        queue: Arc<Queue>,
        acks: ClientAcks,
        metrics: Metrics,
        limits: BodyLimits,
        node: NodeLinks,
    ) -> IngestState {
        let NodeLinks {
            outputs,
            control,
            status,
        } = node;
        IngestState {
            tokens: ArcSwap::from_pointee(tokens.into_iter().map(Arc::new).collect()),
            queue,
            acks,
            metrics,
            limits,
            outputs,
            control,
            status,
            allow: ArcSwap::from_pointee(AllowList::default()),
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Puts a new token set in force for requests from now on.
    pub fn replace_tokens(&self, tokens: Vec<Token>) {
        self.tokens
            .store(Arc::new(tokens.into_iter().map(Arc::new).collect()));
    }

    /// Starts the drain phase: `/health` and new requests answer 503 code 23.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the drain phase has started.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Marks a request in flight until the guard drops.
    pub(crate) fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(&self.in_flight)
    }

    /// Data and ack requests currently being handled.
    pub fn requests_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Counts an answer and turns it into a response.
    fn answer(&self, endpoint: &str, reply: Reply, started: Instant) -> HttpResponse {
        let code = reply.status.code.to_string();
        self.metrics
            .ingest_requests
            .with_label_values(&[endpoint, &code])
            .inc();
        self.metrics
            .ingest_duration
            .with_label_values(&[endpoint])
            .observe(started.elapsed().as_secs_f64());
        reply.into_response()
    }

    /// Refreshes the gauges that are read rather than counted.
    pub fn refresh_gauges(&self) {
        let s = self.queue.stats();
        let m = &self.metrics;
        m.queue_records.set(s.records as i64);
        m.queue_events.set(s.events as i64);
        m.queue_bytes.set(s.bytes as i64);
        m.queue_oldest_age.set(s.oldest_age_seconds);
        m.queue_writable.set(i64::from(self.queue.writable()));
        Metrics::catch_up(&m.queue_write_errors, self.queue.write_errors());
        if let Some(free) = self.queue.free_bytes() {
            m.queue_free_bytes.set(free as i64);
        }
        for o in &self.outputs {
            m.dead_letters
                .with_label_values(&[o])
                .set(self.queue.dead_letter_count(o) as i64);
        }
        let a = self.acks.counts();
        m.client_ack_channels.set(a.channels as i64);
        m.client_acks_pending.set(a.pending as i64);
    }
}

/// A running listener.
pub struct Listener {
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Listener {
    /// Stops accepting; with `graceful`, waits for in-flight requests.
    pub async fn stop(self, graceful: bool) {
        self.handle.stop(graceful).await;
        let _ = self.task.await;
    }
}

/// Options of the HEC listener.
pub struct HecListenerOptions {
    /// Bound socket (port 0 allowed).
    pub listener: TcpListener,
    /// TLS; `None` serves plain HTTP.
    pub tls: Option<rustls::ServerConfig>,
    /// Worker threads.
    pub workers: usize,
    /// How long in-flight requests may take to finish at shutdown.
    pub shutdown_timeout: Duration,
}

/// Starts the HEC listener.
pub fn serve_hec(
    state: Arc<IngestState>,
    opts: HecListenerOptions,
) -> std::io::Result<(Listener, SocketAddr)> {
    let addr = opts.listener.local_addr()?;
    let data = web::Data::from(Arc::clone(&state));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .configure(routes::configure)
    })
    .on_connect(move |io, ext| {
        ext.insert(streams::ConnStreams::default());
        let allowed = state.allow.load();
        if allowed.is_empty() {
            return;
        }
        let peer = allow::peer(io);
        if !peer.is_some_and(|p| allowed.permits(p.ip())) {
            allow::shut(io);
            ext.insert(allow::Denied);
            state.metrics.ingest_denied_connections.inc();
            tracing::debug!(peer = ?peer, "connection from outside allow_cidrs closed");
        }
    })
    .workers(opts.workers)
    .disable_signals()
    .shutdown_timeout(opts.shutdown_timeout.as_secs().max(1))
    .client_request_timeout(Duration::from_secs(30))
    .backlog(1024);
    let server = match opts.tls {
        Some(tls) => server.listen_rustls_0_23(opts.listener, tls)?,
        None => server.listen(opts.listener)?,
    }
    .run();
    let handle = server.handle();
    Ok((
        Listener {
            handle,
            task: tokio::spawn(server),
        },
        addr,
    ))
}

/// Options of the metrics listener.
pub struct MetricsListenerOptions {
    /// Bound socket (port 0 allowed).
    pub listener: TcpListener,
    /// TLS (with client certificates when its config asks); `None`: plain HTTP.
    pub tls: Option<rustls::ServerConfig>,
    /// Basic auth every request must carry.
    pub basic: Option<auth::BasicAuth>,
}

/// Starts the metrics listener: `/metrics`, the status page and
/// `/api/status`, all read-only, behind basic auth when configured.
pub fn serve_metrics(
    state: Arc<IngestState>,
    opts: MetricsListenerOptions,
) -> std::io::Result<(Listener, SocketAddr)> {
    let addr = opts.listener.local_addr()?;
    let data = web::Data::from(state);
    let basic = opts.basic.map(Arc::new);
    let server = HttpServer::new(move || {
        let basic = basic.clone();
        App::new()
            .app_data(data.clone())
            .wrap(actix_web::middleware::Condition::new(
                basic.is_some(),
                actix_web::middleware::from_fn(move |req, next| {
                    let basic = basic.clone();
                    admin::require_basic(basic, req, next)
                }),
            ))
            .configure(admin::configure_metrics)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1);
    let server = match opts.tls {
        Some(tls) => server.listen_rustls_0_23(opts.listener, tls)?,
        None => server.listen(opts.listener)?,
    }
    .run();
    let handle = server.handle();
    Ok((
        Listener {
            handle,
            task: tokio::spawn(server),
        },
        addr,
    ))
}

/// Starts the admin API on a Unix socket at `path`, mode 0600. A socket
/// file left by a Sluice that is gone is replaced; a live one is an error.
pub fn serve_admin(state: Arc<IngestState>, path: &Path) -> std::io::Result<Listener> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "another Sluice serves this admin socket",
        ));
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    let data = web::Data::from(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .configure(admin::configure_admin)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen_uds(listener)?
    .run();
    let handle = server.handle();
    Ok(Listener {
        handle,
        task: tokio::spawn(server),
    })
}
