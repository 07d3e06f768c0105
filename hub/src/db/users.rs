//! Users and the one-time WebSocket tickets they ask for.

use super::{Db, Ticket, User};
use chrono::{DateTime, Utc};
use uuid::Uuid;

impl Db {
    // Users

    /// A new user on `plan`.
    pub async fn create_user(
        &self,
        id: Uuid,
        email: &str,
        password_hash: Option<&str>,
        plan: &str,
    ) -> sqlx::Result<User> {
        sqlx::query_as(
            "INSERT INTO users (id, email, password_hash, plan) VALUES ($1, $2, $3, $4) \
             RETURNING id, email, password_hash, display_name, plan",
        )
        .bind(id)
        .bind(email)
        .bind(password_hash)
        .bind(plan)
        .fetch_one(&self.pool)
        .await
    }

    /// Creates the profile of an externally authenticated user on first use,
    /// on `plan`.
    pub async fn ensure_user(&self, id: Uuid, email: &str, plan: &str) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO users (id, email, plan) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(id)
            .bind(email)
            .bind(plan)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether a user with this id exists.
    pub async fn user_exists(&self, id: Uuid) -> sqlx::Result<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)").bind(id).fetch_one(&self.pool).await
    }

    pub async fn user_by_email(&self, email: &str) -> sqlx::Result<Option<User>> {
        sqlx::query_as("SELECT id, email, password_hash, display_name, plan FROM users WHERE lower(email) = lower($1)")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn user(&self, id: Uuid) -> sqlx::Result<Option<User>> {
        sqlx::query_as("SELECT id, email, password_hash, display_name, plan FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn set_display_name(&self, id: Uuid, name: &str) -> sqlx::Result<Option<User>> {
        sqlx::query_as(
            "UPDATE users SET display_name = $2 WHERE id = $1 RETURNING id, email, password_hash, display_name, plan",
        )
        .bind(id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
    }

    // Tickets

    pub async fn create_ticket(
        &self,
        hash: &[u8],
        user: Uuid,
        project: Uuid,
        purpose: &str,
        expires: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM tickets WHERE expires_at < now() - interval '1 hour'").execute(&self.pool).await?;
        sqlx::query("INSERT INTO tickets (hash, user_id, project_id, purpose, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(hash)
            .bind(user)
            .bind(project)
            .bind(purpose)
            .bind(expires)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks a ticket used and returns it, if it exists, is unused and unexpired.
    pub async fn redeem_ticket(&self, hash: &[u8]) -> sqlx::Result<Option<Ticket>> {
        sqlx::query_as(
            "UPDATE tickets SET used_at = now() WHERE hash = $1 AND used_at IS NULL AND expires_at > now() \
             RETURNING user_id, project_id, purpose",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
    }
}
