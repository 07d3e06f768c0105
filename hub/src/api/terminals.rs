//! Terminals: the WebSocket that bridges a browser to a PTY session in the
//! VM, and the routes that list and end sessions.
//!
//! Once attached, the hub only translates frames: output bytes become binary
//! WebSocket messages and keystrokes become input frames; it never parses
//! the terminal's bytes. An input message (a paste) may be far larger than
//! a tunnel frame: it is cut into pieces that fit, up to `MAX_INPUT`; a
//! larger one ends the WebSocket with `too_large`, saying so.
//!
//! Opening a terminal on a stopped project starts its VM, as a preview or
//! an agent's SSH connection does: the WebSocket is accepted at once, says
//! `{"type":"starting"}`, and attaches when the tunnel is up, or ends with
//! the reason the VM can't start (`limit_reached` at the plan's compute
//! limit). Only a fresh, writable attach wakes a VM: a read-only viewer
//! watches, and a reattach with `since` resumes a session of a VM that
//! was running, so a VM its user (or the idle timer) just stopped is not
//! woken again by a browser tab reconnecting.

use super::model::ErrorBody;
use super::model::{ProjectStatus, TerminalInfo};
use super::ws::{TerminalClientMessage, TerminalServerMessage};
use super::{Access, AppState};
use super::{LiveTunnel, OwnedProject};
use crate::auth::sha256;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::projects::Lifecycle;
use crate::tunnel::Tunnel;
use aether_protocol::MAX_FRAME_LEN;
use aether_protocol::domain::{PtyAttach, PtyEvent, PtyInput, SessionName, TermSize};
use axum::extract::FromRef;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{TimeZone, Utc};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tracing::Instrument;
use uuid::Uuid;

/// The largest terminal input message taken, a paste's most: the hub holds
/// a message whole before sending it on.
const MAX_INPUT: usize = 8 << 20;
/// Input goes to the VM in frames of at most this many bytes.
const INPUT_PIECE: usize = 64 << 10;
const _: () = assert!(INPUT_PIECE + 64 < MAX_FRAME_LEN, "an input piece and its framing fit a tunnel frame");
/// WebSocket close codes (RFC 6455 §7.4.1).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_PROTOCOL: u16 = 1002;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_INTERNAL: u16 = 1011;

/// What the terminal routes need: the caller's projects and their tunnels,
/// the life cycle (a terminal may start its VM), and the counters.
#[derive(Clone)]
pub struct TerminalsState {
    pub access: Access,
    pub lifecycle: Arc<Lifecycle>,
    pub metrics: Arc<Metrics>,
}

super::extract::area_state!(TerminalsState);

impl FromRef<AppState> for TerminalsState {
    fn from_ref(hub: &AppState) -> Self {
        Self { access: hub.access.clone(), lifecycle: hub.lifecycle.clone(), metrics: hub.metrics.clone() }
    }
}

/// The terminal routes, on any state that holds a `TerminalsState`.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    TerminalsState: FromRef<S>,
    Access: FromRef<S>,
{
    Router::new()
        .route("/projects/{id}/terminal", get(attach))
        .route("/projects/{id}/terminals", get(list))
        .route("/projects/{id}/terminals/{session}", delete(kill))
}

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(attach, list, kill))]
pub(super) struct Doc;

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
pub async fn redeem(
    access: &super::extract::Access,
    ticket: Option<&str>,
    purpose: &str,
    id: &str,
) -> ApiResult<crate::db::Project> {
    let ticket = ticket.ok_or_else(|| ApiError::Unauthenticated("a ticket is required".into()))?;
    let t = access
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
    access.db.project(t.user_id, id).await?.ok_or(ApiError::NotFound)
}

#[utoipa::path(get, path = "/api/projects/{id}/terminal", security(()), params(("id" = String, Path, description = "The project's id"), ("ticket" = String, Query, description = "A `terminal` ticket"), ("session" = Option<String>, Query, description = "Default `main`"), ("cols" = Option<u32>, Query), ("rows" = Option<u32>, Query), ("readonly" = Option<String>, Query, description = "`1` to watch without typing"), ("since" = Option<u64>, Query, description = "Resume after this output offset")), responses((status = 101, description = "WebSocket. Binary messages both ways are terminal bytes; text messages are `TerminalServerMessage` (hub to client) and `TerminalClientMessage` (client to hub)"), (status = 400, description = "Not a WebSocket upgrade or a bad parameter", body = ErrorBody), (status = 401, description = "No valid ticket", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody), (status = 503, description = "The VM is not running (with its `status`)", body = ErrorBody)), operation_id = "terminals_attach", tag = "terminals")]
async fn attach(
    State(state): State<TerminalsState>,
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
    let project = redeem(&state.access, q.ticket.as_deref(), "terminal", &id).await?;
    let wakes = !readonly && q.since.is_none() && ProjectStatus::parse(&project.status)? != ProjectStatus::Stopping;
    let tunnel = match state.access.tunnels.get(project.id) {
        Some(tunnel) => Some(tunnel),
        None if wakes => None,
        None => return Err(ApiError::Unavailable { status: project.status.clone() }),
    };
    state.access.db.touch_project(project.id).await?;
    let req = PtyAttach { session, size, readonly, since: q.since, command: None };
    state.metrics.terminal_attaches.fetch_add(1, Ordering::Relaxed);
    // On the data plane's single-threaded runtimes, a span entered with a
    // guard across an await would label other projects' logs: the future
    // carries it instead.
    let span = tracing::info_span!("terminal", project = %project.id, session = %req.session, readonly);
    let ws = ws.max_message_size(MAX_INPUT).max_frame_size(MAX_INPUT);
    Ok(ws.on_upgrade(move |mut socket| {
        async move {
            let project_id = project.id;
            let tunnel = match tunnel {
                Some(tunnel) => tunnel,
                None => match wake(&state.lifecycle, project, &mut socket).await {
                    Some(tunnel) => tunnel,
                    None => return,
                },
            };
            state.metrics.terminals_open.fetch_add(1, Ordering::Relaxed);
            let on_input = || {
                if !readonly {
                    state.lifecycle.activity.touch(project_id, crate::idle::Signal::TerminalInput);
                }
            };
            bridge(socket, tunnel, req, on_input).await;
            state.metrics.terminals_open.fetch_sub(1, Ordering::Relaxed);
        }
        .instrument(span)
    }))
}

/// Starts the project's VM for a terminal opened while it was down, saying
/// `starting` first; its tunnel once up, or `None` after telling the client
/// why not (the contract's error message, then a close).
async fn wake(lifecycle: &Arc<Lifecycle>, project: crate::db::Project, ws: &mut WebSocket) -> Option<Tunnel> {
    let id = project.id;
    let _ = ws.send(text(&TerminalServerMessage::Starting { status: "starting".into() })).await;
    tracing::info!(status = %project.status, "starting the VM for a terminal");
    match crate::projects::start(lifecycle, project, true).await {
        Ok(_) => {}
        Err(e) => {
            let e = ApiError::from(e);
            let (close, message) = match &e {
                ApiError::LimitReached(m) => (CLOSE_POLICY, m.clone()),
                ApiError::Internal(e) => {
                    tracing::error!(error = format!("{e:#}"), "starting the VM for a terminal");
                    (CLOSE_INTERNAL, "could not start the VM; see the hub's log".to_owned())
                }
                other => (CLOSE_INTERNAL, other.to_string()),
            };
            close_with(ws, close, e.code(), &message).await;
            return None;
        }
    }
    match lifecycle.tunnels.get(id) {
        Some(tunnel) => Some(tunnel),
        None => {
            close_with_error(ws, "tunnel_lost", "the VM's connection went away as it started; reconnect").await;
            None
        }
    }
}

fn text(m: &TerminalServerMessage) -> Message {
    Message::Text(serde_json::to_string(m).unwrap_or_default().into())
}

/// Sends the contract's error message, then a close with `close` and the
/// error's code as its reason.
async fn close_with(ws: &mut (impl SinkExt<Message> + Unpin), close: u16, code: &str, message: &str) {
    let error = TerminalServerMessage::Error { code: code.to_owned(), message: message.to_owned() };
    let _ = ws.send(text(&error)).await;
    let _ = ws.send(Message::Close(Some(CloseFrame { code: close, reason: code.to_owned().into() }))).await;
}

async fn close_with_error(ws: &mut (impl SinkExt<Message> + Unpin), code: &str, message: &str) {
    close_with(ws, CLOSE_INTERNAL, code, message).await;
}

/// Why the browser's side ended the bridge, when it wasn't by leaving.
struct Refused {
    close: u16,
    code: &'static str,
    message: String,
}

/// What a failed WebSocket read means for the client.
fn refusal(e: &axum::Error) -> Refused {
    // tungstenite's capacity error, for a message or frame past `MAX_INPUT`
    // (its type isn't reachable through axum).
    if e.to_string().contains("Space limit exceeded") {
        return Refused {
            close: CLOSE_TOO_BIG,
            code: "too_large",
            message: format!("a terminal message (a paste) may be at most {} MiB", MAX_INPUT >> 20),
        };
    }
    Refused { close: CLOSE_PROTOCOL, code: "invalid_request", message: format!("the WebSocket failed: {e}") }
}

async fn bridge(socket: WebSocket, tunnel: Tunnel, req: PtyAttach, on_input: impl Fn()) {
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (mut events, mut inputs) = match tunnel.attach(req).await {
        Ok(s) => s,
        Err(e) => {
            close_with_error(&mut ws_tx, "tunnel_lost", &format!("{e:#}")).await;
            return;
        }
    };

    let down = async {
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    close_with_error(&mut ws_tx, "tunnel_lost", &format!("{e:#}")).await;
                    return;
                }
            };
            let sent = match event {
                PtyEvent::Ready { session, start, gap } => {
                    ws_tx
                        .send(text(&TerminalServerMessage::Ready { session: session.as_str().to_owned(), start, gap }))
                        .await
                }
                PtyEvent::Output(bytes) => ws_tx.send(Message::Binary(bytes)).await,
                PtyEvent::Exit(code) => {
                    let _ = ws_tx.send(text(&TerminalServerMessage::Exit { code })).await;
                    let close = CloseFrame { code: CLOSE_NORMAL, reason: "exited".into() };
                    let _ = ws_tx.send(Message::Close(Some(close))).await;
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
        while let Some(msg) = ws_rx.next().await {
            let msg = match msg {
                Ok(msg) => msg,
                Err(e) => return Some(refusal(&e)),
            };
            let sent = match msg {
                // A paste larger than a frame goes in pieces, flushed once.
                Message::Binary(mut b) => {
                    on_input();
                    let mut fed = Ok(());
                    while b.len() > INPUT_PIECE && fed.is_ok() {
                        fed = inputs.feed(PtyInput::Input(b.split_to(INPUT_PIECE))).await;
                    }
                    match fed {
                        Ok(()) => inputs.send(PtyInput::Input(b)).await,
                        Err(e) => Err(e),
                    }
                }
                Message::Text(t) => match parse_control(&t) {
                    Some(size) => inputs.send(PtyInput::Resize(size)).await,
                    None => continue,
                },
                Message::Close(_) => break,
                _ => continue,
            };
            if sent.is_err() {
                break;
            }
        }
        None
    };
    let refused = tokio::select! {
        () = down => None,
        refused = up => refused,
    };
    if let Some(r) = refused {
        tracing::debug!(code = r.code, "closing a terminal: {}", r.message);
        close_with(&mut ws_tx, r.close, r.code, &r.message).await;
    }
}

/// A `{"type":"resize","cols":C,"rows":R}` message, if that is what it is
/// (anything else is ignored).
fn parse_control(t: &str) -> Option<TermSize> {
    match serde_json::from_str(t).ok()? {
        TerminalClientMessage::Resize { cols, rows } => TermSize::new(cols, rows).ok(),
    }
}

#[utoipa::path(get, path = "/api/projects/{id}/terminals", params(("id" = String, Path, description = "The project's id")), responses((status = 200, body = Vec<TerminalInfo>), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody), (status = 503, description = "The VM is not running (with its `status`)", body = ErrorBody)), operation_id = "terminals_list", tag = "terminals")]
async fn list(LiveTunnel { tunnel, .. }: LiveTunnel) -> ApiResult<Json<Vec<TerminalInfo>>> {
    let mut out = Vec::new();
    for s in tunnel.sessions().await? {
        out.push(TerminalInfo {
            command: s.command,
            created_at: Utc.timestamp_millis_opt(s.created_unix_ms).single(),
            exit_code: s.exit_code,
            exited: s.exited,
            session: s.session.as_str().to_owned(),
            viewers: s.viewers,
        });
    }
    Ok(Json(out))
}

#[utoipa::path(delete, path = "/api/projects/{id}/terminals/{session}", params(("id" = String, Path, description = "The project's id"), ("session" = String, Path)), responses((status = 204, description = "The session ended"), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project or session", body = ErrorBody), (status = 503, description = "The VM is not running (with its `status`)", body = ErrorBody)), operation_id = "terminals_kill", tag = "terminals")]
async fn kill(
    State(access): State<Access>,
    OwnedProject { project, .. }: OwnedProject,
    Path((_, session)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let session = SessionName::parse(&session).map_err(|_| ApiError::NotFound)?;
    let tunnel = access.tunnel(&project)?;
    match tunnel.kill_session(session).await? {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e) if e.code == "not_found" => Err(ApiError::NotFound),
        Err(e) => Err(ApiError::Internal(anyhow::anyhow!("{}: {}", e.code, e.message))),
    }
}
