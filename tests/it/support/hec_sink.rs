//! A Splunk HEC indexer running inside the test process, for forwarding tests.
//!
//! It answers like real Splunk (codes, texts, check order, ack protocol: see
//! `../shared/HEC.md`) and records what it indexed, so tests can assert
//! exactly-once in the normal case and at-least-once under failures. Faults are
//! scripted through a thread-safe [`Faults`] handle while the sink runs.
//!
//! It judges what Sluice sends with parsers of its own (serde_json and the
//! rules in HEC.md), never with Sluice's: a bug shared by Sluice's ingest
//! and its output could otherwise pass unnoticed. Only the table of codes and
//! texts is shared.
#![allow(dead_code)]

use actix_web::dev::ServerHandle;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{Map, Value};
use sluice::hec::codes::{self, HecBody, HecStatus};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A data channel: a GUID, compared case-insensitively.
type Channel = uuid::Uuid;

/// The token a sink accepts unless [`SinkOptions::token`] says otherwise.
pub const SINK_TOKEN: &str = "5ee5ee5e-0000-4000-8000-000000000001";
/// Name of the cookie a sink sets when [`SinkOptions::sticky_cookie`] is on.
pub const STICKY_COOKIE: &str = "SINKSTICKY";

/// How a sink is started.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// Token clients must send as `Authorization: Splunk <token>`.
    pub token: String,
    /// Indexer acknowledgements: ackIds, channel required, `/ack` served. Off is
    /// Splunk Cloud's usual token: `{"text":"Success","code":0}` and `/ack` → code 14.
    pub acks: bool,
    /// HTTPS with a freshly generated CA ([`HecSink::ca_pem`]).
    pub tls: bool,
    /// Sets `SINKSTICKY=<value>` on every reply, as a sticky load balancer does.
    pub sticky_cookie: Option<String>,
    /// With `tls`: require a client certificate signed by the sink's CA
    /// ([`HecSink::client_identity`] makes one).
    pub require_client_cert: bool,
}

impl Default for SinkOptions {
    fn default() -> SinkOptions {
        SinkOptions {
            token: SINK_TOKEN.to_string(),
            acks: true,
            tls: false,
            sticky_cookie: None,
            require_client_cert: false,
        }
    }
}

/// Which HEC endpoint a request hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/services/collector`, `/event`, `/event/1.0`.
    Event,
    /// `/raw`, `/raw/1.0`.
    Raw,
    /// `/ack`.
    Ack,
    /// `/health`, `/health/1.0`.
    Health,
}

/// One event as the sink indexed it.
#[derive(Debug, Clone)]
pub struct IndexedEvent {
    /// Endpoint it arrived on.
    pub endpoint: Endpoint,
    /// Channel of its request (lower-case GUID), if any.
    pub channel: Option<String>,
    /// Ack id of its request; None without acks or when the request was refused
    /// after indexing a prefix (Splunk gives no ack id then).
    pub ack_id: Option<u64>,
    /// `time` in epoch seconds (any HEC form normalised).
    pub time: Option<f64>,
    /// Metadata: the object's own on `/event`, the query's on `/raw`.
    pub host: Option<String>,
    pub source: Option<String>,
    pub sourcetype: Option<String>,
    pub index: Option<String>,
    /// Indexed fields (empty on `/raw`).
    pub fields: Map<String, Value>,
    /// The `event` value; a `/raw` line as a JSON string.
    pub event: Value,
    /// The object's or line's text as received.
    pub raw: String,
    /// When its ack id answers true (None: never — a lost ack).
    acked_at: Option<Instant>,
}

impl IndexedEvent {
    fn new(endpoint: Endpoint, raw: String) -> IndexedEvent {
        IndexedEvent {
            endpoint,
            channel: None,
            ack_id: None,
            time: None,
            host: None,
            source: None,
            sourcetype: None,
            index: None,
            fields: Map::new(),
            event: Value::Null,
            raw,
            acked_at: None,
        }
    }

    /// `fields.event_id`, else `event.event_id`, else (a `/raw` line) the line's JSON `event_id`.
    pub fn event_id(&self) -> Option<String> {
        let from = |v: &Value| v.get("event_id").and_then(Value::as_str).map(String::from);
        from(&Value::Object(self.fields.clone()))
            .or_else(|| from(&self.event))
            .or_else(|| from(&serde_json::from_str(self.event.as_str()?).ok()?))
    }

    /// What identifies a duplicate: the event id, else the raw text.
    pub fn dedup_key(&self) -> String {
        self.event_id().unwrap_or_else(|| self.raw.clone())
    }
}

/// How often each [`IndexedEvent::dedup_key`] occurs: 1 everywhere means exactly once.
pub fn count_by_key(events: &[IndexedEvent]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in events {
        *counts.entry(e.dedup_key()).or_insert(0) += 1;
    }
    counts
}

/// One request as the sink saw and answered it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub method: String,
    /// Path without the query.
    pub path: String,
    pub query: String,
    /// HTTP status; None when the connection was closed without an answer.
    pub status: Option<u16>,
    /// HEC `code` of the answer (None for `/ack` replies and resets).
    pub code: Option<u16>,
    /// Channel as sent (header or query).
    pub channel: Option<String>,
    /// Cookies the client sent, in order.
    pub cookies: Vec<(String, String)>,
    pub content_encoding: Option<String>,
    /// Body size as received (compressed if gzipped).
    pub body_bytes: usize,
    /// Events this request indexed.
    pub events: usize,
    pub ack_id: Option<u64>,
}

impl RequestRecord {
    /// Value of the cookie `name` the client sent.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted misbehaviour.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status instead of processing, with `Retry-After: <s>` when set.
    Answer {
        status: HecStatus,
        retry_after: Option<u32>,
    },
    /// Close the connection without answering, before indexing anything.
    Reset,
    /// Index and assign the ack id as usual, then close without answering: the
    /// client cannot know its events landed (the duplicate-making case).
    ResetAfterIndexing,
    /// Wait this long, then process normally (a slow indexer).
    Delay(Duration),
}

impl Fault {
    /// 503 `{"text":"Server is busy","code":9}` with `Retry-After`.
    pub fn busy(retry_after: u32) -> Fault {
        Fault::answer(codes::SERVER_BUSY, Some(retry_after))
    }
    /// 429 code 26 (HEC queue at capacity) with `Retry-After`.
    pub fn too_many(retry_after: u32) -> Fault {
        Fault::answer(codes::QUEUE_AT_CAPACITY, Some(retry_after))
    }
    /// 500 code 8.
    pub fn internal() -> Fault {
        Fault::answer(codes::INTERNAL_ERROR, None)
    }
    /// 403 code 4: the token was deleted (revoked).
    pub fn revoked() -> Fault {
        Fault::answer(codes::INVALID_TOKEN, None)
    }
    /// 401 code 3: the credentials are no longer accepted.
    pub fn unauthorized() -> Fault {
        Fault::answer(codes::INVALID_AUTHORIZATION, None)
    }
    fn answer(status: HecStatus, retry_after: Option<u32>) -> Fault {
        Fault::Answer {
            status,
            retry_after,
        }
    }
}

/// Which requests a scripted fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `/event` and `/raw`.
    Data,
    /// `/ack`.
    Ack,
    /// `/health`.
    Health,
    /// Every HEC endpoint.
    All,
}

impl Target {
    fn matches(self, ep: Endpoint) -> bool {
        match self {
            Target::Data => matches!(ep, Endpoint::Event | Endpoint::Raw),
            Target::Ack => ep == Endpoint::Ack,
            Target::Health => ep == Endpoint::Health,
            Target::All => true,
        }
    }
}

/// When an accepted request's ack id turns true (fixed when it is accepted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AckMode {
    #[default]
    Immediate,
    /// True this long after the request was accepted.
    Delayed(Duration),
    /// Never true: the indexer lost the ack (its events still count as indexed).
    Lost,
}

type Poison = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

struct Rule {
    target: Target,
    remaining: Option<usize>,
    fault: Fault,
}

#[derive(Default)]
struct FaultState {
    rules: Vec<Rule>,
    poison: Option<Poison>,
    max_body_bytes: Option<usize>,
    ack_mode: AckMode,
    unhealthy: bool,
}

impl FaultState {
    /// The first rule for `ep` that still has uses left; consumes one use.
    fn take(&mut self, ep: Endpoint) -> Option<Fault> {
        let i = self.rules.iter().position(|r| r.target.matches(ep))?;
        let rule = &mut self.rules[i];
        let fault = rule.fault.clone();
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                self.rules.remove(i);
            }
        }
        Some(fault)
    }
}

#[derive(Default)]
struct ChannelAcks {
    next: u64,
    /// Ids not yet answered true, with when they turn true.
    pending: HashMap<u64, Option<Instant>>,
}

#[derive(Default)]
struct State {
    indexed: Vec<IndexedEvent>,
    requests: Vec<RequestRecord>,
    channels: HashMap<Channel, ChannelAcks>,
    faults: FaultState,
}

struct Shared {
    opts: SinkOptions,
    state: Mutex<State>,
}

impl Shared {
    /// A test that panicked while holding the lock must not hide the sink's records.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Thread-safe handle scripting a running sink's faults.
#[derive(Clone)]
pub struct Faults(Arc<Shared>);

impl Faults {
    /// `fault` for the next `times` requests to `target`.
    pub fn fail_next(&self, target: Target, times: usize, fault: Fault) {
        if times > 0 {
            self.push(target, Some(times), fault);
        }
    }

    /// `fault` for every request to `target` until [`Faults::clear`].
    pub fn fail_until_cleared(&self, target: Target, fault: Fault) {
        self.push(target, None, fault);
    }

    fn push(&self, target: Target, remaining: Option<usize>, fault: Fault) {
        let rule = Rule {
            target,
            remaining,
            fault,
        };
        self.0.lock().faults.rules.push(rule);
    }

    /// `/event` objects for which `pred` is true get 400 code 6 with their
    /// `invalid-event-number`; objects before them are indexed (as Splunk does).
    pub fn poison(&self, pred: impl Fn(&Value) -> bool + Send + Sync + 'static) {
        self.0.lock().faults.poison = Some(Arc::new(pred));
    }

    /// Bodies larger than `limit` bytes as received get 413.
    pub fn max_body_bytes(&self, limit: Option<usize>) {
        self.0.lock().faults.max_body_bytes = limit;
    }

    /// How ack ids of requests accepted from now on turn true.
    pub fn acks(&self, mode: AckMode) {
        self.0.lock().faults.ack_mode = mode;
    }

    /// `/health` answers 200 code 17, or 503 code 18 when unhealthy.
    pub fn healthy(&self, healthy: bool) {
        self.0.lock().faults.unhealthy = !healthy;
    }

    /// Back to a well-behaved sink (ids already lost or delayed stay so).
    pub fn clear(&self) {
        self.0.lock().faults = FaultState::default();
    }
}

/// What owns the public port: actix itself (plain HTTP), or the TLS front.
enum Listener {
    Actix(ServerHandle),
    /// Dropping the sender stops the front, which closes every connection.
    Front(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
}

impl Listener {
    async fn stop(self) {
        match self {
            Listener::Actix(handle) => handle.stop(false).await,
            Listener::Front(stop, task) => {
                drop(stop);
                let _ = task.await;
            }
        }
    }
}

/// TLS material and the plain actix server behind the TLS front.
struct Tls {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    acceptor: tokio_rustls::TlsAcceptor,
    backend: SocketAddr,
    backend_handle: ServerHandle,
}

/// A running sink. Dropping it without [`HecSink::stop`] leaves its server to
/// the end of the test runtime.
pub struct HecSink {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: Option<Tls>,
    listener: tokio::sync::Mutex<Option<Listener>>,
}

impl HecSink {
    /// Starts a sink on `127.0.0.1:0`.
    pub async fn start(opts: SinkOptions) -> HecSink {
        let shared = Arc::new(Shared {
            opts,
            state: Mutex::new(State::default()),
        });
        let tls = shared.opts.tls.then(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let g = sluice::bootstrap::ensure_tls(dir.path(), [127, 0, 0, 1].into())
                .expect("sink certificate");
            let client_ca = shared.opts.require_client_cert.then_some(g.ca.as_path());
            let mut config = sluice::tls::server_config(
                std::sync::Arc::new(
                    sluice::tls::CertSlot::load(&g.cert, &g.key).expect("sink cert"),
                ),
                client_ca,
            )
            .expect("sink TLS");
            // Splunk's HEC port speaks HTTP/1.1 only; actix would offer h2.
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let backend = bind("127.0.0.1:0".parse().expect("addr"));
            let backend_addr = backend.local_addr().expect("backend addr");
            Tls {
                _dir: dir,
                ca: g.ca,
                acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
                backend: backend_addr,
                backend_handle: serve(shared.clone(), backend).expect("sink serves"),
            }
        });
        let listener = bind("127.0.0.1:0".parse().expect("addr"));
        let mut sink = HecSink {
            addr: listener.local_addr().expect("sink addr"),
            shared,
            tls,
            listener: tokio::sync::Mutex::new(None),
        };
        *sink.listener.get_mut() = Some(sink.listen(listener));
        sink
    }

    /// `http(s)://127.0.0.1:PORT` — the same across [`HecSink::down`]/[`HecSink::up`].
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM file) a client must trust, when TLS is on.
    pub fn ca_pem(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca.as_path())
    }

    /// Writes a client certificate and key signed by the sink's CA into
    /// `dir`; returns (certificate, key) paths.
    pub fn client_identity(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let tls = self.tls.as_ref().expect("a TLS sink");
        let (cert, key) = crate::support::client_cert_signed_by(&tls.ca, "sluice.example");
        let (c, k) = (dir.join("client.pem"), dir.join("client.key"));
        std::fs::write(&c, cert).expect("write client.pem");
        std::fs::write(&k, key).expect("write client.key");
        (c, k)
    }

    /// A reqwest client that trusts the sink (10 s timeout so tests stay bounded).
    pub fn client(&self) -> reqwest::Client {
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if let Some(ca) = self.ca_pem() {
            let pem = std::fs::read(ca).expect("read sink CA");
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA"));
        }
        b.build().expect("client")
    }

    pub fn faults(&self) -> Faults {
        Faults(self.shared.clone())
    }

    /// Every indexed event, in arrival order (duplicates included).
    pub fn indexed(&self) -> Vec<IndexedEvent> {
        self.shared.lock().indexed.clone()
    }

    /// Indexed events whose ack id would answer true now (events without an ack
    /// id count at once: Splunk told the client they were indexed).
    pub fn acknowledged(&self) -> Vec<IndexedEvent> {
        let now = Instant::now();
        let state = self.shared.lock();
        let acked = state
            .indexed
            .iter()
            .filter(|e| e.acked_at.is_some_and(|t| t <= now));
        acked.cloned().collect()
    }

    /// Every answered (or reset) request, in completion order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.clone()
    }

    /// Requests to `path` answered with `status` (None: reset).
    pub fn count(&self, path: &str, status: Option<u16>) -> usize {
        let state = self.shared.lock();
        let hit = |r: &&RequestRecord| r.path == path && r.status == status;
        state.requests.iter().filter(hit).count()
    }

    /// Polls `cond` every 20 ms until it holds or `timeout` passes.
    pub async fn wait_for(&self, timeout: Duration, cond: impl Fn(&HecSink) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while !cond(self) {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Closes the listener and every client connection: connecting is refused
    /// until [`HecSink::up`]. Records and ack state survive.
    pub async fn down(&self) {
        if let Some(l) = self.listener.lock().await.take() {
            l.stop().await;
        }
    }

    /// Listens again on the same port.
    pub async fn up(&self) {
        let mut listener = self.listener.lock().await;
        if listener.is_none() {
            *listener = Some(self.listen(bind(self.addr)));
        }
    }

    /// Stops the sink for good.
    pub async fn stop(&self) {
        self.down().await;
        if let Some(tls) = &self.tls {
            tls.backend_handle.stop(false).await;
        }
    }

    fn listen(&self, listener: TcpListener) -> Listener {
        let Some(tls) = &self.tls else {
            return Listener::Actix(serve(self.shared.clone(), listener).expect("sink serves"));
        };
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let front = tls_front(listener, tls.acceptor.clone(), tls.backend, stopped);
        Listener::Front(stop, tokio::spawn(front))
    }
}

/// Binds `addr` (std sets SO_REUSEADDR, so a port just closed can be bound again).
fn bind(addr: SocketAddr) -> TcpListener {
    let listener = TcpListener::bind(addr).expect("sink binds");
    listener.set_nonblocking(true).expect("nonblocking");
    listener
}

fn serve(shared: Arc<Shared>, listener: TcpListener) -> std::io::Result<ServerHandle> {
    let data = web::Data::from(shared);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(1 << 30))
            .default_service(web::to(handle))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(handle)
}

/// Terminates TLS (HTTP/1.1 only) and pipes each connection to the plain
/// backend. A backend connection closed without an answer closes the client's.
async fn tls_front(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    backend: SocketAddr,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let tcp = tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => continue,
            },
        };
        let acceptor = acceptor.clone();
        conns.spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    conns.shutdown().await;
}

/// An answer (None in `handle`: close the connection without one).
struct Reply {
    http: u16,
    code: Option<u16>,
    json: String,
    retry_after: Option<u32>,
}

impl From<HecStatus> for Reply {
    fn from(status: HecStatus) -> Reply {
        hec(status, None, None)
    }
}

fn hec(status: HecStatus, invalid_event_number: Option<u64>, ack_id: Option<u64>) -> Reply {
    let body = HecBody {
        invalid_event_number,
        ack_id,
        ..status.body()
    };
    let json = serde_json::to_string(&body).expect("json");
    let (http, code) = (status.http, Some(status.code));
    Reply {
        http,
        code,
        json,
        retry_after: None,
    }
}

async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let header = |name: &str| Some(req.headers().get(name)?.to_str().ok()?.trim().to_string());
    let query: Vec<(String, String)> = form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let mut rec = RequestRecord {
        method: req.method().to_string(),
        path: req.path().to_string(),
        query: req.query_string().to_string(),
        status: None,
        code: None,
        channel: header("x-splunk-request-channel").or_else(|| param(&query, "channel")),
        cookies: cookies(&req),
        content_encoding: header("content-encoding"),
        body_bytes: body.len(),
        events: 0,
        ack_id: None,
    };
    let reply = answer(&req, &body, &shared, &query, &mut rec).await;
    rec.status = reply.as_ref().map(|r| r.http);
    rec.code = reply.as_ref().and_then(|r| r.code);
    shared.lock().requests.push(rec);
    let Some(reply) = reply else {
        // The h1 dispatcher drops the connection before flushing the head when
        // the body fails on its first poll: the client sees no answer at all.
        let fail = async { Err::<web::Bytes, _>(std::io::Error::other("scripted reset")) };
        return HttpResponse::Ok().streaming(futures_util::stream::once(fail));
    };
    let mut b = HttpResponse::build(StatusCode::from_u16(reply.http).expect("status"));
    b.content_type("application/json; charset=UTF-8");
    if let Some(s) = reply.retry_after {
        b.insert_header((header::RETRY_AFTER, s.to_string()));
    }
    if let Some(v) = &shared.opts.sticky_cookie {
        b.insert_header((header::SET_COOKIE, format!("{STICKY_COOKIE}={v}; Path=/")));
    }
    b.body(reply.json)
}

fn param(query: &[(String, String)], name: &str) -> Option<String> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn cookies(req: &HttpRequest) -> Vec<(String, String)> {
    let headers = req.headers().get_all(header::COOKIE);
    let pairs = headers
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'));
    let pairs = pairs.filter_map(|kv| kv.trim().split_once('='));
    pairs.map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn route(path: &str) -> Option<Endpoint> {
    Some(match path.trim_end_matches('/') {
        "/services/collector" | "/services/collector/event" | "/services/collector/event/1.0" => {
            Endpoint::Event
        }
        "/services/collector/raw" | "/services/collector/raw/1.0" => Endpoint::Raw,
        "/services/collector/ack" | "/services/collector/ack/1.0" => Endpoint::Ack,
        "/services/collector/health" | "/services/collector/health/1.0" => Endpoint::Health,
        _ => return None,
    })
}

/// Route/method → scripted fault → health, or auth onwards (`process`).
async fn answer(
    req: &HttpRequest,
    body: &[u8],
    shared: &Shared,
    query: &[(String, String)],
    rec: &mut RequestRecord,
) -> Option<Reply> {
    let Some(ep) = route(req.path()) else {
        return Some(codes::NOT_FOUND.into());
    };
    let method_ok = match ep {
        Endpoint::Health => req.method() == Method::GET || req.method() == Method::HEAD,
        _ => req.method() == Method::POST,
    };
    if !method_ok {
        return Some(codes::METHOD_NOT_ALLOWED.into());
    }
    let fault = shared.lock().faults.take(ep);
    match fault {
        Some(Fault::Answer {
            status,
            retry_after,
        }) => {
            let reply = Reply::from(status);
            return Some(Reply {
                retry_after,
                ..reply
            });
        }
        Some(Fault::Reset) => return None,
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::ResetAfterIndexing) | None => {}
    }
    if ep == Endpoint::Health {
        return Some(match shared.lock().faults.unhealthy {
            true => codes::UNHEALTHY_QUEUES_FULL.into(),
            false => codes::HEALTHY.into(),
        });
    }
    let reply = process(req, body, shared, query, ep, rec).unwrap_or_else(|r| r);
    (!matches!(fault, Some(Fault::ResetAfterIndexing))).then_some(reply)
}

/// Splunk's order from auth on: auth → channel → encoding → size → parse.
/// Err is an early refusal.
fn process(
    req: &HttpRequest,
    body: &[u8],
    shared: &Shared,
    query: &[(String, String)],
    ep: Endpoint,
    rec: &mut RequestRecord,
) -> Result<Reply, Reply> {
    let auth = req.headers().get(header::AUTHORIZATION);
    match auth.map(|v| v.to_str().unwrap_or("").trim().split_once(' ')) {
        None => return Err(codes::TOKEN_REQUIRED.into()),
        Some(Some((scheme, token))) if scheme.eq_ignore_ascii_case("splunk") => {
            if token.trim() != shared.opts.token {
                return Err(codes::INVALID_TOKEN.into());
            }
        }
        Some(_) => return Err(codes::INVALID_AUTHORIZATION.into()),
    }
    let acks = shared.opts.acks;
    if ep == Endpoint::Ack && !acks {
        return Err(codes::ACK_DISABLED.into());
    }
    let channel = match rec.channel.as_deref() {
        None if acks => return Err(codes::CHANNEL_MISSING.into()),
        None => None,
        Some(c) => Some(Channel::parse_str(c).map_err(|_| codes::CHANNEL_INVALID)?),
    };
    let gzip = match rec.content_encoding.as_deref().map(str::to_ascii_lowercase) {
        None => false,
        Some(e) if e.is_empty() || e == "identity" => false,
        Some(e) if e == "gzip" => true,
        Some(_) => return Err(codes::UNSUPPORTED_ENCODING.into()),
    };
    let limit = shared.lock().faults.max_body_bytes;
    if limit.is_some_and(|max| body.len() > max) {
        return Err(codes::PAYLOAD_TOO_LARGE.into());
    }
    let mut decoded = Vec::new();
    let data = if gzip {
        let mut d = flate2::read::MultiGzDecoder::new(body);
        d.read_to_end(&mut decoded)
            .map_err(|_| codes::INVALID_DATA_FORMAT)?;
        &decoded[..]
    } else {
        body
    };
    let events = match ep {
        Endpoint::Ack => {
            let asked = ack_ids(data).ok_or(codes::INVALID_DATA_FORMAT)?;
            return Ok(poll_acks(
                shared,
                channel.expect("acks need a channel"),
                asked,
            ));
        }
        Endpoint::Event => return Ok(index_objects(shared, data, channel, rec)),
        _ => raw_lines(data).map(|line| {
            let mut e = IndexedEvent::new(Endpoint::Raw, String::from_utf8_lossy(line).into());
            e.event = Value::String(e.raw.clone());
            e.host = param(query, "host");
            e.source = param(query, "source");
            e.sourcetype = param(query, "sourcetype");
            e.index = param(query, "index");
            e
        }),
    };
    Ok(commit(shared, events.collect(), None, channel, rec))
}

/// Judges `/event` objects one by one; on the first bad one, indexes the ones
/// before it and answers its `invalid-event-number`.
fn index_objects(
    shared: &Shared,
    data: &[u8],
    channel: Option<Channel>,
    rec: &mut RequestRecord,
) -> Reply {
    let poison = shared.lock().faults.poison.clone();
    let mut good = Vec::new();
    let mut k = 0u64;
    // Concatenated JSON values; a top-level array holds objects.
    let mut values = serde_json::Deserializer::from_slice(data).into_iter::<Value>();
    loop {
        let start = values.byte_offset();
        let v = match values.next() {
            None => break,
            Some(Ok(v)) => v,
            Some(Err(_)) => {
                return commit(
                    shared,
                    good,
                    Some((codes::INVALID_DATA_FORMAT, k)),
                    channel,
                    rec,
                )
            }
        };
        let raw = data[start..values.byte_offset()].trim_ascii();
        let items = match v {
            Value::Array(a) => a.into_iter().map(|o| (o.to_string(), o)).collect(),
            o => vec![(String::from_utf8_lossy(raw).into_owned(), o)],
        };
        for (text, obj) in items {
            let judged = judge(&obj).and_then(|()| match &poison {
                Some(p) if p(&obj) => Err(codes::INVALID_DATA_FORMAT),
                _ => Ok(object_event(obj, text.as_bytes())),
            });
            match judged {
                Ok(e) => good.push(e),
                Err(status) => return commit(shared, good, Some((status, k)), channel, rec),
            }
            k += 1;
        }
    }
    commit(shared, good, None, channel, rec)
}

/// Splunk's rules for one `/event` object (HEC.md).
fn judge(v: &Value) -> Result<(), HecStatus> {
    let Value::Object(m) = v else {
        return Err(codes::INVALID_DATA_FORMAT);
    };
    match m.get("event") {
        None => return Err(codes::EVENT_REQUIRED),
        Some(Value::String(s)) if s.trim().is_empty() => return Err(codes::EVENT_BLANK),
        Some(Value::Null) | Some(Value::Bool(false)) => return Err(codes::INVALID_DATA_FORMAT),
        Some(_) => {}
    }
    let scalar = |v: &Value| !matches!(v, Value::Object(_) | Value::Array(_));
    match m.get("fields") {
        None | Some(Value::Null) => {}
        Some(Value::Object(f)) => {
            let flat = f.values().all(|v| match v {
                Value::Array(a) => a.iter().all(scalar),
                other => scalar(other),
            });
            if !flat {
                return Err(codes::INDEXED_FIELDS);
            }
        }
        Some(_) => return Err(codes::INDEXED_FIELDS),
    }
    match m.get("time") {
        None | Some(Value::Null) | Some(Value::Number(_)) => {}
        Some(Value::String(s)) if s.trim().parse::<f64>().is_ok() => {}
        Some(_) => return Err(codes::INVALID_DATA_FORMAT),
    }
    for key in ["host", "source", "sourcetype", "index"] {
        if m.get(key).is_some_and(|v| !v.is_string()) {
            return Err(codes::INVALID_DATA_FORMAT);
        }
    }
    Ok(())
}

/// `/raw` events: lines without CR/LF, blank lines skipped.
fn raw_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.trim_ascii().is_empty())
}

/// Epoch seconds from seconds, ms (13 digits) or ns (19 digits).
fn epoch_seconds(v: f64) -> f64 {
    match v.abs() {
        a if a >= 1e17 => v / 1e9,
        a if a >= 1e14 => v / 1e6,
        a if a >= 1e11 => v / 1e3,
        _ => v,
    }
}

/// The ids of an `/ack` request: `{"acks":[0,1,…]}`.
fn ack_ids(data: &[u8]) -> Option<Vec<u64>> {
    let v: Value = serde_json::from_slice(data).ok()?;
    v.get("acks")?
        .as_array()?
        .iter()
        .map(Value::as_u64)
        .collect()
}

/// An `/event` object (accepted by `judge`) as an indexed event.
fn object_event(v: Value, raw: &[u8]) -> IndexedEvent {
    let mut e = IndexedEvent::new(Endpoint::Event, String::from_utf8_lossy(raw).into());
    let Value::Object(mut m) = v else {
        unreachable!("judge accepted a non-object")
    };
    let mut text = |k: &str| match m.remove(k) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    (e.host, e.source) = (text("host"), text("source"));
    (e.sourcetype, e.index) = (text("sourcetype"), text("index"));
    e.time = match m.get("time") {
        Some(Value::Number(n)) => n.as_f64().map(epoch_seconds),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok().map(epoch_seconds),
        _ => None,
    };
    if let Some(Value::Object(f)) = m.remove("fields") {
        e.fields = f;
    }
    e.event = m.remove("event").unwrap_or(Value::Null);
    e
}

/// Indexes `events`, assigns the ack id (only when the whole body was good), answers.
fn commit(
    shared: &Shared,
    mut events: Vec<IndexedEvent>,
    bad: Option<(HecStatus, u64)>,
    channel: Option<Channel>,
    rec: &mut RequestRecord,
) -> Reply {
    if bad.is_none() && events.is_empty() {
        return codes::NO_DATA.into();
    }
    let now = Instant::now();
    let mut state = shared.lock();
    let (ack_id, acked_at) = match (bad, channel) {
        (None, Some(ch)) if shared.opts.acks => {
            let ready = match state.faults.ack_mode {
                AckMode::Immediate => Some(now),
                AckMode::Delayed(d) => Some(now + d),
                AckMode::Lost => None,
            };
            let acks = state.channels.entry(ch).or_default();
            let id = acks.next;
            acks.next += 1;
            acks.pending.insert(id, ready);
            (Some(id), ready)
        }
        _ => (None, Some(now)),
    };
    for e in &mut events {
        (e.channel, e.ack_id, e.acked_at) = (channel.map(|c| c.to_string()), ack_id, acked_at);
    }
    (rec.events, rec.ack_id) = (events.len(), ack_id);
    state.indexed.append(&mut events);
    match bad {
        Some((status, k)) => hec(status, Some(k), None),
        None => hec(codes::SUCCESS, None, ack_id),
    }
}

/// True for this channel's ids whose time has come, which are then forgotten.
fn poll_acks(shared: &Shared, channel: Channel, asked: Vec<u64>) -> Reply {
    let now = Instant::now();
    let mut state = shared.lock();
    let acks = state.channels.entry(channel).or_default();
    let ids: BTreeSet<u64> = asked.into_iter().collect();
    let pairs = ids.into_iter().map(|id| {
        let ready = acks.pending.get(&id).copied().flatten();
        let ready = ready.is_some_and(|t| t <= now);
        if ready {
            acks.pending.remove(&id);
        }
        (id, ready)
    });
    let acks: Map<String, Value> = pairs
        .map(|(id, ok)| (id.to_string(), Value::Bool(ok)))
        .collect();
    let json = serde_json::to_string(&serde_json::json!({ "acks": acks }));
    Reply {
        http: 200,
        code: None,
        json: json.expect("json"),
        retry_after: None,
    }
}

/// A `splunk` output named "splunk" to `urls` with the sink's token, fast
/// polls and retries, a 30 s `ack_timeout`, plus `extra` TOML lines.
pub fn splunk_output(urls: &[String], extra: &str) -> String {
    splunk_output_acking(urls, Some("30s"), extra)
}

/// [`splunk_output`] with `ack_timeout = "<ack_timeout>"`, or without the key
/// (Sluice's default) when None.
pub fn splunk_output_acking(urls: &[String], ack_timeout: Option<&str>, extra: &str) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    let ack_timeout = match ack_timeout {
        Some(t) => format!("ack_timeout = \"{t}\"\n"),
        None => String::new(),
    };
    // Tests count what the sink indexed: no stats events unless asked for.
    let stats = if extra.contains("stats_interval") {
        ""
    } else {
        "stats_interval = \"0s\"\n"
    };
    format!(
        r#"
[[outputs]]
name = "splunk"
type = "splunk"
urls = [{}]
token = "{SINK_TOKEN}"
ack_poll_interval = "100ms"
{ack_timeout}{stats}retry_initial = "50ms"
retry_max = "500ms"
linger = "10ms"
{extra}
"#,
        urls.join(", ")
    )
}
