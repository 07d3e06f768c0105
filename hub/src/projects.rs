//! A project's VM life cycle: start, stop, delete, and keeping the status in
//! the database true to what the compute provider and the tunnels say.
//!
//! Status moves `stopped → starting → running → stopping → stopped`, or to
//! `error` with a message. `running` is set only when the VM's tunnel is up.

use crate::auth::{random_token, sha256};
use crate::compute::{Compute, MachineState, StartSpec};
use crate::db::{Db, Project};
use crate::domain::{Error, Result};
use crate::events::Events;
use crate::idle::Activity;
use crate::tunnel::Tunnels;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// What a project's life cycle reaches: its row, its machine, its tunnel,
/// its event stream and what keeps it awake. The API's project routes, the
/// idle sweep, billing and the tunnel's observer all drive VMs through one
/// of these, shared.
pub struct Lifecycle {
    pub db: Db,
    pub compute: Arc<dyn Compute>,
    pub tunnels: Arc<Tunnels>,
    pub events: Arc<Events>,
    pub activity: Arc<Activity>,
    /// How long a `wait`ing start waits for the VM's tunnel.
    pub wait_timeout: Duration,
    /// How long a running VM's tunnel may stay away before it is restarted.
    pub revive_after: Duration,
    /// How many projects an unverified account may run at once (negative:
    /// no limit).
    pub unverified_projects: i64,
    locks: StartLocks,
}

impl Lifecycle {
    pub fn new(
        db: Db,
        compute: Arc<dyn Compute>,
        tunnels: Arc<Tunnels>,
        events: Arc<Events>,
        activity: Arc<Activity>,
        config: &crate::config::Config,
    ) -> Self {
        Self {
            db,
            compute,
            tunnels,
            events,
            activity,
            wait_timeout: config.wait_timeout,
            revive_after: config.revive_after,
            unverified_projects: config.accounts.unverified_projects,
            locks: StartLocks::default(),
        }
    }
}

/// Publishes a project's new state to its event stream.
pub fn publish(hub: &Lifecycle, project: &Project) {
    // As the API shows it, so the event and `GET …/{id}` agree.
    let shown = crate::api::model::Project::try_from(project.clone())
        .map_err(|e| e.to_string())
        .and_then(|p| serde_json::to_value(p).map_err(|e| e.to_string()));
    match shown {
        Ok(v) => hub.events.publish(project.id, "status", v),
        Err(e) => tracing::warn!(error = %e, "publishing a project's status"),
    }
}

async fn set_status(hub: &Lifecycle, id: Uuid, status: &str, error: Option<&str>) -> anyhow::Result<Option<Project>> {
    let p = hub.db.set_status(id, status, error).await?;
    if let Some(p) = &p {
        publish(hub, p);
    }
    Ok(p)
}

/// One lock per project, so that two starts racing (a click and a preview
/// request, say) boot one VM, not two.
#[derive(Default)]
struct StartLocks(std::sync::Mutex<std::collections::HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>);

impl StartLocks {
    fn get(&self, id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        self.0.lock().expect("start locks").entry(id).or_default().clone()
    }
}

/// Starts the project's VM; with `wait`, returns once its tunnel is up.
/// `LimitReached` if its owner has used up the month's compute.
pub async fn start(hub: &Arc<Lifecycle>, project: Project, wait: bool) -> Result<Project> {
    let id = project.id;
    let lock = hub.locks.get(id);
    let guard = lock.lock().await;
    // Re-read: a start that held the lock may have changed everything.
    let project = hub.db.project_any(id).await?.ok_or(Error::NotFound)?;
    let stopping = || Error::Conflict("the project is stopping; start it again when it has stopped".into());
    if project.status == "stopping" {
        return Err(stopping());
    }
    let booted = hub.compute.status(id).await? == MachineState::Running;
    if !booted {
        crate::plans::may_start(&hub.db, project.owner_id).await?;
        crate::accounts::may_start(&hub.db, hub.unverified_projects, project.owner_id, id).await?;
        // Only from a status a stop hasn't taken over meanwhile.
        let starting = hub.db.transition(id, &["stopped", "error", "starting", "running"], "starting").await?;
        publish(hub, starting.as_ref().ok_or_else(stopping)?);
        if let Err(e) = boot(hub, &project).await {
            let msg = format!("could not start the VM: {e:#}");
            set_status(hub, id, "error", Some(&msg)).await?;
            if crate::compute::is_unavailable(&e) {
                // The caller gets the reason the project shows, as the
                // contract's 503, not an internal error.
                tracing::warn!(project = %id, "{msg}");
                return Err(Error::Unavailable(msg));
            }
            return Err(Error::Internal(e.context("starting vm")));
        }
    } else if hub.tunnels.get(id).is_none() && project.status != "starting" {
        let starting = hub.db.transition(id, &["stopped", "error", "running"], "starting").await?;
        publish(hub, starting.as_ref().ok_or_else(stopping)?);
    }
    if hub.tunnels.get(id).is_some() {
        on_tunnel_up(hub, id).await;
    }
    hub.db.touch_project(id).await?;
    drop(guard);
    if wait {
        if hub.tunnels.wait_for(id, hub.wait_timeout).await.is_none() {
            return Err(Error::Timeout("the VM did not come up in time".into()));
        }
        on_tunnel_up(hub, id).await;
    }
    hub.db.project_any(id).await?.ok_or(Error::NotFound)
}

/// Boots the project's machine with a new machine token.
async fn boot(hub: &Lifecycle, project: &Project) -> anyhow::Result<()> {
    let id = project.id;
    let token = random_token(32);
    hub.db.set_machine(id, &sha256(token.as_bytes()), None).await?;
    let env = project.env_vars.as_object().into_iter().flatten();
    let env = env.filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect();
    let limits = crate::plans::of_user(&hub.db, project.owner_id).await?.vm();
    let began = chrono::Utc::now();
    hub.compute.start(&StartSpec { project_id: id, machine_token: token, env, limits }).await?;
    if let Err(e) = crate::usage::started(&hub.db, hub.compute.as_ref(), id, began).await {
        // The audit opens it from the provider's view.
        tracing::warn!(project = %id, error = format!("{e:#}"), "opening the VM's usage record");
    }
    hub.activity.woke(id);
    let size_gb = i32::try_from(hub.compute.volume_gb()).unwrap_or(i32::MAX);
    if size_gb > 0
        && let Err(e) = hub.db.storage_open(id, size_gb, began).await
    {
        tracing::warn!(project = %id, error = %e, "opening the disk's storage record");
    }
    if let Some((machine, volume)) = hub.compute.placement(id) {
        hub.db.set_compute_ids(id, Some(&machine), volume.as_deref()).await?;
    }
    Ok(())
}

/// Watches a VM the provider says runs but whose tunnel is gone: if no
/// tunnel comes back within `revive_after` (its aetherd was killed, is
/// frozen or hangs), the machine is restarted. The project stays active
/// meanwhile: the machine runs, and the hub knows it.
fn revive_if_silent(hub: &Arc<Lifecycle>, id: Uuid) {
    let hub = hub.clone();
    tokio::spawn(async move {
        if hub.tunnels.wait_for(id, hub.revive_after).await.is_some() {
            return;
        }
        if let Err(e) = revive(&hub, id).await {
            tracing::warn!(project = %id, error = format!("{e:#}"), "restarting a silent VM");
            let _ = set_status(&hub, id, "error", Some(&format!("could not restart the VM: {e:#}"))).await;
        }
    });
}

async fn revive(hub: &Arc<Lifecycle>, id: Uuid) -> anyhow::Result<()> {
    let lock = hub.locks.get(id);
    let _guard = lock.lock().await;
    let Some(project) = hub.db.project_any(id).await? else { return Ok(()) };
    let active = matches!(project.status.as_str(), "running" | "starting");
    if !active || hub.tunnels.get(id).is_some() || hub.compute.status(id).await? != MachineState::Running {
        return Ok(());
    }
    tracing::warn!(project = %id, "the VM runs but its aetherd has been silent; restarting the VM");
    if let Some(p) = hub.db.transition(id, &["running"], "starting").await? {
        publish(hub, &p);
    }
    hub.compute.stop(id).await?;
    metered_stop(hub, id).await;
    boot(hub, &project).await
}

/// The provider stopped the machine: its usage record closes.
async fn metered_stop(hub: &Lifecycle, id: Uuid) {
    if let Err(e) = crate::usage::stopped(&hub.db, hub.compute.as_ref(), id, chrono::Utc::now()).await {
        tracing::warn!(project = %id, error = format!("{e:#}"), "closing the VM's usage record");
    }
}

/// Stops the project's VM; with `wait`, returns once it has stopped.
pub async fn stop(hub: &Arc<Lifecycle>, project: Project, wait: bool) -> Result<Project> {
    stop_because(hub, project, wait, None).await
}

/// `stop`, leaving `reason` on the stopped project (`error_message`) when
/// the hub stopped it rather than its user, with its code (`stop_reason`).
pub async fn stop_because(
    hub: &Arc<Lifecycle>,
    project: Project,
    wait: bool,
    reason: Option<String>,
) -> Result<Project> {
    let code = reason.as_deref().map(|r| match r {
        crate::plans::STOPPED_AT_LIMIT => "compute_limit",
        crate::billing::STOPPED_GRACE_ENDED => "payment",
        _ => "hub",
    });
    stop_for(hub, project, wait, reason.map(|r| (code.unwrap_or("hub"), r))).await
}

/// `stop`, keeping `(code, message)` on the project when the hub stopped
/// it by itself: the code as `stop_reason` (with `stopped_at`), the
/// message as `error_message`.
pub async fn stop_for(
    hub: &Arc<Lifecycle>,
    project: Project,
    wait: bool,
    reason: Option<(&'static str, String)>,
) -> Result<Project> {
    let id = project.id;
    let Some(stopping) = hub.db.transition(id, &["starting", "running", "error"], "stopping").await? else {
        return Ok(project);
    };
    publish(hub, &stopping);
    let task = {
        let hub = hub.clone();
        tokio::spawn(async move { finish_stop(&hub, id, reason.as_ref().map(|(c, m)| (*c, m.as_str()))).await })
    };
    if wait {
        task.await.map_err(|e| anyhow::anyhow!(e))??;
        return hub.db.project_any(id).await?.ok_or(Error::NotFound);
    }
    Ok(stopping)
}

async fn finish_stop(hub: &Lifecycle, id: Uuid, reason: Option<(&str, &str)>) -> anyhow::Result<()> {
    // After a start under way, so the provider isn't told to stop a machine
    // it is still starting (a start that comes after the stop finds
    // `stopping` and yields).
    let lock = hub.locks.get(id);
    let _started = lock.lock().await;
    // A stopped VM's token is void, so a straggler can't reconnect.
    hub.db.set_machine(id, &[], None).await?;
    let result = hub.compute.stop(id).await;
    if result.is_ok() {
        metered_stop(hub, id).await;
    }
    hub.tunnels.close(id, "stopped");
    match &result {
        Ok(()) => match reason {
            Some((code, message)) => {
                let p = hub.db.set_stopped_because(id, message, code).await?;
                if let Some(p) = &p {
                    publish(hub, p);
                }
                p
            }
            None => set_status(hub, id, "stopped", None).await?,
        },
        Err(e) => set_status(hub, id, "error", Some(&format!("could not stop the VM: {e:#}"))).await?,
    };
    result
}

/// Destroys the VM and its disk, then the project.
pub async fn delete(hub: &Lifecycle, project: Project) -> Result<()> {
    hub.db.set_machine(project.id, &[], None).await?;
    hub.compute.destroy(project.id).await?;
    if let Err(e) = hub.db.usage_close(project.id, Some(chrono::Utc::now())).await {
        tracing::warn!(project = %project.id, error = %e, "closing a deleted project's usage record");
    }
    if let Err(e) = hub.db.storage_close(project.id, chrono::Utc::now()).await {
        tracing::warn!(project = %project.id, error = %e, "closing a deleted project's storage record");
    }
    hub.tunnels.close(project.id, "deleted");
    hub.db.delete_project(project.id).await?;
    hub.events.publish(project.id, "deleted", serde_json::json!({ "id": project.id }));
    Ok(())
}

/// A VM's tunnel came up: the project is running.
pub async fn on_tunnel_up(hub: &Lifecycle, id: Uuid) {
    match hub.db.transition(id, &["starting", "stopped", "error"], "running").await {
        Ok(Some(p)) => publish(hub, &p),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "marking project running"),
    }
}

/// A VM's tunnel went away and no newer one replaced it.
pub async fn on_tunnel_down(hub: &Arc<Lifecycle>, id: Uuid) {
    match hub.compute.status(id).await {
        // It will reconnect, or be restarted.
        Ok(MachineState::Running) => revive_if_silent(hub, id),
        Ok(_) => match hub.db.project_any(id).await {
            Ok(Some(p)) if matches!(p.status.as_str(), "running" | "starting") => {
                if let Err(e) = set_status(hub, id, "error", Some("the VM stopped unexpectedly")).await {
                    tracing::warn!(error = %e, "marking project failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading project after tunnel loss"),
        },
        Err(e) => tracing::warn!(error = format!("{e:#}"), "checking vm after tunnel loss"),
    }
}

/// At start: align each active project's status with its machine.
pub async fn reconcile(hub: &Arc<Lifecycle>) -> anyhow::Result<()> {
    for p in hub.db.active_projects().await? {
        let state = hub.compute.status(p.id).await?;
        match (p.status.as_str(), state) {
            ("stopping", _) => {
                let hub = hub.clone();
                tokio::spawn(async move { finish_stop(&hub, p.id, None).await });
            }
            (_, MachineState::Running) => {
                if hub.tunnels.get(p.id).is_none() {
                    set_status(hub, p.id, "starting", None).await?;
                    revive_if_silent(hub, p.id);
                }
            }
            (_, _) => {
                set_status(hub, p.id, "stopped", None).await?;
            }
        }
    }
    Ok(())
}
