//! `GET /api/projects/{id}/activity`: why a VM is awake and when it stops
//! if nothing happens (`idle`).

use super::{Access, AppState, OwnedProject};

use super::model::ErrorBody;
use super::model::{Activity, ProjectStatus};
use crate::error::ApiResult;
use crate::idle;
use axum::extract::FromRef;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Duration;

/// What the activity route needs: the caller's projects, what keeps each
/// VM awake, and the idle timeout's override.
#[derive(Clone)]
pub struct ActivityState {
    pub access: Access,
    pub activity: Arc<idle::Activity>,
    /// `AETHER_IDLE_TIMEOUT_S`, which overrides every plan's.
    pub idle_timeout: Option<Duration>,
}

super::extract::area_state!(ActivityState);

impl FromRef<AppState> for ActivityState {
    fn from_ref(hub: &AppState) -> Self {
        Self { access: hub.access.clone(), activity: hub.activity.clone(), idle_timeout: hub.config.idle_timeout }
    }
}

/// The activity route, on any state that holds an `ActivityState`.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    ActivityState: FromRef<S>,
    Access: FromRef<S>,
{
    Router::new().route("/projects/{id}/activity", get(activity))
}

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(activity))]
pub(super) struct Doc;

#[utoipa::path(get, path = "/api/projects/{id}/activity", params(("id" = String, Path, description = "The project's id")), responses((status = 200, body = Activity), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody)), operation_id = "projects_activity", tag = "projects")]
async fn activity(
    State(state): State<ActivityState>,
    OwnedProject { project, .. }: OwnedProject,
) -> ApiResult<Json<Activity>> {
    let timeout = idle::timeout_of(&state.access.db, state.idle_timeout, project.owner_id).await?;
    let status = ProjectStatus::parse(&project.status)?;
    let running = status == ProjectStatus::Running;
    let (stop_at, mut because) = if running {
        let awake = state.activity.awake(project.id, timeout);
        (Some(idle::wall(awake.stop_at)), awake.because.iter().map(|s| s.name()).collect::<Vec<_>>())
    } else {
        (None, vec![])
    };
    // An agent's command running (its session recorded, not ended).
    if running && state.access.db.agent_activity(project.id, 20).await?.iter().any(|s| s.ended_at.is_none()) {
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
