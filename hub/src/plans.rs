//! What each plan (free, pro, team) allows, and what the user has used of it.
//!
//! The limits live in the `plan_limits` table (`Plan`, read by `plan` and
//! `all`), seeded by its migration with the built-in values below
//! (`limits`, `vm_limits`, which the public pages show): changing a plan is
//! an UPDATE of that table, taken at the next start or check.
//!
//! Compute is counted from the usage records (`usage`): each machine run
//! from its start to its stop (or now), within the calendar month (UTC). A project
//! doesn't start (by the API, its preview or an agent's SSH) once its owner
//! has used the month's hours, and the reconciliation loop stops running
//! ones then (`stop_over_limit`), saying why on the project.

use crate::db::Db;
use crate::domain::{Error, Result};
use chrono::{DateTime, Datelike, Utc};
use std::sync::Arc;
use uuid::Uuid;

/// Left on a project the hub stopped at its owner's compute limit.
pub const STOPPED_AT_LIMIT: &str = "Stopped: this month's compute hours on your plan are used up.";

/// A plan's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Projects the user may have.
    pub projects: i64,
    /// Hours of VM time per calendar month, over all the user's projects.
    pub compute_hours: i64,
    /// Gigabytes of project disks (volumes), over all the user's projects:
    /// what the project limit allows at the default 10 GB a volume, so it
    /// holds by itself unless `AETHER_FLY_VOLUME_GB` is raised; nothing
    /// else enforces it (`GET /api/billing/usage` reports it).
    pub storage_gb: i64,
}

pub use crate::db::Plan;

impl Plan {
    /// The built-in values of `plan`, where the table lacks it.
    pub fn builtin(plan: &str) -> Self {
        let (l, vm) = (limits(plan), vm_limits(plan));
        let (rank, idle) = match plan {
            "team" => (2, 4 * 3600),
            "pro" => (1, 2 * 3600),
            _ => (0, 30 * 60),
        };
        Plan {
            plan: plan.to_owned(),
            rank,
            projects: l.projects,
            compute_seconds: l.compute_hours * 3600,
            storage_gb: l.storage_gb,
            idle_timeout_s: idle,
            cpus: vm.cpus as i32,
            memory_mb: vm.memory_mb as i64,
            pids: vm.pids as i32,
        }
    }

    /// What one VM on this plan may use.
    pub fn vm(&self) -> crate::compute::sandbox::VmLimits {
        crate::compute::sandbox::VmLimits {
            cpus: self.cpus.max(1) as u32,
            memory_mb: self.memory_mb.max(256) as u64,
            pids: self.pids.max(64) as u32,
        }
    }
}

/// Every plan in `plan_limits`, lowest first.
pub async fn all(db: &crate::db::Db) -> sqlx::Result<Vec<Plan>> {
    db.plans().await
}

/// `plan`'s row of `plan_limits` (an unknown plan gets free's).
pub async fn plan(db: &crate::db::Db, plan: &str) -> sqlx::Result<Plan> {
    Ok(db.plan_or_free(plan).await?.unwrap_or_else(|| Plan::builtin(plan)))
}

/// The plan of `user` and its limits.
pub async fn of_user(db: &crate::db::Db, user: Uuid) -> sqlx::Result<Plan> {
    let name = db.user(user).await?.map_or_else(|| "free".to_owned(), |u| u.plan);
    let mut p = plan(db, &name).await?;
    p.plan = name;
    Ok(p)
}

/// The built-in limits of `plan` (anything unknown counts as free): the
/// seed of `plan_limits`.
pub fn limits(plan: &str) -> Limits {
    match plan {
        "team" => Limits { projects: 200, compute_hours: 2_000, storage_gb: 2_000 },
        "pro" => Limits { projects: 50, compute_hours: 500, storage_gb: 500 },
        _ => Limits { projects: 5, compute_hours: 50, storage_gb: 50 },
    }
}

/// What one VM of a user on `plan` may use (CPU, memory, processes), as
/// built in (the seed of `plan_limits`).
pub fn vm_limits(plan: &str) -> crate::compute::sandbox::VmLimits {
    use crate::compute::sandbox::VmLimits;
    match plan {
        "team" => VmLimits { cpus: 4, memory_mb: 8192, pids: 8192 },
        "pro" => VmLimits { cpus: 2, memory_mb: 4096, pids: 8192 },
        _ => VmLimits { cpus: 1, memory_mb: 2048, pids: 4096 },
    }
}

/// The start of the month (UTC) that `now` is in: compute counts from there.
pub fn period_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let first = now.date_naive().with_day(1).expect("every month has a first day");
    first.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

/// The start of the month after the one `now` is in.
pub fn period_end(now: DateTime<Utc>) -> DateTime<Utc> {
    let start = period_start(now);
    let next = start.date_naive().checked_add_months(chrono::Months::new(1)).expect("a month after this one");
    next.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

/// `Ok` if the user may start a VM: their plan's compute hours for this
/// month are not used up.
pub async fn may_start(db: &Db, user: Uuid) -> Result<()> {
    let limits = of_user(db, user).await?;
    let (plan, hours) = (&limits.plan, limits.compute_seconds / 3600);
    let used = db.compute_seconds(user, period_start(Utc::now())).await?;
    if used >= limits.compute_seconds {
        return Err(Error::LimitReached(format!(
            "this month's {hours} hours of compute on the {plan} plan are used up; upgrade the plan to start VMs again"
        )));
    }
    Ok(())
}

/// Stops the VMs of users who have used up the month's compute, each with
/// `STOPPED_AT_LIMIT` on its project.
pub async fn stop_over_limit(lc: &Arc<crate::projects::Lifecycle>) -> anyhow::Result<()> {
    let table = all(&lc.db).await?;
    let seconds = |name: &str| {
        table.iter().find(|p| p.plan == name).map_or_else(|| Plan::builtin(name).compute_seconds, |p| p.compute_seconds)
    };
    let over = [seconds("free"), seconds("pro"), seconds("team")];
    for id in lc.db.over_compute_limit(period_start(Utc::now()), over).await? {
        let stopped = match lc.db.project_any(id).await {
            Ok(Some(project)) => {
                tracing::info!(project = %id, "stopping a VM at its owner's compute limit");
                crate::projects::stop_because(lc, project, false, Some(STOPPED_AT_LIMIT.to_owned())).await.map(drop)
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = stopped {
            tracing::warn!(project = %id, error = %e, "stopping a VM at its owner's compute limit");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_starts_at_midnight_utc_on_its_first_day() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(period_start(at("2026-11-26T06:40:00Z")), at("2026-11-01T00:00:00Z"));
        assert_eq!(period_start(at("2026-11-01T00:00:00Z")), at("2026-11-01T00:00:00Z"));
        assert_eq!(period_start(at("2026-12-31T23:59:59Z")), at("2026-12-01T00:00:00Z"));
        assert_eq!(period_end(at("2026-12-31T23:59:59Z")), at("2027-01-01T00:00:00Z"));
        assert_eq!(period_end(at("2026-02-01T00:00:00Z")), at("2026-03-01T00:00:00Z"));
    }

    #[test]
    fn unknown_plans_get_the_free_plans_limits() {
        assert_eq!(limits("enterprise"), limits("free"));
        assert!(limits("pro").compute_hours > limits("free").compute_hours);
    }
}
