//! Agents: per-agent SSH keys of a project (create, list, revoke), the SSH
//! settings an agent connects with, and the record of agents' sessions (a
//! list, and a WebSocket of starts and ends as they happen).
//!
//! A generated private key appears in the create answer and nowhere else:
//! it is neither stored nor logged. Revoking closes the agent's jump-host
//! channels at once and, when the VM is connected, answers once the VM has
//! removed the key (at most a few seconds).

use super::body::JsonBody;
use super::model::ErrorBody;
use super::model::{self, ActivityLimit, Agent, AgentActivity, AgentSsh, CreatedAgent, NewAgent, SshDir};
use super::ws::AgentSessionMessage;
use super::{Access, AppState, OwnedProject};
use crate::error::{ApiError, ApiResult};
use crate::events::Events;
use crate::ssh::Ssh;
use crate::ssh::answer::{DEFAULT_DIR, Target, answer, check_dir};
use aether_protocol::agents::AgentName;
use axum::extract::FromRef;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration as Days, Utc};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Most agents (not revoked) one project may have.
pub const MAX_AGENTS: i64 = 50;
/// How long creating or revoking waits for a connected VM to apply the change.
const SYNC_WAIT: Duration = Duration::from_secs(4);
/// How long an answer waits for a connected VM that has not yet reported its host keys.
const HOST_KEYS_WAIT: Duration = Duration::from_secs(5);

/// What the agent routes need: the caller's projects, the jump host (keys'
/// sync, the VM's SSH answer), and the agent-session events.
#[derive(Clone)]
pub struct AgentsState {
    pub access: Access,
    pub ssh: Arc<Ssh>,
    pub events: Arc<Events>,
}

super::extract::area_state!(AgentsState);

impl FromRef<AppState> for AgentsState {
    fn from_ref(hub: &AppState) -> Self {
        Self { access: hub.access.clone(), ssh: hub.ssh.clone(), events: hub.events.clone() }
    }
}

/// The agent routes, on any state that holds an `AgentsState`.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    AgentsState: FromRef<S>,
    Access: FromRef<S>,
{
    Router::new()
        .route("/projects/{id}/agents", get(list).post(create))
        .route("/projects/{id}/agents/activity", get(activity))
        .route("/projects/{id}/agents/activity/live", get(live))
        .route("/projects/{id}/agents/{agent_id}", get(show).delete(revoke))
        .route("/projects/{id}/agents/{agent_id}/ssh", get(ssh))
}

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, create, activity, live, show, revoke, ssh))]
pub(super) struct Doc;

fn dir(q: &SshDir) -> ApiResult<String> {
    check_dir(q.ssh_dir.as_deref().unwrap_or(DEFAULT_DIR)).map_err(ApiError::BadRequest)
}

fn expiry(days: Option<i64>, at: Option<DateTime<Utc>>) -> ApiResult<Option<DateTime<Utc>>> {
    let now = Utc::now();
    let latest = now + Days::days(3650);
    match (days, at) {
        (Some(_), Some(_)) => Err(ApiError::bad_request("give expires_in_days or expires_at, not both")),
        (Some(d), None) if (1..=3650).contains(&d) => Ok(Some(now + Days::days(d))),
        (Some(_), None) => Err(ApiError::bad_request("expires_in_days must be 1 to 3650")),
        (None, Some(at)) if at > now && at <= latest => Ok(Some(at)),
        (None, Some(_)) => Err(ApiError::bad_request("expires_at must be in the future, within 10 years")),
        (None, None) => Ok(None),
    }
}

fn agent_id(s: &str) -> ApiResult<Uuid> {
    s.parse().map_err(|_| ApiError::NotFound)
}

/// The `ssh` object for one agent of a project.
async fn ssh_answer(ssh: &Ssh, project: Uuid, agent_name: &str, dir: &str) -> ApiResult<AgentSsh> {
    let (keys, user) = match ssh.vm_ssh(project, HOST_KEYS_WAIT).await? {
        Some((keys, user)) => (keys.lines().map(str::to_owned).collect(), user),
        None => (vec![], "dev".to_owned()),
    };
    model::from_value(answer(&Target {
        project,
        agent_name,
        jump_host: &ssh.public_host,
        jump_port: ssh.public_port,
        jump_key: ssh.host_key_line.as_str(),
        vm_host_keys: &keys,
        vm_user: &user,
        dir,
    }))
}

#[utoipa::path(get, path = "/api/projects/{id}/agents", params(("id" = String, Path, description = "The project's id")), responses((status = 200, body = Vec<Agent>), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody)), operation_id = "agents_list", tag = "agents")]
async fn list(
    State(state): State<AgentsState>,
    OwnedProject { project, .. }: OwnedProject,
) -> ApiResult<Json<Vec<Agent>>> {
    Ok(Json(state.access.db.list_agents(project.id).await?.into_iter().map(Agent::from).collect()))
}

#[utoipa::path(post, path = "/api/projects/{id}/agents", params(("id" = String, Path, description = "The project's id"), SshDir), request_body = NewAgent, responses((status = 201, body = CreatedAgent), (status = 400, description = "Invalid body or key", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody), (status = 409, description = "The name or key is taken", body = ErrorBody), (status = 422, description = "At the agent limit", body = ErrorBody)), operation_id = "agents_create", tag = "agents")]
async fn create(
    State(state): State<AgentsState>,
    OwnedProject { user, project }: OwnedProject,
    Query(q): Query<SshDir>,
    raw: JsonBody<NewAgent>,
) -> ApiResult<(StatusCode, Json<CreatedAgent>)> {
    let new = raw.parse()?;
    let name = AgentName::parse(new.name.trim()).map_err(|_| {
        ApiError::bad_request("name must be 1 to 40 of A-Z a-z 0-9 _ -, starting with a letter or a digit")
    })?;
    let dir = dir(&q)?;
    let expires_at = expiry(new.expires_in_days, new.expires_at)?;
    if state.access.db.count_agents(project.id).await? >= MAX_AGENTS {
        return Err(ApiError::LimitReached(format!("a project may have {MAX_AGENTS} agents")));
    }
    let (line, fingerprint, private) = match &new.public_key {
        Some(text) => {
            let (line, fingerprint) = crate::ssh::keys::parse_upload(text).map_err(ApiError::BadRequest)?;
            (line, fingerprint, None)
        }
        None => {
            let g = crate::ssh::keys::generate(&format!("aether:{name}"))?;
            (g.line, g.fingerprint, Some(g.private_openssh))
        }
    };
    let agent =
        match state.access.db.create_agent(project.id, name.as_str(), line.as_str(), &fingerprint, expires_at).await {
            Err(e) if crate::db::is_unique_violation(&e) => {
                return Err(ApiError::Conflict("the project already has an agent with this name or key".into()));
            }
            r => r?,
        };
    let synced = state.ssh.sync_keys(project.id, SYNC_WAIT).await;
    tracing::info!(agent = %agent.name, %fingerprint, generated = private.is_some(), synced, "agent created");
    let ssh = ssh_answer(&state.ssh, project.id, &agent.name, &dir).await?;
    let detail = format!("{} ({fingerprint}) on project {}", agent.name, project.name);
    let out = CreatedAgent { agent: agent.into(), private_key: private.as_ref().map(|p| p.expose().to_owned()), ssh };
    crate::accounts::audit(&state.access.db, user.id, "agent_key_created", None, &detail).await;
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(get, path = "/api/projects/{id}/agents/{agent_id}", params(("id" = String, Path, description = "The project's id"), ("agent_id" = String, Path)), responses((status = 200, body = Agent), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project or agent", body = ErrorBody)), operation_id = "agents_show", tag = "agents")]
async fn show(
    State(state): State<AgentsState>,
    OwnedProject { project, .. }: OwnedProject,
    Path((_, agent)): Path<(String, String)>,
) -> ApiResult<Json<Agent>> {
    let agent = state.access.db.agent(project.id, agent_id(&agent)?).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(agent.into()))
}

#[utoipa::path(get, path = "/api/projects/{id}/agents/{agent_id}/ssh", params(("id" = String, Path, description = "The project's id"), ("agent_id" = String, Path), SshDir), responses((status = 200, body = AgentSsh), (status = 400, description = "Invalid `ssh_dir`", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project or agent", body = ErrorBody)), operation_id = "agents_ssh", tag = "agents")]
async fn ssh(
    State(state): State<AgentsState>,
    OwnedProject { project, .. }: OwnedProject,
    Path((_, agent)): Path<(String, String)>,
    Query(q): Query<SshDir>,
) -> ApiResult<Json<AgentSsh>> {
    let agent = state.access.db.agent(project.id, agent_id(&agent)?).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(ssh_answer(&state.ssh, project.id, &agent.name, &dir(&q)?).await?))
}

#[utoipa::path(delete, path = "/api/projects/{id}/agents/{agent_id}", params(("id" = String, Path, description = "The project's id"), ("agent_id" = String, Path)), responses((status = 204, description = "Access ends at once at the jump host and within 5 s in the VM"), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project or agent", body = ErrorBody)), operation_id = "agents_revoke", tag = "agents")]
async fn revoke(
    State(state): State<AgentsState>,
    OwnedProject { user, project }: OwnedProject,
    Path((_, agent)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let agent = state.access.db.revoke_agent(project.id, agent_id(&agent)?).await?.ok_or(ApiError::NotFound)?;
    let closed = state.ssh.revoke(agent.id);
    let synced = state.ssh.sync_keys(project.id, SYNC_WAIT).await;
    tracing::info!(agent = %agent.name, closed, synced, "agent revoked");
    let detail = format!("{} ({}) on project {}", agent.name, agent.fingerprint, project.name);
    crate::accounts::audit(&state.access.db, user.id, "agent_key_revoked", None, &detail).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/projects/{id}/agents/activity", params(("id" = String, Path, description = "The project's id"), ActivityLimit), responses((status = 200, description = "Newest first", body = Vec<AgentActivity>), (status = 400, description = "`limit` out of range", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody)), operation_id = "agents_activity", tag = "agents")]
async fn activity(
    State(state): State<AgentsState>,
    OwnedProject { project, .. }: OwnedProject,
    Query(q): Query<ActivityLimit>,
) -> ApiResult<Json<Vec<AgentActivity>>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1 to 500"));
    }
    Ok(Json(state.access.db.agent_activity(project.id, limit).await?.into_iter().map(AgentActivity::from).collect()))
}

#[derive(Deserialize)]
struct Ticket {
    ticket: Option<String>,
}

#[utoipa::path(get, path = "/api/projects/{id}/agents/activity/live", security(()), params(("id" = String, Path, description = "The project's id"), ("ticket" = String, Query, description = "An `agent-activity` ticket")), responses((status = 101, description = "WebSocket of text messages, each an `AgentSessionMessage`: an agent session started or ended"), (status = 400, description = "Not a WebSocket upgrade", body = ErrorBody), (status = 401, description = "No valid ticket", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody)), operation_id = "agents_live", tag = "agents")]
async fn live(
    State(state): State<AgentsState>,
    Path(id): Path<String>,
    Query(q): Query<Ticket>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let ws = ws.map_err(|e| ApiError::bad_request(format!("expected a WebSocket upgrade: {e}")))?;
    let project = super::terminals::redeem(&state.access, q.ticket.as_deref(), "agent-activity", &id).await?;
    let rx = state.events.subscribe();
    Ok(ws.on_upgrade(move |socket| forward(socket, project.id, rx)))
}

/// Sends the project's `agent_session` events to one WebSocket until it closes.
async fn forward(mut socket: WebSocket, project: Uuid, mut rx: tokio::sync::broadcast::Receiver<crate::events::Event>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Ok(e) if e.project_id == project && e.kind == "agent_session" => {
                    let message = match serde_json::from_value::<AgentSessionMessage>(e.data) {
                        Ok(m) => serde_json::to_string(&m).unwrap_or_default(),
                        Err(err) => {
                            tracing::warn!(error = %err, "an agent session event of the wrong shape");
                            continue;
                        }
                    };
                    if socket.send(Message::Text(message.into())).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
