//! The fake's HTTP face: the contract's routes under `/v1/apps/{app}`, each
//! going through the same gate (token, app, injected faults, rate limits)
//! before its rule in `world` runs under the lock. Wait is the one route
//! that blocks: it returns when the machine reaches the state, or 408 when
//! its timeout (1-60 s, clamped) passes on the fake clock. Its
//! `instance_id`/`version` is accepted but not checked against the machine.

use super::world::{Logged, World};
use super::{Clock, Fault, Reply, Route, Shared};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Every route the fake serves, as the contract names it.
pub const ROUTES: [(&str, &str); 15] = [
    ("GET", "/apps/{app_name}/machines"),
    ("POST", "/apps/{app_name}/machines"),
    ("GET", "/apps/{app_name}/machines/{machine_id}"),
    ("POST", "/apps/{app_name}/machines/{machine_id}"),
    ("DELETE", "/apps/{app_name}/machines/{machine_id}"),
    ("POST", "/apps/{app_name}/machines/{machine_id}/start"),
    ("POST", "/apps/{app_name}/machines/{machine_id}/stop"),
    ("GET", "/apps/{app_name}/machines/{machine_id}/wait"),
    ("GET", "/apps/{app_name}/machines/{machine_id}/lease"),
    ("POST", "/apps/{app_name}/machines/{machine_id}/lease"),
    ("DELETE", "/apps/{app_name}/machines/{machine_id}/lease"),
    ("GET", "/apps/{app_name}/volumes"),
    ("POST", "/apps/{app_name}/volumes"),
    ("GET", "/apps/{app_name}/volumes/{volume_id}"),
    ("DELETE", "/apps/{app_name}/volumes/{volume_id}"),
];

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/apps/{app}/machines", get(list_machines).post(create_machine))
        .route("/v1/apps/{app}/machines/{id}", get(get_machine).post(update_machine).delete(delete_machine))
        .route("/v1/apps/{app}/machines/{id}/start", post(start))
        .route("/v1/apps/{app}/machines/{id}/stop", post(stop))
        .route("/v1/apps/{app}/machines/{id}/wait", get(wait))
        .route("/v1/apps/{app}/machines/{id}/lease", get(get_lease).post(acquire_lease).delete(release_lease))
        .route("/v1/apps/{app}/volumes", get(list_volumes).post(create_volume))
        .route("/v1/apps/{app}/volumes/{id}", get(get_volume).delete(delete_volume))
        .with_state(shared)
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = axum::http::StatusCode::from_u16(self.0).unwrap();
        match self.1 {
            Value::Null => status.into_response(),
            body => (status, axum::Json(body)).into_response(),
        }
    }
}

/// One request, as the rules need it.
pub struct Req {
    params: HashMap<String, String>,
    query: HashMap<String, String>,
    headers: HeaderMap,
    uri: Uri,
    /// The JSON body (`Null` when empty), or `Err` when it isn't JSON.
    body: Result<Value, ()>,
}

impl Req {
    fn id(&self) -> &str {
        self.params.get("id").map_or("", String::as_str)
    }

    fn nonce(&self) -> Option<&str> {
        self.headers.get("fly-machine-lease-nonce")?.to_str().ok()
    }

    fn json(&self) -> &Value {
        self.body.as_ref().unwrap_or(&Value::Null)
    }

    fn flag(&self, key: &str) -> bool {
        self.query.get(key).is_some_and(|v| v == "true" || v == "1")
    }
}

/// A refusal from the gate, and the `Retry-After` it carries, if any.
type Refused = (Reply, Option<Duration>);

/// The answer, with `Retry-After` in whole seconds (rounded up).
fn respond(reply: Reply, retry_after: Option<Duration>) -> Response {
    let mut resp = reply.into_response();
    if let Some(after) = retry_after {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        resp.headers_mut().insert("retry-after", secs.into());
    }
    resp
}

impl Shared {
    /// The gate every request passes: token, app, faults, rate limits.
    /// `Ok(true)` means "do the work, then never answer".
    fn admit(&self, w: &mut World, now: Duration, route: Route, r: &Req) -> Result<bool, Refused> {
        let bearer = r.headers.get("authorization").and_then(|v| v.to_str().ok());
        if bearer != Some(format!("Bearer {}", self.token).as_str()) {
            return Err((Reply(401, json!({ "error": "Authenticate: token validation error" })), None));
        }
        if r.params.get("app") != Some(&self.app) {
            return Err((Reply(404, json!({ "error": "app not found" })), None));
        }
        let throttled = || Reply(429, json!({ "error": "rate limit exceeded" }));
        if let Some(left) = w.throttled_for(route) {
            return Err((throttled(), Some(left)));
        }
        let lose = match w.next_fault(route) {
            Some(Fault::Status(status, body)) => return Err((Reply(status, body), None)),
            Some(Fault::Throttle(d)) => {
                w.throttled.insert(route, std::time::Instant::now() + d);
                return Err((throttled(), Some(d)));
            }
            Some(Fault::LoseResponse) => true,
            None => false,
        };
        let key = r.params.get("id").unwrap_or(&self.app).clone();
        if !w.take_token(now, route, &key) {
            return Err((Reply(429, json!({ "error": "rate limit exceeded" })), None));
        }
        if r.body.is_err() {
            return Err((Reply(400, json!({ "error": "invalid JSON body" })), None));
        }
        Ok(lose)
    }

    fn record(w: &mut World, route: Route, r: &Req, status: u16) {
        w.log.push(Logged { route, path: r.uri.to_string(), status, nonce: r.nonce().map(str::to_owned) });
    }
}

async fn serve(
    f: &Shared,
    route: Route,
    r: Req,
    act: impl FnOnce(&mut World, Duration, &Req) -> Result<Reply, Reply>,
) -> Response {
    let (reply, lose, retry_after) = {
        let mut w = f.world.lock().unwrap();
        let now = f.clock.now();
        w.tick(now);
        let (reply, lose, retry_after) = match f.admit(&mut w, now, route, &r) {
            Err((reply, retry_after)) => (reply, false, retry_after),
            Ok(lose) => (act(&mut w, now, &r).unwrap_or_else(|e| e), lose, None),
        };
        Shared::record(&mut w, route, &r, reply.0);
        (reply, lose, retry_after)
    };
    f.notify();
    if lose {
        std::future::pending::<()>().await;
    }
    respond(reply, retry_after)
}

macro_rules! handler {
    ($name:ident, $route:expr, |$w:ident, $now:ident, $r:ident| $body:expr) => {
        async fn $name(
            State(f): State<Arc<Shared>>,
            Path(params): Path<HashMap<String, String>>,
            Query(query): Query<HashMap<String, String>>,
            headers: HeaderMap,
            uri: Uri,
            body: Bytes,
        ) -> Response {
            let body = if body.is_empty() { Ok(Value::Null) } else { serde_json::from_slice(&body).map_err(drop) };
            let r = Req { params, query, headers, uri, body };
            serve(&f, $route, r, |$w: &mut World, $now: Duration, $r: &Req| $body).await
        }
    };
}

handler!(list_machines, Route::ListMachines, |w, _now, r| {
    let states: Vec<&str> = r.query.get("state").map(|s| s.split(',').collect()).unwrap_or_default();
    let list: Vec<Value> = w
        .machines
        .values()
        .filter(|m| r.flag("include_deleted") || m.state != "destroyed")
        .filter(|m| r.query.get("region").is_none_or(|region| &m.region == region))
        .filter(|m| states.is_empty() || states.contains(&m.state.as_str()))
        .map(|m| w.machine_json(m))
        .collect();
    Ok(Reply(200, Value::Array(list)))
});
handler!(create_machine, Route::CreateMachine, |w, now, r| w.create_machine(now, r.json()));
handler!(get_machine, Route::GetMachine, |w, _now, r| {
    let m = w.machines.get(r.id()).ok_or_else(|| Reply(404, json!({ "error": "machine not found" })))?;
    Ok(Reply(200, w.machine_json(m)))
});
handler!(update_machine, Route::UpdateMachine, |w, now, r| w.update_machine(now, r.id(), r.json(), r.nonce()));
handler!(delete_machine, Route::DeleteMachine, |w, now, r| {
    w.destroy(now, r.id(), r.flag("force") || r.flag("kill"), r.nonce())
});
handler!(start, Route::Start, |w, now, r| w.start(now, r.id(), r.nonce()));
handler!(stop, Route::Stop, |w, now, r| w.stop(now, r.id(), r.json(), r.nonce()));
handler!(get_lease, Route::GetLease, |w, now, r| {
    let m = w.machines.get(r.id()).ok_or_else(|| Reply(404, json!({ "error": "machine not found" })))?;
    let l = m
        .lease
        .as_ref()
        .filter(|l| l.expires > now)
        .ok_or_else(|| Reply(404, json!({ "error": "lease not found" })))?;
    Ok(Reply(
        200,
        json!({ "status": "success", "data": { "nonce": l.nonce, "owner": l.owner, "description": l.description } }),
    ))
});
handler!(acquire_lease, Route::AcquireLease, |w, now, r| w.acquire_lease(now, r.id(), r.json(), r.nonce()));
handler!(release_lease, Route::ReleaseLease, |w, now, r| w.release_lease(now, r.id(), r.nonce()));
handler!(list_volumes, Route::ListVolumes, |w, _now, _r| {
    let list = w.volumes.values().filter(|v| v.state != "destroyed").map(|v| w.volume_json(v)).collect();
    Ok(Reply(200, Value::Array(list)))
});
handler!(create_volume, Route::CreateVolume, |w, now, r| w.create_volume(now, r.json()));
handler!(get_volume, Route::GetVolume, |w, _now, r| {
    let v = w.volumes.get(r.id()).ok_or_else(|| Reply(404, json!({ "error": "volume not found" })))?;
    Ok(Reply(200, w.volume_json(v)))
});
handler!(delete_volume, Route::DeleteVolume, |w, _now, r| w.delete_volume(r.id()));

const WAIT_STATES: [&str; 6] = ["started", "stopped", "suspended", "destroyed", "failed", "settled"];

/// Counts a wait while it is pending.
struct Pending<'a>(&'a Shared);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.pending_waits.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn wait(
    State(f): State<Arc<Shared>>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let r = Req { params, query, headers, uri, body: Ok(Value::Null) };
    let state = r.query.get("state").map_or("started", String::as_str).to_owned();
    let timeout = match r.query.get("timeout").map(|t| t.parse::<u64>()) {
        None => Ok(60),
        Some(Ok(t)) => Ok(t.clamp(1, 60)),
        Some(Err(_)) => Err(()),
    };
    let deadline = {
        let mut w = f.world.lock().unwrap();
        let now = f.clock.now();
        w.tick(now);
        let early = match (f.admit(&mut w, now, Route::Wait, &r), timeout) {
            (Err(refused), _) => Some(refused),
            (Ok(_), Err(())) => {
                Some((Reply(400, json!({ "error": "timeout must be a whole number of seconds" })), None))
            }
            (Ok(_), _) if !WAIT_STATES.contains(&state.as_str()) => {
                Some((Reply(400, json!({ "error": format!("invalid state {state:?}") })), None))
            }
            _ => None,
        };
        if let Some((reply, retry_after)) = early {
            Shared::record(&mut w, Route::Wait, &r, reply.0);
            return respond(reply, retry_after);
        }
        now + Duration::from_secs(timeout.unwrap_or(60))
    };
    f.waits_received.fetch_add(1, Ordering::SeqCst);
    f.pending_waits.fetch_add(1, Ordering::SeqCst);
    let _pending = Pending(&f);
    loop {
        let mut changed = f.changed.subscribe();
        let (reply, next) = {
            let mut w = f.world.lock().unwrap();
            let now = f.clock.now();
            w.tick(now);
            let reply = match w.machines.get(r.id()) {
                None => Some(Reply(404, json!({ "error": "machine not found" }))),
                Some(m) if m.state == state || (state == "settled" && !super::is_transient(&m.state)) => {
                    Some(Reply(200, json!({ "ok": true, "state": m.state, "version": m.instance_id })))
                }
                Some(_) if now >= deadline => Some(Reply(
                    408,
                    json!({ "error": format!("deadline_exceeded: timeout waiting for machine to be {state}") }),
                )),
                Some(_) => None,
            };
            if let Some(reply) = &reply {
                Shared::record(&mut w, Route::Wait, &r, reply.0);
            }
            (reply, w.next_due_of(r.id()).map_or(deadline, |due| due.min(deadline)))
        };
        if let Some(reply) = reply {
            return reply.into_response();
        }
        match &f.clock {
            Clock::Manual { auto: true, .. } => f.advance_to(next),
            Clock::Manual { .. } => {
                let _ = changed.changed().await;
            }
            Clock::System(_) => {
                let pause = next.saturating_sub(f.clock.now());
                tokio::select! {
                    _ = changed.changed() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}
