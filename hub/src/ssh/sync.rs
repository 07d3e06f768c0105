//! The agents stream, hub side: one per tunnel, opened as soon as the tunnel
//! is up and kept open while it lasts.
//!
//! It sends the project's live keys at once and again at every change (a
//! key added, revoked, expired by the clock is handled in the VM), records
//! when the VM has applied them (the jump host waits for that before it
//! opens a channel), stores the VM sshd's host keys for known_hosts lines,
//! and records agent sessions as aetherd reports them, publishing each
//! start and end as an `agent_session` event.

use super::Ssh;
use crate::db::AgentSessionRecord;
use crate::tunnel::Tunnel;
use aether_protocol::agents::{AgentName, AgentsHub, AgentsVm, AuthorizedKey, KeyLine, SetAuthorizedKeys};
use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;
use tracing::Instrument;
use uuid::Uuid;

/// Largest frame aetherd may send on the agents stream.
const MAX_FRAME: usize = 64 * 1024;

/// Starts the agents stream of a tunnel that just came up.
pub fn spawn(ssh: Arc<Ssh>, project: Uuid, tunnel: Tunnel) {
    let span = tracing::info_span!("agents", %project);
    tokio::spawn(
        async move {
            let conn = tunnel.conn.stable_id();
            if let Err(e) = run(&ssh, project, &tunnel).await {
                tracing::info!(error = format!("{e:#}"), "agents stream ended");
            }
            ssh.clear_applied(project, conn);
        }
        .instrument(span),
    );
}

/// The project's live keys as aetherd needs them.
async fn key_set(ssh: &Ssh, project: Uuid, generation: u64) -> anyhow::Result<SetAuthorizedKeys> {
    let mut keys = Vec::new();
    for a in ssh.db.live_agents(project).await? {
        let name = AgentName::parse(&a.name).map_err(|e| anyhow::anyhow!("stored agent {}: {e}", a.id))?;
        let key = KeyLine::parse(&a.public_key).map_err(|e| anyhow::anyhow!("stored agent {}: {e}", a.id))?;
        keys.push(AuthorizedKey {
            agent_id: a.id.to_string(),
            name,
            key,
            expires_unix_ms: a.expires_at.map(|e| e.timestamp_millis()),
        });
    }
    Ok(SetAuthorizedKeys { generation, keys })
}

async fn run(ssh: &Arc<Ssh>, project: Uuid, tunnel: &Tunnel) -> anyhow::Result<()> {
    let conn = tunnel.conn.stable_id();
    let mut changes = ssh.subscribe(project);
    let (mut rx, mut tx) = tunnel.agents(MAX_FRAME).await?;
    loop {
        // What changes is marked seen before the keys are read, so a change
        // during the read is sent again.
        let generation = *changes.borrow_and_update();
        let set = key_set(ssh, project, generation).await?;
        tx.send(AgentsHub::SetAuthorizedKeys(set)).await?;
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    changed?;
                    break;
                }
                frame = rx.next() => match frame {
                    None => return Ok(()),
                    Some(msg) => handle(ssh, project, conn, msg?).await,
                },
                _ = tunnel.conn.closed() => return Ok(()),
            }
        }
    }
}

fn time(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

async fn handle(ssh: &Ssh, project: Uuid, conn: usize, msg: AgentsVm) {
    match msg {
        AgentsVm::KeysApplied { generation, error: None } => ssh.set_applied(project, conn, generation),
        AgentsVm::KeysApplied { generation, error: Some(e) } => {
            tracing::error!(generation, error = %e, "the VM could not write its agent keys");
        }
        AgentsVm::SshInfo { host_keys, user } => {
            let keys: Vec<_> = host_keys.iter().map(KeyLine::as_str).collect();
            match ssh.db.set_vm_ssh(project, &keys.join("\n"), &user).await {
                Ok(()) => ssh.host_keys_reported(project),
                Err(e) => tracing::warn!(error = %e, "storing the VM's ssh host keys"),
            }
        }
        AgentsVm::Session(s) => {
            let (Ok(id), Ok(agent_id), Some(started_at)) =
                (s.id.parse::<Uuid>(), s.agent_id.parse::<Uuid>(), time(s.started_unix_ms))
            else {
                tracing::warn!(session = %s.id, "dropping a malformed agent session record");
                return;
            };
            let record = AgentSessionRecord {
                id,
                agent_id,
                started_at,
                ended_at: s.ended_unix_ms.and_then(time),
                exit_code: s.exit_code,
                command: &s.command,
                interactive: s.interactive,
                session: s.session.as_ref().map(|n| n.as_str()),
            };
            match ssh.db.record_agent_session(project, &record).await {
                Ok(Some(row)) => ssh.events.publish(project, "agent_session", session_event(&row)),
                Ok(None) => tracing::warn!(%agent_id, "a session record for an agent not of this project"),
                Err(e) => tracing::warn!(error = %e, "recording an agent session"),
            }
        }
    }
}

/// A session start or end as the `agent_session` event carries it: the
/// session's row and `event` (`start` or `end`); the API sends it on as an
/// `AgentSessionMessage`.
pub fn session_event(row: &crate::db::AgentSession) -> serde_json::Value {
    let mut data = serde_json::to_value(row).unwrap_or_default();
    data["event"] = serde_json::json!(if row.ended_at.is_some() { "end" } else { "start" });
    data
}
