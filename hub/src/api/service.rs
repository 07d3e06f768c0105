//! Service routes: health, readiness, metrics, and the web app with its SPA
//! fallback (every path no other route answers; `/` is the landing page's).

use super::AppState;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::tunnel::Tunnels;
use axum::Router;
use axum::extract::FromRef;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use std::path::Path;
use std::sync::Arc;
use tower_http::services::{ServeDir, ServeFile};

/// What the service routes read: the database (to say ready), the tunnel
/// count and the counters.
#[derive(Clone)]
pub struct ServiceState {
    pub db: Db,
    pub tunnels: Arc<Tunnels>,
    pub metrics: Arc<Metrics>,
}

impl FromRef<AppState> for ServiceState {
    fn from_ref(hub: &AppState) -> Self {
        Self { db: hub.db.clone(), tunnels: hub.tunnels.clone(), metrics: hub.metrics.clone() }
    }
}

/// The service routes and the web app (from `web_dir`, when it is built).
pub fn routes<S>(web_dir: Option<&Path>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    ServiceState: FromRef<S>,
{
    let router =
        Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics));
    match web_dir {
        Some(dir) => {
            let index = dir.join("index.html");
            router.fallback_service(ServeDir::new(dir).fallback(ServeFile::new(index)))
        }
        None => router.fallback(get(no_web_app)),
    }
}

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz, metrics))]
pub(super) struct Doc;

#[utoipa::path(get, path = "/healthz", security(()), tag = "service",
    responses((status = 200, description = "`ok` while the process runs", content_type = "text/plain", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", security(()), tag = "service",
    responses((status = 200, description = "`ready`: the database answers", content_type = "text/plain", body = String),
        (status = 503, description = "The database does not answer", body = super::model::ErrorBody)))]
async fn readyz(State(service): State<ServiceState>) -> Result<&'static str, crate::error::ApiError> {
    match service.db.ping().await {
        true => Ok("ready"),
        false => Err(crate::error::ApiError::DatabaseUnavailable),
    }
}

#[utoipa::path(get, path = "/metrics", security(()), tag = "service",
    responses((status = 200, description = "The hub's counters, in Prometheus's text format", content_type = "text/plain", body = String)))]
async fn metrics(State(service): State<ServiceState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], service.metrics.render(service.tunnels.count()))
}

async fn no_web_app() -> Html<&'static str> {
    Html(
        "<!doctype html><title>aether</title><body style=\"font-family:system-ui;padding:2rem\">\
         <h1>aether hub</h1><p>The web app is not built. Run <code>make web</code> \
         (or set <code>AETHER_WEB_DIR</code>) and reload. The API is at <code>/api</code>.</p>",
    )
}
