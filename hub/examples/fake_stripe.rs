//! The fake Stripe API as a process, for the browser tests: starts it,
//! serves a control route the test calls in place of paying on Stripe's
//! Checkout page, and writes `{"api": …, "control": …}` to the file given
//! as the first argument. Runs until killed.
//!
//! `POST {control}/pay?session=ID&hub=HUB_URL` completes Checkout session
//! `ID` in the fake (Stripe makes the subscription), delivers the signed
//! `checkout.session.completed` event for it to the hub's webhook, and
//! answers 200 with `{"success_url": …}` (where Stripe would send the
//! browser next).
#![allow(clippy::print_stdout)]

#[path = "../tests/fake_stripe/mod.rs"]
mod fake_stripe;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use fake_stripe::{FakeStripe, Webhooks, checkout_completed};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type Answer = (StatusCode, Json<Value>);

fn refuse(status: StatusCode, message: &str) -> Answer {
    (status, Json(json!({ "error": { "code": "invalid_request", "message": message } })))
}

async fn pay(State(fake): State<Arc<FakeStripe>>, Query(q): Query<HashMap<String, String>>) -> Answer {
    let (Some(id), Some(hub)) = (q.get("session"), q.get("hub")) else {
        return refuse(StatusCode::BAD_REQUEST, "session and hub are required");
    };
    let Some(session) = fake.checkout_session(id) else {
        return refuse(StatusCode::NOT_FOUND, "no such checkout session");
    };
    if session["status"] != "open" {
        return refuse(StatusCode::CONFLICT, "this checkout session is not open");
    }
    let Some(user) = session["client_reference_id"].as_str() else {
        return refuse(StatusCode::BAD_REQUEST, "the session names no user");
    };
    let sub = fake.complete_checkout(id);
    let event = checkout_completed(&format!("evt_checkout_{}", sub.id), user, &sub);
    let (status, body) = Webhooks::new(hub.trim_end_matches('/')).send(&event).await;
    if status != 200 {
        return refuse(StatusCode::BAD_GATEWAY, &format!("the hub answered the webhook {status}: {body}"));
    }
    (StatusCode::OK, Json(json!({ "success_url": session["success_url"], "subscription": sub.id })))
}

#[tokio::main]
async fn main() {
    let out = std::env::args().nth(1).expect("usage: fake_stripe OUT_FILE");
    // reqwest's TLS needs a process-wide provider (the hub installs the same).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = Arc::new(FakeStripe::start().await);
    let app = axum::Router::new().route("/pay", post(pay)).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let control = format!("http://{}", listener.local_addr().unwrap());
    let info = json!({ "api": fake.base, "control": control });
    // Written whole, then renamed, so a reader never sees half of it.
    let tmp = format!("{out}.tmp");
    std::fs::write(&tmp, info.to_string()).unwrap();
    std::fs::rename(&tmp, &out).unwrap();
    axum::serve(listener, app).await.unwrap();
}
