//! Paid plans through Stripe: Checkout to subscribe, the customer portal to
//! manage, and the webhook that turns Stripe's news into `users.plan`.
//!
//! Stripe is reached only through `Payments`; `stripe` implements it with
//! the async-stripe crates, and is the one module that names them (their
//! build is slow, and nothing else should have to know their types). The
//! webhook's events are verified here (`signature`) and applied by
//! `webhook`, which reads the subscription's current state from Stripe for
//! every event rather than trusting the event's copy: see there for why
//! that makes delivery order irrelevant. Without `STRIPE_SECRET_KEY` the
//! hub runs with billing off: `Hub::billing` is `None`.

pub mod signature;
pub mod stripe;
pub mod webhook;

use crate::config::StripeConfig;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Billing when it is on: Stripe, the prices it sells, the grace a failed
/// payment gets.
pub struct Billing {
    pub payments: Arc<dyn Payments>,
    pub webhook_secret: String,
    pub price_pro: String,
    pub price_team: String,
    pub grace: Duration,
}

impl Billing {
    /// Billing through the Stripe API that `config` names.
    pub fn new(config: &StripeConfig, grace: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            payments: Arc::new(stripe::StripeApi::new(&config.secret_key, &config.api_base)?),
            webhook_secret: config.webhook_secret.clone(),
            price_pro: config.price_pro.clone(),
            price_team: config.price_team.clone(),
            grace,
        })
    }

    /// The price Checkout sells `plan` at (`pro` or `team`).
    pub fn price(&self, plan: &str) -> Option<&str> {
        match plan {
            "pro" => Some(&self.price_pro),
            "team" => Some(&self.price_team),
            _ => None,
        }
    }

    /// The plan a subscription pays for: its price's, or, for a price this
    /// hub doesn't sell (changed since), the plan Checkout wrote in its
    /// metadata.
    pub fn plan_of(&self, sub: &Subscription) -> Option<&'static str> {
        let by_price = sub.prices.iter().find_map(|p| match p.as_str() {
            p if p == self.price_team => Some("team"),
            p if p == self.price_pro => Some("pro"),
            _ => None,
        });
        by_price.or(match sub.metadata_plan.as_deref() {
            Some("team") => Some("team"),
            Some("pro") => Some("pro"),
            _ => None,
        })
    }
}

/// What the hub asks of Stripe.
#[async_trait::async_trait]
pub trait Payments: Send + Sync {
    /// A new customer for `user`; asking twice for the same user within a
    /// day gives the same customer (an idempotency key).
    async fn create_customer(&self, user: Uuid, email: &str) -> anyhow::Result<String>;
    /// A Checkout Session's URL.
    async fn checkout(&self, c: &Checkout<'_>) -> anyhow::Result<String>;
    /// A customer portal session's URL.
    async fn portal(&self, customer: &str, return_url: &str) -> anyhow::Result<String>;
    /// The subscription as Stripe has it now; `None` if Stripe doesn't know it.
    async fn subscription(&self, id: &str) -> anyhow::Result<Option<Subscription>>;
    /// Cancels a subscription at once (its account is being deleted); one
    /// Stripe no longer knows counts as cancelled.
    async fn cancel_subscription(&self, id: &str) -> anyhow::Result<()>;
}

/// A subscription Checkout Session to create.
#[derive(Debug, Clone)]
pub struct Checkout<'a> {
    pub user: Uuid,
    pub customer: &'a str,
    pub plan: &'a str,
    pub price: &'a str,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

/// A subscription, reduced to what decides a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub customer: String,
    /// `active`, `trialing`, `past_due`, `unpaid`, `canceled`, `incomplete`,
    /// `incomplete_expired`, `paused`.
    pub status: String,
    /// Its items' prices.
    pub prices: Vec<String>,
    /// `metadata.plan`, which Checkout sets.
    pub metadata_plan: Option<String>,
    /// The end of its items' current period (the latest, if they differ).
    pub current_period_end: Option<DateTime<Utc>>,
}

/// A webhook event, reduced to what the hub acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    /// `checkout.session.completed`, ...
    pub kind: String,
    pub about: About,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum About {
    /// A Checkout Session completed: `client_reference_id` is the user.
    Checkout { user: Option<String>, customer: Option<String>, subscription: Option<String> },
    /// A subscription was created, updated or deleted.
    Subscription { id: String, customer: String },
    /// An invoice was paid or its payment failed.
    Invoice { subscription: Option<String>, customer: Option<String> },
    /// Nothing the hub acts on.
    Ignored,
}

/// The statuses in which a subscription pays for its plan (`past_due` and
/// `unpaid` only while the grace runs).
pub fn grants_plan(status: &str) -> bool {
    matches!(status, "active" | "trialing" | "past_due" | "unpaid")
}

/// What a user's account becomes from a subscription's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub plan: &'static str,
    pub grace_until: Option<DateTime<Utc>>,
}

/// The plan and grace that follow from a subscription in `status` paying
/// for `paid` (if it pays for a plan this hub sells), given the grace
/// already running. A payment that failed (`past_due`, `unpaid`) keeps the
/// paid plan until the grace ends, which starts the first time it is seen
/// and is not moved by later failures; a paid one ends the grace; anything
/// else is the free plan.
pub fn standing(
    status: &str,
    paid: Option<&'static str>,
    grace_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    grace: Duration,
) -> Standing {
    let Some(paid) = paid else {
        return Standing { plan: "free", grace_until: None };
    };
    match status {
        "active" | "trialing" => Standing { plan: paid, grace_until: None },
        "past_due" | "unpaid" => {
            let until = grace_until.unwrap_or_else(|| now + grace);
            Standing { plan: if now < until { paid } else { "free" }, grace_until: Some(until) }
        }
        _ => Standing { plan: "free", grace_until: None },
    }
}

/// Left on a project stopped because its owner's grace ended.
pub const STOPPED_GRACE_ENDED: &str = "Stopped: the payment for your plan failed and its grace period ended, so the \
     account is on the free plan, and this month's compute hours on it are used up.";

/// Moves users whose grace ended to the free plan, and stops their VMs if
/// that plan's compute hours are used up (run by the reconciliation loop,
/// before `plans::stop_over_limit`, which would stop them too, without
/// saying why).
pub async fn end_expired_grace(lc: &Arc<crate::projects::Lifecycle>) -> anyhow::Result<()> {
    let free = crate::plans::plan(&lc.db, "free").await?.compute_seconds;
    for user in lc.db.end_expired_grace().await? {
        tracing::info!(%user, "a failed payment's grace ended: the account is on the free plan");
        if lc.db.compute_seconds(user, crate::plans::period_start(Utc::now())).await? < free {
            continue;
        }
        for id in lc.db.active_projects_of(user).await? {
            let Some(project) = lc.db.project_any(id).await? else { continue };
            tracing::info!(project = %id, "stopping a VM: its owner's grace ended and the free plan's hours are used");
            let reason = Some(STOPPED_GRACE_ENDED.to_owned());
            if let Err(e) = crate::projects::stop_because(lc, project, false, reason).await {
                tracing::warn!(project = %id, error = %e, "stopping a VM after its owner's grace ended");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_failed_payment_keeps_the_plan_until_the_grace_ends() {
        let first = standing("past_due", Some("pro"), None, at(0), WEEK);
        assert_eq!(first, Standing { plan: "pro", grace_until: Some(at(0) + WEEK) });
        // Stripe's retries fail again: the grace doesn't move.
        let later = standing("past_due", Some("pro"), first.grace_until, at(3600), WEEK);
        assert_eq!(later, first);
        let after = standing("unpaid", Some("pro"), first.grace_until, at(0) + WEEK, WEEK);
        assert_eq!(after, Standing { plan: "free", grace_until: first.grace_until });
        // Paid at last: the plan is back and the grace over.
        assert_eq!(
            standing("active", Some("pro"), first.grace_until, at(9 * 86400), WEEK),
            Standing { plan: "pro", grace_until: None }
        );
    }

    #[test]
    fn ended_and_unknown_subscriptions_are_the_free_plan() {
        for status in ["canceled", "incomplete", "incomplete_expired", "paused", "something_new"] {
            assert_eq!(standing(status, Some("team"), None, at(0), WEEK), Standing { plan: "free", grace_until: None });
        }
        assert_eq!(standing("active", None, None, at(0), WEEK).plan, "free");
        assert_eq!(standing("trialing", Some("team"), None, at(0), WEEK).plan, "team");
    }
}
