//! Project CRUD, start/stop, and the project event stream.

use super::body::JsonBody;
use super::model::ErrorBody;
use super::model::{self, NewProject, ProjectPatch, Wait};
use super::{Access, AppState, OwnedProject};
use crate::auth::AuthUser;
use crate::db::Project;
use crate::error::{ApiError, ApiResult};
use crate::projects;
use crate::projects::Lifecycle;
use axum::extract::FromRef;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde_json::Value;
use std::convert::Infallible;
use std::sync::Arc;

/// What the project routes need: the caller's projects, and their VMs'
/// life cycle.
#[derive(Clone)]
pub struct ProjectsState {
    pub access: Access,
    pub lifecycle: Arc<Lifecycle>,
}

super::extract::area_state!(ProjectsState);

impl FromRef<AppState> for ProjectsState {
    fn from_ref(hub: &AppState) -> Self {
        Self { access: hub.access.clone(), lifecycle: hub.lifecycle.clone() }
    }
}

/// The project routes, on any state that holds a `ProjectsState`.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    ProjectsState: FromRef<S>,
    Access: FromRef<S>,
{
    Router::new()
        .route("/projects", get(list).post(create))
        .route("/projects/{id}", get(show).patch(update).delete(remove))
        .route("/projects/{id}/start", post(start))
        .route("/projects/{id}/stop", post(stop))
        .route("/projects/{id}/events", get(events))
}

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, create, show, update, remove, start, stop, events))]
pub(super) struct Doc;

fn check_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request("name must be 1 to 100 printable characters"));
    }
    Ok(name.to_owned())
}

fn check_description(d: &str) -> ApiResult<()> {
    if d.chars().count() > 2000 {
        return Err(ApiError::bad_request("description must be at most 2000 characters"));
    }
    Ok(())
}

fn check_env(env: &Value) -> ApiResult<()> {
    let obj = env.as_object().ok_or_else(|| ApiError::bad_request("env_vars must be an object"))?;
    if obj.len() > 100 {
        return Err(ApiError::bad_request("at most 100 env_vars"));
    }
    for (k, v) in obj {
        let key_ok = !k.is_empty()
            && k.len() <= 128
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !key_ok || k.starts_with("AETHER_") {
            return Err(ApiError::bad_request(format!("env var name {k:?} is not allowed")));
        }
        if !v.as_str().is_some_and(|s| s.len() <= 32 * 1024 && !s.contains('\0')) {
            return Err(ApiError::bad_request(format!("env var {k:?} must be a string")));
        }
    }
    Ok(())
}

/// A database project as the API shows it.
fn shown(p: Project) -> ApiResult<model::Project> {
    model::Project::try_from(p)
}

#[utoipa::path(get, path = "/api/projects", responses((status = 200, description = "Newest first", body = Vec<model::Project>), (status = 401, description = "Not signed in", body = ErrorBody)), operation_id = "projects_list", tag = "projects")]
async fn list(
    State(ProjectsState { lifecycle: lc, .. }): State<ProjectsState>,
    user: AuthUser,
) -> ApiResult<Json<Vec<model::Project>>> {
    Ok(Json(lc.db.list_projects(user.id).await?.into_iter().map(shown).collect::<ApiResult<_>>()?))
}

#[utoipa::path(post, path = "/api/projects", request_body = NewProject, responses((status = 201, body = model::Project), (status = 400, description = "Invalid body", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 422, description = "At the plan's project limit", body = ErrorBody)), operation_id = "projects_create", tag = "projects")]
async fn create(
    State(ProjectsState { lifecycle: lc, .. }): State<ProjectsState>,
    user: AuthUser,
    raw: JsonBody<NewProject>,
) -> ApiResult<(StatusCode, Json<model::Project>)> {
    let p = raw.parse()?;
    let name = check_name(&p.name)?;
    check_description(&p.description)?;
    let env = p.env_vars.unwrap_or_else(|| Value::Object(Default::default()));
    check_env(&env)?;
    let base_image = p.base_image.unwrap_or_else(|| "default".into());
    if base_image.is_empty() || base_image.len() > 200 {
        return Err(ApiError::bad_request("base_image must be 1 to 200 characters"));
    }
    let plan = crate::plans::of_user(&lc.db, user.id).await?;
    let (limit, plan) = (plan.projects, plan.plan);
    if lc.db.count_projects(user.id).await? >= limit {
        return Err(ApiError::LimitReached(format!("the {plan} plan allows {limit} projects")));
    }
    let project = lc.db.create_project(user.id, &name, p.description.trim(), &base_image, &env).await?;
    lc.compute.create(project.id).await?;
    Ok((StatusCode::CREATED, Json(shown(project)?)))
}

#[utoipa::path(get, path = "/api/projects/{id}", params(("id" = String, Path, description = "The project's id")), responses((status = 200, body = model::Project), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody)), operation_id = "projects_show", tag = "projects")]
async fn show(OwnedProject { project, .. }: OwnedProject) -> ApiResult<Json<model::Project>> {
    Ok(Json(shown(project)?))
}

#[utoipa::path(patch, path = "/api/projects/{id}", params(("id" = String, Path, description = "The project's id")), request_body = ProjectPatch, responses((status = 200, body = model::Project), (status = 400, description = "Invalid body", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody)), operation_id = "projects_update", tag = "projects")]
async fn update(
    State(ProjectsState { lifecycle: lc, .. }): State<ProjectsState>,
    OwnedProject { user, project }: OwnedProject,
    raw: JsonBody<ProjectPatch>,
) -> ApiResult<Json<model::Project>> {
    let p = raw.parse()?;
    let name = p.name.as_deref().map(check_name).transpose()?;
    if let Some(d) = &p.description {
        check_description(d)?;
    }
    if let Some(env) = &p.env_vars {
        check_env(env)?;
    }
    let updated = lc
        .db
        .update_project(
            user.id,
            project.id,
            name.as_deref(),
            p.description.as_deref().map(str::trim),
            p.env_vars.as_ref(),
        )
        .await?
        .ok_or(ApiError::NotFound)?;
    projects::publish(&lc, &updated);
    Ok(Json(shown(updated)?))
}

#[utoipa::path(delete, path = "/api/projects/{id}", params(("id" = String, Path, description = "The project's id")), responses((status = 204, description = "The VM and its volume are destroyed"), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody)), operation_id = "projects_remove", tag = "projects")]
async fn remove(
    State(ProjectsState { lifecycle: lc, .. }): State<ProjectsState>,
    OwnedProject { user, project }: OwnedProject,
) -> ApiResult<StatusCode> {
    let name = project.name.clone();
    projects::delete(&lc, project).await?;
    crate::accounts::audit(&lc.db, user.id, "project_deleted", None, &name).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/projects/{id}/start", params(("id" = String, Path, description = "The project's id"), Wait), responses((status = 202, description = "Starting", body = model::Project), (status = 200, description = "With `wait`: running", body = model::Project), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody), (status = 422, description = "At the compute limit", body = ErrorBody), (status = 504, description = "With `wait`: not up within 60 s", body = ErrorBody)), operation_id = "projects_start", tag = "projects")]
async fn start(
    State(ProjectsState { lifecycle: lc, .. }): State<ProjectsState>,
    OwnedProject { project, .. }: OwnedProject,
    Query(q): Query<Wait>,
) -> ApiResult<(StatusCode, Json<model::Project>)> {
    let p = projects::start(&lc, project, q.wait).await?;
    let code = if q.wait { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((code, Json(shown(p)?)))
}

#[utoipa::path(post, path = "/api/projects/{id}/stop", params(("id" = String, Path, description = "The project's id"), Wait), responses((status = 202, description = "Stopping", body = model::Project), (status = 200, description = "With `wait`: stopped", body = model::Project), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody), (status = 504, description = "With `wait`: not stopped within 60 s", body = ErrorBody)), operation_id = "projects_stop", tag = "projects")]
async fn stop(
    State(ProjectsState { lifecycle: lc, .. }): State<ProjectsState>,
    OwnedProject { project, .. }: OwnedProject,
    Query(q): Query<Wait>,
) -> ApiResult<(StatusCode, Json<model::Project>)> {
    let p = projects::stop(&lc, project, q.wait).await?;
    let code = if q.wait { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((code, Json(shown(p)?)))
}

#[utoipa::path(get, path = "/api/projects/{id}/events", params(("id" = String, Path, description = "The project's id")), responses((status = 200, content_type = "text/event-stream", description = "Server-Sent Events: `status` (a Project), `ports` (the ports), `agent_session` (an `AgentSessionMessage`)", body = String), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody)), operation_id = "projects_events", tag = "projects")]
async fn events(
    State(ProjectsState { lifecycle: lc, .. }): State<ProjectsState>,
    OwnedProject { project, .. }: OwnedProject,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let rx = lc.events.subscribe();
    let first = Event::default().event("status").json_data(shown(project.clone())?).map_err(anyhow::Error::from)?;
    let stream = futures_util::stream::unfold((Some(first), rx), move |(first, mut rx)| async move {
        if let Some(ev) = first {
            return Some((Ok(ev), (None, rx)));
        }
        loop {
            match rx.recv().await {
                Ok(e) if e.project_id == project.id => {
                    let ev = Event::default().event(e.kind).data(e.data.to_string());
                    return Some((Ok(ev), (None, rx)));
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
