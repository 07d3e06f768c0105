//! Agents over SSH: their keys, the VM sshd's host keys, and agent sessions.

use super::Db;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// An agent's key as the API shows it (never the private half: it is not kept).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Agent {
    pub id: Uuid,
    #[serde(skip)]
    pub project_id: Uuid,
    pub name: String,
    pub public_key: String,
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

const AGENT_COLS: &str = "id, project_id, name, public_key, fingerprint, created_at, last_used_at, expires_at";
/// Neither revoked nor expired.
const AGENT_LIVE: &str = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())";

/// One agent SSH session, as the activity list shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AgentSession {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub agent_name: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub command: String,
    pub exit_code: Option<i32>,
    pub interactive: bool,
    pub session: Option<String>,
}

/// A session start or end as aetherd reported it.
#[derive(Debug, Clone)]
pub struct AgentSessionRecord<'a> {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub command: &'a str,
    pub interactive: bool,
    pub session: Option<&'a str>,
}

// Agents over SSH
impl Db {
    pub async fn create_agent(
        &self,
        project: Uuid,
        name: &str,
        public_key: &str,
        fingerprint: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> sqlx::Result<Agent> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO agents (id, project_id, name, public_key, fingerprint, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {AGENT_COLS}"
        )))
        .bind(Uuid::new_v4())
        .bind(project)
        .bind(name)
        .bind(public_key)
        .bind(fingerprint)
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await
    }

    pub async fn count_agents(&self, project: Uuid) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT count(*) FROM agents WHERE project_id = $1 AND revoked_at IS NULL")
            .bind(project)
            .fetch_one(&self.pool)
            .await
    }

    /// The project's agents that are not revoked (expired ones included), oldest first.
    pub async fn list_agents(&self, project: Uuid) -> sqlx::Result<Vec<Agent>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {AGENT_COLS} FROM agents WHERE project_id = $1 AND revoked_at IS NULL ORDER BY created_at, id"
        )))
        .bind(project)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn agent(&self, project: Uuid, id: Uuid) -> sqlx::Result<Option<Agent>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {AGENT_COLS} FROM agents WHERE id = $1 AND project_id = $2 AND revoked_at IS NULL"
        )))
        .bind(id)
        .bind(project)
        .fetch_optional(&self.pool)
        .await
    }

    /// Revokes an agent; `None` if it was not there (or already revoked).
    pub async fn revoke_agent(&self, project: Uuid, id: Uuid) -> sqlx::Result<Option<Agent>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE agents SET revoked_at = now() WHERE id = $1 AND project_id = $2 AND revoked_at IS NULL \
             RETURNING {AGENT_COLS}"
        )))
        .bind(id)
        .bind(project)
        .fetch_optional(&self.pool)
        .await
    }

    /// The keys that grant access to the project now.
    pub async fn live_agents(&self, project: Uuid) -> sqlx::Result<Vec<Agent>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {AGENT_COLS} FROM agents WHERE project_id = $1 AND {AGENT_LIVE} ORDER BY created_at, id"
        )))
        .bind(project)
        .fetch_all(&self.pool)
        .await
    }

    /// Every live agent (of any project) with this key.
    pub async fn live_agents_by_fingerprint(&self, fingerprint: &str) -> sqlx::Result<Vec<Agent>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {AGENT_COLS} FROM agents WHERE fingerprint = $1 AND {AGENT_LIVE} LIMIT 256"
        )))
        .bind(fingerprint)
        .fetch_all(&self.pool)
        .await
    }

    /// Whether the agent still grants access (not revoked, not expired).
    pub async fn agent_is_live(&self, id: Uuid) -> sqlx::Result<bool> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM agents WHERE id = $1 AND {AGENT_LIVE})"
        )))
        .bind(id)
        .fetch_one(&self.pool)
        .await
    }

    pub async fn touch_agent(&self, id: Uuid) -> sqlx::Result<()> {
        sqlx::query("UPDATE agents SET last_used_at = now() WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Stores the VM's sshd host keys (one `type base64` per line) and login user.
    pub async fn set_vm_ssh(&self, project: Uuid, host_keys: &str, login_user: &str) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO vm_ssh (project_id, host_keys, login_user) VALUES ($1, $2, $3) \
             ON CONFLICT (project_id) DO UPDATE SET host_keys = $2, login_user = $3, updated_at = now()",
        )
        .bind(project)
        .bind(host_keys)
        .bind(login_user)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The VM's sshd as last reported: (host keys, login user).
    pub async fn vm_ssh(&self, project: Uuid) -> sqlx::Result<Option<(String, String)>> {
        sqlx::query_as("SELECT host_keys, login_user FROM vm_ssh WHERE project_id = $1")
            .bind(project)
            .fetch_optional(&self.pool)
            .await
    }

    /// Records a session's start or end (idempotent by id); `None` when the
    /// agent is not the project's.
    pub async fn record_agent_session(
        &self,
        project: Uuid,
        r: &AgentSessionRecord<'_>,
    ) -> sqlx::Result<Option<AgentSession>> {
        sqlx::query_as(
            "WITH up AS ( \
               INSERT INTO agent_sessions \
                 (id, project_id, agent_id, command, interactive, session, started_at, ended_at, exit_code) \
               SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
               WHERE EXISTS (SELECT 1 FROM agents WHERE id = $3 AND project_id = $2) \
               ON CONFLICT (id) DO UPDATE SET \
                 ended_at = coalesce(EXCLUDED.ended_at, agent_sessions.ended_at), \
                 exit_code = coalesce(EXCLUDED.exit_code, agent_sessions.exit_code) \
               WHERE agent_sessions.project_id = EXCLUDED.project_id \
               RETURNING id, agent_id, started_at, ended_at, command, exit_code, interactive, session) \
             SELECT up.id, up.agent_id, a.name AS agent_name, up.started_at, up.ended_at, up.command, \
                    up.exit_code, up.interactive, up.session \
             FROM up JOIN agents a ON a.id = up.agent_id",
        )
        .bind(r.id)
        .bind(project)
        .bind(r.agent_id)
        .bind(r.command)
        .bind(r.interactive)
        .bind(r.session)
        .bind(r.started_at)
        .bind(r.ended_at)
        .bind(r.exit_code)
        .fetch_optional(&self.pool)
        .await
    }

    /// The project's latest agent sessions, newest first.
    pub async fn agent_activity(&self, project: Uuid, limit: i64) -> sqlx::Result<Vec<AgentSession>> {
        sqlx::query_as(
            "SELECT s.id, s.agent_id, a.name AS agent_name, s.started_at, s.ended_at, s.command, s.exit_code, \
                    s.interactive, s.session \
             FROM agent_sessions s JOIN agents a ON a.id = s.agent_id \
             WHERE s.project_id = $1 ORDER BY s.started_at DESC, s.id LIMIT $2",
        )
        .bind(project)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }
}
