//! What the caller has used of their plan this month.

use super::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::plans;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new().route("/billing/usage", get(usage))
}

/// Compute from the usage records (deleted projects' too), storage as the
/// projects' disks (a volume is made at a project's first start), projects
/// as they stand.
async fn usage(State(hub): State<AppState>, user: AuthUser) -> ApiResult<Json<Value>> {
    let u = hub.db.user(user.id).await?.ok_or_else(|| ApiError::Unauthenticated("account no longer exists".into()))?;
    let limits = plans::limits(&u.plan);
    let now = Utc::now();
    let start = plans::period_start(now);
    // The total rounded as `plans::may_start` rounds it, so the two agree
    // at the limit.
    let (by_project, used) = hub.db.compute_by_project(user.id, start).await?;
    let projects = hub.db.count_projects(user.id).await?;
    let volumes = hub.db.count_volumes(user.id).await?;
    Ok(Json(json!({
        "plan": u.plan,
        "period_start": start,
        "period_end": plans::period_end(now),
        "compute_seconds_used": used,
        "compute_seconds_limit": limits.compute_hours * 3600,
        "storage_gb_used": volumes * i64::from(hub.compute.volume_gb()),
        "storage_gb_limit": limits.storage_gb,
        "projects_used": projects,
        "projects_limit": limits.projects,
        "by_project": by_project
            .iter()
            .map(|(id, s)| json!({ "project_id": id, "compute_seconds": s }))
            .collect::<Vec<_>>(),
    })))
}
