//! Plans: the rows of `plan_limits` (seeded from the built-in limits in
//! the control plane's `plans`, which reads them).

use super::Db;
use uuid::Uuid;

/// A plan's row of `plan_limits`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Plan {
    pub plan: String,
    /// Plans are shown (and "higher") in this order.
    pub rank: i32,
    pub projects: i64,
    pub compute_seconds: i64,
    pub storage_gb: i64,
    pub idle_timeout_s: i64,
    pub cpus: i32,
    pub memory_mb: i64,
    pub pids: i32,
}

impl Db {
    /// Every plan, lowest first.
    pub async fn plans(&self) -> sqlx::Result<Vec<Plan>> {
        sqlx::query_as("SELECT * FROM plan_limits ORDER BY rank, plan").fetch_all(&self.pool).await
    }

    /// `plan`'s row, or free's for a plan the table lacks.
    pub async fn plan_or_free(&self, plan: &str) -> sqlx::Result<Option<Plan>> {
        sqlx::query_as("SELECT * FROM plan_limits WHERE plan = $1 OR plan = 'free' ORDER BY plan = $1 DESC LIMIT 1")
            .bind(plan)
            .fetch_optional(&self.pool)
            .await
    }

    /// Each plan's idle timeout, in seconds.
    pub async fn idle_timeouts(&self) -> sqlx::Result<Vec<(String, i64)>> {
        sqlx::query_as("SELECT plan, idle_timeout_s FROM plan_limits").fetch_all(&self.pool).await
    }

    /// Each running project and its owner's plan.
    pub async fn running_plans(&self) -> sqlx::Result<Vec<(Uuid, String)>> {
        sqlx::query_as(
            "SELECT p.id, u.plan FROM projects p JOIN users u ON u.id = p.owner_id WHERE p.status = 'running'",
        )
        .fetch_all(&self.pool)
        .await
    }
}
