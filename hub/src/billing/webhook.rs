//! Applying Stripe's webhook events to users' plans: each event once, in
//! whatever order they arrive.
//!
//! Stripe delivers at least once and in no particular order, so an event's
//! copy of its subscription may be older than one already applied. Rather
//! than compare events' `created` times (whole seconds: two updates in the
//! same second can't be told apart, and an invoice event says nothing of
//! the subscription's status), every event that concerns a subscription is
//! only a cue: the hub reads the subscription from Stripe as it is now and
//! stores that. Whichever event is applied last, the state stored is the
//! newest there was when it was read, so a late `customer.subscription.
//! updated`, a late `invoice.payment_failed` after the invoice was paid,
//! or a replay, can't undo anything. Reads of one user's subscription
//! can't cross either: the user's row is locked (`EventTx`) before the
//! read and until the result is stored, so a read that started earlier is
//! stored earlier. The price is one API call per event, and an event that
//! arrives while Stripe can't be reached is answered 500, so Stripe sends
//! it again later.
//!
//! The event's id is stored in the same transaction as what it changed
//! (`Db::claim_event`): a replay, or a second delivery racing the first,
//! finds it and changes nothing; an event whose application failed leaves
//! no trace, so its redelivery is applied.

use super::{About, Billing, Event, Subscription, grants_plan, standing};
use crate::db::{BillingRow, Db, EventTx, SubscriptionRecord};
use chrono::Utc;
use uuid::Uuid;

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied before: nothing changed.
    Duplicate,
    /// The user's plan is now `plan`.
    Applied { user: Uuid, plan: &'static str },
    /// Nothing to do (an event the hub doesn't act on, a customer it
    /// doesn't know); recorded, so a redelivery is a `Duplicate`.
    Ignored(&'static str),
}

/// Applies `event`, once.
pub async fn apply(db: &Db, billing: &Billing, event: &Event) -> anyhow::Result<Outcome> {
    let Some(mut tx) = db.claim_event(&event.id, &event.kind).await? else {
        return Ok(Outcome::Duplicate);
    };
    let outcome = match &event.about {
        About::Ignored => Outcome::Ignored("not an event the hub acts on"),
        About::Checkout { user, customer, subscription } => {
            // The user Checkout was opened for, else whoever has the customer.
            let mut row = match user.as_deref().and_then(|u| u.parse::<Uuid>().ok()) {
                Some(id) => tx.lock_user(id).await?,
                None => None,
            };
            if let (None, Some(customer)) = (&row, customer) {
                row = tx.lock_customer(customer).await?;
            }
            match (row, subscription) {
                (Some(row), Some(sub)) => sync(&mut tx, billing, &row, sub).await?,
                (Some(_), None) => Outcome::Ignored("a Checkout Session without a subscription"),
                (None, _) => Outcome::Ignored("a Checkout Session of no user of this hub"),
            }
        }
        About::Subscription { id, customer } => match tx.lock_customer(customer).await? {
            Some(row) => sync(&mut tx, billing, &row, id).await?,
            None => Outcome::Ignored("a subscription of no user of this hub"),
        },
        About::Invoice { subscription: Some(id), customer: Some(customer) } => {
            match tx.lock_customer(customer).await? {
                Some(row) => sync(&mut tx, billing, &row, id).await?,
                None => Outcome::Ignored("an invoice of no user of this hub"),
            }
        }
        About::Invoice { .. } => Outcome::Ignored("an invoice of no subscription"),
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Reads subscription `id` from Stripe and stores it on `row`'s user, with
/// the plan it gives them.
async fn sync(tx: &mut EventTx, billing: &Billing, row: &BillingRow, id: &str) -> anyhow::Result<Outcome> {
    let Some(sub) = billing.payments.subscription(id).await? else {
        tracing::warn!(subscription = id, "Stripe doesn't know a subscription an event named");
        return Ok(Outcome::Ignored("a subscription Stripe doesn't know"));
    };
    if let Some(why) = unrelated(row, &sub) {
        return Ok(Outcome::Ignored(why));
    }
    // The grace of a failed payment belongs to the subscription it failed on.
    let same = row.stripe_subscription_id.as_deref() == Some(sub.id.as_str());
    let paid = billing.plan_of(&sub);
    let now = Utc::now();
    let s = standing(&sub.status, paid, if same { row.grace_until } else { None }, now, billing.grace);
    tx.set_subscription(
        row.id,
        &SubscriptionRecord {
            id: &sub.id,
            customer: &sub.customer,
            paid_plan: paid,
            status: &sub.status,
            current_period_end: sub.current_period_end,
            plan: s.plan,
            grace_until: s.grace_until,
        },
    )
    .await?;
    if row.plan != s.plan {
        tracing::info!(user = %row.id, from = %row.plan, to = s.plan, subscription = %sub.id, status = %sub.status, "plan changed");
        tx.record_audit(row.id, "plan_changed", &format!("{} → {} (subscription {})", row.plan, s.plan, sub.status))
            .await?;
    }
    Ok(Outcome::Applied { user: row.id, plan: s.plan })
}

/// Why `sub` has no say over `row`'s plan, if it hasn't: it is another
/// customer's, or an older subscription that no longer pays while the one
/// the user has does (a late `deleted` of a subscription replaced by a
/// new Checkout).
fn unrelated(row: &BillingRow, sub: &Subscription) -> Option<&'static str> {
    if row.stripe_customer_id.as_deref().is_some_and(|c| c != sub.customer) {
        return Some("a subscription of another customer");
    }
    let other = row.stripe_subscription_id.as_deref().is_some_and(|s| s != sub.id);
    let current_pays = row.subscription_status.as_deref().is_some_and(grants_plan);
    (other && current_pays && !grants_plan(&sub.status)).then_some("an ended subscription the user has replaced")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sub: Option<&str>, status: Option<&str>) -> BillingRow {
        BillingRow {
            id: Uuid::nil(),
            email: "a@example.com".into(),
            plan: "pro".into(),
            stripe_customer_id: Some("cus_1".into()),
            stripe_subscription_id: sub.map(Into::into),
            subscription_plan: Some("pro".into()),
            subscription_status: status.map(Into::into),
            current_period_end: None,
            grace_until: None,
        }
    }

    fn sub(id: &str, customer: &str, status: &str) -> Subscription {
        Subscription {
            id: id.into(),
            customer: customer.into(),
            status: status.into(),
            prices: vec![],
            metadata_plan: None,
            current_period_end: None,
        }
    }

    #[test]
    fn an_old_subscriptions_end_doesnt_undo_the_new_one() {
        let has_new = row(Some("sub_new"), Some("active"));
        assert!(unrelated(&has_new, &sub("sub_old", "cus_1", "canceled")).is_some());
        // The current one's own news always counts, and so does a paying one.
        assert_eq!(unrelated(&has_new, &sub("sub_new", "cus_1", "canceled")), None);
        assert_eq!(unrelated(&has_new, &sub("sub_other", "cus_1", "active")), None);
        // Once the current one has ended, another may take its place.
        assert_eq!(unrelated(&row(Some("sub_new"), Some("canceled")), &sub("sub_old", "cus_1", "canceled")), None);
        assert!(unrelated(&has_new, &sub("sub_new", "cus_2", "active")).is_some());
    }
}
