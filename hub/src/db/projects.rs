//! Projects: their rows, statuses, machine tokens, and the compute state
//! reconciliation compares with the provider's.

use super::{Db, PROJECT_COLS, Project};
use chrono::{DateTime, Utc};
use uuid::Uuid;

impl Db {
    // Projects

    /// The owner's projects that have a disk (volume) of their own.
    pub async fn count_volumes(&self, owner: Uuid) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT count(*) FROM projects WHERE owner_id = $1 AND volume_id IS NOT NULL")
            .bind(owner)
            .fetch_one(&self.pool)
            .await
    }

    pub async fn count_projects(&self, owner: Uuid) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT count(*) FROM projects WHERE owner_id = $1").bind(owner).fetch_one(&self.pool).await
    }

    pub async fn create_project(
        &self,
        owner: Uuid,
        name: &str,
        description: &str,
        base_image: &str,
        env_vars: &serde_json::Value,
    ) -> sqlx::Result<Project> {
        let id = Uuid::new_v4();
        let project = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO projects (id, owner_id, name, description, base_image, env_sealed) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {PROJECT_COLS}"
        )))
        .bind(id)
        .bind(owner)
        .bind(name)
        .bind(description)
        .bind(base_image)
        .bind(self.seal_env(id, env_vars)?)
        .fetch_one(&self.pool)
        .await?;
        self.opened(project)
    }

    pub async fn list_projects(&self, owner: Uuid) -> sqlx::Result<Vec<Project>> {
        let found = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PROJECT_COLS} FROM projects WHERE owner_id = $1 ORDER BY created_at DESC, id"
        )))
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        self.opened_all(found)
    }

    /// The project if `owner` owns it.
    pub async fn project(&self, owner: Uuid, id: Uuid) -> sqlx::Result<Option<Project>> {
        let found = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PROJECT_COLS} FROM projects WHERE id = $1 AND owner_id = $2"
        )))
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        self.opened_one(found)
    }

    /// The project whoever owns it (internal use: tunnels, reconciliation).
    pub async fn project_any(&self, id: Uuid) -> sqlx::Result<Option<Project>> {
        let found = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {PROJECT_COLS} FROM projects WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        self.opened_one(found)
    }

    pub async fn update_project(
        &self,
        owner: Uuid,
        id: Uuid,
        name: Option<&str>,
        description: Option<&str>,
        env_vars: Option<&serde_json::Value>,
    ) -> sqlx::Result<Option<Project>> {
        let project = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE projects SET name = coalesce($3, name), description = coalesce($4, description), \
             env_sealed = coalesce($5, env_sealed), updated_at = now() \
             WHERE id = $1 AND owner_id = $2 RETURNING {PROJECT_COLS}"
        )))
        .bind(id)
        .bind(owner)
        .bind(name)
        .bind(description)
        .bind(env_vars.map(|e| self.seal_env(id, e)).transpose()?)
        .fetch_optional(&self.pool)
        .await?;
        self.opened_one(project)
    }

    pub async fn delete_project(&self, id: Uuid) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM projects WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Sets the status (and error message); returns the updated project.
    pub async fn set_status(&self, id: Uuid, status: &str, error: Option<&str>) -> sqlx::Result<Option<Project>> {
        let found = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE projects SET status = $2, error_message = $3, updated_at = now() WHERE id = $1 RETURNING {PROJECT_COLS}"
        )))
        .bind(id)
        .bind(status)
        .bind(error)
        .fetch_optional(&self.pool)
        .await?;
        self.opened_one(found)
    }

    /// Moves `from` → `to` only if the status is still `from`.
    pub async fn transition(&self, id: Uuid, from: &[&str], to: &str) -> sqlx::Result<Option<Project>> {
        let from: Vec<String> = from.iter().map(|s| s.to_string()).collect();
        let found = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE projects SET status = $3, error_message = NULL, updated_at = now(), \
               stop_reason = CASE WHEN $3 IN ('starting', 'running') THEN NULL ELSE stop_reason END, \
               stopped_at = CASE WHEN $3 IN ('starting', 'running') THEN NULL ELSE stopped_at END \
             WHERE id = $1 AND status = ANY($2) RETURNING {PROJECT_COLS}"
        )))
        .bind(id)
        .bind(&from)
        .bind(to)
        .fetch_optional(&self.pool)
        .await?;
        self.opened_one(found)
    }

    /// Marks the project stopped by the hub itself, in one step: the
    /// message (`error_message`), why (`stop_reason`) and when (`stopped_at`).
    pub async fn set_stopped_because(&self, id: Uuid, message: &str, reason: &str) -> sqlx::Result<Option<Project>> {
        let found = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE projects SET status = 'stopped', error_message = $2, stop_reason = $3, stopped_at = now(), \
               updated_at = now() WHERE id = $1 RETURNING {PROJECT_COLS}"
        )))
        .bind(id)
        .bind(message)
        .bind(reason)
        .fetch_optional(&self.pool)
        .await?;
        self.opened_one(found)
    }

    pub async fn touch_project(&self, id: Uuid) -> sqlx::Result<()> {
        sqlx::query("UPDATE projects SET last_accessed_at = now() WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn set_machine(&self, id: Uuid, token_hash: &[u8], machine_id: Option<&str>) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE projects SET machine_token_hash = $2, tunnel_key_hash = NULL, \
             machine_id = coalesce($3, machine_id) WHERE id = $1",
        )
        .bind(id)
        .bind(token_hash)
        .bind(machine_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn machine_token_hash(&self, id: Uuid) -> sqlx::Result<Option<Vec<u8>>> {
        let row: Option<(Option<Vec<u8>>,)> = sqlx::query_as("SELECT machine_token_hash FROM projects WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|r| r.0))
    }

    /// Binds the project's machine token to a tunnel key: true when the key
    /// is (now) the bound one. A token bound to another key is rebound only
    /// with `rebind` (its aetherd is no longer connected).
    pub async fn bind_tunnel_key(&self, id: Uuid, key_hash: &[u8], rebind: bool) -> sqlx::Result<bool> {
        let row = sqlx::query(
            "UPDATE projects SET tunnel_key_hash = $2 WHERE id = $1 \
             AND (tunnel_key_hash IS NULL OR tunnel_key_hash = $2 OR $3) RETURNING id",
        )
        .bind(id)
        .bind(key_hash)
        .bind(rebind)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Whether anyone has an account.
    pub async fn has_users(&self) -> sqlx::Result<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users)").fetch_one(&self.pool).await
    }

    /// Projects the hub believes have (or are getting) a VM.
    pub async fn active_projects(&self) -> sqlx::Result<Vec<Project>> {
        let found = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PROJECT_COLS} FROM projects WHERE status IN ('starting', 'running', 'stopping')"
        )))
        .fetch_all(&self.pool)
        .await?;
        self.opened_all(found)
    }
}

/// A project's compute state, as reconciliation compares it with the provider's.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ComputeRow {
    pub id: Uuid,
    pub status: String,
    pub updated_at: DateTime<Utc>,
    pub machine_id: Option<String>,
    pub volume_id: Option<String>,
}

impl Db {
    // Compute reconciliation

    /// Every project's status and stored machine and volume ids.
    pub async fn compute_rows(&self) -> sqlx::Result<Vec<ComputeRow>> {
        sqlx::query_as("SELECT id, status, updated_at, machine_id, volume_id FROM projects").fetch_all(&self.pool).await
    }

    /// Stores the provider's ids for the project's machine and volume.
    pub async fn set_compute_ids(
        &self,
        id: Uuid,
        machine_id: Option<&str>,
        volume_id: Option<&str>,
    ) -> sqlx::Result<()> {
        sqlx::query("UPDATE projects SET machine_id = $2, volume_id = $3 WHERE id = $1")
            .bind(id)
            .bind(machine_id)
            .bind(volume_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks the project `error` with `message`, unless its status changed
    /// since it was read as `status` at `updated_at`.
    pub async fn fail_if_unchanged(
        &self,
        id: Uuid,
        status: &str,
        updated_at: DateTime<Utc>,
        message: &str,
    ) -> sqlx::Result<Option<Project>> {
        let found = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE projects SET status = 'error', error_message = $4, updated_at = now() \
             WHERE id = $1 AND status = $2 AND updated_at = $3 RETURNING {PROJECT_COLS}"
        )))
        .bind(id)
        .bind(status)
        .bind(updated_at)
        .bind(message)
        .fetch_optional(&self.pool)
        .await?;
        self.opened_one(found)
    }
}
