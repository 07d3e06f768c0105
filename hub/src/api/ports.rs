//! Ports and previews: what listens in a project's VM, who may open each
//! port's preview, and the one-time links that open private ones.

use super::AppState;
use super::OwnedProject;
use super::body::JsonBody;
use super::model::ErrorBody;
use super::model::{Port, PortPatch, PortVisibility, PreviewLink};
use crate::auth::{random_token, sha256};
use crate::error::{ApiError, ApiResult};
use crate::preview::Visibility;
use axum::extract::{Path, State};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
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
async fn ports(hub: &crate::Hub, project: Uuid) -> ApiResult<Vec<Port>> {
    let settings: HashMap<i32, String> = hub.db.port_visibilities(project).await?.into_iter().collect();
    let flags: HashMap<i32, (bool, bool)> =
        hub.db.port_flags(project).await?.into_iter().map(|(p, k, w)| (p, (k, w))).collect();
    let list = hub
        .previews
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
                preview_url: hub.previews.url(project, p.port),
                process: (!p.process.is_empty()).then_some(p.process),
                visibility,
                wakes_on_visit: Some(wakes_on_visit),
            }
        })
        .collect();
    Ok(list)
}

/// The project's ports as the API shows them, as the `ports` event carries them.
pub async fn ports_json(hub: &crate::Hub, project: Uuid) -> ApiResult<Value> {
    Ok(serde_json::to_value(ports(hub, project).await?).map_err(anyhow::Error::from)?)
}

#[utoipa::path(get, path = "/api/projects/{id}/ports", params(("id" = String, Path, description = "The project's id")), responses((status = 200, body = Vec<Port>), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody)), operation_id = "ports_list", tag = "ports")]
async fn list(State(hub): State<AppState>, OwnedProject { project, .. }: OwnedProject) -> ApiResult<Json<Vec<Port>>> {
    Ok(Json(ports(&hub, project.id).await?))
}

#[utoipa::path(patch, path = "/api/projects/{id}/ports/{port}", params(("id" = String, Path, description = "The project's id"), ("port" = u16, Path)), request_body = PortPatch, responses((status = 200, body = Port), (status = 400, description = "Invalid body or port", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody)), operation_id = "ports_update", tag = "ports")]
async fn update(
    State(hub): State<AppState>,
    OwnedProject { project, .. }: OwnedProject,
    Path((_, port)): Path<(String, String)>,
    raw: JsonBody<PortPatch>,
) -> ApiResult<Json<Port>> {
    let port = port_number(&port)?;
    let p = raw.parse()?;
    if let Some(visibility) = p.visibility.map(Visibility::from) {
        hub.db.set_port_visibility(project.id, port, visibility.as_str()).await?;
        hub.previews.remember_visibility(project.id, port, visibility);
    }
    if p.keeps_awake.is_some() || p.wakes_on_visit.is_some() {
        let (keeps, _) = hub.db.set_port_flags(project.id, port, p.keeps_awake, p.wakes_on_visit).await?;
        hub.activity.set_keeps_awake(project.id, port, keeps);
    }
    let visibility = match hub.db.port_visibility(project.id, port).await?.as_deref() {
        Some("public") => Visibility::Public,
        _ => Visibility::Private,
    };
    let all = ports(&hub, project.id).await?;
    hub.events.publish(project.id, "ports", serde_json::to_value(&all).map_err(anyhow::Error::from)?);
    let listed = all.into_iter().find(|p| p.port == port);
    Ok(Json(listed.unwrap_or_else(|| Port {
        address: None,
        keeps_awake: None,
        port,
        preview_url: hub.previews.url(project.id, port),
        process: None,
        visibility: visibility.into(),
        wakes_on_visit: None,
    })))
}

#[utoipa::path(post, path = "/api/projects/{id}/ports/{port}/open", params(("id" = String, Path, description = "The project's id"), ("port" = u16, Path)), responses((status = 200, description = "A one-time URL that sets the private-preview cookie and redirects to `/`", body = PreviewLink), (status = 400, description = "Invalid port", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody)), operation_id = "ports_open", tag = "ports")]
async fn open(
    State(hub): State<AppState>,
    OwnedProject { user, project }: OwnedProject,
    Path((_, port)): Path<(String, String)>,
) -> ApiResult<Json<PreviewLink>> {
    let port = port_number(&port)?;
    let token = random_token(32);
    let expires = chrono::Utc::now() + chrono::Duration::seconds(60);
    hub.db.create_preview_token(&sha256(token.as_bytes()), user.id, project.id, port, expires).await?;
    let url = format!("{}{}?token={token}", hub.previews.url(project.id, port), &crate::preview::AUTH_PATH[1..]);
    Ok(Json(PreviewLink { expires_at: expires, url }))
}
