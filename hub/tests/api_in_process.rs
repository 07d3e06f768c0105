//! The API's layers tested apart: the files routes served in-process with
//! `tower::ServiceExt::oneshot`, on their own narrow state (a real
//! database, the token keys and an empty tunnel registry), with no hub
//! process, compute provider, data plane or VM. What a caller sees before
//! any VM is involved: no token is a 401, another user's project a 404,
//! and one's own project whose VM isn't connected a 503 naming its status.

mod support;

use aether_hub::api::Access;
use aether_hub::api::files::{self, FilesState};
use aether_hub::auth::Tokens;
use aether_hub::db::Db;
use aether_hub::tunnel::Tunnels;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
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
        let mut req = Request::get(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
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
