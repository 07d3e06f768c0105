//! Who may call what, for every route of the API router: no token, an
//! expired or forged one, or one for an account that is gone is 401;
//! another user's ids are 404. The routes are read from the router's own
//! source (`hub/src/api/`), so a route is covered the day it is added, and
//! one this test can't place (a public route, a ticket route, a route whose
//! ids come in its body) fails until it is given a justified entry here.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use support::{Api, TestHub};

const SECRET: &str = "authz-test-jwt-secret-0123456789abcdef";

/// Routes anyone may call, and why.
const PUBLIC: &[(&str, &str, &str)] = &[
    ("POST", "/api/auth/signup", "creates the account a token is for"),
    ("POST", "/api/auth/login", "returns the token"),
    ("GET", "/healthz", "liveness for the platform's checks"),
    ("GET", "/readyz", "readiness for the platform's checks; says only whether the database answers"),
    ("GET", "/metrics", "Prometheus scrape: process-wide counters, no user's data"),
    ("GET", "/__aether/preview-auth", "a static page; the one-time link it asks for needs a token"),
    ("GET", "/", "the landing page: what aether is and its plans, for anyone"),
    ("GET", "/docs", "the docs' index: static, no user's data"),
    ("GET", "/docs/{page}", "a page of the docs: static, no user's data"),
    ("POST", "/api/billing/webhook", "Stripe's events: the Stripe-Signature over the body stands for the caller"),
    ("GET", "/api/openapi.json", "the API's description, built from the code: no user's data"),
    ("POST", "/api/auth/refresh", "the refresh token in the body stands for the caller"),
    ("POST", "/api/auth/password-reset", "mails a link to the address's owner; answers 202 whoever asks"),
    ("POST", "/api/auth/password-reset/confirm", "the mailed one-time token in the body stands for the caller"),
    ("POST", "/api/auth/verify-email", "the mailed one-time token in the body stands for the caller"),
];

/// WebSocket routes, authorised by a one-time ticket (browsers can't set
/// headers on a WebSocket), and the ticket purpose each takes.
const TICKET: &[(&str, &str, &str)] = &[
    ("GET", "/api/projects/{id}/terminal", "terminal"),
    ("GET", "/api/projects/{id}/files/watch", "watch"),
    ("GET", "/api/projects/{id}/agents/activity/live", "agent-activity"),
];

/// Token routes with no id in their path, and where another user's ids
/// could come in instead (checked below) or why none can.
const NO_PATH_ID: &[(&str, &str, &str)] = &[
    ("GET", "/api/me", "the caller's own profile"),
    ("PATCH", "/api/me", "the caller's own profile"),
    ("GET", "/api/projects", "the caller's own projects: checked not to list another user's"),
    ("POST", "/api/projects", "creates a project of the caller's"),
    ("GET", "/api/billing/usage", "the caller's own usage"),
    ("GET", "/api/billing/usage/monthly", "the caller's own usage"),
    ("GET", "/api/billing/storage/monthly", "the caller's own usage"),
    ("POST", "/api/billing/checkout", "the caller's own subscription"),
    ("POST", "/api/billing/portal", "the caller's own subscription"),
    ("POST", "/api/tickets", "the project id is in the body: checked with another user's"),
    ("DELETE", "/api/me", "deletes the caller's own account"),
    ("POST", "/api/auth/logout", "ends the caller's own session"),
    ("POST", "/api/me/verify-email", "mails the caller's own address"),
    ("POST", "/api/me/password", "the caller's own password"),
    ("POST", "/api/me/email", "the caller's own address"),
    ("GET", "/api/me/sessions", "the caller's own sessions"),
    ("DELETE", "/api/me/sessions", "the caller's own other sessions"),
    ("GET", "/api/me/audit", "the caller's own audit log"),
];

/// A body a route accepts, so that a refusal is about who calls, not what.
fn body_for(method: &str, path: &str) -> Option<Value> {
    Some(match (method, path) {
        ("PATCH", "/api/me") => json!({"display_name": "x"}),
        ("POST", "/api/billing/checkout") => json!({"plan": "pro"}),
        ("POST", "/api/projects") => json!({"name": "x"}),
        ("PATCH", "/api/projects/{id}") => json!({"name": "x"}),
        ("POST", "/api/projects/{id}/agents") => json!({"name": "x"}),
        ("PATCH", "/api/projects/{id}/ports/{port}") => json!({"visibility": "public"}),
        ("POST", "/api/projects/{id}/files/mkdir") => json!({"path": "x"}),
        ("POST", "/api/projects/{id}/files/rename") => json!({"from": "x", "to": "y"}),
        (_, _) if method == "GET" || method == "DELETE" => return None,
        _ => json!({}),
    })
}

/// `(method, path)` of every route the router registers, read from the
/// modules under `src/api/` and where `mod.rs` mounts each.
fn routes() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let root = std::fs::read_to_string(dir.join("mod.rs")).unwrap();
    let nest = root.find(".nest(\"/api\", api)").expect("mod.rs mounts the API under /api");
    assert_eq!(root.matches(".nest(").count(), 1, "mod.rs nests something new: teach this test where it goes");
    let mut out = Vec::new();
    // Paths `mod.rs` answers itself, ahead of the router.
    for (i, _) in root.match_indices("uri().path() == \"") {
        let rest = &root[i + "uri().path() == \"".len()..];
        out.push(("GET".to_owned(), rest[..rest.find('"').unwrap()].to_owned()));
    }
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_stem().unwrap().to_str().unwrap().to_owned();
        for banned in [".route_service(", ".nest_service(", ".nest(", ".merge("] {
            assert!(name == "mod" || !text.contains(banned), "{name}.rs uses {banned}: teach this test to read it");
        }
        if !text.contains(".route(") {
            continue;
        }
        let mounted = root.find(&format!("{name}::routes(")).unwrap_or_else(|| panic!("{name}.rs is not mounted"));
        let prefix = if mounted < nest { "/api" } else { "" };
        for (i, _) in text.match_indices(".route(\"") {
            let rest = &text[i + ".route(\"".len()..];
            let path = &rest[..rest.find('"').unwrap()];
            // The method router: up to the `.route(` call's closing parenthesis.
            let mut depth = 1;
            let end = rest.find(|c| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            });
            let methods = &rest[..end.unwrap()];
            // Calls of `name(` in the method router (not `other_name(`).
            let calls = |name: &str| {
                methods
                    .match_indices(&format!("{name}("))
                    .filter(|(j, _)| !methods[..*j].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
                    .count()
            };
            for unknown in ["any", "on", "any_service", "get_service", "post_service", "on_service"] {
                assert_eq!(calls(unknown), 0, "{path} in {name}.rs uses {unknown}(): teach this test to read it");
            }
            let mut found = 0;
            for m in ["get", "post", "put", "patch", "delete", "head", "options", "trace"] {
                for _ in 0..calls(m) {
                    out.push((m.to_uppercase(), format!("{prefix}{path}")));
                    found += 1;
                }
            }
            assert!(found > 0, "can't read the methods of {path} in {name}.rs: {methods}");
        }
    }
    out
}

/// The justification `table` gives for a route, if it lists it.
fn listed(table: &'static [(&str, &str, &str)], method: &str, path: &str) -> Option<&'static str> {
    table.iter().find(|(m, p, _)| *m == method && *p == path).map(|e| e.2)
}

fn token(sub: &str, exp: i64, secret: &str) -> String {
    token_in(sub, None, exp, secret)
}

/// A token for `sub` in session `sid` (the hub's own tokens name one).
fn token_in(sub: &str, sid: Option<&str>, exp: i64, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": sub, "email": "who@example.com", "exp": exp, "aud": "authenticated", "sid": sid}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn with_token(api: &Api, t: Option<String>) -> Api {
    let mut a = api.clone();
    a.token = t;
    a
}

async fn call(api: &Api, method: &str, path: &str, template: &str) -> (u16, Value) {
    api.call(Method::from_bytes(method.as_bytes()).unwrap(), path, body_for(method, template)).await
}

/// A WebSocket upgrade request to a ticket route: its status and body.
async fn upgrade(base: &str, path: &str, query: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .get(format!("{base}{path}?{query}"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn assert_code(what: &str, (status, body): (u16, Value), want: u16, code: &str) {
    assert_eq!((status, body["error"]["code"].as_str()), (want, Some(code)), "{what}: {body}");
}

#[tokio::test]
async fn every_route_refuses_strangers_and_hides_other_users_things() {
    // Billing on, so that its routes are served; strangers never get as
    // far as Stripe (nothing listens at its address).
    let hub = TestHub::start_with(&[
        ("AETHER_JWT_SECRET", SECRET),
        ("STRIPE_SECRET_KEY", "sk_test_authz"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_authz"),
        ("STRIPE_PRICE_PRO", "price_pro"),
        ("STRIPE_PRICE_TEAM", "price_team"),
        ("STRIPE_API_BASE", "http://127.0.0.1:9"),
    ])
    .await;
    let owner = hub.user().await;
    let other = hub.user().await;
    let (_, me) = owner.get("/api/me").await;
    let owner_id = me["id"].as_str().unwrap().to_owned();
    let project = owner.project("owned").await;
    let (s, v) = owner.post(&format!("/api/projects/{project}/agents"), json!({"name": "bot"})).await;
    assert_eq!(s, 201, "{v}");
    let agent = v["agent"]["id"].as_str().unwrap().to_owned();
    let others_project = other.project("theirs").await;

    let now = chrono::Utc::now().timestamp();
    let strangers = [
        ("no token", None),
        ("an expired token", Some(token(&owner_id, now - 1, SECRET))),
        ("a forged token", Some(token(&owner_id, now + 3600, "not the hub's secret at all, no"))),
        ("a token for no account", Some(token(&uuid::Uuid::new_v4().to_string(), now + 3600, SECRET))),
    ];

    let routes = routes();
    assert!(routes.len() >= 30, "read only {} routes: {routes:?}", routes.len());
    for (method, template) in &routes {
        let (method, template) = (method.as_str(), template.as_str());
        let fill = |project: &str, agent: &str| {
            template
                .replace("{id}", project)
                .replace("{agent_id}", agent)
                .replace("{port}", "3000")
                .replace("{session}", "main")
                .replace("{page}", "quick-start")
        };
        let path = fill(&project, &agent);
        let what = format!("{method} {template}");

        if listed(PUBLIC, method, template).is_some() {
            let (s, v) = call(&hub.api(), method, &path, template).await;
            assert!(s != 404 && s != 401 && s < 500, "{what} is public and served: {s} {v}");
            continue;
        }
        if let Some(purpose) = listed(TICKET, method, template) {
            let bearer = owner.token.as_deref();
            assert_code(
                &format!("{what} without a ticket"),
                upgrade(&hub.http, &path, "", None).await,
                401,
                "unauthenticated",
            );
            assert_code(
                &format!("{what} with a token instead"),
                upgrade(&hub.http, &path, "", bearer).await,
                401,
                "unauthenticated",
            );
            assert_code(
                &format!("{what} with a made-up ticket"),
                upgrade(&hub.http, &path, "ticket=made-up", None).await,
                401,
                "unauthenticated",
            );
            let theirs = other.ticket(&others_project, purpose).await;
            let got = upgrade(&hub.http, &path, &format!("ticket={theirs}"), None).await;
            assert_code(&format!("{what} with another user's ticket"), got, 404, "not_found");
            continue;
        }
        for (who, t) in &strangers {
            let got = call(&with_token(&hub.api(), t.clone()), method, &path, template).await;
            assert_code(&format!("{what} with {who}"), got, 401, "unauthenticated");
        }
        if template.contains("{id}") {
            let got = call(&other, method, &path, template).await;
            assert_code(&format!("{what} by another user"), got, 404, "not_found");
            if template.contains("{agent_id}") {
                // Their own project, the owner's agent.
                let got = call(&other, method, &fill(&others_project, &agent), template).await;
                assert_code(&format!("{what} by another user, on their project"), got, 404, "not_found");
            }
        } else {
            assert!(
                listed(NO_PATH_ID, method, template).is_some(),
                "{what}: no id in the path; where could another user's come in? add it to NO_PATH_ID"
            );
        }
    }
    for table in [PUBLIC, TICKET, NO_PATH_ID] {
        for (m, p, _) in table {
            assert!(routes.iter().any(|(rm, rp)| rm == m && rp == p), "{m} {p} is no longer a route: drop it here");
        }
    }

    // Ids that come in elsewhere than the path.
    let got = other.post("/api/tickets", json!({"project_id": project, "purpose": "terminal"})).await;
    assert_code("a ticket for another user's project", got, 404, "not_found");
    let (s, list) = other.get("/api/projects").await;
    assert_eq!(s, 200);
    assert!(list.as_array().unwrap().iter().all(|p| p["id"] != project.as_str()), "{list}");
    // The owner still has everything.
    assert_eq!(owner.get(&format!("/api/projects/{project}/agents/{agent}")).await.0, 200);
}

#[tokio::test]
async fn tokens_end_at_their_expiry_and_with_their_account() {
    let hub = TestHub::start_with(&[("AETHER_JWT_SECRET", SECRET)]).await;
    let user = hub.user().await;
    let (_, me) = user.get("/api/me").await;
    let id = me["id"].as_str().unwrap().to_owned();
    let now = chrono::Utc::now().timestamp();
    let api = |t: String| with_token(&hub.api(), Some(t));

    // The session the hub's own token names.
    let payload = user.token.as_deref().unwrap().split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let sid = claims["sid"].as_str().unwrap().to_owned();
    assert_eq!(api(token_in(&id, Some(&sid), now + 60, SECRET)).get("/api/me").await.0, 200, "a live token works");
    // jsonwebtoken's default leeway would take these for another minute.
    for ago in [1, 30] {
        let got = api(token_in(&id, Some(&sid), now - ago, SECRET)).get("/api/projects").await;
        assert_code(&format!("a token expired {ago} s ago"), got, 401, "unauthenticated");
    }
    // Well signed, but for no account: refused, not a server error, even
    // where the handler would write for it.
    let ghost = api(token(&uuid::Uuid::new_v4().to_string(), now + 3600, SECRET));
    assert_code("GET /api/me for no account", ghost.get("/api/me").await, 401, "unauthenticated");
    assert_code(
        "POST /api/projects for no account",
        ghost.post("/api/projects", json!({"name": "x"})).await,
        401,
        "unauthenticated",
    );
    assert_code("GET /api/billing/usage for no account", ghost.get("/api/billing/usage").await, 401, "unauthenticated");
}
