//! Who may call: expired tokens, and tokens for an account that is gone,
//! are refused like any stranger's.

mod support;

use serde_json::{Value, json};
use support::{Api, TestHub};

const SECRET: &str = "authz-test-jwt-secret-0123456789abcdef";

fn token(sub: &str, exp: i64, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": sub, "email": "who@example.com", "exp": exp, "aud": "authenticated"}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn with_token(api: &Api, t: Option<String>) -> Api {
    let mut a = api.clone();
    a.token = t;
    a
}

fn assert_code(what: &str, (status, body): (u16, Value), want: u16, code: &str) {
    assert_eq!((status, body["error"]["code"].as_str()), (want, Some(code)), "{what}: {body}");
}

#[tokio::test]
async fn tokens_end_at_their_expiry_and_with_their_account() {
    let hub = TestHub::start_with(&[("AETHER_JWT_SECRET", SECRET)]).await;
    let user = hub.user().await;
    let (_, me) = user.get("/api/me").await;
    let id = me["id"].as_str().unwrap().to_owned();
    let now = chrono::Utc::now().timestamp();
    let api = |t: String| with_token(&hub.api(), Some(t));

    assert_eq!(api(token(&id, now + 60, SECRET)).get("/api/me").await.0, 200, "a live token works");
    // jsonwebtoken's default leeway would take these for another minute.
    for ago in [1, 30] {
        let got = api(token(&id, now - ago, SECRET)).get("/api/projects").await;
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
