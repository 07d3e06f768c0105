//! Metering: one usage record per machine run, which the VM can't bend.
//!
//! The hub opens a record when it starts a machine and closes it when the
//! provider says the machine stopped. An open record counts up to now: a
//! gap in heartbeats while the provider says the machine runs is billed
//! (stopping or killing aetherd doesn't stop the meter), and heartbeats
//! only tick a record forward (`last_tick_at`, once per boot id and
//! sequence number), so heartbeats from a machine the provider calls
//! stopped extend nothing.
//!
//! Where the provider keeps a timeline of runs (`Compute::runs`: the local
//! sandbox's start and exit, recorded even while no hub runs), each run is
//! a record and its ends are the provider's. Elsewhere (Fly today) the
//! record runs from the hub's start to the hub's stop, and the audit
//! (`audit`, every `meter_interval`) asks the provider's inventory: a
//! machine still running ticks its record, one that stopped while the hub
//! didn't watch closes it when the provider says it stopped (Fly: the time
//! of the event that put it in its state), else at its last tick. The
//! audit runs once when the hub starts too, so what happened while it was
//! down is settled then.
//!
//! Monthly totals are sums over the records (`usage_monthly` in the
//! database, and the queries in `Db`), never kept anywhere else, so a record
//! closed late counts as closed.
//!
//! Storage is metered the same way: a record per project disk
//! (`storage_records`), opened at the first boot that made it and closed
//! when the project is deleted; `storage_monthly` sums its GB-hours.
//! Providers without per-project disks (local VMs use the host's) record
//! none.

use crate::compute::{Compute, MachineState, Run};
use crate::db::Db;
use crate::projects::Lifecycle;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The hub started the project's machine (its start call began at
/// `began`): the record of this run is opened.
pub async fn started(db: &Db, compute: &dyn Compute, project: Uuid, began: DateTime<Utc>) -> anyhow::Result<()> {
    match compute.runs(project).await? {
        Some(runs) => sync(db, project, &runs).await,
        None => {
            // Whatever the hub left open belongs to a run before this one.
            db.usage_close(project, Some(began)).await?;
            db.usage_open(project, &format!("hub-{}", Uuid::new_v4()), began).await?;
            Ok(())
        }
    }
}

/// The provider has stopped the project's machine (its stop call returned
/// at `at`): its record is closed.
pub async fn stopped(db: &Db, compute: &dyn Compute, project: Uuid, at: DateTime<Utc>) -> anyhow::Result<()> {
    if let Some(runs) = compute.runs(project).await? {
        sync(db, project, &runs).await?;
    }
    db.usage_close(project, Some(at)).await?;
    Ok(())
}

/// Brings the project's records in line with the provider's runs.
async fn sync(db: &Db, project: Uuid, runs: &[Run]) -> anyhow::Result<()> {
    let keys: Vec<String> = runs.iter().map(|r| r.key.clone()).collect();
    let known: HashMap<String, Option<DateTime<Utc>>> =
        db.usage_records_of(project, &keys).await?.into_iter().collect();
    for run in runs {
        let lost = !run.running && run.ended_at.is_none();
        match known.get(&run.key) {
            // Closed already: the provider's end was taken when it closed.
            Some(Some(_)) => {}
            // Open, and still running: nothing to do.
            Some(None) if run.running => {}
            Some(None) => db.usage_close_run(project, &run.key, run.ended_at).await?,
            None => {
                // A run the hub never recorded: started by the provider's
                // own restart policy, or while the hub was down.
                let end = if lost { Some(run.started_at) } else { run.ended_at };
                db.usage_insert_run(project, &run.key, run.started_at, end).await?;
            }
        }
    }
    // Open records of runs the provider no longer lists end at their last tick.
    db.usage_close_unlisted(project, &keys).await?;
    Ok(())
}

/// A machine's state and, when stopped, since when (from `inventory`).
type Listing = (MachineState, Option<DateTime<Utc>>);

/// One audit: every project with an open record or an active status is
/// compared with the provider.
pub async fn audit(lc: &Lifecycle) -> anyhow::Result<()> {
    let mut projects: HashSet<Uuid> = lc.db.usage_open_projects().await?.into_iter().collect();
    projects.extend(lc.db.active_projects().await?.into_iter().map(|p| p.id));
    let mut inventory: Option<HashMap<Uuid, Listing>> = None;
    for project in projects {
        if let Some(runs) = lc.compute.runs(project).await? {
            sync(&lc.db, project, &runs).await?;
            continue;
        }
        if inventory.is_none() {
            let listed = lc.compute.inventory().await?;
            inventory = Some(listed.into_iter().map(|l| (l.project, (l.state, l.stopped_since))).collect());
        }
        let (state, stopped) =
            inventory.as_ref().and_then(|i| i.get(&project)).copied().unwrap_or((MachineState::Missing, None));
        if state == MachineState::Running {
            lc.db.usage_confirm(project).await?;
        } else {
            // When the provider says it stopped, or else at the last tick
            // (heartbeat or the provider's last "running").
            lc.db.usage_close_stopped(project, stopped).await?;
        }
    }
    Ok(())
}

/// Audits every `every` (`meter_interval`) until `shutdown`.
pub async fn run(lc: Arc<Lifecycle>, every: std::time::Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            result = audit(&lc) => {
                if let Err(e) = result {
                    tracing::warn!(error = format!("{e:#}"), "usage audit failed");
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
