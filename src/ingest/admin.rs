//! The metrics/admin listener: `/metrics` and the admin API the CLI talks to
//! while Sluice runs (sled lets only one process open the queue).

use super::IngestState;
use actix_web::{web, HttpResponse};

/// Admin API path of the queue totals (`sluice queue stats`).
pub const QUEUE_STATS_PATH: &str = "/admin/queue/stats";

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .route(QUEUE_STATS_PATH, web::get().to(queue_stats))
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
