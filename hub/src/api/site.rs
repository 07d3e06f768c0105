//! The public pages: the landing page at `/` and the docs under `/docs`
//! (rendered by `crate::site`). Anyone may read them, and they touch no
//! database; every other path outside `/api` stays the web app's.

use super::AppState;
use crate::site::{self, Facts};
use axum::Router;
use axum::extract::FromRef;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

/// What the public pages show of this hub (its configuration only).
#[derive(Clone)]
pub struct SiteState {
    pub ssh_host: Arc<str>,
    pub ssh_port: u16,
    pub default_plan: Arc<str>,
    pub billing: bool,
}

impl FromRef<AppState> for SiteState {
    fn from_ref(hub: &AppState) -> Self {
        Self {
            ssh_host: hub.ssh.public_host.clone(),
            ssh_port: hub.ssh.public_port,
            default_plan: hub.access.default_plan.clone(),
            billing: hub.billing.is_some(),
        }
    }
}

/// The public pages, on any state that holds a `SiteState`.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    SiteState: FromRef<S>,
{
    Router::new().route("/", get(landing)).route("/docs", get(index)).route("/docs/{page}", get(doc))
}

fn facts(site: &SiteState) -> Facts<'_> {
    Facts { ssh_host: &site.ssh_host, ssh_port: site.ssh_port, default_plan: &site.default_plan, billing: site.billing }
}

/// Pages change only with the hub's binary or configuration: a browser may
/// keep one a few minutes.
fn cached(html: String) -> Response {
    ([(header::CACHE_CONTROL, "public, max-age=300")], Html(html)).into_response()
}

async fn landing(State(site): State<SiteState>) -> Response {
    cached(site::landing::render(facts(&site)))
}

async fn index() -> Response {
    cached(site::docs::index())
}

async fn doc(State(site): State<SiteState>, Path(page): Path<String>) -> Response {
    match site::docs::page_html(&page, facts(&site)) {
        Some(html) => cached(html),
        None => (StatusCode::NOT_FOUND, Html(site::docs::not_found())).into_response(),
    }
}
