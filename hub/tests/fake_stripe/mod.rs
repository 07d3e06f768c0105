//! A fake of the Stripe API for tests, never for the hub itself: an axum
//! server on `127.0.0.1:0` that answers the calls the hub makes with
//! objects of the published fixtures' shapes (`fixtures.json`, taken from
//! Stripe's `fixtures3.json`, with ids and fields of this fake's world),
//! records every request, and keeps subscriptions a test changes as Stripe
//! would (a Checkout completed, a plan switched in the portal, a payment
//! failed). `Webhooks` delivers events to the hub signed as Stripe signs
//! them, built from the published events in `events/`.
#![allow(dead_code)]

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const SECRET_KEY: &str = "sk_test_fake_stripe";
pub const WEBHOOK_SECRET: &str = "whsec_fake_stripe_webhooks";
pub const PRICE_PRO: &str = "price_aether_pro";
pub const PRICE_TEAM: &str = "price_aether_team";

fn fixture(name: &str) -> Value {
    let all: Value = serde_json::from_str(include_str!("fixtures.json")).unwrap();
    all["resources"][name].clone()
}

/// A published event (`events/stripe-event-{kind}.json`).
pub fn published_event(kind: &str) -> Value {
    let text = match kind {
        "checkout.session.completed" => include_str!("events/stripe-event-checkout.session.completed.json"),
        "customer.subscription.updated" => include_str!("events/stripe-event-customer.subscription.updated.json"),
        "invoice.paid" => include_str!("events/stripe-event-invoice.paid.json"),
        other => panic!("no published event {other}"),
    };
    serde_json::from_str(text).unwrap()
}

/// One request the hub made.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub form: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
}

impl Request {
    /// The form field `name`, if sent.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A subscription as the fake holds it.
#[derive(Debug, Clone)]
pub struct Sub {
    pub id: String,
    pub customer: String,
    pub price: String,
    pub status: String,
    pub current_period_end: i64,
}

#[derive(Default)]
struct World {
    requests: Vec<Request>,
    customers: HashMap<String, Value>,
    /// Idempotency key → the customer it made.
    customer_keys: HashMap<String, String>,
    sessions: HashMap<String, Value>,
    subscriptions: HashMap<String, Sub>,
    next: u64,
}

impl World {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}_fake{:06}", self.next)
    }
}

type Shared = Arc<Mutex<World>>;

/// The fake API, served until dropped.
pub struct FakeStripe {
    /// Its base URL, without `/v1` (what `STRIPE_API_BASE` takes).
    pub base: String,
    world: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeStripe {
    pub async fn start() -> Self {
        let world = Shared::default();
        let app = Router::new()
            .route("/v1/customers", post(create_customer))
            .route("/v1/checkout/sessions", post(create_checkout_session))
            .route("/v1/billing_portal/sessions", post(create_portal_session))
            .route("/v1/subscriptions/{id}", get(retrieve_subscription).delete(cancel_subscription))
            .with_state(world.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { base, world, task }
    }

    /// The environment that points a hub at this fake, billing on.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("STRIPE_SECRET_KEY", SECRET_KEY.to_owned()),
            ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
            ("STRIPE_PRICE_PRO", PRICE_PRO.to_owned()),
            ("STRIPE_PRICE_TEAM", PRICE_TEAM.to_owned()),
            ("STRIPE_API_BASE", self.base.clone()),
        ]
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        self.world.lock().unwrap().requests.clone()
    }

    /// The requests to `path`.
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.method == method && r.path == path).collect()
    }

    /// The user pays on the Checkout page of `session` (its URL's last
    /// part): Stripe makes the subscription, active, at the session's price.
    pub fn complete_checkout(&self, session: &str) -> Sub {
        let mut w = self.world.lock().unwrap();
        let s = w.sessions.get(session).unwrap_or_else(|| panic!("no checkout session {session}")).clone();
        let id = w.id("sub");
        let sub = Sub {
            id: id.clone(),
            customer: s["customer"].as_str().unwrap().to_owned(),
            price: s["__price"].as_str().unwrap().to_owned(),
            status: "active".to_owned(),
            current_period_end: chrono::Utc::now().timestamp() + 30 * 86400,
        };
        // Stripe closes the session it was paid on.
        let paid = w.sessions.get_mut(session).unwrap();
        paid["status"] = json!("complete");
        paid["payment_status"] = json!("paid");
        paid["subscription"] = json!(id);
        w.subscriptions.insert(id, sub.clone());
        sub
    }

    /// Changes a subscription as Stripe would (the portal, a payment).
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Sub)) -> Sub {
        let mut w = self.world.lock().unwrap();
        let sub = w.subscriptions.get_mut(id).unwrap_or_else(|| panic!("no subscription {id}"));
        change(sub);
        sub.clone()
    }

    /// The Checkout session `id` as the hub created it (its `success_url`,
    /// `client_reference_id`, …), if there is one.
    pub fn checkout_session(&self, id: &str) -> Option<Value> {
        self.world.lock().unwrap().sessions.get(id).cloned()
    }

    pub fn subscription(&self, id: &str) -> Sub {
        self.world.lock().unwrap().subscriptions[id].clone()
    }
}

fn stripe_error(status: StatusCode, kind: &str, message: &str) -> (StatusCode, Json<Value>) {
    (status, Json(json!({ "error": { "type": kind, "message": message } })))
}

type Answer = Result<Json<Value>, (StatusCode, Json<Value>)>;

/// Records the request; refuses a wrong key as Stripe does.
fn record(
    world: &Shared,
    headers: &HeaderMap,
    method: &'static str,
    path: String,
    form: Vec<(String, String)>,
) -> Result<(), (StatusCode, Json<Value>)> {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    world.lock().unwrap().requests.push(Request { method, path, form, idempotency_key: key });
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {SECRET_KEY}")) {
        return Err(stripe_error(StatusCode::UNAUTHORIZED, "invalid_request_error", "Invalid API Key provided"));
    }
    Ok(())
}

fn metadata(form: &[(String, String)], prefix: &str) -> Value {
    let mut out = serde_json::Map::new();
    for (k, v) in form {
        if let Some(name) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix('[')).and_then(|r| r.strip_suffix(']')) {
            out.insert(name.to_owned(), json!(v));
        }
    }
    Value::Object(out)
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn create_customer(
    State(world): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Answer {
    record(&world, &headers, "POST", "/v1/customers".into(), form.clone())?;
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut w = world.lock().unwrap();
    // Stripe answers a repeated idempotency key with the first answer.
    if let Some(id) = key.as_ref().and_then(|k| w.customer_keys.get(k)).cloned() {
        return Ok(Json(w.customers[&id].clone()));
    }
    let id = w.id("cus");
    let mut c = fixture("customer");
    c["id"] = json!(id);
    c["email"] = json!(field(&form, "email"));
    c["metadata"] = metadata(&form, "metadata");
    c["created"] = json!(chrono::Utc::now().timestamp());
    w.customers.insert(id.clone(), c.clone());
    if let Some(k) = key {
        w.customer_keys.insert(k, id);
    }
    Ok(Json(c))
}

async fn create_checkout_session(
    State(world): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Answer {
    record(&world, &headers, "POST", "/v1/checkout/sessions".into(), form.clone())?;
    let mut w = world.lock().unwrap();
    let (Some(customer), Some(price)) = (field(&form, "customer"), field(&form, "line_items[0][price]")) else {
        return Err(stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "customer and a line item are required here",
        ));
    };
    if !w.customers.contains_key(customer) {
        return Err(stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", "No such customer"));
    }
    let id = w.id("cs_test");
    let mut s = fixture("checkout.session");
    let now = chrono::Utc::now().timestamp();
    s["id"] = json!(id);
    s["object"] = json!("checkout.session");
    s["mode"] = json!(field(&form, "mode"));
    s["status"] = json!("open");
    s["payment_status"] = json!("unpaid");
    s["customer"] = json!(customer);
    s["client_reference_id"] = json!(field(&form, "client_reference_id"));
    s["metadata"] = metadata(&form, "metadata");
    s["success_url"] = json!(field(&form, "success_url"));
    s["cancel_url"] = json!(field(&form, "cancel_url"));
    s["subscription"] = Value::Null;
    s["created"] = json!(now);
    s["expires_at"] = json!(now + 86400);
    s["url"] = json!(format!("https://checkout.stripe.com/c/pay/{id}"));
    let mut kept = s.clone();
    kept["__price"] = json!(price);
    w.sessions.insert(id, kept);
    Ok(Json(s))
}

async fn create_portal_session(
    State(world): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Answer {
    record(&world, &headers, "POST", "/v1/billing_portal/sessions".into(), form.clone())?;
    let mut w = world.lock().unwrap();
    let Some(customer) = field(&form, "customer").filter(|c| w.customers.contains_key(*c)) else {
        return Err(stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", "No such customer"));
    };
    let customer = customer.to_owned();
    let id = w.id("bps");
    let mut s = fixture("billing_portal.session");
    s["id"] = json!(id);
    s["customer"] = json!(customer);
    s["return_url"] = json!(field(&form, "return_url"));
    s["flow"] = Value::Null;
    s["created"] = json!(chrono::Utc::now().timestamp());
    s["url"] = json!(format!("https://billing.stripe.com/p/session/{id}"));
    Ok(Json(s))
}

/// A subscription object of the fixture's shape with `sub`'s state.
pub fn subscription_object(sub: &Sub) -> Value {
    let mut s = fixture("subscription");
    s["id"] = json!(sub.id);
    s["customer"] = json!(sub.customer);
    s["status"] = json!(sub.status);
    let plan = if sub.price == PRICE_TEAM { "team" } else { "pro" };
    s["metadata"] = json!({ "plan": plan });
    let items = s["items"]["data"].as_array_mut().unwrap();
    items.truncate(1);
    items[0]["price"]["id"] = json!(sub.price);
    items[0]["subscription"] = json!(sub.id);
    items[0]["current_period_start"] = json!(sub.current_period_end - 30 * 86400);
    items[0]["current_period_end"] = json!(sub.current_period_end);
    s["items"]["url"] = json!(format!("/v1/subscription_items?subscription={}", sub.id));
    s
}

async fn retrieve_subscription(State(world): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    record(&world, &headers, "GET", format!("/v1/subscriptions/{id}"), vec![])?;
    let w = world.lock().unwrap();
    match w.subscriptions.get(&id) {
        Some(sub) => Ok(Json(subscription_object(sub))),
        None => {
            Err(stripe_error(StatusCode::NOT_FOUND, "invalid_request_error", &format!("No such subscription: '{id}'")))
        }
    }
}

/// `DELETE /v1/subscriptions/{id}`: cancels at once and answers with the
/// canceled subscription; an unknown id is a 404, as Stripe's.
async fn cancel_subscription(State(world): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    record(&world, &headers, "DELETE", format!("/v1/subscriptions/{id}"), vec![])?;
    let mut w = world.lock().unwrap();
    match w.subscriptions.get_mut(&id) {
        Some(sub) => {
            sub.status = "canceled".into();
            Ok(Json(subscription_object(sub)))
        }
        None => {
            Err(stripe_error(StatusCode::NOT_FOUND, "invalid_request_error", &format!("No such subscription: '{id}'")))
        }
    }
}

/// Delivers events to a hub's webhook as Stripe does: signed
/// (`t=…,v1=…`, HMAC-SHA256 over `"{t}.{body}"`), and as often and in
/// whatever order a test says.
pub struct Webhooks {
    pub url: String,
    pub secret: String,
    http: reqwest::Client,
}

impl Webhooks {
    pub fn new(hub: &str) -> Self {
        Self {
            url: format!("{hub}/api/billing/webhook"),
            secret: WEBHOOK_SECRET.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Stripe's signature header for `body` at `t`, with `secret`.
    pub fn signature(secret: &str, body: &str, t: i64) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let tag = ring::hmac::sign(&key, format!("{t}.{body}").as_bytes());
        format!("t={t},v1={}", hex::encode(tag.as_ref()))
    }

    /// Posts `body` with `header` as its `Stripe-Signature` (none if `None`).
    pub async fn post(&self, body: &str, header: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(&self.url).header("content-type", "application/json").body(body.to_owned());
        if let Some(h) = header {
            req = req.header("stripe-signature", h);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Delivers `event`, signed now.
    pub async fn send(&self, event: &Value) -> (u16, Value) {
        let body = event.to_string();
        let header = Self::signature(&self.secret, &body, chrono::Utc::now().timestamp());
        self.post(&body, Some(&header)).await
    }
}

/// An event envelope of the published shape around `object`.
fn envelope(template: &str, id: &str, kind: &str, created: i64, object: Value) -> Value {
    let mut e = published_event(template);
    e["id"] = json!(id);
    e["type"] = json!(kind);
    e["created"] = json!(created);
    e["data"]["object"] = object;
    e
}

/// `checkout.session.completed` for a session paid by `user` (Checkout's
/// `client_reference_id`) that made `sub`.
pub fn checkout_completed(id: &str, user: &str, sub: &Sub) -> Value {
    let mut s = published_event("checkout.session.completed")["data"]["object"].clone();
    s["client_reference_id"] = json!(user);
    s["customer"] = json!(sub.customer);
    s["subscription"] = json!(sub.id);
    s["metadata"] = json!({ "plan": if sub.price == PRICE_TEAM { "team" } else { "pro" } });
    envelope("checkout.session.completed", id, "checkout.session.completed", chrono::Utc::now().timestamp(), s)
}

/// `customer.subscription.{created,updated,deleted}` carrying `sub` as it
/// was at `created`.
pub fn subscription_event(id: &str, kind: &str, created: i64, sub: &Sub) -> Value {
    envelope("customer.subscription.updated", id, kind, created, subscription_object(sub))
}

/// `invoice.paid` or `invoice.payment_failed` for an invoice of `sub`.
pub fn invoice_event(id: &str, kind: &str, sub: &Sub) -> Value {
    let mut i = published_event("invoice.paid")["data"]["object"].clone();
    i["customer"] = json!(sub.customer);
    i["parent"]["subscription_details"]["subscription"] = json!(sub.id);
    let paid = kind == "invoice.paid";
    i["status"] = json!(if paid { "paid" } else { "open" });
    envelope("invoice.paid", id, kind, chrono::Utc::now().timestamp(), i)
}
