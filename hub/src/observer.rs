//! The control plane's side of the tunnel: what it does when the data
//! plane reports a tunnel up or down, a VM's ports changing, or a
//! heartbeat (`tunnel::TunnelEvent`), and what the data plane and the jump
//! host ask of it (`tunnel::Wake`, `preview::Control`: starts, plan checks,
//! activity). Neither calls the control plane otherwise.

use crate::Hub;
use crate::tunnel::{Heartbeat, Observer, TunnelEvent, Wake};
use std::sync::{Arc, Weak};
use uuid::Uuid;

/// Hears the tunnel's events for the hub it belongs to.
pub struct ControlPlane {
    /// Weak: the hub owns the endpoint that owns this.
    hub: Weak<Hub>,
}

impl ControlPlane {
    pub fn new(hub: &Arc<Hub>) -> Self {
        Self { hub: Arc::downgrade(hub) }
    }
}

#[async_trait::async_trait]
impl Observer for ControlPlane {
    async fn on(&self, event: TunnelEvent) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        match event {
            TunnelEvent::Up { project, tunnel } => {
                crate::projects::on_tunnel_up(&hub.lifecycle, project).await;
                crate::ssh::sync::spawn(hub.ssh.clone(), project, tunnel);
            }
            TunnelEvent::Down { project } => {
                hub.events.publish(project, "ports", serde_json::json!([]));
                crate::projects::on_tunnel_down(&hub.lifecycle, project).await;
            }
            TunnelEvent::Ports { project } => match crate::api::ports_json(&hub.db, &hub.previews, project).await {
                Ok(v) => hub.events.publish(project, "ports", v),
                Err(e) => tracing::warn!(error = %e, "listing ports"),
            },
            TunnelEvent::Heartbeat { project, heartbeat } => record(&hub, project, &heartbeat).await,
        }
    }
}

#[async_trait::async_trait]
impl Wake for ControlPlane {
    async fn start(&self, project: Uuid) -> anyhow::Result<()> {
        let hub = self.hub.upgrade().ok_or_else(|| anyhow::anyhow!("the hub is stopping"))?;
        let p = hub.db.project_any(project).await?.ok_or_else(|| anyhow::anyhow!("the project is gone"))?;
        crate::projects::start(&hub.lifecycle, p, true).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl crate::preview::Control for ControlPlane {
    fn visited(&self, project: Uuid, port: u16, owner: bool) {
        if let Some(hub) = self.hub.upgrade() {
            hub.activity.preview(project, port, owner);
        }
    }

    async fn may_start(&self, owner: Uuid) -> crate::domain::Result<()> {
        let hub = self.hub.upgrade().ok_or_else(|| anyhow::anyhow!("the hub is stopping"))?;
        crate::plans::may_start(&hub.db, owner).await
    }

    async fn start(&self, project: crate::db::Project) -> crate::domain::Result<()> {
        let hub = self.hub.upgrade().ok_or_else(|| anyhow::anyhow!("the hub is stopping"))?;
        crate::projects::start(&hub.lifecycle, project, false).await.map(drop)
    }
}

/// A heartbeat: kept (bounded to the database's types), the usage record
/// ticked, and the VM's activity noted.
async fn record(hub: &Hub, project: Uuid, hb: &Heartbeat) {
    let rec = crate::db::HeartbeatRecord {
        project_id: project,
        boot_id: &hb.boot_id,
        seq: i64::try_from(hb.seq).unwrap_or(i64::MAX),
        uptime_ms: i64::try_from(hb.uptime_ms).unwrap_or(i64::MAX),
        last_activity: hb.last_activity,
        terminal_sessions: i32::try_from(hb.terminal_sessions).unwrap_or(i32::MAX),
        ssh_sessions: i32::try_from(hb.ssh_sessions).unwrap_or(i32::MAX),
    };
    if let Err(e) = hub.db.record_heartbeat(&rec).await {
        tracing::warn!(error = %e, "recording heartbeat");
    }
    if let Err(e) = hub.db.usage_heartbeat(project, &hb.boot_id, rec.seq).await {
        tracing::warn!(error = %e, "ticking the usage record");
    }
    hub.activity.heartbeat(project, hb.ssh_sessions, hb.load_avg_centi);
}
