//! Ports and previews: what listens in a project's VM, who may open each
//! port's preview, and the one-time links that open private ones.

use super::AppState;
use super::auth::body;
use super::projects::owned;
use crate::auth::{AuthUser, random_token, sha256};
use crate::error::{ApiError, ApiResult};
use crate::preview::Visibility;
use axum::extract::{Path, State};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/ports", get(list))
        .route("/projects/{id}/ports/{port}", patch(update))
        .route("/projects/{id}/ports/{port}/open", post(open))
}

fn port_number(raw: &str) -> ApiResult<u16> {
    raw.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| ApiError::bad_request("port must be 1 to 65535"))
}

/// The project's ports as the API shows them.
pub async fn ports_json(hub: &crate::Hub, project: Uuid) -> ApiResult<Value> {
    let settings: HashMap<i32, String> = hub.db.port_visibilities(project).await?.into_iter().collect();
    let flags: HashMap<i32, (bool, bool)> =
        hub.db.port_flags(project).await?.into_iter().map(|(p, k, w)| (p, (k, w))).collect();
    let list: Vec<Value> = hub
        .previews
        .ports(project)
        .into_iter()
        .map(|p| {
            let visibility = settings.get(&i32::from(p.port)).map_or("private", String::as_str);
            let (keeps_awake, wakes_on_visit) = flags.get(&i32::from(p.port)).copied().unwrap_or_default();
            let mut v = json!({
                "port": p.port,
                "address": p.address,
                "visibility": visibility,
                "keeps_awake": keeps_awake,
                "wakes_on_visit": wakes_on_visit,
                "preview_url": hub.previews.url(project, p.port),
            });
            if !p.process.is_empty() {
                v["process"] = json!(p.process);
            }
            v
        })
        .collect();
    Ok(Value::Array(list))
}

async fn list(State(hub): State<AppState>, user: AuthUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let project = owned(&hub, &user, &id).await?;
    Ok(Json(ports_json(&hub, project.id).await?))
}

#[derive(Deserialize)]
struct PortPatch {
    visibility: Option<Visibility>,
    /// A public visitor's requests keep the VM awake.
    keeps_awake: Option<bool>,
    /// A public visitor's request starts the stopped VM.
    wakes_on_visit: Option<bool>,
}

async fn update(
    State(hub): State<AppState>,
    user: AuthUser,
    Path((id, port)): Path<(String, String)>,
    raw: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    let project = owned(&hub, &user, &id).await?;
    let port = port_number(&port)?;
    let p: PortPatch = body(raw)?;
    if let Some(visibility) = p.visibility {
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
    let all = ports_json(&hub, project.id).await?;
    hub.events.publish(project.id, "ports", all.clone());
    let listed = all.as_array().and_then(|a| a.iter().find(|v| v["port"] == port).cloned());
    Ok(Json(listed.unwrap_or_else(|| {
        json!({ "port": port, "visibility": visibility.as_str(), "preview_url": hub.previews.url(project.id, port) })
    })))
}

async fn open(
    State(hub): State<AppState>,
    user: AuthUser,
    Path((id, port)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let project = owned(&hub, &user, &id).await?;
    let port = port_number(&port)?;
    let token = random_token(32);
    let expires = chrono::Utc::now() + chrono::Duration::seconds(60);
    hub.db.create_preview_token(&sha256(token.as_bytes()), user.id, project.id, port, expires).await?;
    let url = format!("{}{}?token={token}", hub.previews.url(project.id, port), &crate::preview::AUTH_PATH[1..]);
    Ok(Json(json!({ "url": url, "expires_at": expires })))
}
