//! Previews: every port a project serves, at `{port}-{project}.{domain}`.
//!
//! Requests whose Host names a preview never reach the API router: they are
//! authorised here (public ports for anyone; private ones by a cookie scoped
//! to that one host, set through a one-time URL) and forwarded through a
//! `Tcp { port }` tunnel stream by `proxy`, or by `express` for plain
//! requests. aether's own cookie and access tokens (`Bearer` in any case)
//! are stripped before the user's app sees the request: that, and every
//! other header edit either lane makes, is `policy`'s. A visit to a
//! stopped project's preview boots its VM only when it is the owner's:
//! anyone else's would spend the owner's compute hours.

pub mod express;
pub mod framing;
pub mod policy;
pub mod proxy;

use crate::auth::Tokens;
use crate::auth::{bearer, sha256};
use crate::db::{Db, Project};
use crate::error::ApiError;
use crate::tunnel::Tunnels;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub use policy::COOKIE;
use policy::our_cookie;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing::Instrument;
use uuid::Uuid;

/// Path on a preview host that trades a one-time token for the cookie.
pub const AUTH_PATH: &str = "/__aether/auth";
/// How long a preview cookie is good for.
const COOKIE_TTL: chrono::Duration = chrono::Duration::hours(12);

/// What previews need of the hub, and no more: the previews' and
/// tunnels' registries, the database and token keys (who may see a port),
/// where users reach the hub, and the control plane's side (`Control`).
pub struct PreviewHub {
    pub previews: Arc<Previews>,
    pub tunnels: Arc<Tunnels>,
    pub db: Db,
    pub tokens: Arc<Tokens>,
    /// Where users reach the hub, e.g. `http://127.0.0.1:8080`.
    pub public_url: String,
    /// How long a client may take no bytes before it is let go.
    pub send_timeout: std::time::Duration,
    /// Whether plain requests take the express lane (else hyper's).
    pub express: bool,
    pub control: Arc<dyn Control>,
}

/// What previews ask of the control plane, which implements it.
#[async_trait::async_trait]
pub trait Control: Send + Sync {
    /// A request reached a project's port (from its owner, or not): it may
    /// keep the VM awake.
    fn visited(&self, project: Uuid, port: u16, owner: bool);
    /// Whether the owner's plan lets a visit start their stopped VM.
    async fn may_start(&self, owner: Uuid) -> crate::domain::Result<()>;
    /// Starts the project's stopped VM (without waiting for its tunnel).
    async fn start(&self, project: Project) -> crate::domain::Result<()>;
}

/// A port seen listening in a VM.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListeningPort {
    pub port: u16,
    pub address: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub process: String,
}

/// Who may open a port's preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Private,
    Public,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Public => "public",
        }
    }
}

/// Preview state: where previews live, what listens, who may see it.
pub struct Previews {
    /// e.g. `preview.localhost`.
    pub domain: String,
    /// `http` or `https`, and `:port` when the public URL has one.
    scheme: String,
    port_suffix: String,
    cookie_key: ring::hmac::Key,
    ports: Mutex<HashMap<Uuid, Vec<ListeningPort>>>,
    visibility: Mutex<HashMap<(Uuid, u16), Visibility>>,
}

impl Previews {
    pub fn new(domain: String, public_url: &str, secret: &[u8]) -> Self {
        let (scheme, rest) = public_url.split_once("://").unwrap_or(("http", public_url));
        let authority = rest.split('/').next().unwrap_or_default();
        let port_suffix =
            authority.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map(|(_, p)| format!(":{p}"));
        let key = sha256(&[b"aether preview cookie ".as_slice(), secret].concat());
        Self {
            domain,
            scheme: scheme.to_owned(),
            port_suffix: port_suffix.unwrap_or_default(),
            cookie_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
            ports: Mutex::new(HashMap::new()),
            visibility: Mutex::new(HashMap::new()),
        }
    }

    /// The public URL of a port's preview.
    pub fn url(&self, project: Uuid, port: u16) -> String {
        format!("{}://{port}-{project}.{}{}/", self.scheme, self.domain, self.port_suffix)
    }

    /// The (port, project) a Host header names, if it is a preview host.
    pub fn parse_host(&self, host: &str) -> Option<(u16, Uuid)> {
        let host =
            host.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h);
        let label = host.strip_suffix(&self.domain)?.strip_suffix('.')?;
        let (port, project) = label.split_once('-')?;
        let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
        Some((port, project.parse().ok()?))
    }

    pub fn set_ports(&self, project: Uuid, ports: Vec<ListeningPort>) {
        self.ports.lock().expect("ports lock").insert(project, ports);
    }

    pub fn clear_ports(&self, project: Uuid) {
        self.ports.lock().expect("ports lock").remove(&project);
    }

    pub fn ports(&self, project: Uuid) -> Vec<ListeningPort> {
        self.ports.lock().expect("ports lock").get(&project).cloned().unwrap_or_default()
    }

    /// A port's visibility (cached; private unless set otherwise).
    pub async fn visibility(&self, db: &Db, project: Uuid, port: u16) -> Result<Visibility, sqlx::Error> {
        if let Some(v) = self.cached_visibility(project, port) {
            return Ok(v);
        }
        let v = match db.port_visibility(project, port).await?.as_deref() {
            Some("public") => Visibility::Public,
            _ => Visibility::Private,
        };
        self.visibility.lock().expect("visibility lock").insert((project, port), v);
        Ok(v)
    }

    /// A port's visibility if it is known without asking the database.
    pub fn cached_visibility(&self, project: Uuid, port: u16) -> Option<Visibility> {
        self.visibility.lock().expect("visibility lock").get(&(project, port)).copied()
    }

    pub fn remember_visibility(&self, project: Uuid, port: u16, v: Visibility) {
        self.visibility.lock().expect("visibility lock").insert((project, port), v);
    }

    fn sign(&self, payload: &[u8]) -> String {
        let tag = ring::hmac::sign(&self.cookie_key, payload);
        format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// A cookie value good for one project's port, for one user, for a while.
    pub fn cookie_value(&self, project: Uuid, port: u16, user: Uuid) -> String {
        let expires = (chrono::Utc::now() + COOKIE_TTL).timestamp();
        let mut payload = Vec::with_capacity(42);
        payload.extend_from_slice(project.as_bytes());
        payload.extend_from_slice(&port.to_be_bytes());
        payload.extend_from_slice(user.as_bytes());
        payload.extend_from_slice(&expires.to_be_bytes());
        self.sign(&payload)
    }

    /// Whether `value` is a valid, unexpired cookie for exactly this preview.
    pub fn cookie_ok(&self, value: &str, project: Uuid, port: u16) -> bool {
        let Some((payload, tag)) = value.split_once('.') else { return false };
        let (Ok(payload), Ok(tag)) = (URL_SAFE_NO_PAD.decode(payload), URL_SAFE_NO_PAD.decode(tag)) else {
            return false;
        };
        if payload.len() != 42 || ring::hmac::verify(&self.cookie_key, &payload, &tag).is_err() {
            return false;
        }
        let expires = i64::from_be_bytes(payload[34..42].try_into().expect("8 bytes"));
        payload[..16] == *project.as_bytes()
            && payload[16..18] == port.to_be_bytes()
            && expires > chrono::Utc::now().timestamp()
    }

    /// Whether one of aether's cookies in these Cookie header lines is good
    /// for this preview. Each is tried (the request head bounds how many; a
    /// check is one HMAC): a page on another preview could set any number
    /// for the domain previews share, which the browser may send first, and
    /// must not lock the owner out.
    pub fn any_cookie_ok<'a>(&self, lines: impl Iterator<Item = &'a str>, project: Uuid, port: u16) -> bool {
        lines.flat_map(|l| l.split(';')).filter_map(our_cookie).any(|c| self.cookie_ok(c, project, port))
    }
}

/// The request's Cookie header lines.
fn cookie_lines(req: &Request) -> impl Iterator<Item = &str> {
    req.headers().get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok())
}

/// Whether the request comes from the project's owner: with a valid cookie
/// for this preview (only the owner can get one, through `ports/open`) or
/// with the owner's access token, whose session must still be alive (a
/// signed-out or revoked session's token wakes nothing).
async fn from_owner(hub: &PreviewHub, headers: &axum::http::HeaderMap, cookie_ok: bool, owner: Uuid) -> bool {
    if cookie_ok {
        return true;
    }
    let claims = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok().and_then(bearer))
        .filter_map(|t| hub.tokens.verify(t))
        .find(|(claims, _)| claims.sub == owner);
    match claims {
        Some((_, external)) if external => true,
        Some((claims, _)) => match claims.sid {
            Some(sid) => hub.db.session_alive(sid, owner).await.unwrap_or(false),
            None => false,
        },
        None => false,
    }
}

/// The users whose aether access tokens the request carries.
fn token_users(hub: &PreviewHub, req: &Request) -> Vec<Uuid> {
    req.headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok().and_then(bearer))
        .filter_map(|t| hub.tokens.verify(t).map(|(claims, _)| claims.sub))
        .collect()
}

fn wants_html(req: &Request) -> bool {
    req.headers().get(header::ACCEPT).is_some_and(|v| policy::wants_html(v.as_bytes()))
}

fn page(status: StatusCode, title: &str, body: &str, refresh: bool) -> Response {
    let meta = if refresh { "<meta http-equiv=\"refresh\" content=\"2\">" } else { "" };
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>{meta}\
         <style>body{{font-family:system-ui,sans-serif;background:#0b0d12;color:#e6e8ee;display:grid;place-items:center;\
         min-height:100vh;margin:0}}main{{max-width:32rem;padding:2rem}}h1{{font-size:1.25rem}}p{{color:#9aa3b2;line-height:1.5}}\
         </style></head><body><main><h1>{title}</h1><p>{body}</p></main></body></html>"
    );
    (status, Html(html)).into_response()
}

/// An error for a preview request: a small page for browsers, the contract's
/// JSON otherwise.
pub(crate) fn refuse(html: bool, err: ApiError, title: &str, body: &str) -> Response {
    if html {
        let status = err.into_response().status();
        page(status, title, body, false)
    } else {
        err.into_response()
    }
}

/// Serves a request addressed to a preview host.
pub async fn handle(hub: Arc<PreviewHub>, req: Request, port: u16, project_id: Uuid) -> Response {
    let html = wants_html(&req);
    if req.uri().path() == AUTH_PATH {
        let query = req.uri().query().map(str::to_owned);
        return authorise(&hub, query, html, port, project_id).await;
    }
    // A connected VM proves the project exists; only otherwise ask the database.
    let connected = hub.tunnels.contains(project_id);
    let project = if connected {
        None
    } else {
        match hub.db.project_any(project_id).await {
            Ok(Some(p)) => Some(p),
            Ok(None) => return refuse(html, ApiError::NotFound, "No such preview", "This preview does not exist."),
            Err(e) => return ApiError::from(e).into_response(),
        }
    };
    let visibility = match hub.previews.visibility(&hub.db, project_id, port).await {
        Ok(v) => v,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // Only the owner can get a good cookie (through `ports/open`).
    let cookie_ok = hub.previews.any_cookie_ok(cookie_lines(&req), project_id, port);
    if policy::access(visibility, cookie_ok) == policy::Access::SignInFirst {
        if html {
            let base = &hub.public_url;
            let to = format!("{base}/__aether/preview-auth?project={project_id}&port={port}");
            return (StatusCode::FOUND, [(header::LOCATION, to)]).into_response();
        }
        return ApiError::Unauthenticated("this preview is private; open it from aether to get access".into())
            .into_response();
    }
    if let Some(project) = project {
        let stopped = matches!(project.status.as_str(), "stopped" | "error");
        // The database is asked only what the decision needs.
        let invited = stopped
            && visibility == Visibility::Public
            && hub.db.wakes_on_visit(project_id, port).await.unwrap_or(false);
        let owner = stopped && !invited && from_owner(&hub, req.headers(), cookie_ok, project.owner_id).await;
        if stopped && !policy::wakes(visibility, invited, owner) {
            // A visitor doesn't boot the VM on its owner's compute hours,
            // unless the owner said visits to this port may.
            if html {
                return page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Stopped",
                    "This preview's project is stopped. It starts when its owner opens the preview or starts the \
                     project in aether.",
                    false,
                );
            }
            return ApiError::Unavailable { status: project.status }.into_response();
        }
        if stopped {
            // Checked here too, so the page says why instead of "starting"
            // (without the owner's plan: the visitor may be anyone).
            match hub.control.may_start(project.owner_id).await {
                Ok(()) => {}
                Err(crate::domain::Error::LimitReached(_)) => {
                    let why = "The project's VM is stopped, and its owner's compute hours for this month are used up.";
                    return refuse(html, ApiError::LimitReached(why.into()), "Compute limit reached", why);
                }
                Err(e) => return ApiError::from(e).into_response(),
            }
            let control = hub.control.clone();
            let span = tracing::info_span!("preview_start", project = %project_id);
            tokio::spawn(
                async move {
                    if let Err(e) = control.start(project).await {
                        tracing::warn!(error = %e, "starting a VM for its preview");
                    }
                }
                .instrument(span),
            );
        }
        if html {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Starting…",
                "The project's VM is starting. This page reloads by itself.",
                true,
            );
        }
        return ApiError::Unavailable { status: "starting".into() }.into_response();
    }
    // The owner's requests keep the VM awake: the cookie needs no lookup,
    // an access token is checked against the project's owner.
    let by_cookie = cookie_ok;
    let users = if by_cookie { vec![] } else { token_users(&hub, &req) };
    let owner = by_cookie
        || (!users.is_empty()
            && matches!(hub.db.project_any(project_id).await, Ok(Some(p)) if users.contains(&p.owner_id)));
    hub.control.visited(project_id, port, owner);
    match proxy::forward(&hub, req, project_id, port).await {
        Ok(resp) => resp,
        Err(proxy::ProxyError::Refused) => {
            let msg = format!("Nothing is listening on port {port} in the project's VM. Start your server and reload.");
            if html {
                page(StatusCode::BAD_GATEWAY, "Nothing on this port", &msg, false)
            } else {
                ApiError::BadGateway(msg).into_response()
            }
        }
        Err(proxy::ProxyError::Busy) => ApiError::RateLimited.into_response(),
        Err(proxy::ProxyError::ClientBody(e)) => {
            ApiError::bad_request(format!("the request's body could not be read: {e}")).into_response()
        }
        Err(proxy::ProxyError::Other(e)) => ApiError::BadGateway(format!("the preview failed: {e:#}")).into_response(),
    }
}

/// Trades a one-time token for the preview cookie, then goes to `/`.
async fn authorise(hub: &PreviewHub, query: Option<String>, html: bool, port: u16, project: Uuid) -> Response {
    let token = query.as_deref().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    let Some(token) = token else {
        return refuse(
            html,
            ApiError::Unauthenticated("missing token".into()),
            "Link incomplete",
            "This link is missing its token.",
        );
    };
    let redeemed = match hub.db.redeem_preview_token(&sha256(token.as_bytes())).await {
        Ok(r) => r,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match redeemed {
        Some((user, p, pt)) if p == project && pt == i32::from(port) => {
            let value = hub.previews.cookie_value(project, port, user);
            let secure = if hub.previews.scheme == "https" { "; Secure" } else { "" };
            let cookie = format!(
                "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
                COOKIE_TTL.num_seconds()
            );
            let mut resp = (StatusCode::FOUND, [(header::LOCATION, "/")]).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        _ => refuse(
            html,
            ApiError::Unauthenticated("this link was already used or has expired".into()),
            "Link expired",
            "This preview link was already used or has expired. Open the preview again from aether.",
        ),
    }
}

/// The page on the app's own origin that turns a signed-in session into a
/// one-time preview link (private previews redirect browsers here).
pub fn auth_page() -> Response {
    let html = r#"<!doctype html><html><head><meta charset="utf-8"><title>Opening preview…</title>
<style>body{font-family:system-ui,sans-serif;background:#0b0d12;color:#e6e8ee;display:grid;place-items:center;min-height:100vh;margin:0}p{color:#9aa3b2}</style>
</head><body><p id="m">Opening the preview…</p><script>
(async () => {
  const q = new URLSearchParams(location.search);
  let token = null;
  try { token = JSON.parse(localStorage.getItem("aether.auth") || "null")?.token ?? null; } catch {}
  if (!token) { location.replace("/signin?next=" + encodeURIComponent(location.pathname + location.search)); return; }
  const r = await fetch(`/api/projects/${encodeURIComponent(q.get("project"))}/ports/${encodeURIComponent(q.get("port"))}/open`,
    { method: "POST", headers: { authorization: "Bearer " + token } });
  if (!r.ok) { document.getElementById("m").textContent = "You can't open this preview (" + r.status + ")."; return; }
  location.replace((await r.json()).url);
})();
</script></body></html>"#;
    Html(html).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn previews() -> Previews {
        Previews::new("preview.localhost".into(), "http://127.0.0.1:8080", b"secret")
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc "), Some("abc"));
        assert_eq!(bearer("bEaReR\tabc"), Some("abc"));
        assert_eq!(bearer("Basic YWxhZGRpbjpvcGVuc2VzYW1l"), None);
        assert_eq!(bearer("Bearerabc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn hosts_and_urls() {
        let p = previews();
        let id = Uuid::new_v4();
        assert_eq!(p.url(id, 3000), format!("http://3000-{id}.preview.localhost:8080/"));
        assert_eq!(p.parse_host(&format!("3000-{id}.preview.localhost:8080")), Some((3000, id)));
        assert_eq!(p.parse_host(&format!("3000-{id}.preview.localhost")), Some((3000, id)));
        assert_eq!(p.parse_host("127.0.0.1:8080"), None);
        assert_eq!(p.parse_host(&format!("0-{id}.preview.localhost")), None);
        assert_eq!(p.parse_host(&format!("3000-{id}.evil.com")), None);
        assert_eq!(p.parse_host(&format!("x.3000-{id}.preview.localhost")), None);
    }

    #[test]
    fn cookies_bind_project_port_and_time() {
        let p = previews();
        let (a, b, user) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let c = p.cookie_value(a, 3000, user);
        assert!(p.cookie_ok(&c, a, 3000));
        assert!(!p.cookie_ok(&c, b, 3000), "worthless on another project");
        assert!(!p.cookie_ok(&c, a, 3001), "worthless on another port");
        let mut forged = c.clone();
        forged.replace_range(0..1, if c.starts_with('A') { "B" } else { "A" });
        assert!(!p.cookie_ok(&forged, a, 3000));
        let other = Previews::new("preview.localhost".into(), "http://x", b"other secret");
        assert!(!other.cookie_ok(&c, a, 3000), "another hub's key");
        let ours = |v: &str| format!("{COOKIE}={v}");
        let foreign = p.cookie_value(b, 3000, Uuid::new_v4());
        let lines = [format!("{}; x=1", ours(&foreign)), format!("y=2; {}", ours(&c))];
        assert!(p.any_cookie_ok(lines.iter().map(String::as_str), a, 3000), "another preview's cookie first");
        assert!(!p.any_cookie_ok(lines[..1].iter().map(String::as_str), a, 3000));
    }
}
