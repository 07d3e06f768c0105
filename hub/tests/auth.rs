//! Sign-up, login and tokens, as a user of the API meets them.

mod support;

use serde_json::json;
use support::TestHub;

#[tokio::test]
async fn signup_login_and_bad_credentials() {
    let hub = TestHub::start().await;
    let api = hub.api();
    let creds = json!({"email": "Ada@Example.com", "password": "correct horse battery"});

    let (s, v) = api.post("/api/auth/signup", creds.clone()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["user"]["email"], "Ada@Example.com");
    assert!(v["access_token"].as_str().unwrap().len() > 20);
    assert!(v["expires_at"].as_str().is_some());

    // The same email, in any case, is taken.
    let (s, v) =
        api.post("/api/auth/signup", json!({"email": "ada@example.com", "password": "another good one"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("conflict")), "{v}");

    let (s, v) =
        api.post("/api/auth/login", json!({"email": "ada@example.com", "password": "correct horse battery"})).await;
    assert_eq!(s, 200, "{v}");
    let mut me = api.clone();
    me.token = Some(v["access_token"].as_str().unwrap().into());
    let (s, v) = me.get("/api/me").await;
    assert_eq!((s, v["email"].as_str(), v["plan"].as_str()), (200, Some("Ada@Example.com"), Some("free")), "{v}");
    let (s, v) = me.patch("/api/me", json!({"display_name": "Ada"})).await;
    assert_eq!((s, v["display_name"].as_str()), (200, Some("Ada")), "{v}");

    // Wrong password and unknown email answer the same.
    let (s1, v1) =
        api.post("/api/auth/login", json!({"email": "ada@example.com", "password": "wrong password!"})).await;
    let (s2, v2) =
        api.post("/api/auth/login", json!({"email": "nobody@example.com", "password": "wrong password!"})).await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(v1, v2);
    assert_eq!(v1["error"]["code"], "unauthenticated");
}

#[tokio::test]
async fn weak_passwords_bad_emails_and_bad_bodies_are_400() {
    let hub = TestHub::start().await;
    let api = hub.api();
    for body in [
        json!({"email": "a@example.com", "password": "short"}),
        json!({"email": "a@example.com", "password": "password123"}),
        json!({"email": "a@example.com", "password": "aaaaaaaaaaaa"}),
        json!({"email": "not-an-email", "password": "correct horse battery"}),
        json!({"email": "a@example.com"}),
        json!("just a string"),
    ] {
        let (s, v) = api.post("/api/auth/signup", body.clone()).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_request")), "{body} -> {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn missing_or_garbage_tokens_are_401() {
    let hub = TestHub::start().await;
    let mut api = hub.api();
    let (s, v) = api.get("/api/me").await;
    assert_eq!((s, v["error"]["code"].as_str()), (401, Some("unauthenticated")), "{v}");
    for garbage in ["garbage", "eyJhbGciOiJIUzI1NiJ9.e30.xxxx", ""] {
        api.token = Some(garbage.into());
        let (s, v) = api.get("/api/projects").await;
        assert_eq!((s, v["error"]["code"].as_str()), (401, Some("unauthenticated")), "{garbage}: {v}");
    }
    // A token signed by someone else is refused too.
    let foreign = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": uuid::Uuid::new_v4(), "email": "x@y.co", "exp": 4_000_000_000u64, "aud": "authenticated"}),
        &jsonwebtoken::EncodingKey::from_secret(b"not the hub's secret"),
    )
    .unwrap();
    api.token = Some(foreign);
    assert_eq!(api.get("/api/me").await.0, 401);
}

#[tokio::test]
async fn the_bearer_scheme_is_read_in_any_case() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let token = api.token.clone().unwrap();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = reqwest::Client::new()
            .get(format!("{}/api/me", api.base))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
}

#[tokio::test]
async fn supabase_tokens_are_accepted_when_configured() {
    support::init();
    let dir = support::TempDir::new("aether-supa");
    let db = support::fresh_database().await;
    let secret = "supabase-jwt-secret-for-tests-0123456789";
    let mut hub = TestHub::spawn(&dir.0, Some(db), "127.0.0.1:0", &[("SUPABASE_JWT_SECRET", secret)]);
    hub.wait_ready().await;
    let id = uuid::Uuid::new_v4();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": id, "email": "supa@example.com", "exp": 4_000_000_000u64, "aud": "authenticated"}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let mut api = hub.api();
    api.token = Some(token);
    let (s, v) = api.get("/api/me").await;
    assert_eq!((s, v["id"].as_str()), (200, Some(id.to_string().as_str())), "{v}");
    assert_eq!(api.post("/api/projects", json!({"name": "from supabase"})).await.0, 201);
}

#[tokio::test]
async fn service_routes_answer() {
    let hub = TestHub::start().await;
    let api = hub.api();
    assert_eq!(api.get("/healthz").await.0, 200);
    assert_eq!(api.get("/readyz").await.0, 200);
    let (s, v) = api.get("/metrics").await;
    assert_eq!(s, 200);
    assert!(v.as_str().unwrap().contains("aether_http_requests_total"), "{v}");
    let (s, v) = api.get("/api/no/such/route").await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")), "{v}");
    // Passwords and tokens never reach the log.
    let user = hub.user().await;
    let _ = user.get("/api/me").await;
    let log = hub.log();
    assert!(!log.contains("correct horse battery"));
    assert!(!log.contains(user.token.as_deref().unwrap()));
}
