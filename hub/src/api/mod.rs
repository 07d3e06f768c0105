//! The HTTP API: the router, shared state, and cross-cutting layers (request
//! ids, metrics). Each submodule serves one part of the contract.

pub mod account;
mod activity;
mod agents;
pub mod auth;
mod billing;
mod body;
mod errors;
mod extract;
pub use extract::{Access, LiveTunnel, OwnedProject};
pub mod files;
pub mod model;
pub mod openapi;
pub mod ports;
pub use ports::ports_json;
mod projects;
mod service;
mod site;
mod terminals;
pub mod ws;

use crate::Hub;
use axum::Router;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts, Request, State};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tracing::Instrument;

/// State shared by every handler.
pub type AppState = Arc<Hub>;

impl FromRef<AppState> for crate::accounts::Accounts {
    fn from_ref(hub: &AppState) -> Self {
        hub.accounts.clone()
    }
}

/// The whole HTTP surface of the hub.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(auth::routes())
        .merge(account::routes())
        .merge(projects::routes())
        .merge(terminals::routes())
        .merge(files::routes())
        .merge(ports::routes())
        .merge(agents::routes())
        .merge(billing::routes())
        .merge(activity::routes())
        .merge(openapi::routes())
        .fallback(|| async { crate::error::ApiError::NotFound });
    Router::new()
        .nest("/api", api)
        .merge(site::routes())
        .merge(service::routes(state.web_dir.as_deref()))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            crate::error::ApiError::Internal(anyhow::anyhow!("a handler panicked")).into_response()
        }))
        .layer(middleware::from_fn_with_state(state.metrics.clone(), request_context))
        // Preview-auth is on the app's own origin, outside the API's layers.
        .layer(middleware::from_fn(preview_auth_page))
        .with_state(state)
}

/// The page that turns a signed-in session into a one-time preview link
/// (requests for preview hosts never reach this router: see `http`).
async fn preview_auth_page(req: Request, next: Next) -> Response {
    if req.uri().path() == "/__aether/preview-auth" {
        return crate::preview::auth_page();
    }
    next.run(req).await
}

/// Gives every request an id (in its span and the `x-request-id` header)
/// and counts it.
async fn request_context(State(metrics): State<Arc<crate::metrics::Metrics>>, req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut resp = next.run(req).instrument(span).await;
    metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    if resp.status().is_server_error() {
        metrics.http_errors_5xx.fetch_add(1, Ordering::Relaxed);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// The address a request comes from, for abuse limits: the peer of its
/// connection, or, behind a proxy named by `AETHER_CLIENT_IP_HEADER`, the
/// address the proxy put in that header (the last one, if it lists several:
/// the one the proxy itself saw).
pub struct ClientIp(pub IpAddr);

/// The header a proxy in front of the hub names the client in
/// (`AETHER_CLIENT_IP_HEADER`), if there is one.
#[derive(Clone, Default)]
pub struct ClientIpHeader(pub Option<Arc<str>>);

impl FromRef<AppState> for ClientIpHeader {
    fn from_ref(hub: &AppState) -> Self {
        Self(hub.config.client_ip_header.clone())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp
where
    ClientIpHeader: FromRef<S>,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        let ClientIpHeader(header) = ClientIpHeader::from_ref(state);
        let from_proxy = header.as_deref().and_then(|name| {
            let value = parts.headers.get_all(name).iter().next_back()?.to_str().ok()?;
            value.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
        });
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        // Without either (a router driven directly), all such callers share one key.
        Ok(Self(from_proxy.or(peer).unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))))
    }
}
