//! HEC routes and handlers, checking in Splunk's order:
//! route → query token → auth → channel → encoding → size → parse → enqueue.

use super::acks::AckWait;
use super::auth::authenticate;
use super::decode::{content_encoding, decode_status, scan_body, Scan};
use super::reply::Reply;
use super::streams::{ConnStreams, StreamSlot, MAX_STREAMS_PER_CONNECTION};
use super::IngestState;
use crate::config::{AckMode, Token};
use crate::hec::ack::{AckReply, AckRequest};
use crate::hec::codes;
use crate::hec::event::EventRules;
use crate::hec::Channel;
use crate::queue::{BodyEncoding, DataEndpoint, RecordMeta};
use actix_web::http::header::{HeaderMap, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const CHANNEL_HEADER: &str = "x-splunk-request-channel";
/// Decoded size cap for `/ack` bodies, which are tiny.
const MAX_ACK_BODY: u64 = 1 << 20;

type State = web::Data<IngestState>;

/// Registers every HEC path; others get Splunk's 404, wrong methods 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for path in [
        "/services/collector",
        "/services/collector/event",
        "/services/collector/event/1.0",
    ] {
        cfg.service(
            web::resource(path)
                .route(web::post().to(event))
                .default_service(web::to(method_not_allowed)),
        );
    }
    for path in ["/services/collector/raw", "/services/collector/raw/1.0"] {
        cfg.service(
            web::resource(path)
                .route(web::post().to(raw))
                .default_service(web::to(method_not_allowed)),
        );
    }
    for path in ["/services/collector/ack", "/services/collector/ack/1.0"] {
        cfg.service(
            web::resource(path)
                .route(web::post().to(ack))
                .default_service(web::to(method_not_allowed)),
        );
    }
    for path in [
        "/services/collector/health",
        "/services/collector/health/1.0",
    ] {
        cfg.service(
            web::resource(path)
                .route(web::get().to(health))
                .route(web::head().to(health))
                .route(web::post().to(health))
                .default_service(web::to(method_not_allowed)),
        );
    }
    cfg.default_service(web::to(not_found));
}

async fn not_found(st: State) -> HttpResponse {
    st.answer("other", Reply::status(codes::NOT_FOUND), Instant::now())
}

async fn method_not_allowed(st: State) -> HttpResponse {
    st.answer(
        "other",
        Reply::status(codes::METHOD_NOT_ALLOWED),
        Instant::now(),
    )
}

async fn event(req: HttpRequest, payload: web::Payload, st: State) -> HttpResponse {
    let started = Instant::now();
    let _busy = st.in_flight();
    let reply = match slot(&req, &st) {
        Ok(_slot) => data(&req, payload, &st, DataEndpoint::Event)
            .await
            .unwrap_or_else(|r| r),
        Err(r) => r,
    };
    st.answer("event", reply, started)
}

async fn raw(req: HttpRequest, payload: web::Payload, st: State) -> HttpResponse {
    let started = Instant::now();
    let _busy = st.in_flight();
    let reply = match slot(&req, &st) {
        Ok(_slot) => data(&req, payload, &st, DataEndpoint::Raw)
            .await
            .unwrap_or_else(|r| r),
        Err(r) => r,
    };
    st.answer("raw", reply, started)
}

async fn ack(req: HttpRequest, payload: web::Payload, st: State) -> HttpResponse {
    let started = Instant::now();
    let _busy = st.in_flight();
    let reply = match slot(&req, &st) {
        Ok(_slot) => ack_poll(&req, payload, &st).await.unwrap_or_else(|r| r),
        Err(r) => r,
    };
    st.answer("ack", reply, started)
}

/// One of the connection's request slots, or 503 code 9 when it has the
/// most requests open already.
fn slot(req: &HttpRequest, st: &IngestState) -> Result<Option<StreamSlot>, Reply> {
    let Some(streams) = req.conn_data::<ConnStreams>() else {
        return Ok(None);
    };
    match streams.acquire(MAX_STREAMS_PER_CONNECTION) {
        Some(slot) => Ok(Some(slot)),
        None => {
            st.metrics.ingest_refused_streams.inc();
            Err(codes::SERVER_BUSY.into())
        }
    }
}

/// How much of a body is read (and thrown away) before a refusal that came
/// before it, and for how long: over HTTP/2 an answer sent while the client
/// is still sending ends in RST_STREAM, which curl shows as a transport
/// error instead of the HEC answer.
const DRAIN_MAX: u64 = 2 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops what is left of a body, within bounds, then refuses.
async fn refuse(payload: &mut web::Payload, req: &HttpRequest, reply: Reply) -> Reply {
    let declared = header(req.headers(), CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_MAX) {
        return reply;
    }
    let drain = async {
        let mut seen = 0u64;
        while let Some(Ok(chunk)) = payload.next().await {
            seen += chunk.len() as u64;
            if seen > DRAIN_MAX {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    reply
}

async fn health(st: State) -> HttpResponse {
    let started = Instant::now();
    let reply = if st.is_draining() {
        Reply::closing(codes::SHUTTING_DOWN)
    } else {
        match (st.queue.over_watermark(), st.acks.service_full()) {
            (true, true) => Reply::status(codes::UNHEALTHY_QUEUES_ACK),
            (true, false) => Reply::status(codes::UNHEALTHY_QUEUES_FULL),
            (false, true) => Reply::status(codes::UNHEALTHY_ACK),
            (false, false) => Reply::status(codes::HEALTHY),
        }
    };
    st.answer("health", reply, started)
}

/// The query string as key/value pairs (first value of a key wins).
struct Query<'q>(Vec<(Cow<'q, str>, Cow<'q, str>)>);

impl<'q> Query<'q> {
    fn parse(q: &'q str) -> Query<'q> {
        Query(form_urlencoded::parse(q.as_bytes()).collect())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    fn owned(&self, key: &str) -> Option<String> {
        self.get(key).filter(|v| !v.is_empty()).map(str::to_string)
    }
}

fn header(headers: &HeaderMap, name: impl actix_web::http::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What a request is for, as far as the drain phase cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// `/event`, `/raw`: refused while draining.
    Data,
    /// `/ack`: answered while draining.
    Ack,
}

/// Route-independent checks up to the channel.
fn caller(
    req: &HttpRequest,
    st: &IngestState,
    query: &Query<'_>,
    purpose: Purpose,
) -> Result<(Arc<Token>, Option<Channel>), Reply> {
    // While draining, acks of what was accepted are still answered: a client
    // that cannot confirm its batches would send them again elsewhere.
    if st.is_draining() && purpose == Purpose::Data {
        return Err(Reply::closing(codes::SHUTTING_DOWN));
    }
    // The connection was shut when it opened (a request read before that is
    // refused here); and a reload may have narrowed the list since an older
    // connection opened.
    let denied = req.conn_data::<super::allow::Denied>().is_some()
        || req
            .peer_addr()
            .is_some_and(|p| !st.allow.load().permits(p.ip()));
    if denied {
        return Err(Reply::closing(codes::FORBIDDEN_PEER));
    }
    let tokens = st.tokens.load();
    let token = Arc::clone(authenticate(
        &tokens,
        header(req.headers(), AUTHORIZATION),
        query.get("token"),
    )?);
    let presented = header(req.headers(), CHANNEL_HEADER).or_else(|| query.get("channel"));
    let channel = match presented {
        Some(c) => Some(Channel::parse(c).ok_or(codes::CHANNEL_INVALID)?),
        None if token.config.ack != AckMode::None => return Err(codes::CHANNEL_MISSING.into()),
        None => None,
    };
    Ok((token, channel))
}

/// Encoding and size checks, then the body as received, within
/// `body_timeout` of the handler's start.
async fn body(
    req: &HttpRequest,
    payload: &mut web::Payload,
    limit: u64,
    deadline: tokio::time::Instant,
) -> Result<(BodyEncoding, Bytes), Reply> {
    let Some(encoding) = content_encoding(header(req.headers(), CONTENT_ENCODING)) else {
        return Err(refuse(payload, req, codes::UNSUPPORTED_ENCODING.into()).await);
    };
    let declared = header(req.headers(), CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(refuse(payload, req, codes::PAYLOAD_TOO_LARGE.into()).await);
    }
    let read = async {
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit) as usize);
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| Reply::status(codes::INVALID_DATA_FORMAT))?;
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(Reply::status(codes::PAYLOAD_TOO_LARGE));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    };
    // One timer for the whole body.
    match tokio::time::timeout_at(deadline, read).await {
        Ok(body) => Ok((encoding, body?)),
        Err(_) => Err(codes::REQUEST_TIMEOUT.into()),
    }
}

async fn data(
    req: &HttpRequest,
    mut payload: web::Payload,
    st: &IngestState,
    endpoint: DataEndpoint,
) -> Result<Reply, Reply> {
    let deadline = tokio::time::Instant::now() + st.limits.body_timeout;
    let query = Query::parse(req.query_string());
    let (token, channel) = match caller(req, st, &query, Purpose::Data) {
        Ok(c) => c,
        Err(r) => return Err(refuse(&mut payload, req, r).await),
    };
    let (encoding, body) = body(req, &mut payload, st.limits.max_body_bytes, deadline).await?;
    let meta = RecordMeta {
        endpoint,
        token: token.config.name.clone(),
        channel: channel.map(|c| c.to_string()),
        sourcetype: query.owned("sourcetype"),
        source: query.owned("source"),
        host: query.owned("host"),
        index: query.owned("index"),
        received_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        events: 0,
        encoding,
        decoded_bytes: 0,
    };
    let rules = EventRules {
        allowed_indexes: &token.config.allowed_indexes,
        max_event_bytes: st.limits.max_event_bytes,
    };
    if meta
        .index
        .as_deref()
        .is_some_and(|i| !rules.index_allowed(i))
    {
        return Err(codes::INCORRECT_INDEX.into());
    }
    let allowed = token.config.allowed_indexes.clone();
    let max_decoded = st.limits.max_decoded_bytes;
    let max_event_bytes = st.limits.max_event_bytes;
    let scan_input = body.clone();
    let scan = web::block(move || {
        let rules = EventRules {
            allowed_indexes: &allowed,
            max_event_bytes,
        };
        scan_body(&scan_input, encoding, endpoint, rules, max_decoded)
    })
    .await
    .map_err(|_| Reply::status(codes::INTERNAL_ERROR))?
    .map_err(|e| Reply::status(decode_status(e)))?;
    match scan {
        Scan::Probe => {
            st.metrics.ingest_probes.inc();
            // Never queued; on an ack token its ackId is true at once.
            let ack_id = match channel.filter(|_| token.config.ack != AckMode::None) {
                Some(c) => {
                    if let Err(full) = st.acks.has_room(&token.config.name) {
                        tracing::warn!(token = %token.config.name, ?full, "no room for another client ack id");
                        return Err(codes::SERVER_BUSY.into());
                    }
                    Some(st.acks.register(&token.config.name, c, AckWait::Flushed))
                }
                None => None,
            };
            Ok(Reply {
                ack_id,
                ..Reply::status(codes::SUCCESS)
            })
        }
        Scan::Accepted {
            events,
            decoded_bytes,
        } => {
            let ack_id = enqueue(
                st,
                &token,
                channel,
                RecordMeta {
                    events,
                    decoded_bytes,
                    ..meta
                },
                body,
            )
            .await?;
            Ok(Reply {
                ack_id,
                ..Reply::status(codes::SUCCESS)
            })
        }
        Scan::Rejected(r) => {
            if r.status == codes::NO_DATA {
                return Err(codes::NO_DATA.into());
            }
            // Splunk indexes the events before the bad one; so do we.
            if r.event_number > 0 {
                let kept = RecordMeta {
                    events: r.event_number,
                    decoded_bytes: r.accepted_bytes,
                    ..meta
                };
                // The 400 carries no ackId, so none is handed out.
                enqueue(st, &token, None, kept, body).await?;
            }
            Err(Reply {
                invalid_event_number: Some(r.event_number),
                ..Reply::status(r.status)
            })
        }
    }
}

/// Appends durably; returns the client ack id when `ack_channel` is given
/// and the token has acks.
async fn enqueue(
    st: &IngestState,
    token: &Token,
    ack_channel: Option<Channel>,
    meta: RecordMeta,
    body: Bytes,
) -> Result<Option<u64>, Reply> {
    let ack_channel = ack_channel.filter(|_| token.config.ack != AckMode::None);
    if let Err(busy) = st.queue.admit(body.len() as u64) {
        tracing::debug!(?busy, "queue refuses new records");
        return Err(codes::SERVER_BUSY.into());
    }
    if ack_channel.is_some() {
        if let Err(full) = st.acks.has_room(&token.config.name) {
            tracing::warn!(token = %token.config.name, ?full, "no room for another client ack id");
            return Err(codes::SERVER_BUSY.into());
        }
    }
    let queue = st.queue.clone();
    let received = body.len() as u64;
    let (events, decoded) = (meta.events, meta.decoded_bytes);
    let pending = web::block(move || queue.append(&meta, &body))
        .await
        .map_err(|_| Reply::status(codes::SERVER_BUSY))?
        .map_err(|e| {
            tracing::error!(error = %e, "queue append failed");
            Reply::status(codes::SERVER_BUSY)
        })?;
    st.queue.commit(pending).await.map_err(|e| {
        tracing::error!(error = %e, "queue flush failed");
        Reply::status(codes::SERVER_BUSY)
    })?;
    let name = token.config.name.as_str();
    st.metrics
        .ingest_events
        .with_label_values(&[name])
        .inc_by(events);
    st.metrics
        .ingest_bytes
        .with_label_values(&["received"])
        .inc_by(received);
    st.metrics
        .ingest_bytes
        .with_label_values(&["decoded"])
        .inc_by(decoded);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    st.metrics
        .ingest_last_received
        .with_label_values(&[name])
        .set(now);
    let wait = match token.config.ack {
        AckMode::None => return Ok(None),
        AckMode::Durable => AckWait::Flushed,
        AckMode::Delivered => AckWait::Delivered(pending.id),
    };
    Ok(ack_channel.map(|c| st.acks.register(&token.config.name, c, wait)))
}

async fn ack_poll(
    req: &HttpRequest,
    mut payload: web::Payload,
    st: &IngestState,
) -> Result<Reply, Reply> {
    let deadline = tokio::time::Instant::now() + st.limits.body_timeout;
    let query = Query::parse(req.query_string());
    let (token, channel) = match caller(req, st, &query, Purpose::Ack) {
        Ok(c) => c,
        Err(r) => return Err(refuse(&mut payload, req, r).await),
    };
    if token.config.ack == AckMode::None {
        return Err(refuse(&mut payload, req, codes::ACK_DISABLED.into()).await);
    }
    let Some(channel) = channel else {
        return Err(refuse(&mut payload, req, codes::CHANNEL_MISSING.into()).await);
    };
    let limit = st.limits.max_body_bytes.min(MAX_ACK_BODY);
    let (encoding, body) = body(req, &mut payload, limit, deadline).await?;
    let decoded = match encoding {
        BodyEncoding::Identity => body.to_vec(),
        BodyEncoding::Gzip => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&body[..])
                .take(MAX_ACK_BODY + 1)
                .read_to_end(&mut out)
                .map_err(|_| Reply::status(codes::INVALID_DATA_FORMAT))?;
            if out.len() as u64 > MAX_ACK_BODY {
                return Err(codes::PAYLOAD_TOO_LARGE.into());
            }
            out
        }
    };
    if decoded.iter().all(u8::is_ascii_whitespace) {
        return Err(codes::NO_DATA.into());
    }
    let request =
        AckRequest::parse(&decoded).map_err(|_| Reply::status(codes::INVALID_DATA_FORMAT))?;
    let results = st
        .acks
        .query(&token.config.name, channel, &request.acks, |rec| {
            !st.queue.contains(rec)
        });
    Ok(Reply {
        acks: Some(AckReply::from_pairs(results)),
        ..Reply::status(codes::SUCCESS)
    })
}
