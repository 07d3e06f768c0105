//! The OpenAPI document of the API, generated from the handlers'
//! `#[utoipa::path]` attributes (each file's `Doc`) and the types in
//! `model` and `ws`, and served at `GET /api/openapi.json`: public, as it
//! describes the API and grants nothing.
//!
//! `hub/tests/openapi.rs` checks it against the contract
//! (docs/contract/API.md) and keeps the web app's copy
//! (web/src/api/openapi.json) equal to it.

use super::model::ErrorBody;
use super::ws::{AgentSessionMessage, TerminalClientMessage, TerminalServerMessage, WatchEvent};
use super::{account, activity, agents, auth, billing, files, ports, projects, service, terminals};
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::LazyLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/openapi.json", get(serve))
}

/// The document's top: its title, the bearer scheme every route needs
/// unless it says `security(())`, and the WebSockets' message types (no
/// route's body names them).
#[derive(OpenApi)]
#[openapi(
    info(title = "aether hub API", description = "The hub's HTTP and WebSocket contract (docs/contract/API.md)."),
    paths(serve),
    components(schemas(TerminalServerMessage, TerminalClientMessage, WatchEvent, AgentSessionMessage, ErrorBody)),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
struct Top;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("An access token from sign-in; WebSocket upgrades carry `?ticket=` instead"))
            .build();
        doc.components.get_or_insert_with(Default::default).add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The whole document, built from the code.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Top::openapi();
    for part in [
        auth::Doc::openapi(),
        account::Doc::openapi(),
        projects::Doc::openapi(),
        activity::Doc::openapi(),
        terminals::Doc::openapi(),
        files::Doc::openapi(),
        ports::Doc::openapi(),
        agents::Doc::openapi(),
        billing::Doc::openapi(),
        service::Doc::openapi(),
    ] {
        utoipa::openapi::OpenApi::merge(&mut doc, part);
    }
    doc
}

/// The document as `GET /api/openapi.json` serves it (and the web app
/// keeps it): pretty JSON, built once.
pub fn json() -> &'static str {
    static JSON: LazyLock<String> =
        LazyLock::new(|| document().to_pretty_json().expect("the OpenAPI document serialises"));
    &JSON
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", security(()), tag = "service",
    responses((status = 200, description = "This OpenAPI document", content_type = "application/json", body = Object)))]
async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json())
}
