//! The control plane's side of the tunnel: what it does when the data
//! plane reports a tunnel up or down, a VM's ports changing, or a
//! heartbeat (`tunnel::TunnelEvent`), and what the data plane and the jump
//! host ask of it (`tunnel::Wake`, `preview::Control`: starts, plan checks,
//! activity). Neither calls the control plane otherwise.

use crate::preview::Previews;
use crate::projects::Lifecycle;
use crate::ssh::Ssh;
use crate::tunnel::{Heartbeat, Observer, TunnelEvent, Wake};
use std::sync::{Arc, Weak};
use uuid::Uuid;

/// Hears the tunnel's events, and answers the data plane's and the jump
/// host's requests.
pub struct ControlPlane {
    lifecycle: Arc<Lifecycle>,
    previews: Arc<Previews>,
    /// Weak: the jump host holds this as its `Wake`.
    ssh: Weak<Ssh>,
}

impl ControlPlane {
    pub fn new(lifecycle: Arc<Lifecycle>, previews: Arc<Previews>, ssh: &Arc<Ssh>) -> Self {
        Self { lifecycle, previews, ssh: Arc::downgrade(ssh) }
    }
}

#[async_trait::async_trait]
impl Observer for ControlPlane {
    async fn on(&self, event: TunnelEvent) {
        let lc = &self.lifecycle;
        match event {
            TunnelEvent::Up { project, tunnel } => {
                crate::projects::on_tunnel_up(lc, project).await;
                if let Some(ssh) = self.ssh.upgrade() {
                    crate::ssh::sync::spawn(ssh, project, tunnel);
                }
            }
            TunnelEvent::Down { project } => {
                lc.events.publish(project, "ports", serde_json::json!([]));
                crate::projects::on_tunnel_down(lc, project).await;
            }
            TunnelEvent::Ports { project } => match crate::api::ports_json(&lc.db, &self.previews, project).await {
                Ok(v) => lc.events.publish(project, "ports", v),
                Err(e) => tracing::warn!(error = %e, "listing ports"),
            },
            TunnelEvent::Heartbeat { project, heartbeat } => record(lc, project, &heartbeat).await,
        }
    }
}

#[async_trait::async_trait]
impl Wake for ControlPlane {
    async fn start(&self, project: Uuid) -> anyhow::Result<()> {
        let lc = &self.lifecycle;
        let p = lc.db.project_any(project).await?.ok_or_else(|| anyhow::anyhow!("the project is gone"))?;
        crate::projects::start(lc, p, true).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl crate::preview::Control for ControlPlane {
    fn visited(&self, project: Uuid, port: u16, owner: bool) {
        self.lifecycle.activity.preview(project, port, owner);
    }

    async fn may_start(&self, owner: Uuid) -> crate::domain::Result<()> {
        crate::plans::may_start(&self.lifecycle.db, owner).await
    }

    async fn start(&self, project: crate::db::Project) -> crate::domain::Result<()> {
        crate::projects::start(&self.lifecycle, project, false).await.map(drop)
    }
}

/// A heartbeat: kept (bounded to the database's types), the usage record
/// ticked, and the VM's activity noted.
async fn record(lc: &Lifecycle, project: Uuid, hb: &Heartbeat) {
    let rec = crate::db::HeartbeatRecord {
        project_id: project,
        boot_id: &hb.boot_id,
        seq: i64::try_from(hb.seq).unwrap_or(i64::MAX),
        uptime_ms: i64::try_from(hb.uptime_ms).unwrap_or(i64::MAX),
        last_activity: hb.last_activity,
        terminal_sessions: i32::try_from(hb.terminal_sessions).unwrap_or(i32::MAX),
        ssh_sessions: i32::try_from(hb.ssh_sessions).unwrap_or(i32::MAX),
    };
    if let Err(e) = lc.db.record_heartbeat(&rec).await {
        tracing::warn!(error = %e, "recording heartbeat");
    }
    if let Err(e) = lc.db.usage_heartbeat(project, &hb.boot_id, rec.seq).await {
        tracing::warn!(error = %e, "ticking the usage record");
    }
    lc.activity.heartbeat(project, hb.ssh_sessions, hb.load_avg_centi);
}
