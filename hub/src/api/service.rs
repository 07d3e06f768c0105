//! Service routes: health, readiness, metrics, and the web app with its SPA
//! fallback (every path no other route answers; `/` is the landing page's).

use super::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tower_http::services::{ServeDir, ServeFile};

pub fn routes(state: &AppState) -> Router<AppState> {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    match &state.web_dir {
        Some(dir) => {
            let index = dir.join("index.html");
            router.fallback_service(ServeDir::new(dir).fallback(ServeFile::new(index)))
        }
        None => router.fallback(get(no_web_app)),
    }
}

async fn readyz(State(hub): State<AppState>) -> Result<&'static str, crate::error::ApiError> {
    match hub.db.ping().await {
        true => Ok("ready"),
        false => Err(crate::error::ApiError::DatabaseUnavailable),
    }
}

async fn metrics(State(hub): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], hub.metrics.render(hub.tunnels.count()))
}

async fn no_web_app() -> Html<&'static str> {
    Html(
        "<!doctype html><title>aether</title><body style=\"font-family:system-ui;padding:2rem\">\
         <h1>aether hub</h1><p>The web app is not built. Run <code>make web</code> \
         (or set <code>AETHER_WEB_DIR</code>) and reload. The API is at <code>/api</code>.</p>",
    )
}
