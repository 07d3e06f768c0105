//! Paying for a plan as a user and Stripe meet it: Checkout and the portal
//! answer with Stripe's URLs, Stripe's events move the plan (signed, once,
//! in any order), a failed payment runs its grace and then the account is
//! free, and a hub without Stripe keys says billing is off. Stripe is the
//! fake in `fake_stripe/`; the hub's client is the production one pointed
//! at it.

mod fake_stripe;
mod support;

use fake_stripe::{FakeStripe, Sub, Webhooks, checkout_completed, invoice_event, subscription_event};
use serde_json::{Value, json};
use support::{Api, TestHub};

async fn billing_hub(fake: &FakeStripe, more: &[(&str, &str)]) -> TestHub {
    let env = fake.env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(more);
    TestHub::start_with(&all).await
}

async fn me(user: &Api) -> Value {
    let (s, v) = user.get("/api/me").await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn plan(user: &Api) -> String {
    me(user).await["plan"].as_str().unwrap().to_owned()
}

/// The user opens Checkout for `plan` and pays; Stripe tells the hub.
/// Returns the subscription Stripe made.
async fn subscribe(fake: &FakeStripe, hooks: &Webhooks, user: &Api, plan_name: &str) -> Sub {
    let (s, v) = user.post("/api/billing/checkout", json!({ "plan": plan_name })).await;
    assert_eq!(s, 200, "{v}");
    let session = v["url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let sub = fake.complete_checkout(&session);
    let id = me(user).await["id"].as_str().unwrap().to_owned();
    let event = checkout_completed(&format!("evt_checkout_{}", sub.id), &id, &sub);
    let (s, v) = hooks.send(&event).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(plan(user).await, plan_name);
    sub
}

#[tokio::test]
async fn checkout_and_portal_answer_with_stripes_urls() {
    let fake = FakeStripe::start().await;
    let hub = billing_hub(&fake, &[]).await;
    let user = hub.user().await;
    let id = me(&user).await["id"].as_str().unwrap().to_owned();

    // Nothing to manage before a first checkout.
    let (s, v) = user.post("/api/billing/portal", json!({})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("conflict")), "{v}");
    let (s, v) = user.post("/api/billing/checkout", json!({ "plan": "enterprise" })).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_request")), "{v}");

    let (s, v) = user.post("/api/billing/checkout", json!({ "plan": "team" })).await;
    assert_eq!(s, 200, "{v}");
    let sessions = fake.requests_to("POST", "/v1/checkout/sessions");
    let [session] = sessions.as_slice() else { panic!("{sessions:?}") };
    let customers = fake.requests_to("POST", "/v1/customers");
    let [customer] = customers.as_slice() else { panic!("{customers:?}") };
    assert_eq!(customer.field("email"), me(&user).await["email"].as_str());
    assert_eq!(customer.idempotency_key.as_deref(), Some(format!("aether-customer-{id}").as_str()));
    let url = v["url"].as_str().unwrap();
    assert!(url.starts_with("https://checkout.stripe.com/c/pay/cs_test_fake"), "{url}");
    assert_eq!(session.field("mode"), Some("subscription"));
    assert_eq!(session.field("line_items[0][price]"), Some(fake_stripe::PRICE_TEAM));
    assert_eq!(session.field("line_items[0][quantity]"), Some("1"));
    assert_eq!(session.field("client_reference_id"), Some(id.as_str()));
    assert_eq!(session.field("metadata[plan]"), Some("team"));
    assert_eq!(session.field("subscription_data[metadata][plan]"), Some("team"));
    assert_eq!(session.field("success_url"), Some(format!("{}/?billing=success", hub.http).as_str()));
    assert_eq!(session.field("cancel_url"), Some(format!("{}/?billing=canceled", hub.http).as_str()));
    let customer_id = session.field("customer").unwrap().to_owned();
    assert!(customer_id.starts_with("cus_"), "{session:?}");

    // A second checkout (the first abandoned) is for the same customer.
    let (s, second) = user.post("/api/billing/checkout", json!({ "plan": "pro" })).await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(fake.requests_to("POST", "/v1/customers").len(), 1);
    let again = fake.requests_to("POST", "/v1/checkout/sessions");
    assert_eq!(again[1].field("customer"), Some(customer_id.as_str()));
    assert_eq!(again[1].field("line_items[0][price]"), Some(fake_stripe::PRICE_PRO));

    let (s, v) = user.post("/api/billing/portal", json!({})).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["url"].as_str().unwrap().starts_with("https://billing.stripe.com/p/session/bps_fake"), "{v}");
    let portals = fake.requests_to("POST", "/v1/billing_portal/sessions");
    assert_eq!(portals[0].field("customer"), Some(customer_id.as_str()));
    assert_eq!(portals[0].field("return_url"), Some(format!("{}/", hub.http).as_str()));

    // Paying for a plan: another checkout is refused, the portal is the way.
    let hooks = Webhooks::new(&hub.http);
    let sub = fake.complete_checkout(second["url"].as_str().unwrap().rsplit('/').next().unwrap());
    let (s, v) = hooks.send(&checkout_completed("evt_paid", &id, &sub)).await;
    assert_eq!(s, 200, "{v}");
    let me = me(&user).await;
    assert_eq!((me["plan"].as_str(), me["billing"].as_str()), (Some("pro"), Some("on")), "{me}");
    assert_eq!(me["subscription"]["status"], "active", "{me}");
    assert_eq!(me["subscription"]["plan"], "pro", "{me}");
    assert!(me["subscription"]["current_period_end"].is_string(), "{me}");
    assert!(me["subscription"]["grace_until"].is_null(), "{me}");
    let (s, v) = user.post("/api/billing/checkout", json!({ "plan": "team" })).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("conflict")), "{v}");
}

#[tokio::test]
async fn without_stripe_keys_billing_is_off_and_says_so() {
    let hub = TestHub::start().await;
    let user = hub.user().await;
    for path in ["/api/billing/checkout", "/api/billing/portal"] {
        let (s, v) = user.post(path, json!({ "plan": "pro" })).await;
        assert_eq!((s, v["error"]["code"].as_str()), (503, Some("unavailable")), "{path}: {v}");
        assert_eq!(v["error"]["message"], "billing is off on this hub", "{v}");
    }
    let (s, v) = Webhooks::new(&hub.http).send(&fake_stripe::published_event("invoice.paid")).await;
    assert_eq!(s, 503, "{v}");
    let me = me(&user).await;
    assert_eq!((me["billing"].as_str(), &me["subscription"]), (Some("off"), &Value::Null), "{me}");
    assert_eq!(me["plan"], "free");
}

#[tokio::test]
async fn forged_stale_or_missing_signatures_are_refused_and_change_nothing() {
    let fake = FakeStripe::start().await;
    let hub = billing_hub(&fake, &[]).await;
    let user = hub.user().await;
    let hooks = Webhooks::new(&hub.http);
    let (_, v) = user.post("/api/billing/checkout", json!({ "plan": "pro" })).await;
    let sub = fake.complete_checkout(v["url"].as_str().unwrap().rsplit('/').next().unwrap());
    let id = me(&user).await["id"].as_str().unwrap().to_owned();
    let body = checkout_completed("evt_signed", &id, &sub).to_string();
    let now = chrono::Utc::now().timestamp();

    let refusals = [
        ("forged", Some(Webhooks::signature("whsec_someone_elses", &body, now))),
        ("stale", Some(Webhooks::signature(fake_stripe::WEBHOOK_SECRET, &body, now - 301))),
        ("from the future", Some(Webhooks::signature(fake_stripe::WEBHOOK_SECRET, &body, now + 400))),
        ("for another body", Some(Webhooks::signature(fake_stripe::WEBHOOK_SECRET, &body.replace("pro", "team"), now))),
        ("missing", None),
    ];
    for (what, header) in refusals {
        let (s, v) = hooks.post(&body, header.as_deref()).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_request")), "{what}: {v}");
        assert_eq!(plan(&user).await, "free", "{what}");
    }
    assert!(fake.requests_to("GET", &format!("/v1/subscriptions/{}", sub.id)).is_empty());
    // The same body, signed by Stripe now: the refusals were the signatures'.
    let (s, v) = hooks.post(&body, Some(&Webhooks::signature(fake_stripe::WEBHOOK_SECRET, &body, now))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(plan(&user).await, "pro");
}

#[tokio::test]
async fn a_replayed_event_is_applied_once() {
    let fake = FakeStripe::start().await;
    let hub = billing_hub(&fake, &[]).await;
    let user = hub.user().await;
    let hooks = Webhooks::new(&hub.http);
    let sub = subscribe(&fake, &hooks, &user, "pro").await;
    let fetches = || fake.requests_to("GET", &format!("/v1/subscriptions/{}", sub.id)).len();
    assert_eq!(fetches(), 1);

    // A payment fails: delivered three times at once, and again later.
    fake.update(&sub.id, |s| s.status = "past_due".into());
    let failed = invoice_event("evt_failed_once", "invoice.payment_failed", &fake.subscription(&sub.id));
    let (a, b, c) = tokio::join!(hooks.send(&failed), hooks.send(&failed), hooks.send(&failed));
    assert_eq!((a.0, b.0, c.0), (200, 200, 200), "{a:?} {b:?} {c:?}");
    assert_eq!(fetches(), 2, "three deliveries at once, applied once");
    let grace = me(&user).await["subscription"]["grace_until"].clone();
    assert!(grace.is_string(), "{grace}");

    // Stripe moves on without telling; a replay of the old event is not
    // read as news (applying it again would read the subscription again).
    fake.update(&sub.id, |s| s.status = "canceled".into());
    let (s, v) = hooks.send(&failed).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(fetches(), 2);
    let me = me(&user).await;
    assert_eq!((me["plan"].as_str(), &me["subscription"]["grace_until"]), (Some("pro"), &grace), "{me}");
}

#[tokio::test]
async fn subscription_events_in_reverse_order_leave_the_newer_state() {
    let fake = FakeStripe::start().await;
    let hub = billing_hub(&fake, &[]).await;
    let user = hub.user().await;
    let hooks = Webhooks::new(&hub.http);
    let sub = subscribe(&fake, &hooks, &user, "pro").await;
    let t = chrono::Utc::now().timestamp();

    // In the portal the user sets the subscription to end with the period
    // (still pro), then switches to team: two updates, Stripe sends them in
    // that order, they arrive the other way round.
    let older = subscription_event("evt_upd_1", "customer.subscription.updated", t + 1, &fake.subscription(&sub.id));
    let team = fake.update(&sub.id, |s| s.price = fake_stripe::PRICE_TEAM.into());
    let newer = subscription_event("evt_upd_2", "customer.subscription.updated", t + 2, &team);
    assert_eq!(hooks.send(&newer).await.0, 200);
    assert_eq!(plan(&user).await, "team");
    assert_eq!(hooks.send(&older).await.0, 200);
    assert_eq!(plan(&user).await, "team", "the older update, delivered last, must not undo the switch");
    assert_eq!(me(&user).await["subscription"]["plan"], "team");

    // The subscription ends; a late update from before still doesn't count.
    let ended = fake.update(&sub.id, |s| s.status = "canceled".into());
    let deleted = subscription_event("evt_del", "customer.subscription.deleted", t + 3, &ended);
    assert_eq!(hooks.send(&deleted).await.0, 200);
    assert_eq!(plan(&user).await, "free");
    let late = subscription_event("evt_upd_late", "customer.subscription.updated", t + 2, &team);
    assert_eq!(hooks.send(&late).await.0, 200);
    let me = me(&user).await;
    assert_eq!((me["plan"].as_str(), me["subscription"]["status"].as_str()), (Some("free"), Some("canceled")), "{me}");

    // Events the hub doesn't act on, and customers it doesn't know, are 200.
    let mut other = subscription_event("evt_other", "customer.subscription.updated", t + 4, &team);
    other["data"]["object"]["customer"] = json!("cus_not_ours");
    assert_eq!(hooks.send(&other).await.0, 200);
    let mut refund = fake_stripe::published_event("invoice.paid");
    refund["id"] = json!("evt_refund");
    refund["type"] = json!("charge.refunded");
    assert_eq!(hooks.send(&refund).await.0, 200);
}

#[tokio::test]
async fn a_paid_invoice_ends_the_grace_and_a_late_failure_doesnt_restart_it() {
    let fake = FakeStripe::start().await;
    let hub = billing_hub(&fake, &[]).await;
    let user = hub.user().await;
    let hooks = Webhooks::new(&hub.http);
    let sub = subscribe(&fake, &hooks, &user, "team").await;

    let past_due = fake.update(&sub.id, |s| s.status = "past_due".into());
    let failed = invoice_event("evt_inv_failed", "invoice.payment_failed", &past_due);
    assert_eq!(hooks.send(&failed).await.0, 200);
    let me1 = me(&user).await;
    let until: chrono::DateTime<chrono::Utc> = me1["subscription"]["grace_until"].as_str().unwrap().parse().unwrap();
    let week = chrono::Duration::days(7);
    assert!((until - chrono::Utc::now() - week).num_seconds().abs() < 60, "a week's grace by default: {me1}");
    assert_eq!((me1["plan"].as_str(), me1["subscription"]["status"].as_str()), (Some("team"), Some("past_due")));

    let active = fake.update(&sub.id, |s| s.status = "active".into());
    assert_eq!(hooks.send(&invoice_event("evt_inv_paid", "invoice.paid", &active)).await.0, 200);
    let me2 = me(&user).await;
    assert_eq!((me2["plan"].as_str(), &me2["subscription"]["grace_until"]), (Some("team"), &Value::Null), "{me2}");

    // A retry's failure notice that arrives after the payment went through.
    let late = invoice_event("evt_inv_failed_late", "invoice.payment_failed", &past_due);
    assert_eq!(hooks.send(&late).await.0, 200);
    let me3 = me(&user).await;
    assert_eq!((me3["plan"].as_str(), &me3["subscription"]["grace_until"]), (Some("team"), &Value::Null), "{me3}");
}

/// A failed payment keeps the plan for the grace; then the account is on
/// the free plan, and a VM running past the free plan's hours stops with
/// the reason on its project.
#[tokio::test]
async fn after_a_failed_payments_grace_the_account_is_free_and_its_vm_stops() {
    let fake = FakeStripe::start().await;
    let hub = billing_hub(&fake, &[("AETHER_BILLING_GRACE_S", "3"), ("AETHER_RECONCILE_INTERVAL_MS", "100")]).await;
    let user = hub.user().await;
    let hooks = Webhooks::new(&hub.http);
    let sub = subscribe(&fake, &hooks, &user, "pro").await;
    let project = user.running_project().await;
    // 60 hours this month: past the free plan's 50, well within pro's.
    hub.record_boot(&project, 60).await;

    let past_due = fake.update(&sub.id, |s| s.status = "past_due".into());
    assert_eq!(hooks.send(&invoice_event("evt_failed", "invoice.payment_failed", &past_due)).await.0, 200);
    let during = me(&user).await;
    assert_eq!(during["plan"], "pro", "{during}");
    assert!(during["subscription"]["grace_until"].is_string(), "{during}");
    let (_, p) = user.get(&format!("/api/projects/{project}")).await;
    assert_eq!(p["status"], "running", "the VM runs on during the grace: {p}");

    let stopped = support::eventually("the VM stopped after the grace", support::DEADLINE, || async {
        let (_, p) = user.get(&format!("/api/projects/{project}")).await;
        (p["status"] == "stopped").then_some(p)
    })
    .await;
    let message = stopped["error_message"].as_str().unwrap_or_default();
    assert!(message.contains("grace period ended") && message.contains("free plan"), "{stopped}");
    assert_eq!(plan(&user).await, "free");
    let (s, v) = user.post(&format!("/api/projects/{project}/start"), json!({})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("limit_reached")), "{v}");
    // Stripe's further retries fail too: the grace doesn't start over.
    assert_eq!(hooks.send(&invoice_event("evt_failed_again", "invoice.payment_failed", &past_due)).await.0, 200);
    assert_eq!(plan(&user).await, "free");
}

/// At the free plan's hours a start is refused; paying for pro lifts that
/// the moment Stripe's event arrives.
#[tokio::test]
async fn an_upgrade_lifts_the_compute_limit_at_once() {
    let fake = FakeStripe::start().await;
    let hub = billing_hub(&fake, &[]).await;
    let user = hub.user().await;
    let hooks = Webhooks::new(&hub.http);
    let project = user.project("locked").await;
    hub.record_boot(&project, 50).await;
    let (s, v) = user.post(&format!("/api/projects/{project}/start"), json!({})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("limit_reached")), "{v}");

    subscribe(&fake, &hooks, &user, "pro").await;
    let (s, v) = user.post(&format!("/api/projects/{project}/start?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("running")), "{v}");
}

/// Deleting an account that pays cancels its subscription at Stripe, and
/// its running VM and home go with it.
#[tokio::test]
async fn deleting_a_paying_account_cancels_its_subscription_and_ends_its_vm() {
    let fake = FakeStripe::start().await;
    let hub = billing_hub(&fake, &[]).await;
    let user = hub.user().await;
    let hooks = Webhooks::new(&hub.http);
    let sub = subscribe(&fake, &hooks, &user, "pro").await;
    let project = user.running_project().await;
    assert!(!support::vm_processes(&project).is_empty(), "the VM runs");
    let email = me(&user).await["email"].as_str().unwrap().to_owned();

    let (s, v) =
        user.call(reqwest::Method::DELETE, "/api/me", Some(json!({"password": "correct horse battery"}))).await;
    assert_eq!(s, 204, "{v}");
    assert_eq!(fake.requests_to("DELETE", &format!("/v1/subscriptions/{}", sub.id)).len(), 1);
    assert_eq!(fake.subscription(&sub.id).status, "canceled");
    support::eventually("the VM's processes gone", std::time::Duration::from_secs(30), || async {
        support::vm_processes(&project).is_empty().then_some(())
    })
    .await;
    assert!(!hub.data.join("vms").join(&project).exists(), "the VM's folder and home are gone");
    let (s, v) = hub.api().post("/api/auth/login", json!({"email": email, "password": "correct horse battery"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (401, Some("unauthenticated")), "{v}");
}
