//! The API's layers tested apart: areas of the API served in-process with
//! `tower::ServiceExt::oneshot`, each on its own narrow state, with no hub
//! process, data plane or VM.
//!
//! * The files routes, on a real database, the token keys and an empty
//!   tunnel registry: no token is a 401, another user's project a 404, and
//!   one's own project whose VM isn't connected a 503 naming its status.
//! * The port routes, on their state alone: a port's visibility is kept and
//!   announced on the project's event stream; bad ports and other users'
//!   projects are refused.
//! * The account routes (sign-up, sign-in, the profile, sign-out), on an
//!   `Accounts` and the extractors' `Access` combined in a state of the
//!   test's own: the routes compose onto any state that provides theirs.

mod support;

use aether_hub::accounts::Accounts;
use aether_hub::api::files::{self, FilesState};
use aether_hub::api::ports::{self, PortsState};
use aether_hub::api::{Access, ClientIpHeader, account, auth};
use aether_hub::auth::Tokens;
use aether_hub::db::Db;
use aether_hub::tunnel::Tunnels;
use axum::Router;
use axum::body::Body;
use axum::extract::FromRef;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;
use uuid::Uuid;

struct Fixture {
    state: FilesState,
}

impl Fixture {
    async fn new() -> Self {
        let url = support::fresh_database().await;
        let sealer = aether_hub::secrets::Sealer::new(&[7u8; 32]).unwrap();
        let db = Db::connect(url.parse().unwrap(), sealer).await.unwrap();
        let access = Access {
            tokens: Arc::new(Tokens::new(b"in-process-secret-in-process-sec", None)),
            db,
            tunnels: Arc::new(Tunnels::new(8)),
            default_plan: "free".into(),
        };
        Self { state: FilesState { access, activity: Arc::default(), max_write_bytes: 1 << 20 } }
    }

    /// A user with a live session: their id and a Bearer token.
    async fn user(&self, email: &str) -> (Uuid, String) {
        let db = &self.state.access.db;
        let id = Uuid::new_v4();
        db.create_user(id, email, None, "free").await.unwrap();
        let session = Uuid::new_v4();
        db.create_session(session, id, "127.0.0.1", "test", session.as_bytes()).await.unwrap();
        let (token, _) =
            self.state.access.tokens.issue(id, email, session, std::time::Duration::from_secs(600)).unwrap();
        (id, token)
    }

    async fn project(&self, owner: Uuid) -> Uuid {
        let db = &self.state.access.db;
        db.create_project(owner, "p", "", "default", &serde_json::json!({})).await.unwrap().id
    }

    async fn get(&self, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
        let app = axum::Router::new().nest("/api", files::routes()).with_state(self.state.clone());
        send(app, Method::GET, uri, token, None).await
    }
}

/// One request to `app`, with a Bearer token and a JSON body if given: the
/// answer's status and JSON body (`null` if it has none).
async fn send(app: Router, method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let resp = app.oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_files_routes_answer_on_their_own_state() {
    let f = Fixture::new().await;
    let (alice, alice_token) = f.user("alice@example.com").await;
    let (_, bob_token) = f.user("bob@example.com").await;
    let project = f.project(alice).await;
    let stat = format!("/api/projects/{project}/files/stat?path=a.txt");

    let (s, v) = f.get(&stat, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthenticated")), "{v}");

    let (s, v) = f.get(&stat, Some(&bob_token)).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{v}");

    let (s, v) = f.get(&format!("/api/projects/{}/files/stat?path=a.txt", Uuid::new_v4()), Some(&alice_token)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    // Alice's own project, whose VM has never run: unavailable, with why.
    let (s, v) = f.get(&stat, Some(&alice_token)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["status"].as_str(), Some("stopped"), "{v}");
}

#[tokio::test]
async fn a_revoked_session_is_refused_in_process_too() {
    let f = Fixture::new().await;
    let (alice, token) = f.user("carol@example.com").await;
    let project = f.project(alice).await;
    f.state.access.db.delete_other_sessions(alice, None).await.unwrap();
    let (s, v) = f.get(&format!("/api/projects/{project}/files?path=."), Some(&token)).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthenticated")), "{v}");
}

#[tokio::test]
async fn the_port_routes_answer_on_their_own_state() {
    let f = Fixture::new().await;
    let (alice, alice_token) = f.user("dave@example.com").await;
    let (_, bob_token) = f.user("erin@example.com").await;
    let project = f.project(alice).await;
    let state = PortsState {
        access: f.state.access.clone(),
        previews: Arc::new(aether_hub::preview::Previews::new(
            "preview.localhost".into(),
            "http://127.0.0.1:1",
            b"in-process-secret",
        )),
        events: Arc::default(),
        activity: Arc::default(),
    };
    let mut events = state.events.subscribe();
    let app = || axum::Router::new().nest("/api", ports::routes()).with_state(state.clone());
    let port = format!("/api/projects/{project}/ports/3000");
    let public = Some(serde_json::json!({"visibility": "public"}));

    let (s, v) = send(app(), Method::PATCH, &port, Some(&bob_token), public.clone()).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{v}");
    let bad = format!("/api/projects/{project}/ports/0");
    let (s, v) = send(app(), Method::PATCH, &bad, Some(&alice_token), public.clone()).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{v}");
    assert!(events.try_recv().is_err(), "a refused change announces nothing");

    let (s, v) = send(app(), Method::PATCH, &port, Some(&alice_token), public).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((v["port"].as_u64(), v["visibility"].as_str()), (Some(3000), Some("public")), "{v}");
    assert!(v["preview_url"].as_str().is_some_and(|u| u.contains("preview.localhost")), "{v}");
    let event = events.try_recv().expect("the change is announced");
    assert_eq!((event.project_id, event.kind), (project, "ports"));
    assert_eq!(state.access.db.port_visibility(project, 3000).await.unwrap().as_deref(), Some("public"));

    // No VM reports any port, so the list is empty; a link opens one anyway.
    let (s, v) = send(app(), Method::GET, &format!("/api/projects/{project}/ports"), Some(&alice_token), None).await;
    assert_eq!((s, v), (StatusCode::OK, serde_json::json!([])));
    let (s, v) = send(app(), Method::POST, &format!("{port}/open"), Some(&alice_token), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["url"].as_str().is_some_and(|u| u.contains("token=")), "{v}");
}

/// The account routes' state, as a router of the test's own would hold it.
#[derive(Clone)]
struct AccountsOnly {
    accounts: Accounts,
    access: Access,
}

impl FromRef<AccountsOnly> for Accounts {
    fn from_ref(s: &AccountsOnly) -> Self {
        s.accounts.clone()
    }
}

impl FromRef<AccountsOnly> for Access {
    fn from_ref(s: &AccountsOnly) -> Self {
        s.access.clone()
    }
}

impl FromRef<AccountsOnly> for ClientIpHeader {
    fn from_ref(_: &AccountsOnly) -> Self {
        ClientIpHeader::default()
    }
}

#[tokio::test]
async fn the_account_routes_answer_on_their_own_state() {
    let f = Fixture::new().await;
    let access = f.state.access.clone();
    let dir = tempfile_dir();
    let config = aether_hub::config::Config::local(dir.clone());
    // The provider is never asked anything: no account here has a project.
    let compute = Arc::new(aether_hub::compute::local::LocalCompute::new(
        dir.join("vms"),
        dir.join("no-aetherd"),
        "127.0.0.1:1".into(),
        dir.join("no-ca.pem"),
        aether_hub::compute::local::Isolation::Off("in-process test".into()),
    ));
    let lifecycle = Arc::new(aether_hub::projects::Lifecycle::new(
        access.db.clone(),
        compute,
        access.tunnels.clone(),
        Arc::default(),
        Arc::default(),
        &config,
    ));
    let mailer = aether_hub::accounts::mail::Mailer::new(None, dir.join("outbox"), "aether <hub@example.com>").unwrap();
    let accounts = Accounts {
        db: access.db.clone(),
        tokens: access.tokens.clone(),
        limits: Arc::default(),
        mailer: Arc::new(mailer),
        config: Arc::new(config.accounts.clone()),
        public_url: "http://127.0.0.1:1".into(),
        default_plan: "free".into(),
        dummy_hash: aether_hub::auth::hash_password("not-a-password".into()).await.unwrap().into(),
        unisolated: None,
        billing: None,
        lifecycle,
    };
    let state = AccountsOnly { accounts, access };
    let app = || axum::Router::new().nest("/api", auth::routes().merge(account::routes())).with_state(state.clone());
    let creds = serde_json::json!({"email": "frank@example.com", "password": "a long enough passphrase"});

    let (s, v) = send(app(), Method::POST, "/api/auth/signup", None, Some(creds.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let first = v["access_token"].as_str().expect("a token").to_owned();
    assert!(v["refresh_token"].as_str().is_some(), "{v}");
    let (s, v) = send(app(), Method::GET, "/api/me", Some(&first), None).await;
    assert_eq!(
        (s, v["email"].as_str(), v["email_verified"].as_bool()),
        (StatusCode::OK, Some("frank@example.com"), Some(false)),
        "{v}"
    );
    // The verification link is mailed in the background (to the outbox: no SMTP here).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mailed = loop {
        let n = std::fs::read_dir(dir.join("outbox")).map(|d| d.count()).unwrap_or(0);
        if n > 0 || std::time::Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(mailed, 1, "one verification mail");

    let wrong = serde_json::json!({"email": "frank@example.com", "password": "not the passphrase"});
    let (s, v) = send(app(), Method::POST, "/api/auth/login", None, Some(wrong)).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthenticated")), "{v}");
    let (s, v) = send(app(), Method::POST, "/api/auth/login", None, Some(creds.clone())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let second = v["access_token"].as_str().expect("a token").to_owned();
    let (s, v) = send(app(), Method::GET, "/api/me/sessions", Some(&second), None).await;
    assert_eq!((s, v.as_array().map(Vec::len)), (StatusCode::OK, Some(2)), "{v}");

    // Signing out ends that session only.
    let (s, _) = send(app(), Method::POST, "/api/auth/logout", Some(&first), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = send(app(), Method::GET, "/api/me", Some(&first), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = send(app(), Method::GET, "/api/me", Some(&second), None).await;
    assert_eq!(s, StatusCode::OK);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh folder for one test.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("aether-inproc-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
