//! Abuse limits as an attacker and the people they target meet them:
//! password guessing, sign-up and ticket floods, oversized bodies.

mod support;

use serde_json::{Value, json};
use support::{Api, TestHub};

const PASSWORD: &str = "correct horse battery";

async fn signup(api: &Api, email: &str) -> (u16, Value) {
    api.post("/api/auth/signup", json!({"email": email, "password": PASSWORD})).await
}

async fn login(api: &Api, email: &str, password: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    api.call_with_headers(reqwest::Method::POST, "/api/auth/login", Some(json!({"email": email, "password": password})))
        .await
}

/// Asserts a 429 in the contract's shape, with a `Retry-After` in seconds.
fn assert_limited(status: u16, headers: &reqwest::header::HeaderMap, body: &Value) {
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limited")), "{body}");
    assert!(!body["error"]["message"].as_str().unwrap_or_default().is_empty(), "{body}");
    let retry = headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    assert!(retry.is_some_and(|s| (1..=3600).contains(&s)), "Retry-After: {:?}", headers.get("retry-after"));
}

#[tokio::test]
async fn a_password_guesser_is_cut_off_and_the_owner_still_signs_in_elsewhere() {
    let hub = TestHub::start().await;
    // The owner signed up somewhere else than where they sign in later.
    assert_eq!(signup(&hub.api_from("127.0.0.3"), "ada@example.com").await.0, 201);

    let guesser = hub.api_from("127.0.0.1");
    let mut tries = 0;
    let (status, headers, body) = loop {
        tries += 1;
        let (s, h, v) = login(&guesser, "ada@example.com", &format!("guess number {tries}")).await;
        if s != 401 || tries > 10 {
            break (s, h, v);
        }
    };
    assert!(tries <= 10, "still guessing after {tries} tries: {status} {body}");
    assert_limited(status, &headers, &body);

    // Refused before the password is looked at: even the right one is.
    let (s, h, v) = login(&guesser, "ada@example.com", PASSWORD).await;
    assert_limited(s, &h, &v);
    // And other accounts from the same address too.
    let (s, h, v) = login(&guesser, "someone-else@example.com", "a guess").await;
    assert_limited(s, &h, &v);

    let (s, _, v) = login(&hub.api_from("127.0.0.2"), "ada@example.com", PASSWORD).await;
    assert_eq!(s, 200, "the owner signs in from another address: {v}");
    assert!(v["access_token"].as_str().is_some());
}

#[tokio::test]
async fn guessers_spread_over_addresses_cannot_lock_the_owner_out() {
    let hub = TestHub::start().await;
    let owner = hub.api_from("127.0.0.2");
    assert_eq!(signup(&owner, "grace@example.com").await.0, 201);

    // Many addresses, a few guesses each, until the account itself is limited.
    let mut limited_at = None;
    'guessing: for host in 10..40 {
        let guesser = hub.api_from(&format!("127.0.0.{host}"));
        for n in 0..4 {
            let (s, h, v) = login(&guesser, "grace@example.com", &format!("guess {host}-{n}")).await;
            if s == 429 {
                assert_limited(s, &h, &v);
                limited_at = Some(host);
                break 'guessing;
            }
            assert_eq!(s, 401, "{v}");
        }
    }
    assert!(limited_at.is_some(), "the account was never limited");

    // A new address must wait, even with the right password...
    let (s, h, v) = login(&hub.api_from("127.0.0.99"), "grace@example.com", PASSWORD).await;
    assert_limited(s, &h, &v);
    // ...but where the owner has been, they get in.
    let (s, _, v) = login(&owner, "grace@example.com", PASSWORD).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn behind_a_proxy_limits_count_by_the_address_it_names() {
    let hub = TestHub::start_with(&[("AETHER_CLIENT_IP_HEADER", "X-Client-IP")]).await;
    // Every request comes from the proxy's own address (127.0.0.1 here).
    let http = reqwest::Client::new();
    let attempt = |client: &'static str| {
        http.post(format!("{}/api/auth/login", hub.http))
            .header("x-client-ip", client)
            .json(&json!({"email": "nobody@example.com", "password": "a guess"}))
            .send()
    };
    let mut tries = 0;
    loop {
        tries += 1;
        let status = attempt("203.0.113.7").await.unwrap().status().as_u16();
        if status == 429 {
            break;
        }
        assert!(status == 401 && tries <= 10, "try {tries}: {status}");
    }
    // Another client behind the same proxy is not held to that limit.
    assert_eq!(attempt("203.0.113.8").await.unwrap().status().as_u16(), 401);
}

#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let hub = TestHub::start().await;
    let flood = hub.api_from("127.0.0.4");
    let mut created = 0;
    let (status, headers, body) = loop {
        let email = format!("bot{created}@example.com");
        let (s, h, v) = flood
            .call_with_headers(
                reqwest::Method::POST,
                "/api/auth/signup",
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        if s != 201 || created > 30 {
            break (s, h, v);
        }
        created += 1;
    };
    assert!((1..=20).contains(&created), "{created} accounts from one address before a refusal");
    assert_limited(status, &headers, &body);
    assert_eq!(signup(&hub.api_from("127.0.0.5"), "person@example.com").await.0, 201, "other addresses sign up");
}

#[tokio::test]
async fn ticket_floods_are_limited_per_user() {
    let hub = TestHub::start().await;
    let flooder = hub.user().await;
    let id = flooder.project("flood").await;
    let mut issued = 0;
    let (status, headers, body) = loop {
        let (s, h, v) = flooder
            .call_with_headers(
                reqwest::Method::POST,
                "/api/tickets",
                Some(json!({"project_id": id, "purpose": "terminal"})),
            )
            .await;
        if s != 200 || issued > 200 {
            break (s, h, v);
        }
        issued += 1;
    };
    assert!((1..=100).contains(&issued), "{issued} tickets before a refusal");
    assert_limited(status, &headers, &body);

    // Another user at the same address is not held to the first one's limit.
    let other = hub.user().await;
    let theirs = other.project("mine").await;
    let (s, v) = other.post("/api/tickets", json!({"project_id": theirs, "purpose": "terminal"})).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn a_50_mb_json_body_is_413_on_every_json_route() {
    let hub = TestHub::start().await;
    let user = hub.user().await;
    let id = user.project("big").await;
    // Valid JSON, just large: a 50 MB string where a small one belongs.
    let big = |field: &str| {
        let mut body = format!("{{\"{field}\": \"").into_bytes();
        body.resize(body.len() + 50_000_000, b'a');
        body.extend_from_slice(b"\", \"password\": \"x\"}");
        body
    };
    use reqwest::Method;
    let routes = [
        (Method::POST, "/api/auth/signup".to_owned(), "email"),
        (Method::POST, "/api/auth/login".to_owned(), "email"),
        (Method::PATCH, "/api/me".to_owned(), "display_name"),
        (Method::POST, "/api/tickets".to_owned(), "purpose"),
        (Method::POST, "/api/projects".to_owned(), "name"),
        (Method::PATCH, format!("/api/projects/{id}"), "name"),
        (Method::POST, format!("/api/projects/{id}/agents"), "name"),
        (Method::PATCH, format!("/api/projects/{id}/ports/3000"), "visibility"),
        (Method::POST, format!("/api/projects/{id}/files/mkdir"), "path"),
        (Method::POST, format!("/api/projects/{id}/files/rename"), "from"),
    ];
    for (method, path, field) in routes {
        let (s, v) = user.post_raw(method.clone(), &path, big(field)).await;
        assert_eq!((s, v["error"]["code"].as_str()), (413, Some("too_large")), "{method} {path}: {v}");
    }
    // The hub is none the worse.
    assert_eq!(user.get("/api/me").await.0, 200);
}
