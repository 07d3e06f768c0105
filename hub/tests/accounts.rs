//! Accounts as their owner meets them: sessions that refresh and can be
//! revoked, password change and reset, mailed links (over a real SMTP
//! conversation), email change, the audit log, and deleting the account.

mod smtp_sink;
mod support;

use serde_json::{Value, json};
use smtp_sink::SmtpSink;
use std::time::Duration;
use support::{Api, TestHub};

const PASSWORD: &str = "correct horse battery";

fn assert_code(what: &str, (status, body): (u16, Value), want: u16, code: &str) {
    assert_eq!((status, body["error"]["code"].as_str()), (want, Some(code)), "{what}: {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
}

fn with_token(api: &Api, token: &Value) -> Api {
    let mut a = api.clone();
    a.token = Some(token.as_str().expect("a token").to_owned());
    a
}

fn fresh_email() -> String {
    format!("u{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// Signs up `email`; the answer (tokens included).
async fn signup(hub: &TestHub, email: &str) -> Value {
    let (s, v) = hub.api().post("/api/auth/signup", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(s, 201, "{v}");
    v
}

async fn login(hub: &TestHub, email: &str, password: &str) -> (u16, Value) {
    hub.api().post("/api/auth/login", json!({"email": email, "password": password})).await
}

async fn actions(api: &Api) -> Vec<String> {
    let (s, v) = api.get("/api/me/audit").await;
    assert_eq!(s, 200, "{v}");
    v.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_ends_its_session() {
    let hub = TestHub::start().await;
    let first = signup(&hub, &fresh_email()).await;
    let refresh1 = first["refresh_token"].as_str().unwrap().to_owned();
    assert!(refresh1.len() >= 40, "{first}");

    let (s, second) = hub.api().post("/api/auth/refresh", json!({"refresh_token": refresh1})).await;
    assert_eq!(s, 200, "{second}");
    assert_ne!(second["refresh_token"], first["refresh_token"], "rotated");
    assert!(second["expires_at"].as_str().is_some());
    let me = with_token(&hub.api(), &second["access_token"]);
    assert_eq!(me.get("/api/me").await.0, 200);

    // The first refresh token again: someone copied it. The session ends,
    // for its current tokens too.
    let reused = hub.api().post("/api/auth/refresh", json!({"refresh_token": refresh1})).await;
    assert_code("a reused refresh token", reused, 401, "unauthenticated");
    assert_code("the session's access token after reuse", me.get("/api/me").await, 401, "unauthenticated");
    let newest = hub.api().post("/api/auth/refresh", json!({"refresh_token": second["refresh_token"]})).await;
    assert_code("the rotated refresh token after reuse", newest, 401, "unauthenticated");

    for bad in [json!({"refresh_token": "made-up"}), json!({"refresh_token": ""})] {
        assert_code("a made-up refresh token", hub.api().post("/api/auth/refresh", bad).await, 401, "unauthenticated");
    }
    for bad in [json!({}), json!({"refresh_token": 5}), json!("x")] {
        assert_code("a bad refresh body", hub.api().post("/api/auth/refresh", bad).await, 400, "invalid_request");
    }
}

#[tokio::test]
async fn access_tokens_are_short_lived_and_refresh_renews_them() {
    let hub = TestHub::start_with(&[("AETHER_ACCESS_TOKEN_TTL_S", "1")]).await;
    let v = signup(&hub, &fresh_email()).await;
    let api = with_token(&hub.api(), &v["access_token"]);
    let expires: chrono::DateTime<chrono::Utc> = v["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires <= chrono::Utc::now() + chrono::Duration::seconds(2), "{v}");
    support::eventually("the access token to expire", Duration::from_secs(10), || async {
        (api.get("/api/me").await.0 == 401).then_some(())
    })
    .await;
    let (s, r) = hub.api().post("/api/auth/refresh", json!({"refresh_token": v["refresh_token"]})).await;
    assert_eq!(s, 200, "{r}");
    let (s, me) = with_token(&hub.api(), &r["access_token"]).get("/api/me").await;
    assert_eq!(s, 200, "a refreshed token works: {me}");
}

#[tokio::test]
async fn sessions_are_listed_and_revoked_at_once() {
    let hub = TestHub::start().await;
    let email = fresh_email();
    let a = with_token(&hub.api(), &signup(&hub, &email).await["access_token"]);
    let (_, b) = login(&hub, &email, PASSWORD).await;
    let b = with_token(&hub.api(), &b["access_token"]);

    let (s, list) = a.get("/api/me/sessions").await;
    assert_eq!(s, 200, "{list}");
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    let current: Vec<_> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{list:?}");
    for field in ["id", "created_at", "last_used_at", "address", "client"] {
        assert!(list[0].get(field).is_some(), "{field} in {list:?}");
    }
    assert_eq!(current[0]["address"], "127.0.0.1");
    let b_id = list.iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_owned();

    // Another user can't end it, and learns nothing.
    let stranger = hub.user().await;
    assert_code("another user's session", stranger.delete(&format!("/api/me/sessions/{b_id}")).await, 404, "not_found");
    assert_code("a malformed id", a.delete("/api/me/sessions/not-a-uuid").await, 404, "not_found");
    assert_eq!(b.get("/api/me").await.0, 200);

    assert_eq!(a.delete(&format!("/api/me/sessions/{b_id}")).await.0, 204);
    assert_code("a revoked session's token", b.get("/api/me").await, 401, "unauthenticated");
    assert_code("revoking it twice", a.delete(&format!("/api/me/sessions/{b_id}")).await, 404, "not_found");

    // "Sign out everywhere" keeps the caller's own session.
    let (_, c) = login(&hub, &email, PASSWORD).await;
    let c = with_token(&hub.api(), &c["access_token"]);
    assert_eq!(a.delete("/api/me/sessions").await.0, 204);
    assert_code("signed out everywhere", c.get("/api/me").await, 401, "unauthenticated");
    assert_eq!(a.get("/api/me").await.0, 200);

    // Logout ends the caller's session.
    assert_eq!(a.post("/api/auth/logout", json!({})).await.0, 204);
    assert_code("after logout", a.get("/api/me").await, 401, "unauthenticated");

    let (_, d) = login(&hub, &email, PASSWORD).await;
    let d = with_token(&hub.api(), &d["access_token"]);
    let log = actions(&d).await;
    for want in ["signed_up", "signed_in", "session_revoked", "sessions_revoked"] {
        assert!(log.contains(&want.to_owned()), "{want} in {log:?}");
    }
}

#[tokio::test]
async fn changing_the_password_signs_out_every_other_session() {
    let hub = TestHub::start().await;
    let email = fresh_email();
    let a = with_token(&hub.api(), &signup(&hub, &email).await["access_token"]);
    let (_, b) = login(&hub, &email, PASSWORD).await;
    let b = with_token(&hub.api(), &b["access_token"]);
    assert_eq!(login(&hub, &email, "not the password").await.0, 401);

    let wrong = a
        .post("/api/me/password", json!({"current_password": "nope nope nope", "new_password": "a new good one"}))
        .await;
    assert_code("a wrong current password", wrong, 401, "unauthenticated");
    let weak = a.post("/api/me/password", json!({"current_password": PASSWORD, "new_password": "short"})).await;
    assert_code("a weak new password", weak, 400, "invalid_request");
    assert_code(
        "a bad body",
        a.post("/api/me/password", json!({"current_password": PASSWORD})).await,
        400,
        "invalid_request",
    );
    assert_eq!(b.get("/api/me").await.0, 200, "nothing changed yet");

    let (s, v) =
        a.post("/api/me/password", json!({"current_password": PASSWORD, "new_password": "a new good one"})).await;
    assert_eq!(s, 204, "{v}");
    assert_code("the other session", b.get("/api/me").await, 401, "unauthenticated");
    assert_eq!(a.get("/api/me").await.0, 200, "the caller's session stays");
    assert_eq!(login(&hub, &email, PASSWORD).await.0, 401);
    assert_eq!(login(&hub, &email, "a new good one").await.0, 200);

    let log = actions(&a).await;
    assert_eq!(log[0], "signed_in", "newest first: {log:?}");
    for want in ["password_changed", "sign_in_failed", "signed_in", "signed_up"] {
        assert!(log.contains(&want.to_owned()), "{want} in {log:?}");
    }
    let (_, raw) = a.get("/api/me/audit").await;
    let text = raw.to_string();
    assert!(!text.contains(PASSWORD) && !text.contains("a new good one"), "no secrets in the log: {text}");
    for e in raw.as_array().unwrap() {
        assert!(e["at"].as_str().is_some() && e["address"].as_str().is_some() && e["detail"].as_str().is_some());
    }
}

#[tokio::test]
async fn mailed_links_verify_reset_and_change_the_address() {
    let smtp = SmtpSink::start().await;
    let url = smtp.url();
    let hub = TestHub::start_with(&[("AETHER_SMTP_URL", url.as_str())]).await;
    let email = fresh_email();
    let first = signup(&hub, &email).await;
    let me = with_token(&hub.api(), &first["access_token"]);
    let (_, profile) = me.get("/api/me").await;
    assert_eq!(profile["email_verified"], false, "{profile}");

    // Verification, from the mail received over SMTP.
    let mail = smtp.nth(&email, 0).await;
    assert!(mail.data.contains(&format!("{}/verify-email?token=", hub.http)), "{}", mail.data);
    let token = mail.token("verify-email");
    let (s, v) = hub.api().post("/api/auth/verify-email", json!({"token": token})).await;
    assert_eq!((s, &v["email_verified"]), (200, &json!(true)), "{v}");
    assert_eq!(me.get("/api/me").await.1["email_verified"], true);
    let again = hub.api().post("/api/auth/verify-email", json!({"token": token})).await;
    assert_code("a used verification link", again, 400, "invalid_request");
    let made_up = hub.api().post("/api/auth/verify-email", json!({"token": "made-up"})).await;
    assert_code("a made-up verification link", made_up, 400, "invalid_request");

    // Password reset: 202 for anyone, a mail only for the account.
    let (s, _) = hub.api().post("/api/auth/password-reset", json!({"email": "nobody@example.com"})).await;
    assert_eq!(s, 202);
    let (s, _) = hub.api().post("/api/auth/password-reset", json!({"email": email})).await;
    assert_eq!(s, 202);
    let mail = smtp.nth(&email, 1).await;
    let token = mail.token("reset-password");
    let confirm = |token: &str, password: &str| {
        let api = hub.api();
        let body = json!({"token": token, "password": password});
        async move { api.post("/api/auth/password-reset/confirm", body).await }
    };
    assert_code("a weak new password", confirm(&token, "short").await, 400, "invalid_request");
    let (s, v) = confirm(&token, "reset and good").await;
    assert_eq!(s, 200, "{v}");
    assert!(v["access_token"].is_string() && v["refresh_token"].is_string() && v["user"]["email"] == email, "{v}");
    assert_code("the session from before the reset", me.get("/api/me").await, 401, "unauthenticated");
    assert_code("a used reset link", confirm(&token, "another good one").await, 400, "invalid_request");
    assert_eq!(login(&hub, &email, "reset and good").await.0, 200);
    let me = with_token(&hub.api(), &v["access_token"]);

    // An expired reset link.
    hub.api().post("/api/auth/password-reset", json!({"email": email})).await;
    let expired = smtp.nth(&email, 2).await.token("reset-password");
    sqlx::query("UPDATE email_tokens SET expires_at = now() - interval '1 second' WHERE used_at IS NULL")
        .execute(&hub.db().await)
        .await
        .unwrap();
    assert_code("an expired reset link", confirm(&expired, "expired but good").await, 400, "invalid_request");

    // Email change: confirmed by a link to the new address.
    let new_email = fresh_email();
    let wrong = me.post("/api/me/email", json!({"email": new_email, "password": "not it at all"})).await;
    assert_code("a wrong password", wrong, 401, "unauthenticated");
    let bad = me.post("/api/me/email", json!({"email": "not-an-address", "password": "reset and good"})).await;
    assert_code("a bad address", bad, 400, "invalid_request");
    let (s, v) = me.post("/api/me/email", json!({"email": new_email, "password": "reset and good"})).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(me.get("/api/me").await.1["email"], email, "not until confirmed");
    let token = smtp.nth(&new_email, 0).await.token("verify-email");
    let (s, v) = hub.api().post("/api/auth/verify-email", json!({"token": token})).await;
    assert_eq!(s, 200, "{v}");
    let (_, profile) = me.get("/api/me").await;
    assert_eq!((&profile["email"], &profile["email_verified"]), (&json!(new_email), &json!(true)), "{profile}");
    assert_eq!(login(&hub, &new_email, "reset and good").await.0, 200);
    assert_eq!(login(&hub, &email, "reset and good").await.0, 401);

    let log = actions(&me).await;
    for want in
        ["email_verified", "password_reset_requested", "password_reset", "email_change_requested", "email_changed"]
    {
        assert!(log.contains(&want.to_owned()), "{want} in {log:?}");
    }
    assert!(!format!("{log:?}").contains(&token));
}

#[tokio::test]
async fn without_smtp_mail_lands_in_the_outbox() {
    let hub = TestHub::start().await;
    let email = fresh_email();
    signup(&hub, &email).await;
    let outbox = hub.data.join("outbox");
    let text = support::eventually("a mail in the outbox", Duration::from_secs(10), || async {
        let entry = std::fs::read_dir(&outbox).ok()?.next()?.ok()?;
        std::fs::read_to_string(entry.path()).ok()
    })
    .await;
    assert!(text.contains(&email) && text.contains("/verify-email?token="), "{text}");
    // The log line follows the file.
    support::eventually("the log saying where the mail went", Duration::from_secs(10), || async {
        hub.log().contains("mail written to the outbox").then_some(())
    })
    .await;
}

#[tokio::test]
async fn sign_in_sign_up_and_reset_answer_429_past_their_rate() {
    let hub = TestHub::start().await;
    let email = fresh_email();
    signup(&hub, &email).await;
    let mut last = (0, Value::Null);
    for _ in 0..5 {
        last = hub.api().post("/api/auth/password-reset", json!({"email": email})).await;
        if last.0 == 429 {
            break;
        }
    }
    assert_code("password resets past the rate", last, 429, "rate_limited");
    let r = reqwest::Client::new()
        .post(format!("{}/api/auth/password-reset", hub.http))
        .json(&json!({"email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    let mut last = (0, Value::Null);
    for _ in 0..30 {
        last = login(&hub, &email, "wrong password!").await;
        if last.0 == 429 {
            break;
        }
    }
    assert_code("sign-ins past the rate", last, 429, "rate_limited");
}

#[tokio::test]
async fn deleting_the_account_removes_it_and_keeps_usage_without_owner() {
    let hub = TestHub::start().await;
    let email = fresh_email();
    let me = with_token(&hub.api(), &signup(&hub, &email).await["access_token"]);
    let (_, profile) = me.get("/api/me").await;
    let id: uuid::Uuid = profile["id"].as_str().unwrap().parse().unwrap();
    let project = me.project("doomed").await;
    hub.record_boot(&project, 2).await;
    let other = hub.user().await;
    let kept = other.project("kept").await;

    let wrong = me.call(reqwest::Method::DELETE, "/api/me", Some(json!({"password": "not it at all"}))).await;
    assert_code("a wrong password", wrong, 401, "unauthenticated");
    assert_eq!(me.get(&format!("/api/projects/{project}")).await.0, 200, "nothing gone yet");

    let (s, v) = me.call(reqwest::Method::DELETE, "/api/me", Some(json!({"password": PASSWORD}))).await;
    assert_eq!(s, 204, "{v}");
    assert_code("the deleted account's token", me.get("/api/me").await, 401, "unauthenticated");
    assert_eq!(login(&hub, &email, PASSWORD).await.0, 401);
    let db = hub.db().await;
    let users: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE id = $1").bind(id).fetch_one(&db).await.unwrap();
    let projects: i64 =
        sqlx::query_scalar("SELECT count(*) FROM projects WHERE owner_id = $1").bind(id).fetch_one(&db).await.unwrap();
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE user_id = $1")
        .bind(id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!((users, projects, audit), (0, 0, 0));
    let owner: Option<uuid::Uuid> = sqlx::query_scalar("SELECT owner_id FROM usage_records WHERE project_id = $1")
        .bind(project.parse::<uuid::Uuid>().unwrap())
        .fetch_one(&db)
        .await
        .expect("the usage record is kept");
    assert_eq!(owner, None, "without who it was");
    assert_eq!(other.get(&format!("/api/projects/{kept}")).await.0, 200, "another user's things stay");
    // The address is free again.
    signup(&hub, &email).await;
}

/// An account whose address isn't verified runs one project at a time (the
/// abuse guard); following the mailed link lifts it.
#[tokio::test]
async fn an_unverified_account_runs_one_project_until_it_verifies() {
    let smtp = SmtpSink::start().await;
    let url = smtp.url();
    let hub = TestHub::start_with(&[("AETHER_SMTP_URL", url.as_str()), ("AETHER_UNVERIFIED_PROJECTS", "1")]).await;
    let email = fresh_email();
    let me = with_token(&hub.api(), &signup(&hub, &email).await["access_token"]);
    let first = me.running_project().await;
    let second = me.project("second").await;
    let refused = me.post(&format!("/api/projects/{second}/start"), json!({})).await;
    assert_code("a second project while unverified", refused.clone(), 403, "forbidden");
    assert!(refused.1["error"]["message"].as_str().unwrap().contains("verify your email"), "{}", refused.1);
    assert_eq!(me.get(&format!("/api/projects/{second}")).await.1["status"], "stopped");

    let token = smtp.nth(&email, 0).await.token("verify-email");
    let (s, v) = hub.api().post("/api/auth/verify-email", json!({"token": token})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = me.post(&format!("/api/projects/{second}/start?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("running")), "{v}");
    assert_eq!(me.get(&format!("/api/projects/{first}")).await.1["status"], "running");
}
