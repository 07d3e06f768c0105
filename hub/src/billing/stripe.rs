//! The Stripe API through the async-stripe crates: `StripeApi` implements
//! `Payments`, and `parse_event` reads a webhook's body.
//!
//! The only module that names those crates (their types stop here, as the
//! Fly client's do in `compute::fly`), so the rest of the hub builds and
//! is tested against `Payments` and the small types in `billing`. The
//! production client is pointed at a fake in tests (`STRIPE_API_BASE`).

use super::{About, Checkout, Event, Payments, Subscription};
use anyhow::Context;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;
use stripe::{IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use uuid::Uuid;

/// The Stripe API at a base URL.
pub struct StripeApi {
    client: stripe::Client,
}

impl StripeApi {
    /// A client with `secret_key` for the API at `api_base` (no `/v1`).
    pub fn new(secret_key: &str, api_base: &str) -> anyhow::Result<Self> {
        let client = stripe::ClientBuilder::new(secret_key)
            .url(format!("{}/", api_base.trim_end_matches('/')))
            // A webhook waits for a subscription read; Stripe redelivers
            // an event that isn't answered in time, so don't hang on one.
            .timeout(Duration::from_secs(15))
            .build()
            .context("building the Stripe client")?;
        Ok(Self { client })
    }
}

fn call_failed(what: &str, e: StripeError) -> anyhow::Error {
    match e {
        StripeError::Stripe(err, status) => anyhow::anyhow!(
            "{what}: Stripe answered {status}: {}",
            err.message.unwrap_or_else(|| "no message".to_owned())
        ),
        other => anyhow::anyhow!("{what}: {other}"),
    }
}

#[async_trait::async_trait]
impl Payments for StripeApi {
    async fn create_customer(&self, user: Uuid, email: &str) -> anyhow::Result<String> {
        let key = IdempotencyKey::new(format!("aether-customer-{user}")).map_err(|e| anyhow::anyhow!("{e}"))?;
        let customer = stripe_core::customer::CreateCustomer::new()
            .email(email)
            .metadata(HashMap::from([("aether_user_id".to_owned(), user.to_string())]))
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&self.client)
            .await
            .map_err(|e| call_failed("creating a Stripe customer", e))?;
        Ok(customer.id.as_str().to_owned())
    }

    async fn checkout(&self, c: &Checkout<'_>) -> anyhow::Result<String> {
        use stripe_checkout::checkout_session::{
            CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
        };
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price = Some(c.price.to_owned());
        item.quantity = Some(1);
        let metadata = HashMap::from([("plan".to_owned(), c.plan.to_owned())]);
        let mut subscription = CreateCheckoutSessionSubscriptionData::new();
        subscription.metadata = Some(HashMap::from([
            ("plan".to_owned(), c.plan.to_owned()),
            ("aether_user_id".to_owned(), c.user.to_string()),
        ]));
        let session = CreateCheckoutSession::new()
            .mode(stripe_checkout::CheckoutSessionMode::Subscription)
            .line_items(vec![item])
            .customer(c.customer)
            .client_reference_id(c.user.to_string())
            .metadata(metadata)
            .subscription_data(subscription)
            .success_url(c.success_url)
            .cancel_url(c.cancel_url)
            .send(&self.client)
            .await
            .map_err(|e| call_failed("creating a Checkout Session", e))?;
        session.url.context("Stripe's Checkout Session has no url")
    }

    async fn portal(&self, customer: &str, return_url: &str) -> anyhow::Result<String> {
        let session = stripe_billing::billing_portal_session::CreateBillingPortalSession::new()
            .customer(customer)
            .return_url(return_url)
            .send(&self.client)
            .await
            .map_err(|e| call_failed("creating a billing portal session", e))?;
        Ok(session.url)
    }

    async fn subscription(&self, id: &str) -> anyhow::Result<Option<Subscription>> {
        let sub = match stripe_billing::subscription::RetrieveSubscription::new(id).send(&self.client).await {
            Ok(sub) => sub,
            Err(StripeError::Stripe(_, 404)) => return Ok(None),
            Err(e) => return Err(call_failed(&format!("reading subscription {id}"), e)),
        };
        let period_end = sub.items.data.iter().map(|i| i.current_period_end).max();
        Ok(Some(Subscription {
            id: sub.id.as_str().to_owned(),
            customer: sub.customer.id().as_str().to_owned(),
            status: sub.status.as_str().to_owned(),
            prices: sub.items.data.iter().map(|i| i.price.id.as_str().to_owned()).collect(),
            metadata_plan: sub.metadata.get("plan").cloned(),
            current_period_end: period_end.and_then(|t| DateTime::<Utc>::from_timestamp(t, 0)),
        }))
    }

    async fn cancel_subscription(&self, id: &str) -> anyhow::Result<()> {
        match stripe_billing::subscription::CancelSubscription::new(id).send(&self.client).await {
            Ok(_) | Err(StripeError::Stripe(_, 404)) => Ok(()),
            Err(e) => Err(call_failed(&format!("cancelling subscription {id}"), e)),
        }
    }
}

/// The events the hub acts on.
const HANDLED: [&str; 6] = [
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
];

/// Reads a verified webhook body (`signature` is its header, checked again
/// by the crate at `now`). Events the hub doesn't act on are `Ignored`
/// without being parsed further, so a shape this crate can't read doesn't
/// refuse them.
pub fn parse_event(body: &str, signature: &str, secret: &str, now: DateTime<Utc>) -> anyhow::Result<Event> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        id: String,
        #[serde(rename = "type")]
        kind: String,
    }
    let envelope: Envelope = serde_json::from_str(body).context("reading the event's id and type")?;
    if !HANDLED.contains(&envelope.kind.as_str()) {
        return Ok(Event { id: envelope.id, kind: envelope.kind, about: About::Ignored });
    }
    let event = stripe_webhook::Webhook::construct_event_with_timestamp(body, signature, secret, now.timestamp())
        .map_err(|e| anyhow::anyhow!("parsing {} {}: {e}", envelope.kind, envelope.id))?;
    use stripe_webhook::EventObject as O;
    let about = match event.data.object {
        O::CheckoutSessionCompleted(s) => About::Checkout {
            user: s.client_reference_id.clone(),
            customer: s.customer.as_ref().map(|c| c.id().as_str().to_owned()),
            subscription: s.subscription.as_ref().map(|s| s.id().as_str().to_owned()),
        },
        O::CustomerSubscriptionCreated(s) | O::CustomerSubscriptionUpdated(s) | O::CustomerSubscriptionDeleted(s) => {
            About::Subscription { id: s.id.as_str().to_owned(), customer: s.customer.id().as_str().to_owned() }
        }
        O::InvoicePaid(i) | O::InvoicePaymentFailed(i) => About::Invoice {
            subscription: i
                .parent
                .as_ref()
                .and_then(|p| p.subscription_details.as_ref())
                .map(|d| d.subscription.id().as_str().to_owned()),
            customer: i.customer.as_ref().map(|c| c.id().as_str().to_owned()),
        },
        _ => About::Ignored,
    };
    Ok(Event { id: event.id.as_str().to_owned(), kind: envelope.kind, about })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";

    fn parse(path: &str) -> Event {
        let body =
            std::fs::read_to_string(format!("{}/tests/fake_stripe/events/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let now = Utc::now();
        let header = super::super::signature::sign(SECRET, body.as_bytes(), now.timestamp());
        parse_event(&body, &header, SECRET, now).unwrap()
    }

    #[test]
    fn the_published_events_parse() {
        let e = parse("stripe-event-checkout.session.completed.json");
        assert_eq!(
            e.about,
            About::Checkout {
                user: Some("aether-user-123".into()),
                customer: Some("cus_QXg1o8vcGmoR32".into()),
                subscription: Some("sub_1Pgc6rB7WZ01zgkWNy0Cn5nw".into()),
            }
        );
        let e = parse("stripe-event-customer.subscription.updated.json");
        assert_eq!(
            e.about,
            About::Subscription { id: "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw".into(), customer: "cus_QXg1o8vcGmoR32".into() }
        );
        let e = parse("stripe-event-invoice.paid.json");
        assert_eq!((e.id.as_str(), e.kind.as_str()), ("evt_1Pgc81B7WZ01zgkWinvPaid01", "invoice.paid"));
        assert!(
            matches!(e.about, About::Invoice { subscription: Some(ref s), .. } if s == "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw")
        );
    }

    #[test]
    fn events_it_doesnt_act_on_are_not_parsed_further() {
        let body = r#"{"id":"evt_x","object":"event","type":"charge.refunded","data":{"object":{"odd":true}}}"#;
        let e = parse_event(body, "", SECRET, Utc::now()).unwrap();
        assert_eq!(e, Event { id: "evt_x".into(), kind: "charge.refunded".into(), about: About::Ignored });
    }
}
