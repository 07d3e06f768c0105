//! Tunnels and heartbeats: which hub holds each VM's tunnel, and what
//! aetherd last reported.

use super::{Db, HeartbeatRecord};
use uuid::Uuid;

impl Db {
    pub async fn tunnel_connected(&self, project: Uuid, hub_instance: &str, boot_id: &str) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO tunnels (project_id, hub_instance, boot_id) VALUES ($1, $2, $3) \
             ON CONFLICT (project_id) DO UPDATE SET hub_instance = $2, boot_id = $3, connected_at = now()",
        )
        .bind(project)
        .bind(hub_instance)
        .bind(boot_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn tunnel_disconnected(&self, project: Uuid, hub_instance: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM tunnels WHERE project_id = $1 AND hub_instance = $2")
            .bind(project)
            .bind(hub_instance)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a heartbeat: replaying the same (boot, seq), or an older one,
    /// changes nothing but the time the boot was last seen (the hub's clock,
    /// so a VM's sequence numbers can't stop its usage from growing).
    pub async fn record_heartbeat(&self, hb: &HeartbeatRecord<'_>) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO vm_boots \
               (project_id, owner_id, boot_id, last_seq, uptime_ms, last_activity_at, terminal_sessions, ssh_sessions) \
             SELECT $1, owner_id, $2, $3, $4, $5, $6, $7 FROM projects WHERE id = $1 \
             ON CONFLICT (project_id, boot_id) DO UPDATE SET last_seen_at = now(), \
               last_seq = GREATEST(vm_boots.last_seq, EXCLUDED.last_seq), \
               uptime_ms = CASE WHEN EXCLUDED.last_seq > vm_boots.last_seq \
                 THEN EXCLUDED.uptime_ms ELSE vm_boots.uptime_ms END, \
               last_activity_at = CASE WHEN EXCLUDED.last_seq > vm_boots.last_seq \
                 THEN EXCLUDED.last_activity_at ELSE vm_boots.last_activity_at END, \
               terminal_sessions = CASE WHEN EXCLUDED.last_seq > vm_boots.last_seq \
                 THEN EXCLUDED.terminal_sessions ELSE vm_boots.terminal_sessions END, \
               ssh_sessions = CASE WHEN EXCLUDED.last_seq > vm_boots.last_seq \
                 THEN EXCLUDED.ssh_sessions ELSE vm_boots.ssh_sessions END, \
               heartbeats = vm_boots.heartbeats + (EXCLUDED.last_seq > vm_boots.last_seq)::int",
        )
        .bind(hb.project_id)
        .bind(hb.boot_id)
        .bind(hb.seq)
        .bind(hb.uptime_ms)
        .bind(hb.last_activity)
        .bind(hb.terminal_sessions)
        .bind(hb.ssh_sessions)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE projects SET last_heartbeat_at = now() WHERE id = $1")
            .bind(hb.project_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}
