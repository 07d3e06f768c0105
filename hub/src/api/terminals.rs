//! Terminals: the WebSocket that bridges a browser to a PTY session in the
//! VM, and the routes that list and end sessions.
//!
//! Once attached, the hub only translates frames: output bytes become binary
//! WebSocket messages and keystrokes become input frames; it never parses
//! the terminal's bytes.

use super::AppState;
use super::projects::owned;
use crate::Hub;
use crate::auth::{AuthUser, sha256};
use crate::error::{ApiError, ApiResult};
use crate::tunnel::Tunnel;
use aether_protocol::domain::{PtyAttach, PtyEvent, PtyInput, SessionName, StreamKind, TermSize};
use aether_protocol::{FrameCodec, pb};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{TimeZone, Utc};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use tokio_util::codec::{FramedRead, FramedWrite};
use tracing::Instrument;
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/terminal", get(attach))
        .route("/projects/{id}/terminals", get(list))
        .route("/projects/{id}/terminals/{session}", delete(kill))
}

/// The live tunnel of a project, or 503 with its status.
pub async fn tunnel_of(hub: &Hub, project: &crate::db::Project) -> ApiResult<Tunnel> {
    hub.tunnels.get(project.id).ok_or_else(|| ApiError::Unavailable { status: project.status.clone() })
}

#[derive(Deserialize)]
struct AttachQuery {
    ticket: Option<String>,
    session: Option<String>,
    cols: Option<u32>,
    rows: Option<u32>,
    readonly: Option<String>,
    since: Option<u64>,
}

/// Redeems a WebSocket ticket for `purpose` on project `id`; returns the project.
pub async fn redeem(hub: &Hub, ticket: Option<&str>, purpose: &str, id: &str) -> ApiResult<crate::db::Project> {
    let ticket = ticket.ok_or_else(|| ApiError::Unauthenticated("a ticket is required".into()))?;
    let t = hub
        .db
        .redeem_ticket(&sha256(ticket.as_bytes()))
        .await?
        .ok_or_else(|| ApiError::Unauthenticated("invalid, used or expired ticket".into()))?;
    if t.purpose != purpose {
        return Err(ApiError::Unauthenticated(format!("this ticket is not for {purpose}")));
    }
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound)?;
    if t.project_id != id {
        return Err(ApiError::NotFound);
    }
    hub.db.project(t.user_id, id).await?.ok_or(ApiError::NotFound)
}

async fn attach(
    State(hub): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<AttachQuery>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let ws = ws.map_err(|e| ApiError::bad_request(format!("expected a WebSocket upgrade: {e}")))?;
    let session =
        SessionName::parse(q.session.as_deref().unwrap_or("main")).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let size =
        TermSize::new(q.cols.unwrap_or(80), q.rows.unwrap_or(24)).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let readonly = matches!(q.readonly.as_deref(), Some("1" | "true" | "yes"));
    let project = redeem(&hub, q.ticket.as_deref(), "terminal", &id).await?;
    let tunnel = tunnel_of(&hub, &project).await?;
    hub.db.touch_project(project.id).await?;
    let req = PtyAttach { session, size, readonly, since: q.since, command: None };
    hub.metrics.terminal_attaches.fetch_add(1, Ordering::Relaxed);
    // On the data plane's single-threaded runtimes, a span entered with a
    // guard across an await would label other projects' logs: the future
    // carries it instead.
    let span = tracing::info_span!("terminal", project = %project.id, session = %req.session, readonly);
    Ok(ws.on_upgrade(move |socket| {
        async move {
            hub.metrics.terminals_open.fetch_add(1, Ordering::Relaxed);
            bridge(socket, tunnel, req).await;
            hub.metrics.terminals_open.fetch_sub(1, Ordering::Relaxed);
        }
        .instrument(span)
    }))
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

async fn close_with_error(ws: &mut (impl SinkExt<Message> + Unpin), code: &str, message: &str) {
    let _ = ws.send(text(json!({ "type": "error", "code": code, "message": message }))).await;
    let _ = ws.send(Message::Close(Some(CloseFrame { code: 1011, reason: code.to_owned().into() }))).await;
}

async fn bridge(socket: WebSocket, tunnel: Tunnel, req: PtyAttach) {
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (send, recv) = match tunnel.open(StreamKind::PtyAttach(req)).await {
        Ok(s) => s,
        Err(e) => {
            close_with_error(&mut ws_tx, "tunnel_lost", &format!("{e:#}")).await;
            return;
        }
    };
    let mut events = FramedRead::new(recv, FrameCodec::<pb::PtyServer>::default());
    let mut inputs = FramedWrite::new(send, FrameCodec::<pb::PtyClient>::default());

    let down = async {
        while let Some(frame) = events.next().await {
            let event = match frame.map_err(anyhow::Error::from).and_then(|f| Ok(PtyEvent::try_from(f)?)) {
                Ok(e) => e,
                Err(e) => {
                    close_with_error(&mut ws_tx, "tunnel_lost", &format!("{e:#}")).await;
                    return;
                }
            };
            let sent = match event {
                PtyEvent::Ready { session, start, gap } => {
                    ws_tx
                        .send(text(json!({ "type": "ready", "session": session.as_str(), "start": start, "gap": gap })))
                        .await
                }
                PtyEvent::Output(bytes) => ws_tx.send(Message::Binary(bytes)).await,
                PtyEvent::Exit(code) => {
                    let _ = ws_tx.send(text(json!({ "type": "exit", "code": code }))).await;
                    let _ = ws_tx.send(Message::Close(Some(CloseFrame { code: 1000, reason: "exited".into() }))).await;
                    return;
                }
                PtyEvent::Error(e) => {
                    close_with_error(&mut ws_tx, &e.code, &e.message).await;
                    return;
                }
            };
            if sent.is_err() {
                return;
            }
        }
        close_with_error(&mut ws_tx, "tunnel_lost", "the connection to the VM was lost; reconnect to resume").await;
    };
    let up = async {
        while let Some(Ok(msg)) = ws_rx.next().await {
            let input = match msg {
                Message::Binary(b) => PtyInput::Input(b),
                Message::Text(t) => match parse_control(&t) {
                    Some(size) => PtyInput::Resize(size),
                    None => continue,
                },
                Message::Close(_) => break,
                _ => continue,
            };
            if inputs.send(pb::PtyClient::from(input)).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = down => {}
        () = up => {}
    }
}

/// A `{"type":"resize","cols":C,"rows":R}` message, if that is what it is.
fn parse_control(t: &str) -> Option<TermSize> {
    let v: Value = serde_json::from_str(t).ok()?;
    if v.get("type")?.as_str()? != "resize" {
        return None;
    }
    let dim = |k: &str| v.get(k)?.as_u64().and_then(|n| u32::try_from(n).ok());
    TermSize::new(dim("cols")?, dim("rows")?).ok()
}

async fn list(State(hub): State<AppState>, user: AuthUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let project = owned(&hub, &user, &id).await?;
    let tunnel = tunnel_of(&hub, &project).await?;
    let (_send, recv) = tunnel.open(StreamKind::PtyList).await?;
    let mut frames = FramedRead::new(recv, FrameCodec::<pb::PtySessions>::default());
    let reply =
        frames.next().await.ok_or_else(|| anyhow::anyhow!("no answer from the VM"))?.map_err(anyhow::Error::from)?;
    let mut out = Vec::new();
    for s in reply.sessions {
        let s = aether_protocol::domain::SessionInfo::try_from(s).map_err(anyhow::Error::from)?;
        out.push(json!({
            "session": s.session.as_str(),
            "command": s.command,
            "created_at": Utc.timestamp_millis_opt(s.created_unix_ms).single(),
            "viewers": s.viewers,
            "exited": s.exited,
            "exit_code": s.exit_code,
        }));
    }
    Ok(Json(Value::Array(out)))
}

async fn kill(
    State(hub): State<AppState>,
    user: AuthUser,
    Path((id, session)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let project = owned(&hub, &user, &id).await?;
    let session = SessionName::parse(&session).map_err(|_| ApiError::NotFound)?;
    let tunnel = tunnel_of(&hub, &project).await?;
    let (_send, recv) = tunnel.open(StreamKind::PtyKill(session)).await?;
    let mut frames = FramedRead::new(recv, FrameCodec::<pb::Status>::default());
    let status =
        frames.next().await.ok_or_else(|| anyhow::anyhow!("no answer from the VM"))?.map_err(anyhow::Error::from)?;
    match status.error {
        None => Ok(StatusCode::NO_CONTENT),
        Some(e) if e.code == "not_found" => Err(ApiError::NotFound),
        Some(e) => Err(ApiError::Internal(anyhow::anyhow!("{}: {}", e.code, e.message))),
    }
}
