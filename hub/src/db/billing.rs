//! Billing: Stripe customers and subscriptions, webhook events applied
//! once, and grace periods.

use super::Db;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A user's account as billing sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BillingRow {
    pub id: Uuid,
    pub email: String,
    pub plan: String,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub subscription_plan: Option<String>,
    pub subscription_status: Option<String>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub grace_until: Option<DateTime<Utc>>,
}

const BILLING_COLS: &str = "id, email, plan, stripe_customer_id, stripe_subscription_id, subscription_plan, \
                            subscription_status, current_period_end, grace_until";

/// A subscription's state as a user's account stores it.
#[derive(Debug, Clone)]
pub struct SubscriptionRecord<'a> {
    pub id: &'a str,
    pub customer: &'a str,
    /// The plan the subscription pays for (`None`: none this hub sells).
    pub paid_plan: Option<&'a str>,
    pub status: &'a str,
    pub current_period_end: Option<DateTime<Utc>>,
    /// The user's plan from now on.
    pub plan: &'a str,
    pub grace_until: Option<DateTime<Utc>>,
}

/// A webhook event being applied: the event's id is claimed and the
/// user rows it changes are locked until `commit`; dropped without it,
/// nothing of it happened (and Stripe delivers it again).
pub struct EventTx {
    pub(super) tx: sqlx::Transaction<'static, sqlx::Postgres>,
}

impl EventTx {
    /// The user with this id, locked.
    pub async fn lock_user(&mut self, id: Uuid) -> sqlx::Result<Option<BillingRow>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {BILLING_COLS} FROM users WHERE id = $1 FOR UPDATE")))
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
    }

    /// The user whose Stripe customer this is, locked.
    pub async fn lock_customer(&mut self, customer: &str) -> sqlx::Result<Option<BillingRow>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {BILLING_COLS} FROM users WHERE stripe_customer_id = $1 FOR UPDATE"
        )))
        .bind(customer)
        .fetch_optional(&mut *self.tx)
        .await
    }

    /// Stores the subscription's state and the plan it gives the user.
    pub async fn set_subscription(&mut self, user: Uuid, s: &SubscriptionRecord<'_>) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE users SET stripe_customer_id = COALESCE(stripe_customer_id, $2), stripe_subscription_id = $3, \
               subscription_plan = $4, subscription_status = $5, current_period_end = $6, plan = $7, \
               grace_until = $8 \
             WHERE id = $1",
        )
        .bind(user)
        .bind(s.customer)
        .bind(s.id)
        .bind(s.paid_plan)
        .bind(s.status)
        .bind(s.current_period_end)
        .bind(s.plan)
        .bind(s.grace_until)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Makes the event's effects, and its having been applied, permanent.
    pub async fn commit(self) -> sqlx::Result<()> {
        self.tx.commit().await
    }
}

impl Db {
    // Billing

    pub async fn billing(&self, user: Uuid) -> sqlx::Result<Option<BillingRow>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {BILLING_COLS} FROM users WHERE id = $1")))
            .bind(user)
            .fetch_optional(&self.pool)
            .await
    }

    /// Gives the user `customer` unless they have one; returns the one
    /// they have after.
    pub async fn set_stripe_customer(&self, user: Uuid, customer: &str) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar(
            "UPDATE users SET stripe_customer_id = COALESCE(stripe_customer_id, $2) WHERE id = $1 \
             RETURNING stripe_customer_id",
        )
        .bind(user)
        .bind(customer)
        .fetch_optional(&self.pool)
        .await
        .map(Option::flatten)
    }

    /// Claims webhook event `id` for applying: `None` if it was applied
    /// already. A second delivery of an event being applied waits here
    /// until the first commits (then `None`) or rolls back (then it
    /// applies it).
    pub async fn claim_event(&self, id: &str, kind: &str) -> sqlx::Result<Option<EventTx>> {
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query("INSERT INTO stripe_events (id, type) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
            .bind(id)
            .bind(kind)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        Ok((claimed == 1).then_some(EventTx { tx }))
    }

    /// Moves users whose grace ended to the free plan; returns them.
    pub async fn end_expired_grace(&self) -> sqlx::Result<Vec<Uuid>> {
        sqlx::query_scalar("UPDATE users SET plan = 'free' WHERE grace_until <= now() AND plan <> 'free' RETURNING id")
            .fetch_all(&self.pool)
            .await
    }

    /// The user's projects `starting` or `running`.
    pub async fn active_projects_of(&self, owner: Uuid) -> sqlx::Result<Vec<Uuid>> {
        sqlx::query_scalar("SELECT id FROM projects WHERE owner_id = $1 AND status IN ('starting', 'running')")
            .bind(owner)
            .fetch_all(&self.pool)
            .await
    }
}
