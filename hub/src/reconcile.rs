//! Reconciliation: a loop (a pass when the hub starts, then one every
//! `reconcile_interval`) that compares the compute provider's machines with
//! the projects in the database and closes what is dangling. It follows the
//! one-shot `projects::reconcile`, which aligns statuses before the tunnel
//! endpoint accepts, and serves every provider: it needs only
//! `Compute::inventory` (by default `list` and `status`).
//!
//! * A machine (or volume) whose project no longer exists is destroyed once
//!   it has been seen orphaned for `orphan_grace`. Only what carries a
//!   project id is considered; anything else in the provider is left alone.
//! * A project whose machine vanished — its stored machine id is no longer
//!   listed, or it is `running` and the provider has nothing for it — is
//!   marked `error` with a message, not `stopped`: something outside aether
//!   removed the machine (an operator, the platform), the disk may have gone
//!   with it, and the user should know that before starting again (which
//!   creates a new machine).
//! * A project `starting` or `stopping`, or a machine in a transient state,
//!   for longer than `stuck_after` is marked `error` with a message saying
//!   so; a tunnel that comes up late still moves the project to `running`.
//! * The provider's machine and volume ids are stored on the project.
//! * Users whose failed payment's grace ended are moved to the free plan
//!   (`billing::end_expired_grace`), then running VMs of users past their
//!   plan's compute hours are stopped (`plans::stop_over_limit`).
//!
//! Each change is checked again when it is made: a vanished machine is asked
//! for once more, and a status is overwritten only if it is still the one
//! judged (`Db::fail_if_unchanged`), so a pass never undoes a start or stop
//! that raced it. Several hubs may each run the loop: destroying and marking
//! are idempotent.

use crate::compute::{Listed, MachineState};
use crate::db::ComputeRow;
use crate::projects;
use crate::projects::Lifecycle;
use anyhow::Context;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What a pass decided to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Destroy the machine and volume of a project that no longer exists.
    DestroyOrphan(Uuid),
    /// Store the provider's ids on the project.
    StoreIds { project: Uuid, machine_id: Option<String>, volume_id: Option<String> },
    /// Mark the project `error`, if it is still `status` as of `since`.
    Fail {
        project: Uuid,
        status: String,
        since: DateTime<Utc>,
        message: String,
        /// The machine vanished: ask the provider once more first, and forget
        /// the stored machine id after marking.
        vanished: bool,
        volume_id: Option<String>,
    },
}

/// The time limits a pass judges by.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub orphan_grace: Duration,
    pub stuck_after: Duration,
}

fn older_than(now: DateTime<Utc>, since: DateTime<Utc>, limit: Duration) -> bool {
    (now - since).to_std().is_ok_and(|age| age >= limit)
}

/// "5 minutes", "30 seconds".
fn human(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 120 => format!("{} minutes", s / 60),
        1 => "1 second".to_owned(),
        s => format!("{s} seconds"),
    }
}

/// Decides one pass. `listed` was taken at `listed_at`, `rows` read after
/// it; `orphans` remembers since when each orphan has been seen (kept
/// between passes); `tunnel_up` tells which projects' VMs are connected.
pub fn plan(
    rows: &[ComputeRow],
    listed: &[Listed],
    listed_at: DateTime<Utc>,
    now: DateTime<Utc>,
    orphans: &mut HashMap<Uuid, DateTime<Utc>>,
    limits: Limits,
    tunnel_up: impl Fn(Uuid) -> bool,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let known: HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut still_orphaned = HashSet::new();
    for l in listed.iter().filter(|l| !known.contains(&l.project)) {
        if !still_orphaned.insert(l.project) {
            continue;
        }
        let first_seen = *orphans.entry(l.project).or_insert(now);
        if older_than(now, first_seen, limits.orphan_grace) {
            actions.push(Action::DestroyOrphan(l.project));
        }
    }
    orphans.retain(|p, _| still_orphaned.contains(p));

    let mut by_project: HashMap<Uuid, &Listed> = HashMap::new();
    for l in listed {
        let slot = by_project.entry(l.project).or_insert(l);
        if slot.state == MachineState::Missing && l.state != MachineState::Missing {
            *slot = l;
        }
    }
    for row in rows {
        let l = by_project.get(&row.id).copied();
        let has_machine = l.is_some_and(|l| l.state != MachineState::Missing);
        let fail = |message: String, vanished: bool| Action::Fail {
            project: row.id,
            status: row.status.clone(),
            since: row.updated_at,
            message,
            vanished,
            volume_id: l.and_then(|l| l.volume_id.clone()),
        };
        if tunnel_up(row.id) {
            // Alive whatever a listing says; only keep the ids current.
        } else if row.updated_at < listed_at && row.status != "stopping" && !has_machine {
            let message = match (&row.machine_id, row.status.as_str()) {
                (Some(id), _) => Some(format!(
                    "the project's machine {id} no longer exists at the provider (removed outside aether?); \
                     starting the project creates a new one"
                )),
                (None, "running") => Some(
                    "the project's VM no longer exists at the provider; starting the project creates a new one"
                        .to_owned(),
                ),
                _ => None,
            };
            if let Some(message) = message {
                actions.push(fail(message, true));
                continue;
            }
        }
        if matches!(row.status.as_str(), "starting" | "stopping")
            && !(row.status == "starting" && tunnel_up(row.id))
            && older_than(now, row.updated_at, limits.stuck_after)
        {
            let message = match row.status.as_str() {
                "starting" => format!("the VM did not come up within {}", human(limits.stuck_after)),
                _ => format!("stopping the VM did not finish within {}", human(limits.stuck_after)),
            };
            actions.push(fail(message, false));
            continue;
        }
        if let Some(l) = l {
            if let Some(since) = l.transient_since
                && row.status != "error"
                && older_than(now, since, limits.stuck_after)
            {
                let message =
                    format!("the VM's machine has been {} for more than {}", l.detail, human(limits.stuck_after));
                actions.push(fail(message, false));
                continue;
            }
            if l.machine_id.is_some() && (row.machine_id != l.machine_id || row.volume_id != l.volume_id) {
                actions.push(Action::StoreIds {
                    project: row.id,
                    machine_id: l.machine_id.clone(),
                    volume_id: l.volume_id.clone(),
                });
            }
        }
    }
    actions
}

async fn apply(lc: &Lifecycle, action: Action) -> anyhow::Result<()> {
    match action {
        Action::DestroyOrphan(project) => {
            if lc.db.project_any(project).await?.is_some() {
                return Ok(());
            }
            tracing::warn!(%project, "destroying a machine whose project no longer exists");
            lc.compute.destroy(project).await.with_context(|| format!("destroying orphan {project}"))?;
        }
        Action::StoreIds { project, machine_id, volume_id } => {
            lc.db.set_compute_ids(project, machine_id.as_deref(), volume_id.as_deref()).await?;
        }
        Action::Fail { project, status, since, message, vanished, volume_id } => {
            if vanished && lc.compute.status(project).await? != MachineState::Missing {
                return Ok(());
            }
            if let Some(p) = lc.db.fail_if_unchanged(project, &status, since, &message).await? {
                tracing::warn!(%project, %message, "reconciliation marked the project failed");
                projects::publish(lc, &p);
                if vanished {
                    lc.db.set_compute_ids(project, None, volume_id.as_deref()).await?;
                }
            }
        }
    }
    Ok(())
}

/// One pass: list, compare, act. An action that fails is logged and the
/// next pass tries again.
pub async fn pass(lc: &Lifecycle, limits: Limits, orphans: &mut HashMap<Uuid, DateTime<Utc>>) -> anyhow::Result<()> {
    let listed_at = Utc::now();
    let listed = lc.compute.inventory().await.context("listing the provider's machines")?;
    let rows = lc.db.compute_rows().await.context("reading projects")?;
    let actions = plan(&rows, &listed, listed_at, Utc::now(), orphans, limits, |id| lc.tunnels.get(id).is_some());
    for action in actions {
        let what = format!("{action:?}");
        if let Err(e) = apply(lc, action).await {
            tracing::warn!(error = format!("{e:#}"), action = %what, "reconciliation step failed");
        }
    }
    Ok(())
}

/// Runs a pass now and then every `reconcile_interval`, until `shutdown`.
pub async fn run(lc: Arc<Lifecycle>, every: Duration, limits: Limits, shutdown: CancellationToken) {
    let mut orphans = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = pass(&lc, limits, &mut orphans) => {
                if let Err(e) = result {
                    tracing::warn!(error = format!("{e:#}"), "reconciliation pass failed");
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = crate::billing::end_expired_grace(&lc) => {
                if let Err(e) = result {
                    tracing::warn!(error = format!("{e:#}"), "ending expired billing grace failed");
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = crate::plans::stop_over_limit(&lc) => {
                if let Err(e) = result {
                    tracing::warn!(error = format!("{e:#}"), "stopping VMs at their compute limit failed");
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { orphan_grace: Duration::from_secs(600), stuck_after: Duration::from_secs(300) };

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn row(status: &str, updated: i64, machine: Option<&str>) -> ComputeRow {
        ComputeRow {
            id: Uuid::new_v4(),
            status: status.into(),
            updated_at: at(updated),
            machine_id: machine.map(Into::into),
            volume_id: None,
        }
    }

    fn listed(project: Uuid, machine: Option<&str>, state: MachineState, since: Option<i64>) -> Listed {
        Listed {
            project,
            machine_id: machine.map(Into::into),
            volume_id: Some("vol_1".into()),
            state,
            detail: if since.is_some() { "stopping".into() } else { "started".into() },
            transient_since: since.map(at),
            stopped_since: None,
        }
    }

    fn run_plan(
        rows: &[ComputeRow],
        listed: &[Listed],
        now: i64,
        orphans: &mut HashMap<Uuid, DateTime<Utc>>,
    ) -> Vec<Action> {
        plan(rows, listed, at(now - 1), at(now), orphans, LIMITS, |_| false)
    }

    #[test]
    fn orphans_are_destroyed_after_the_grace_period_only() {
        let orphan = Uuid::new_v4();
        let l = [listed(orphan, Some("m1"), MachineState::Running, None)];
        let mut seen = HashMap::new();
        assert_eq!(run_plan(&[], &l, 0, &mut seen), vec![]);
        assert_eq!(run_plan(&[], &l, 599, &mut seen), vec![]);
        assert_eq!(run_plan(&[], &l, 600, &mut seen), vec![Action::DestroyOrphan(orphan)]);
        // Gone from the listing: forgotten, and the clock starts over.
        assert_eq!(run_plan(&[], &[], 700, &mut seen), vec![]);
        assert!(seen.is_empty());
    }

    #[test]
    fn a_vanished_machine_fails_its_project() {
        let r = row("stopped", 0, Some("m1"));
        let actions = run_plan(std::slice::from_ref(&r), &[], 10, &mut HashMap::new());
        let [Action::Fail { project, vanished: true, message, status, .. }] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!((project, status.as_str()), (&r.id, "stopped"));
        assert!(message.contains("m1") && message.contains("no longer exists"), "{message}");

        // Without a stored id, only a running project can have lost its VM.
        let stopped = row("stopped", 0, None);
        let running = row("running", 0, None);
        let actions = run_plan(&[stopped, running.clone()], &[], 10, &mut HashMap::new());
        assert!(matches!(actions.as_slice(), [Action::Fail { project, vanished: true, .. }] if *project == running.id));
    }

    #[test]
    fn rows_changed_after_the_listing_or_connected_are_not_judged() {
        let r = row("running", 100, Some("m1"));
        let rows = std::slice::from_ref(&r);
        assert_eq!(plan(rows, &[], at(50), at(120), &mut HashMap::new(), LIMITS, |_| false), vec![]);
        assert_eq!(plan(rows, &[], at(150), at(160), &mut HashMap::new(), LIMITS, |_| true), vec![]);
    }

    #[test]
    fn stuck_transient_states_are_reported() {
        let starting = row("starting", 0, None);
        let l = [listed(starting.id, Some("m1"), MachineState::Running, None)];
        assert!(
            run_plan(std::slice::from_ref(&starting), &l, 299, &mut HashMap::new())
                .iter()
                .all(|a| !matches!(a, Action::Fail { .. }))
        );
        let actions = run_plan(std::slice::from_ref(&starting), &l, 300, &mut HashMap::new());
        assert!(
            matches!(actions.as_slice(), [Action::Fail { message, vanished: false, .. }] if message.contains("did not come up within 5 minutes")),
            "{actions:?}"
        );

        let stopped = row("stopped", 0, Some("m2"));
        let l = [listed(stopped.id, Some("m2"), MachineState::Stopped, Some(10))];
        let actions = run_plan(std::slice::from_ref(&stopped), &l, 310, &mut HashMap::new());
        assert!(
            matches!(actions.as_slice(), [Action::Fail { message, .. }] if message.contains("has been stopping for more than 5 minutes")),
            "{actions:?}"
        );
    }

    #[test]
    fn new_ids_are_stored() {
        let r = row("running", 0, None);
        let l = [listed(r.id, Some("m9"), MachineState::Running, None)];
        assert_eq!(
            run_plan(std::slice::from_ref(&r), &l, 10, &mut HashMap::new()),
            vec![Action::StoreIds { project: r.id, machine_id: Some("m9".into()), volume_id: Some("vol_1".into()) }]
        );
    }
}
