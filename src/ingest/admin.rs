//! The metrics/admin listener: `/metrics` and the admin API the CLI talks to
//! while Sluice runs (sled lets only one process open the queue).

use super::IngestState;
use actix_web::{web, HttpResponse};

/// Admin API path of the queue totals (`sluice queue stats`).
pub const QUEUE_STATS_PATH: &str = "/admin/queue/stats";

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .route(QUEUE_STATS_PATH, web::get().to(queue_stats))
        .route("/admin/dead", web::get().to(dead_list))
        .route("/admin/dead/replay", web::post().to(dead_replay))
        .route("/admin/dead/purge", web::post().to(dead_purge))
        .default_service(web::to(|| async { HttpResponse::NotFound().finish() }));
}

async fn metrics(st: web::Data<IngestState>) -> HttpResponse {
    st.refresh_gauges();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(st.metrics.render())
}

async fn queue_stats(st: web::Data<IngestState>) -> HttpResponse {
    HttpResponse::Ok().json(st.queue.stats())
}

/// `?seq=N&output=NAME` selecting dead letters.
#[derive(serde::Deserialize)]
struct Select {
    seq: Option<u64>,
    output: Option<String>,
}

fn failed(e: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::InternalServerError().json(serde_json::json!({ "error": e.to_string() }))
}

async fn dead_list(st: web::Data<IngestState>, q: web::Query<Select>) -> HttpResponse {
    match st.queue.dead_selected(q.seq, q.output.as_deref()) {
        Ok(all) => {
            let list: Vec<_> = all
                .into_iter()
                .map(|(seq, letter)| crate::admin_client::SeqLetter { seq, letter })
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
        Ok(n) => HttpResponse::Ok().json(serde_json::json!({ "replayed": n })),
        Err(e) => failed(e),
    }
}

async fn dead_purge(st: web::Data<IngestState>, q: web::Query<Select>) -> HttpResponse {
    match st.queue.purge_dead(q.seq, q.output.as_deref()) {
        Ok(n) => HttpResponse::Ok().json(serde_json::json!({ "purged": n })),
        Err(e) => failed(e),
    }
}
