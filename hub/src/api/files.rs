//! Files: the REST and WebSocket routes of the contract's Files section,
//! each one `Fs` stream to aetherd.
//!
//! File contents and listings stream through: the hub never holds a whole
//! file or listing. Paths are checked here (NUL, `..` escaping the home,
//! absolute paths elsewhere → 400 `invalid_path`) and again in aetherd.

use super::body::JsonBody;
use super::extract::Access;
use super::model::ErrorBody;
use super::model::{DirEntry, DirListing, FileKind, FileStat, MkdirRequest, RenameRequest};
use super::terminals::redeem;
use super::ws::{WatchEvent, WatchEventKind};
use super::{LiveTunnel, OwnedProject};
use crate::error::{ApiError, ApiResult};
use crate::tunnel::Tunnel;
use crate::tunnel::fs::{Event, EventKind, FsError, Kind, Reply, Stat, Write};
use aether_protocol::fs::{FsOp, HomePath};
use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRef, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{TimeZone, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::sync::Arc;

/// What the files API needs: the caller's projects and their tunnels,
/// where file writes count as activity, and how large a write may be.
#[derive(Clone)]
pub struct FilesState {
    pub access: Access,
    pub activity: Arc<crate::idle::Activity>,
    pub max_write_bytes: u64,
}

super::extract::area_state!(FilesState);

impl FromRef<super::AppState> for FilesState {
    fn from_ref(hub: &super::AppState) -> Self {
        Self { access: hub.access.clone(), activity: hub.activity.clone(), max_write_bytes: hub.config.max_write_bytes }
    }
}

/// The files routes, on any state that holds a `FilesState`.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    FilesState: FromRef<S>,
    Access: FromRef<S>,
{
    Router::new()
        .route("/projects/{id}/files", get(get_path).put(put_file).delete(delete_path))
        .route("/projects/{id}/files/stat", get(stat))
        .route("/projects/{id}/files/mkdir", post(mkdir))
        .route("/projects/{id}/files/rename", post(rename))
        .route("/projects/{id}/files/watch", get(watch))
}

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_path, put_file, delete_path, stat, mkdir, rename, watch))]
pub(super) struct Doc;

/// Percent-decodes one query parameter to raw bytes (so names that are not
/// UTF-8 can be addressed).
pub fn query_bytes(query: Option<&str>, key: &str) -> Option<Vec<u8>> {
    let decode = |s: &str| {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (hex(b[i + 1]), hex(b[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        out
    };
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == key.as_bytes()).then(|| decode(v))
    })
}

/// Percent-encodes bytes that are not unreserved, for `raw_name`.
fn percent_encode(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}

fn home_path(tunnel: &Tunnel, raw: &[u8]) -> ApiResult<HomePath> {
    HomePath::parse(raw, &tunnel.home).map_err(|e| ApiError::InvalidPath(e.0))
}

fn path_param(tunnel: &Tunnel, query: Option<&str>, key: &str) -> ApiResult<HomePath> {
    let raw = query_bytes(query, key).unwrap_or_default();
    home_path(tunnel, &raw)
}

/// The contract's error for a file operation that failed.
fn fs_error(e: FsError) -> ApiError {
    let e = match e {
        FsError::Vm(e) => e,
        FsError::Tunnel(e) => return ApiError::Internal(e),
    };
    match e.code.as_str() {
        "not_found" => ApiError::NotFound,
        "invalid_path" => ApiError::InvalidPath(e.message),
        "conflict" => ApiError::Conflict(e.message),
        "precondition_failed" => ApiError::PreconditionFailed(e.message),
        "too_large" => ApiError::TooLarge(e.message),
        "forbidden" => ApiError::Forbidden(e.message),
        "invalid_request" | "aborted" => ApiError::BadRequest(e.message),
        _ => ApiError::Internal(anyhow::anyhow!("file operation failed: {}: {}", e.code, e.message)),
    }
}

fn kind(k: Kind) -> FileKind {
    match k {
        Kind::File => FileKind::File,
        Kind::Dir => FileKind::Dir,
        Kind::Symlink => FileKind::Symlink,
        Kind::Other => FileKind::Other,
    }
}

fn rfc3339(ms: i64) -> Option<chrono::DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

fn file_stat(s: &Stat) -> FileStat {
    FileStat {
        etag: s.etag.clone(),
        mode: s.mode,
        mtime: rfc3339(s.mtime_ms),
        path: String::from_utf8_lossy(&s.path).into_owned(),
        size: s.size,
        kind: kind(s.kind.unwrap_or(Kind::Other)),
    }
}

/// Runs one file operation and returns aetherd's reply, plus the stream for
/// whatever follows it (file bytes, listing frames).
async fn call(tunnel: &Tunnel, op: FsOp) -> ApiResult<(Reply, impl tokio::io::AsyncRead + Unpin + use<>)> {
    tunnel.fs(op).await.map_err(fs_error)
}

#[utoipa::path(get, path = "/api/projects/{id}/files/stat", params(("id" = String, Path, description = "The project's id"), ("path" = String, Query)), responses((status = 200, body = FileStat), (status = 400, description = "`invalid_path`", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project or path", body = ErrorBody), (status = 503, description = "The VM is not running (with its `status`)", body = ErrorBody)), operation_id = "files_stat", tag = "files")]
async fn stat(LiveTunnel { tunnel, .. }: LiveTunnel, RawQuery(q): RawQuery) -> ApiResult<Json<FileStat>> {
    let path = path_param(&tunnel, q.as_deref(), "path")?;
    let (reply, _) = call(&tunnel, FsOp::Stat(path)).await?;
    Ok(Json(file_stat(&reply.stat)))
}

fn content_type(path: &[u8]) -> &'static str {
    let ext = path.rsplit(|b| *b == b'.').next().unwrap_or_default();
    match ext.to_ascii_lowercase().as_slice() {
        b"html" | b"htm" => "text/html; charset=utf-8",
        b"css" => "text/css; charset=utf-8",
        b"js" | b"mjs" => "text/javascript; charset=utf-8",
        b"json" => "application/json",
        b"txt" | b"md" | b"rs" | b"py" | b"ts" | b"tsx" | b"toml" | b"yaml" | b"yml" | b"sh" | b"go" | b"c" | b"h" => {
            "text/plain; charset=utf-8"
        }
        b"svg" => "image/svg+xml",
        b"png" => "image/png",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"gif" => "image/gif",
        b"pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// A single `bytes=` range against a file of `size` bytes: (start, length).
fn parse_range(h: &str, size: u64) -> Option<(u64, u64)> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size.checked_sub(1)?)
        }
        (s, "") => (s.parse().ok()?, size.checked_sub(1)?),
        (s, e) => (s.parse().ok()?, e.parse::<u64>().ok()?.min(size.checked_sub(1)?)),
    };
    (start <= end && start < size).then(|| (start, end - start + 1))
}

#[utoipa::path(get, path = "/api/projects/{id}/files", params(("id" = String, Path, description = "The project's id"), ("path" = String, Query, description = "Relative to the home or absolute inside it")), responses((status = 200, description = "A folder's listing, or a file's bytes (with `ETag`; `Range` honoured)", content((DirListing = "application/json"), (String = "application/octet-stream"))), (status = 206, description = "The range asked for", content_type = "application/octet-stream", body = String), (status = 400, description = "`invalid_path`: outside the home", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project or path", body = ErrorBody), (status = 416, description = "An unsatisfiable range", body = ErrorBody), (status = 503, description = "The VM is not running (with its `status`)", body = ErrorBody)), operation_id = "files_get_path", tag = "files")]
async fn get_path(
    LiveTunnel { tunnel, .. }: LiveTunnel,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let path = path_param(&tunnel, q.as_deref(), "path")?;
    let (reply, _) = call(&tunnel, FsOp::Stat(path.clone())).await?;
    let st = reply.stat;
    if st.is_dir() {
        return list(&tunnel, path).await;
    }
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (offset, length, partial) = match range {
        None => (0, st.size, false),
        Some(r) => match parse_range(r, st.size) {
            Some((o, l)) => (o, l, true),
            None => {
                let mut resp =
                    ApiError::RangeNotSatisfiable(format!("range {r:?} does not fit a {}-byte file", st.size))
                        .into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", st.size)) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(resp);
            }
        },
    };
    let (reply, rest) = call(&tunnel, FsOp::Read { path: path.clone(), offset, length: Some(length) }).await?;
    // The size aetherd will send is fixed by the file it opened, which may
    // differ from the stat above if the file changed in between.
    let st = reply.stat;
    let length = length.min(st.size.saturating_sub(offset));
    let stream = tokio_util::io::ReaderStream::with_capacity(rest, 256 * 1024);
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = if partial { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path.as_bytes())));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", st.etag)) {
        h.insert(header::ETAG, v);
    }
    if partial
        && let Ok(v) =
            HeaderValue::from_str(&format!("bytes {}-{}/{}", offset, (offset + length).saturating_sub(1), st.size))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(resp)
}

/// Streams a folder listing as JSON, batch by batch.
async fn list(tunnel: &Tunnel, path: HomePath) -> ApiResult<Response> {
    let (_, rest) = call(tunnel, FsOp::List(path.clone())).await?;
    let frames = Tunnel::entries(rest);
    let head = format!("{{\"type\":\"dir\",\"path\":{},\"entries\":[", Value::from(path.display()));
    let state = (frames, Some(head), false, false);
    let stream = futures_util::stream::unfold(state, |(mut frames, head, mut first_done, finished)| async move {
        if let Some(h) = head {
            return Some((Ok::<Bytes, std::io::Error>(Bytes::from(h)), (frames, None, first_done, false)));
        }
        if finished {
            return None;
        }
        match frames.next().await {
            Some(Ok((entries, done))) => {
                let mut out = String::new();
                for e in &entries {
                    if first_done {
                        out.push(',');
                    }
                    first_done = true;
                    let entry = DirEntry {
                        mode: e.mode,
                        mtime: rfc3339(e.mtime_ms),
                        name: String::from_utf8_lossy(&e.name).into_owned(),
                        raw_name: std::str::from_utf8(&e.name).is_err().then(|| percent_encode(&e.name)),
                        size: e.size,
                        kind: kind(e.kind),
                    };
                    out.push_str(&serde_json::to_string(&entry).unwrap_or_default());
                }
                if done {
                    out.push_str("]}");
                }
                Some((Ok(Bytes::from(out)), (frames, None, first_done, done)))
            }
            Some(Err(e)) => Some((Err(std::io::Error::other(e.to_string())), (frames, None, first_done, true))),
            None => Some((Err(std::io::Error::other("listing cut short")), (frames, None, first_done, true))),
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::IF_MATCH)?.to_str().ok()?.trim();
    Some(v.trim_start_matches("W/").trim_matches('"').to_owned())
}

#[utoipa::path(put, path = "/api/projects/{id}/files", params(("id" = String, Path, description = "The project's id"), ("path" = String, Query), ("If-Match" = Option<String>, Header, description = "Write only over this ETag")), request_body(content = String, content_type = "application/octet-stream", description = "The file's bytes (written atomically)"), responses((status = 201, description = "Created", body = FileStat), (status = 200, description = "Replaced", body = FileStat), (status = 400, description = "`invalid_path`", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody), (status = 412, description = "A stale `If-Match`", body = ErrorBody), (status = 413, description = "Over the upload limit", body = ErrorBody), (status = 503, description = "The VM is not running (with its `status`)", body = ErrorBody)), operation_id = "files_put_file", tag = "files")]
async fn put_file(
    State(state): State<FilesState>,
    OwnedProject { project, .. }: OwnedProject,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    state.activity.touch(project.id, crate::idle::Signal::FileWrite);
    let tunnel = state.access.tunnel(&project)?;
    let path = path_param(&tunnel, q.as_deref(), "path")?;
    let max = state.max_write_bytes;
    let too_large = || ApiError::TooLarge(format!("uploads are limited to {max} bytes"));
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let op = FsOp::Write { path, if_match: if_match(&headers), max_bytes: max };
    let Write { mut send, reply: mut replies } = tunnel.write(op).await?;
    let mut chunks = body.into_data_stream();
    let mut total = 0u64;
    let early = loop {
        tokio::select! {
            biased;
            early = replies.get() => break Some(early),
            chunk = chunks.next() => match chunk {
                Some(Ok(bytes)) => {
                    total += bytes.len() as u64;
                    if total > max {
                        let _ = send.reset(0u32.into());
                        return Err(too_large());
                    }
                    if send.write_all(&bytes).await.is_err() {
                        break None;
                    }
                }
                Some(Err(e)) => {
                    let _ = send.reset(0u32.into());
                    return Err(ApiError::bad_request(format!("upload interrupted: {e}")));
                }
                None => break None,
            }
        }
    };
    let _ = send.finish();
    let reply = match early {
        Some(r) => r,
        None => replies.get().await,
    };
    let reply = reply.map_err(fs_error)?;
    let st = reply.stat;
    let status = if reply.created { StatusCode::CREATED } else { StatusCode::OK };
    let mut resp = (status, Json(file_stat(&st))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", st.etag)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

#[utoipa::path(delete, path = "/api/projects/{id}/files", params(("id" = String, Path, description = "The project's id"), ("path" = String, Query), ("recursive" = Option<bool>, Query)), responses((status = 204, description = "Deleted"), (status = 400, description = "`invalid_path`", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project or path", body = ErrorBody), (status = 409, description = "A non-empty folder without `recursive`", body = ErrorBody), (status = 503, description = "The VM is not running (with its `status`)", body = ErrorBody)), operation_id = "files_delete_path", tag = "files")]
async fn delete_path(
    State(state): State<FilesState>,
    OwnedProject { project, .. }: OwnedProject,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    state.activity.touch(project.id, crate::idle::Signal::FileWrite);
    let tunnel = state.access.tunnel(&project)?;
    let path = path_param(&tunnel, q.as_deref(), "path")?;
    let recursive = matches!(query_bytes(q.as_deref(), "recursive").as_deref(), Some(b"true" | b"1"));
    call(&tunnel, FsOp::Delete { path, recursive, if_match: if_match(&headers) }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/projects/{id}/files/mkdir", params(("id" = String, Path, description = "The project's id")), request_body = MkdirRequest, responses((status = 201, description = "Made, with its parents", body = FileStat), (status = 400, description = "`invalid_path`", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody), (status = 503, description = "The VM is not running (with its `status`)", body = ErrorBody)), operation_id = "files_mkdir", tag = "files")]
async fn mkdir(
    State(state): State<FilesState>,
    OwnedProject { project, .. }: OwnedProject,
    raw: JsonBody<MkdirRequest>,
) -> ApiResult<(StatusCode, Json<FileStat>)> {
    state.activity.touch(project.id, crate::idle::Signal::FileWrite);
    let b = raw.parse()?;
    let tunnel = state.access.tunnel(&project)?;
    let path = home_path(&tunnel, b.path.as_bytes())?;
    let (reply, _) = call(&tunnel, FsOp::Mkdir(path)).await?;
    Ok((StatusCode::CREATED, Json(file_stat(&reply.stat))))
}

#[utoipa::path(post, path = "/api/projects/{id}/files/rename", params(("id" = String, Path, description = "The project's id")), request_body = RenameRequest, responses((status = 200, body = FileStat), (status = 400, description = "`invalid_path`", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project or path", body = ErrorBody), (status = 409, description = "`to` exists and not `overwrite`", body = ErrorBody), (status = 503, description = "The VM is not running (with its `status`)", body = ErrorBody)), operation_id = "files_rename", tag = "files")]
async fn rename(
    State(state): State<FilesState>,
    OwnedProject { project, .. }: OwnedProject,
    raw: JsonBody<RenameRequest>,
) -> ApiResult<Json<FileStat>> {
    state.activity.touch(project.id, crate::idle::Signal::FileWrite);
    let b = raw.parse()?;
    let tunnel = state.access.tunnel(&project)?;
    let (from, to) = (home_path(&tunnel, b.from.as_bytes())?, home_path(&tunnel, b.to.as_bytes())?);
    let (reply, _) = call(&tunnel, FsOp::Rename { from, to, overwrite: b.overwrite }).await?;
    Ok(Json(file_stat(&reply.stat)))
}

#[utoipa::path(get, path = "/api/projects/{id}/files/watch", security(()), params(("id" = String, Path, description = "The project's id"), ("ticket" = String, Query, description = "A `watch` ticket"), ("path" = String, Query)), responses((status = 101, description = "WebSocket of text messages, each a `WatchEvent`"), (status = 400, description = "Not a WebSocket upgrade, or `invalid_path`", body = ErrorBody), (status = 401, description = "No valid ticket", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody), (status = 503, description = "The VM is not running (with its `status`)", body = ErrorBody)), operation_id = "files_watch", tag = "files")]
async fn watch(
    State(state): State<FilesState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let ws = ws.map_err(|e| ApiError::bad_request(format!("expected a WebSocket upgrade: {e}")))?;
    let ticket = query_bytes(q.as_deref(), "ticket").map(|t| String::from_utf8_lossy(&t).into_owned());
    let project = redeem(&state.access, ticket.as_deref(), "watch", &id).await?;
    let tunnel = state.access.tunnel(&project)?;
    let path = path_param(&tunnel, q.as_deref(), "path")?;
    Ok(ws.on_upgrade(move |socket| forward_watch(socket, tunnel, path)))
}

fn watch_event(e: &Event) -> WatchEvent {
    let kind = match e.kind {
        EventKind::Created => WatchEventKind::Created,
        EventKind::Modified => WatchEventKind::Modified,
        EventKind::Removed => WatchEventKind::Removed,
        EventKind::Renamed => WatchEventKind::Renamed,
        EventKind::Resync => WatchEventKind::Resync,
        EventKind::Ready => WatchEventKind::Ready,
        EventKind::Error => WatchEventKind::Error,
    };
    WatchEvent {
        from: (!e.from.is_empty()).then(|| String::from_utf8_lossy(&e.from).into_owned()),
        message: (!e.message.is_empty()).then(|| e.message.clone()),
        path: Some(String::from_utf8_lossy(&e.path).into_owned()),
        kind,
    }
}

fn watch_message(e: &WatchEvent) -> Message {
    Message::Text(serde_json::to_string(e).unwrap_or_default().into())
}

async fn forward_watch(socket: WebSocket, tunnel: Tunnel, path: HomePath) {
    let (mut ws_tx, mut ws_rx) = socket.split();
    let opened = tunnel.watch(FsOp::Watch { path, exclude: vec![] }).await;
    let Ok(mut events) = opened else {
        let _ = ws_tx.send(watch_message(&WatchEvent::error("the VM is unreachable"))).await;
        return;
    };
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(e)) => {
                    let event = watch_event(&e);
                    let end = event.kind == WatchEventKind::Error;
                    if ws_tx.send(watch_message(&event)).await.is_err() || end {
                        return;
                    }
                }
                _ => {
                    let lost = WatchEvent::error("the connection to the VM was lost; watch again");
                    let _ = ws_tx.send(watch_message(&lost)).await;
                    return;
                }
            },
            msg = ws_rx.next() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_paths_decode_to_bytes() {
        assert_eq!(query_bytes(Some("path=a%2Fb+c&x=1"), "path").unwrap(), b"a/b c");
        assert_eq!(query_bytes(Some("path=caf%E9"), "path").unwrap(), b"caf\xe9");
        assert_eq!(query_bytes(Some("path=%2e%2e%2fetc"), "path").unwrap(), b"../etc");
        assert_eq!(query_bytes(Some("path=50%"), "path").unwrap(), b"50%");
        assert!(query_bytes(Some("other=1"), "path").is_none());
        assert_eq!(percent_encode(b"caf\xe9 x"), "caf%E9%20x");
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 10)));
        assert_eq!(parse_range("bytes=-5", 100), Some((95, 5)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 50)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), None);
        assert_eq!(parse_range("lines=1-2", 100), None);
    }
}
