//! The Machines API over HTTP: one method per endpoint the hub uses, the
//! retry policy the API allows, and errors that say what failed in words a
//! user can act on.
//!
//! Calls are retried with exponential backoff and full jitter on 429, 5xx
//! and transport failures, never on a 4xx the same request would get again;
//! a `Retry-After` is waited out, up to `MAX_RETRY_AFTER` (asked to wait
//! longer, the call fails at once, saying how long).
//! Creating is not idempotent in this API (no idempotency keys), so the
//! `create_*_once` methods send exactly once and leave retrying to the
//! caller, which first looks for what a lost answer may have created. The
//! token travels as a sensitive header and appears in no `Debug`, log line
//! or error.

use super::model::{Machine, Volume};
use bytes::Bytes;
use rand::Rng;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::time::Duration;

/// The header that carries a lease's nonce on mutations of a leased machine.
pub const NONCE_HEADER: &str = "fly-machine-lease-nonce";

/// The longest `Retry-After` waited out. A request that has to wait longer
/// fails instead: a start shouldn't hang for minutes without a word.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// How often and how patiently a failed call is tried again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// Tries in all, the first included.
    pub attempts: u32,
}

impl RetryPolicy {
    /// The pause before retry `attempt` (from 0): uniform in [c/2, c] under a
    /// ceiling c that doubles up to the cap, and never shorter than the
    /// server's `Retry-After` (itself at most `MAX_RETRY_AFTER`).
    pub fn delay(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        let ceiling = self.base.saturating_mul(1 << attempt.min(16)).min(self.cap);
        let jittered = ceiling.mul_f64(rand::rng().random_range(0.5..=1.0));
        hint.map_or(jittered, |h| jittered.max(h.min(MAX_RETRY_AFTER)))
    }
}

/// A failed Machines API call.
#[derive(Debug, thiserror::Error)]
pub enum FlyError {
    /// The API answered with an error status.
    #[error("{op}: {}", explain(*status, message, kind.as_deref(), *retry_after))]
    Status {
        op: String,
        status: u16,
        /// Fly's `error` text (truncated).
        message: String,
        /// Fly's `status` field: `insufficient_capacity`, `name_taken`, ...
        kind: Option<String>,
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused or reset, or the request timed out.
    #[error("{op}: the Fly Machines API did not answer")]
    Transport {
        op: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{op}: unexpected answer from the Fly Machines API: {detail}")]
    Decode { op: String, detail: String },
}

/// Body markers of capacity failures, which Fly reports with several codes.
const CAPACITY_MARKERS: [&str; 6] = [
    "insufficient_capacity",
    "insufficient resources",
    "insufficient memory",
    "could not reserve resource",
    "no capacity",
    "over the allowed quota",
];

fn explain(status: u16, message: &str, kind: Option<&str>, retry_after: Option<Duration>) -> String {
    if is_capacity(message, kind) {
        return format!(
            "Fly has no capacity for this machine in the region right now \
             (insufficient_capacity, {status}: {message}); try again in a few minutes"
        );
    }
    match status {
        401 => format!("Fly rejected the API token (401: {message}); check FLY_API_TOKEN"),
        404 => format!("not found at Fly (404: {message})"),
        409 => format!("the machine is busy with another operation (409: {message})"),
        429 => match retry_after {
            Some(after) => format!("rate limited by Fly (429: {message}; retry after {} s)", after.as_secs()),
            None => format!("rate limited by Fly (429: {message})"),
        },
        s if s >= 500 => format!("Fly's API failed ({s}: {message})"),
        s => format!("Fly refused the request ({s}: {message})"),
    }
}

fn is_capacity(message: &str, kind: Option<&str>) -> bool {
    let text = message.to_ascii_lowercase();
    matches!(kind, Some("insufficient_capacity" | "volume_placement_capacity"))
        || CAPACITY_MARKERS.iter().any(|m| text.contains(m))
}

impl FlyError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    fn message(&self) -> &str {
        match self {
            Self::Status { message, .. } => message,
            _ => "",
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn is_rate_limited(&self) -> bool {
        self.status() == Some(429)
    }

    pub fn is_capacity(&self) -> bool {
        match self {
            Self::Status { message, kind, .. } => is_capacity(message, kind.as_deref()),
            _ => false,
        }
    }

    /// Someone else holds the machine's lease.
    pub fn is_lease_held(&self) -> bool {
        self.status() == Some(409) && !self.is_capacity() && !self.is_name_taken()
    }

    pub fn is_name_taken(&self) -> bool {
        matches!(self, Self::Status { kind: Some(k), .. } if k == "name_taken")
    }

    /// A volume still bound to a machine, which Fly keeps for a while after
    /// the machine is destroyed.
    pub fn is_volume_bound(&self) -> bool {
        let m = self.message().to_ascii_lowercase();
        self.status().is_some_and(|s| (400..500).contains(&s))
            && (m.contains("bound to machine") || m.contains("attached to machine"))
    }

    /// Whether the same request may succeed later: 429, 5xx, no answer.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Transport { .. } => true,
            Self::Decode { .. } => false,
        }
    }

    /// How long the server asked to wait before the next request.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The pause before trying again after this failure of try `attempt`
    /// (from 0), if the request may succeed later and `policy` allows
    /// another try. The server's `Retry-After` is waited out; one longer than
    /// `MAX_RETRY_AFTER` ends the tries.
    pub fn retry_pause(&self, policy: &RetryPolicy, attempt: u32) -> Option<Duration> {
        let too_long = self.retry_after().is_some_and(|after| after > MAX_RETRY_AFTER);
        let again = self.retryable() && !too_long && attempt + 1 < policy.attempts;
        again.then(|| policy.delay(attempt, self.retry_after()))
    }
}

/// A `Retry-After` value: seconds, or an HTTP date (RFC 9110 §10.2.3).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// A client of one Fly app's Machines API.
pub struct FlyApi {
    http: reqwest::Client,
    /// `{api}/v1/apps/{app}`.
    base: String,
    token: String,
    timeout: Duration,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for FlyApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlyApi")
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// One request, as `send` needs it.
struct Call<'a> {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<&'a Value>,
    nonce: Option<&'a str>,
    timeout: Duration,
    op: String,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: String, op: impl Into<String>, timeout: Duration) -> Self {
        Self { method, path, query: vec![], body: None, nonce: None, timeout, op: op.into() }
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8], op: &str) -> Result<T, FlyError> {
    serde_json::from_slice(bytes).map_err(|e| FlyError::Decode { op: op.to_owned(), detail: e.to_string() })
}

/// Percent-encodes a query value (ours are ids, states and numbers).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fly's `{"error": ..., "status": ...}`, or the raw text when it isn't JSON.
fn error_body(bytes: &[u8]) -> (String, Option<String>) {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let message = match v.get("error").and_then(Value::as_str) {
        Some(m) => m.to_owned(),
        None => String::from_utf8_lossy(bytes).trim().to_owned(),
    };
    let message: String = message.chars().take(500).collect();
    let kind = v.get("status").and_then(Value::as_str).map(str::to_owned);
    (message, kind)
}

impl FlyApi {
    /// `api_url` is the API's root (`https://api.machines.dev`; a trailing
    /// `/v1` is accepted too).
    pub fn new(api_url: &str, app: &str, token: &str, timeout: Duration, retry: RetryPolicy) -> anyhow::Result<Self> {
        let root = api_url.trim_end_matches('/');
        let root = root.strip_suffix("/v1").unwrap_or(root);
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build()?;
        Ok(Self { http, base: format!("{root}/v1/apps/{app}"), token: token.to_owned(), timeout, retry })
    }

    async fn once(&self, call: &Call<'_>) -> Result<Bytes, FlyError> {
        let transport = |source| FlyError::Transport { op: call.op.clone(), source };
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", self.token)).map_err(|_| FlyError::Decode {
            op: call.op.clone(),
            detail: "FLY_API_TOKEN is not a valid header value".into(),
        })?;
        auth.set_sensitive(true);
        let mut url = format!("{}{}", self.base, call.path);
        for (i, (k, v)) in call.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.push_str(&encode(v));
        }
        let mut req = self.http.request(call.method.clone(), url).timeout(call.timeout).header(AUTHORIZATION, auth);
        if let Some(body) = call.body {
            req = req.json(body);
        }
        if let Some(nonce) = call.nonce {
            req = req.header(NONCE_HEADER, nonce);
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let retry_after = resp.headers().get(RETRY_AFTER).and_then(|v| parse_retry_after(v.to_str().ok()?));
        let bytes = resp.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok(bytes);
        }
        let (message, kind) = error_body(&bytes);
        Err(FlyError::Status { op: call.op.clone(), status: status.as_u16(), message, kind, retry_after })
    }

    /// Sends `call`, retrying what may succeed later.
    async fn send(&self, call: Call<'_>) -> Result<Bytes, FlyError> {
        let mut attempt = 0;
        loop {
            let e = match self.once(&call).await {
                Ok(bytes) => return Ok(bytes),
                Err(e) => e,
            };
            let Some(delay) = e.retry_pause(&self.retry, attempt) else { return Err(e) };
            // Only the status: Fly's message could echo a request.
            tracing::debug!(op = %call.op, status = ?e.status(), ?delay, "retrying a fly api call");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    fn call(&self, method: Method, path: String, op: impl Into<String>) -> Call<'_> {
        Call::new(method, path, op, self.timeout)
    }

    pub async fn list_machines(&self) -> Result<Vec<Machine>, FlyError> {
        let op = "listing machines";
        decode(&self.send(self.call(Method::GET, "/machines".into(), op)).await?, op)
    }

    pub async fn get_machine(&self, id: &str) -> Result<Machine, FlyError> {
        let op = format!("reading machine {id}");
        let bytes = self.send(self.call(Method::GET, format!("/machines/{id}"), &op)).await?;
        decode(&bytes, &op)
    }

    /// Creates a machine, trying once (see the module's note on creates).
    pub async fn create_machine_once(&self, body: &Value) -> Result<Machine, FlyError> {
        let region = body["region"].as_str().unwrap_or("?");
        let op = format!("creating the machine in {region}");
        let mut call = self.call(Method::POST, "/machines".into(), &op);
        call.body = Some(body);
        decode(&self.once(&call).await?, &op)
    }

    pub async fn update_machine(&self, id: &str, body: &Value, nonce: &str) -> Result<Machine, FlyError> {
        let op = format!("updating machine {id}");
        let mut call = self.call(Method::POST, format!("/machines/{id}"), &op);
        call.body = Some(body);
        call.nonce = Some(nonce);
        decode(&self.send(call).await?, &op)
    }

    pub async fn start(&self, id: &str, nonce: &str) -> Result<(), FlyError> {
        let mut call = self.call(Method::POST, format!("/machines/{id}/start"), format!("starting machine {id}"));
        call.nonce = Some(nonce);
        self.send(call).await.map(drop)
    }

    /// Asks the machine to stop: `signal`, then a kill after `timeout` (a Go duration).
    pub async fn stop(&self, id: &str, nonce: &str, signal: &str, timeout: &str) -> Result<(), FlyError> {
        let body = json!({ "signal": signal, "timeout": timeout });
        let mut call = self.call(Method::POST, format!("/machines/{id}/stop"), format!("stopping machine {id}"));
        call.body = Some(&body);
        call.nonce = Some(nonce);
        self.send(call).await.map(drop)
    }

    /// Destroys the machine, killing it if it runs.
    pub async fn destroy(&self, id: &str, nonce: &str) -> Result<(), FlyError> {
        let mut call = self.call(Method::DELETE, format!("/machines/{id}"), format!("destroying machine {id}"));
        call.query = vec![("force", "true".into())];
        call.nonce = Some(nonce);
        self.send(call).await.map(drop)
    }

    /// Waits up to `secs` (clamped to 1–60) for `state`; `Ok(false)` is the
    /// API's 408, "not yet".
    pub async fn wait(&self, id: &str, state: &str, version: Option<&str>, secs: u64) -> Result<bool, FlyError> {
        let secs = secs.clamp(1, 60);
        let mut call = Call::new(
            Method::GET,
            format!("/machines/{id}/wait"),
            format!("waiting for machine {id} to be {state}"),
            Duration::from_secs(secs) + self.timeout,
        );
        call.query = vec![("state", state.into()), ("timeout", secs.to_string())];
        // The machine version to wait on; `instance_id` is its older name.
        if let Some(v) = version.filter(|v| !v.is_empty()) {
            call.query.push(("instance_id", v.into()));
            call.query.push(("version", v.into()));
        }
        match self.send(call).await {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(StatusCode::REQUEST_TIMEOUT.as_u16()) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Takes the machine's lease for `ttl_secs`; returns its nonce.
    pub async fn acquire_lease(&self, id: &str, ttl_secs: u64) -> Result<String, FlyError> {
        let op = format!("leasing machine {id}");
        let body = json!({ "ttl": ttl_secs, "description": "aether hub" });
        let mut call = self.call(Method::POST, format!("/machines/{id}/lease"), &op);
        call.body = Some(&body);
        let v: Value = decode(&self.send(call).await?, &op)?;
        // The current API wraps the lease in {"status","data"}; the 2024 spec
        // returned it bare.
        let nonce = v.pointer("/data/nonce").or_else(|| v.get("nonce")).and_then(Value::as_str);
        nonce.map(str::to_owned).ok_or_else(|| FlyError::Decode { op, detail: "the lease has no nonce".into() })
    }

    pub async fn release_lease(&self, id: &str, nonce: &str) -> Result<(), FlyError> {
        let mut call =
            self.call(Method::DELETE, format!("/machines/{id}/lease"), format!("releasing the lease of machine {id}"));
        call.nonce = Some(nonce);
        self.send(call).await.map(drop)
    }

    pub async fn list_volumes(&self) -> Result<Vec<Volume>, FlyError> {
        let op = "listing volumes";
        decode(&self.send(self.call(Method::GET, "/volumes".into(), op)).await?, op)
    }

    /// Creates a volume, trying once (see the module's note on creates).
    pub async fn create_volume_once(&self, body: &Value) -> Result<Volume, FlyError> {
        let region = body["region"].as_str().unwrap_or("?");
        let op = format!("creating the volume in {region}");
        let mut call = self.call(Method::POST, "/volumes".into(), &op);
        call.body = Some(body);
        decode(&self.once(&call).await?, &op)
    }

    pub async fn delete_volume(&self, id: &str) -> Result<(), FlyError> {
        let call = self.call(Method::DELETE, format!("/volumes/{id}"), format!("deleting volume {id}"));
        self.send(call).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, message: &str, kind: Option<&str>) -> FlyError {
        FlyError::Status {
            op: "op".into(),
            status,
            message: message.into(),
            kind: kind.map(Into::into),
            retry_after: None,
        }
    }

    #[test]
    fn only_what_may_change_is_retried() {
        for s in [429, 500, 502, 503, 504] {
            assert!(status(s, "", None).retryable(), "{s}");
        }
        for s in [400, 401, 404, 408, 409, 412, 422] {
            assert!(!status(s, "", None).retryable(), "{s}");
        }
    }

    #[test]
    fn capacity_failures_are_recognised_in_their_several_shapes() {
        let e = status(412, "x", Some("insufficient_capacity"));
        assert!(e.is_capacity() && !e.is_lease_held());
        assert!(e.to_string().contains("insufficient_capacity"), "{e}");
        let e = status(409, "aborted: insufficient memory available", None);
        assert!(e.is_capacity() && !e.is_lease_held());
        assert!(status(409, "lease currently held by x", None).is_lease_held());
        assert!(status(412, "volume is currently bound to machine: m1", None).is_volume_bound());
    }

    #[test]
    fn delays_grow_with_jitter_and_honour_retry_after() {
        let p = RetryPolicy { base: Duration::from_millis(100), cap: Duration::from_secs(2), attempts: 5 };
        for attempt in 0..8 {
            let d = p.delay(attempt, None);
            let ceiling = Duration::from_millis(100 << attempt).min(p.cap);
            assert!(d >= ceiling / 2 && d <= ceiling, "{attempt}: {d:?}");
        }
        assert!(p.delay(0, Some(Duration::from_secs(1))) >= Duration::from_secs(1));
        assert!(p.delay(0, Some(Duration::from_secs(5))) >= Duration::from_secs(5), "longer than the cap");
        assert_eq!(p.delay(0, Some(Duration::from_secs(60))), MAX_RETRY_AFTER);

        let limited = |after: u64| FlyError::Status {
            op: "op".into(),
            status: 429,
            message: "slow down".into(),
            kind: None,
            retry_after: Some(Duration::from_secs(after)),
        };
        assert!(limited(3).retry_pause(&p, 0).is_some_and(|d| d >= Duration::from_secs(3)));
        assert_eq!(limited(3).retry_pause(&p, 4), None, "the last try");
        assert_eq!(limited(3600).retry_pause(&p, 0), None, "longer than waited out");
        assert!(limited(3600).to_string().contains("retry after 3600 s"), "{}", limited(3600));
        assert_eq!(status(422, "", None).retry_pause(&p, 0), None);
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        assert!(parse_retry_after(&soon).is_some_and(|d| d > Duration::from_secs(25) && d <= Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn debug_hides_the_token() {
        // Building a client needs a crypto provider in this process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let retry = RetryPolicy { base: Duration::ZERO, cap: Duration::ZERO, attempts: 1 };
        let api = FlyApi::new("http://127.0.0.1:1/v1/", "app", "fly-secret", Duration::from_secs(1), retry).unwrap();
        let text = format!("{api:?}");
        assert!(!text.contains("fly-secret") && text.contains("1:1/v1/apps/app"), "{text}");
    }
}
