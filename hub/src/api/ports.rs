//! Ports and previews: what listens in a project's VM, who may open each
//! port's preview, and the one-time links that open private ones.

use super::body::JsonBody;
use super::model::ErrorBody;
use super::model::{Port, PortPatch, PortVisibility, PreviewLink};
use super::{Access, AppState, OwnedProject};
use crate::auth::{random_token, sha256};
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::events::Events;
use crate::idle::Activity;
use crate::preview::Previews;
use crate::preview::Visibility;
use axum::extract::FromRef;
use axum::extract::{Path, State};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// What the port routes need: the caller's projects, the ports their VMs
/// report, the port events, and which ports keep a VM awake.
#[derive(Clone)]
pub struct PortsState {
    pub access: Access,
    pub previews: Arc<Previews>,
    pub events: Arc<Events>,
    pub activity: Arc<Activity>,
}

super::extract::area_state!(PortsState);

impl FromRef<AppState> for PortsState {
    fn from_ref(hub: &AppState) -> Self {
        Self {
            access: hub.access.clone(),
            previews: hub.previews.clone(),
            events: hub.events.clone(),
            activity: hub.activity.clone(),
        }
    }
}

/// The port routes, on any state that holds a `PortsState`.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    PortsState: FromRef<S>,
    Access: FromRef<S>,
{
    Router::new()
        .route("/projects/{id}/ports", get(list))
        .route("/projects/{id}/ports/{port}", patch(update))
        .route("/projects/{id}/ports/{port}/open", post(open))
}

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, update, open))]
pub(super) struct Doc;

fn port_number(raw: &str) -> ApiResult<u16> {
    raw.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| ApiError::bad_request("port must be 1 to 65535"))
}

/// The project's ports as the API shows them.
async fn ports(db: &Db, previews: &Previews, project: Uuid) -> ApiResult<Vec<Port>> {
    let settings: HashMap<i32, String> = db.port_visibilities(project).await?.into_iter().collect();
    let flags: HashMap<i32, (bool, bool)> =
        db.port_flags(project).await?.into_iter().map(|(p, k, w)| (p, (k, w))).collect();
    let list = previews
        .ports(project)
        .into_iter()
        .map(|p| {
            let visibility = match settings.get(&i32::from(p.port)).map(String::as_str) {
                Some("public") => PortVisibility::Public,
                _ => PortVisibility::Private,
            };
            let (keeps_awake, wakes_on_visit) = flags.get(&i32::from(p.port)).copied().unwrap_or_default();
            Port {
                address: Some(p.address),
                keeps_awake: Some(keeps_awake),
                port: p.port,
                preview_url: previews.url(project, p.port),
                process: (!p.process.is_empty()).then_some(p.process),
                visibility,
                wakes_on_visit: Some(wakes_on_visit),
            }
        })
        .collect();
    Ok(list)
}

/// The project's ports as the API shows them, as the `ports` event carries them.
pub async fn ports_json(db: &Db, previews: &Previews, project: Uuid) -> ApiResult<Value> {
    Ok(serde_json::to_value(ports(db, previews, project).await?).map_err(anyhow::Error::from)?)
}

#[utoipa::path(get, path = "/api/projects/{id}/ports", params(("id" = String, Path, description = "The project's id")), responses((status = 200, body = Vec<Port>), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody)), operation_id = "ports_list", tag = "ports")]
async fn list(
    State(state): State<PortsState>,
    OwnedProject { project, .. }: OwnedProject,
) -> ApiResult<Json<Vec<Port>>> {
    Ok(Json(ports(&state.access.db, &state.previews, project.id).await?))
}

#[utoipa::path(patch, path = "/api/projects/{id}/ports/{port}", params(("id" = String, Path, description = "The project's id"), ("port" = u16, Path)), request_body = PortPatch, responses((status = 200, body = Port), (status = 400, description = "Invalid body or port", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody)), operation_id = "ports_update", tag = "ports")]
async fn update(
    State(state): State<PortsState>,
    OwnedProject { project, .. }: OwnedProject,
    Path((_, port)): Path<(String, String)>,
    raw: JsonBody<PortPatch>,
) -> ApiResult<Json<Port>> {
    let port = port_number(&port)?;
    let p = raw.parse()?;
    if let Some(visibility) = p.visibility.map(Visibility::from) {
        state.access.db.set_port_visibility(project.id, port, visibility.as_str()).await?;
        state.previews.remember_visibility(project.id, port, visibility);
    }
    if p.keeps_awake.is_some() || p.wakes_on_visit.is_some() {
        let (keeps, _) = state.access.db.set_port_flags(project.id, port, p.keeps_awake, p.wakes_on_visit).await?;
        state.activity.set_keeps_awake(project.id, port, keeps);
    }
    let visibility = match state.access.db.port_visibility(project.id, port).await?.as_deref() {
        Some("public") => Visibility::Public,
        _ => Visibility::Private,
    };
    let all = ports(&state.access.db, &state.previews, project.id).await?;
    state.events.publish(project.id, "ports", serde_json::to_value(&all).map_err(anyhow::Error::from)?);
    let listed = all.into_iter().find(|p| p.port == port);
    Ok(Json(listed.unwrap_or_else(|| Port {
        address: None,
        keeps_awake: None,
        port,
        preview_url: state.previews.url(project.id, port),
        process: None,
        visibility: visibility.into(),
        wakes_on_visit: None,
    })))
}

#[utoipa::path(post, path = "/api/projects/{id}/ports/{port}/open", params(("id" = String, Path, description = "The project's id"), ("port" = u16, Path)), responses((status = 200, description = "A one-time URL that sets the private-preview cookie and redirects to `/`", body = PreviewLink), (status = 400, description = "Invalid port", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody)), operation_id = "ports_open", tag = "ports")]
async fn open(
    State(state): State<PortsState>,
    OwnedProject { user, project }: OwnedProject,
    Path((_, port)): Path<(String, String)>,
) -> ApiResult<Json<PreviewLink>> {
    let port = port_number(&port)?;
    let token = random_token(32);
    let expires = chrono::Utc::now() + chrono::Duration::seconds(60);
    state.access.db.create_preview_token(&sha256(token.as_bytes()), user.id, project.id, port, expires).await?;
    let url = format!("{}{}?token={token}", state.previews.url(project.id, port), &crate::preview::AUTH_PATH[1..]);
    Ok(Json(PreviewLink { expires_at: expires, url }))
}
