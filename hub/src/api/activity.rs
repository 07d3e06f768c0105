//! `GET /api/projects/{id}/activity`: why a VM is awake and when it stops
//! if nothing happens (`idle`).

use super::AppState;
use super::OwnedProject;
use super::model::ErrorBody;
use super::model::{Activity, ProjectStatus};
use crate::error::ApiResult;
use crate::idle;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

pub fn routes() -> Router<AppState> {
    Router::new().route("/projects/{id}/activity", get(activity))
}

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(activity))]
pub(super) struct Doc;

#[utoipa::path(get, path = "/api/projects/{id}/activity", params(("id" = String, Path, description = "The project's id")), responses((status = 200, body = Activity), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody)), operation_id = "projects_activity", tag = "projects")]
async fn activity(
    State(hub): State<AppState>,
    OwnedProject { project, .. }: OwnedProject,
) -> ApiResult<Json<Activity>> {
    let timeout = idle::timeout_of(&hub, project.owner_id).await?;
    let status = ProjectStatus::parse(&project.status)?;
    let running = status == ProjectStatus::Running;
    let (stop_at, mut because) = if running {
        let awake = hub.activity.awake(project.id, timeout);
        (Some(idle::wall(awake.stop_at)), awake.because.iter().map(|s| s.name()).collect::<Vec<_>>())
    } else {
        (None, vec![])
    };
    // An agent's command running (its session recorded, not ended).
    if running && hub.db.agent_activity(project.id, 20).await?.iter().any(|s| s.ended_at.is_none()) {
        because.push("agent_run");
    }
    Ok(Json(Activity {
        awake_because: because,
        idle_stop_at: stop_at,
        idle_timeout_s: timeout.as_secs(),
        status,
        stop_reason: project.stop_reason,
        stopped_at: project.stopped_at,
    }))
}
