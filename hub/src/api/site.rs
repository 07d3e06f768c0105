//! The public pages: the landing page at `/` and the docs under `/docs`
//! (rendered by `crate::site`). Anyone may read them, and they touch no
//! database; every other path outside `/api` stays the web app's.

use super::AppState;
use crate::site::{self, Facts};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(landing)).route("/docs", get(index)).route("/docs/{page}", get(doc))
}

fn facts(hub: &crate::Hub) -> Facts<'_> {
    Facts {
        ssh_host: &hub.ssh.public_host,
        ssh_port: hub.ssh.public_port,
        default_plan: &hub.config.default_plan,
        billing: hub.billing.is_some(),
    }
}

/// Pages change only with the hub's binary or configuration: a browser may
/// keep one a few minutes.
fn cached(html: String) -> Response {
    ([(header::CACHE_CONTROL, "public, max-age=300")], Html(html)).into_response()
}

async fn landing(State(hub): State<AppState>) -> Response {
    cached(site::landing::render(facts(&hub)))
}

async fn index() -> Response {
    cached(site::docs::index())
}

async fn doc(State(hub): State<AppState>, Path(page): Path<String>) -> Response {
    match site::docs::page_html(&page, facts(&hub)) {
        Some(html) => cached(html),
        None => (StatusCode::NOT_FOUND, Html(site::docs::not_found())).into_response(),
    }
}
