//! Previews: each port's visibility and flags, and one-time preview tokens.

use super::Db;
use chrono::{DateTime, Utc};
use uuid::Uuid;

impl Db {
    pub async fn port_visibility(&self, project: Uuid, port: u16) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar("SELECT visibility FROM port_settings WHERE project_id = $1 AND port = $2")
            .bind(project)
            .bind(i32::from(port))
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn port_visibilities(&self, project: Uuid) -> sqlx::Result<Vec<(i32, String)>> {
        sqlx::query_as("SELECT port, visibility FROM port_settings WHERE project_id = $1")
            .bind(project)
            .fetch_all(&self.pool)
            .await
    }

    pub async fn set_port_visibility(&self, project: Uuid, port: u16, visibility: &str) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO port_settings (project_id, port, visibility) VALUES ($1, $2, $3) \
             ON CONFLICT (project_id, port) DO UPDATE SET visibility = $3, updated_at = now()",
        )
        .bind(project)
        .bind(i32::from(port))
        .bind(visibility)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn create_preview_token(
        &self,
        hash: &[u8],
        user: Uuid,
        project: Uuid,
        port: u16,
        expires: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM preview_tokens WHERE expires_at < now() - interval '1 hour'")
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO preview_tokens (hash, user_id, project_id, port, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash)
        .bind(user)
        .bind(project)
        .bind(i32::from(port))
        .bind(expires)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Uses up a preview token: (user, project, port) if it was valid.
    pub async fn redeem_preview_token(&self, hash: &[u8]) -> sqlx::Result<Option<(Uuid, Uuid, i32)>> {
        sqlx::query_as(
            "UPDATE preview_tokens SET used_at = now() WHERE hash = $1 AND used_at IS NULL AND expires_at > now() \
             RETURNING user_id, project_id, port",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
    }
}
