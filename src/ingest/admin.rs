//! The admin API on the Unix socket (`crate::admin` is the contract) and the
//! metrics listener, which serves `/metrics` and nothing that changes state.

use super::{Control, IngestState};
use crate::admin::{
    ApiError, Drained, Purged, Replayed, Select, SeqLetter, DEAD_PATH, DEAD_PURGE_PATH,
    DEAD_REPLAY_PATH, DRAIN_PATH, QUEUE_STATS_PATH, QUEUE_VERIFY_PATH, RELOAD_PATH,
};
use crate::config::AckMode;
use crate::status::model::{HecView, TokenView};
use actix_web::{web, HttpResponse};
use std::time::Duration;

/// Routes of the metrics listener: metrics and the status page, nothing
/// that changes state; `/admin/…` there is a 404 like any other path.
pub(super) fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .route("/", web::get().to(status_page))
        .route("/api/status", web::get().to(status_json))
        .default_service(web::to(|| async { HttpResponse::NotFound().finish() }));
}

/// Routes of the admin socket.
pub(super) fn configure_admin(cfg: &mut web::ServiceConfig) {
    cfg.route(QUEUE_STATS_PATH, web::get().to(queue_stats))
        .route(QUEUE_VERIFY_PATH, web::get().to(queue_verify))
        .route(DEAD_PATH, web::get().to(dead_list))
        .route(DEAD_REPLAY_PATH, web::post().to(dead_replay))
        .route(DEAD_PURGE_PATH, web::post().to(dead_purge))
        .route(RELOAD_PATH, web::post().to(reload))
        .route(DRAIN_PATH, web::post().to(drain))
        .default_service(web::to(|| async { HttpResponse::NotFound().finish() }));
}

/// Refuses a request without the metrics listener's basic-auth credentials.
pub(super) async fn require_basic(
    basic: Option<std::sync::Arc<super::auth::BasicAuth>>,
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<actix_web::body::BoxBody>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if basic.is_some_and(|b| !b.permits(presented)) {
        let refused = HttpResponse::Unauthorized()
            .insert_header((
                "WWW-Authenticate",
                "Basic realm=\"sluice\", charset=\"UTF-8\"",
            ))
            .finish();
        return Ok(req.into_response(refused));
    }
    next.call(req).await
}

async fn metrics(st: web::Data<IngestState>) -> HttpResponse {
    st.refresh_gauges();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(st.metrics.render())
}

fn status(st: &IngestState) -> crate::status::model::Status {
    let tokens = st
        .tokens
        .load()
        .iter()
        .map(|t| TokenView {
            name: t.config.name.clone(),
            ack: match t.config.ack {
                AckMode::None => "none",
                AckMode::Durable => "durable",
                AckMode::Delivered => "delivered",
            },
            disabled: t.config.disabled,
        })
        .collect();
    let acks = st.acks.counts();
    st.status.snapshot(HecView {
        tokens,
        draining: st.is_draining(),
        client_ack_channels: acks.channels as u64,
        client_acks_pending: acks.pending as u64,
    })
}

async fn status_page(st: web::Data<IngestState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(crate::status::page::render(&status(&st)))
}

async fn status_json(st: web::Data<IngestState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(status(&st))
}

async fn queue_stats(st: web::Data<IngestState>) -> HttpResponse {
    HttpResponse::Ok().json(st.queue.stats())
}

async fn queue_verify(st: web::Data<IngestState>) -> HttpResponse {
    let queue = std::sync::Arc::clone(&st.queue);
    let max = st.limits.max_event_bytes;
    match web::block(move || crate::forward::verify::verify(&queue, max)).await {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(e) => failed(e),
    }
}

fn failed(e: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::InternalServerError().json(ApiError {
        error: e.to_string(),
    })
}

async fn dead_list(st: web::Data<IngestState>, q: web::Query<Select>) -> HttpResponse {
    match st.queue.dead_selected(q.seq, q.output.as_deref()) {
        Ok(all) => {
            let list: Vec<_> = all
                .into_iter()
                .map(|(seq, letter)| SeqLetter { seq, letter })
                .collect();
            HttpResponse::Ok().json(list)
        }
        Err(e) => failed(e),
    }
}

async fn dead_replay(st: web::Data<IngestState>, q: web::Query<Select>) -> HttpResponse {
    let outputs: Vec<&str> = st.outputs.iter().map(String::as_str).collect();
    match st
        .queue
        .replay_dead(q.seq, q.output.as_deref(), &outputs)
        .await
    {
        Ok(replayed) => HttpResponse::Ok().json(Replayed { replayed }),
        Err(e) => failed(e),
    }
}

async fn dead_purge(st: web::Data<IngestState>, q: web::Query<Select>) -> HttpResponse {
    match st.queue.purge_dead(q.seq, q.output.as_deref()) {
        Ok(purged) => HttpResponse::Ok().json(Purged { purged }),
        Err(e) => failed(e),
    }
}

async fn reload(st: web::Data<IngestState>) -> HttpResponse {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if st.control.send(Control::Reload(tx)).await.is_err() {
        return failed("the node is stopping");
    }
    match rx.await {
        Ok(Ok(done)) => HttpResponse::Ok().json(done),
        Ok(Err(why)) => failed(why),
        Err(_) => failed("the node is stopping"),
    }
}

/// How long one drain request may wait (the CLI asks again after it).
const DRAIN_WAIT_MAX: Duration = Duration::from_secs(24 * 3600);

#[derive(serde::Deserialize)]
struct DrainQuery {
    #[serde(default)]
    wait_seconds: u64,
}

async fn drain(st: web::Data<IngestState>, q: web::Query<DrainQuery>) -> HttpResponse {
    st.start_draining();
    if st.control.send(Control::Drain).await.is_err() {
        return failed("the node is stopping");
    }
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(q.wait_seconds).min(DRAIN_WAIT_MAX);
    loop {
        let s = st.queue.stats();
        let answer = Drained {
            empty: s.records == 0 && st.requests_in_flight() == 0,
            records: s.records,
            events: s.events,
            oldest_age_seconds: s.oldest_age_seconds,
        };
        if answer.empty || tokio::time::Instant::now() >= deadline {
            return HttpResponse::Ok().json(answer);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
