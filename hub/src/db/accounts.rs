//! The SQL of accounts: sign-in sessions and their refresh tokens, mailed
//! one-time links, the audit log, verification and account deletion.

use super::Db;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// A signed-in device as its owner sees it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub address: String,
    pub client: String,
}

/// What presenting a refresh token came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// The token was current: it is used now, and the new one stored.
    Rotated { session: Uuid, user: Uuid, email: String },
    /// The token had been used before: its session is gone.
    Reused,
    /// No live session has this token.
    Unknown,
}

/// A redeemed mailed link.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EmailToken {
    pub user_id: Uuid,
    pub purpose: String,
    pub email: String,
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub at: DateTime<Utc>,
    pub action: String,
    pub address: String,
    pub detail: String,
}

/// A refresh token's session: its id, when the token was used, the
/// session's user and their email, and when the session was last used.
type RefreshRow = (Uuid, Option<DateTime<Utc>>, Uuid, String, DateTime<Utc>);

impl Db {
    /// A new session for `user`, holding the refresh token `refresh_hash`.
    pub async fn create_session(
        &self,
        id: Uuid,
        user: Uuid,
        address: &str,
        client: &str,
        refresh_hash: &[u8],
    ) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO sessions (id, user_id, address, client) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(user)
            .bind(address)
            .bind(client)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO refresh_tokens (hash, session_id) VALUES ($1, $2)")
            .bind(refresh_hash)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Whether `session` of `user` is live; notes its use (at most once a
    /// minute, so most requests only read). One round trip.
    pub async fn session_alive(&self, session: Uuid, user: Uuid) -> sqlx::Result<bool> {
        sqlx::query_scalar(
            "WITH s AS (SELECT id, last_used_at FROM sessions WHERE id = $1 AND user_id = $2), \
             t AS (UPDATE sessions SET last_used_at = now() \
                   WHERE id IN (SELECT id FROM s WHERE last_used_at < now() - interval '60 seconds')) \
             SELECT EXISTS (SELECT 1 FROM s)",
        )
        .bind(session)
        .bind(user)
        .fetch_one(&self.pool)
        .await
    }

    /// Trades a refresh token for `new_hash`, if it is current and its
    /// session was used within `idle`; a used one ends its session.
    pub async fn rotate_refresh(
        &self,
        hash: &[u8],
        new_hash: &[u8],
        idle: chrono::Duration,
    ) -> sqlx::Result<Refreshed> {
        let mut tx = self.pool.begin().await?;
        let row: Option<RefreshRow> = sqlx::query_as(
            "SELECT s.id, r.used_at, s.user_id, u.email, s.last_used_at FROM refresh_tokens r \
             JOIN sessions s ON s.id = r.session_id JOIN users u ON u.id = s.user_id \
             WHERE r.hash = $1 FOR UPDATE OF r, s",
        )
        .bind(hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((session, used_at, user, email, last_used)) = row else {
            return Ok(Refreshed::Unknown);
        };
        if used_at.is_some() {
            sqlx::query("DELETE FROM sessions WHERE id = $1").bind(session).execute(&mut *tx).await?;
            tx.commit().await?;
            return Ok(Refreshed::Reused);
        }
        if last_used < Utc::now() - idle {
            sqlx::query("DELETE FROM sessions WHERE id = $1").bind(session).execute(&mut *tx).await?;
            tx.commit().await?;
            return Ok(Refreshed::Unknown);
        }
        sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE hash = $1").bind(hash).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO refresh_tokens (hash, session_id) VALUES ($1, $2)")
            .bind(new_hash)
            .bind(session)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE sessions SET last_used_at = now() WHERE id = $1").bind(session).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Refreshed::Rotated { session, user, email })
    }

    /// The user's sessions, oldest first.
    pub async fn sessions(&self, user: Uuid) -> sqlx::Result<Vec<SessionRow>> {
        sqlx::query_as(
            "SELECT id, created_at, last_used_at, address, client FROM sessions WHERE user_id = $1 \
             ORDER BY created_at, id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await
    }

    /// Ends one of the user's sessions; false if they have none by that id.
    pub async fn delete_session(&self, user: Uuid, session: Uuid) -> sqlx::Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
            .bind(session)
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Ends every session of the user but `keep`; how many ended.
    pub async fn delete_other_sessions(&self, user: Uuid, keep: Option<Uuid>) -> sqlx::Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id IS DISTINCT FROM $2")
            .bind(user)
            .bind(keep)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn set_password_hash(&self, user: Uuid, hash: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(user)
            .bind(hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether the user's current address is verified.
    pub async fn email_verified(&self, user: Uuid) -> sqlx::Result<bool> {
        sqlx::query_scalar("SELECT email_verified_at IS NOT NULL FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(&self.pool)
            .await
            .map(|v| v.unwrap_or(false))
    }

    /// Marks the user's address verified, if it still is `email`.
    pub async fn mark_verified(&self, user: Uuid, email: &str) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET email_verified_at = COALESCE(email_verified_at, now()) \
             WHERE id = $1 AND lower(email) = lower($2)",
        )
        .bind(user)
        .bind(email)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Moves the user to a new (verified) address; a unique violation if
    /// another account has it.
    pub async fn change_email(&self, user: Uuid, email: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE users SET email = $2, email_verified_at = now() WHERE id = $1")
            .bind(user)
            .bind(email)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn create_email_token(
        &self,
        hash: &[u8],
        user: Uuid,
        purpose: &str,
        email: &str,
        expires_at: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO email_tokens (hash, user_id, purpose, email, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(hash)
            .bind(user)
            .bind(purpose)
            .bind(email)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Uses a mailed link once, if it is for one of `purposes` and neither
    /// used nor expired.
    pub async fn redeem_email_token(&self, hash: &[u8], purposes: &[&str]) -> sqlx::Result<Option<EmailToken>> {
        let purposes: Vec<String> = purposes.iter().map(|p| (*p).to_owned()).collect();
        sqlx::query_as(
            "UPDATE email_tokens SET used_at = now() \
             WHERE hash = $1 AND purpose = ANY($2) AND used_at IS NULL AND expires_at > now() \
             RETURNING user_id, purpose, email",
        )
        .bind(hash)
        .bind(purposes)
        .fetch_optional(&self.pool)
        .await
    }

    /// Voids the user's unused links for `purpose` (a new one replaces them).
    pub async fn void_email_tokens(&self, user: Uuid, purpose: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE email_tokens SET used_at = now() WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL")
            .bind(user)
            .bind(purpose)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn record_audit(&self, user: Uuid, action: &str, address: &str, detail: &str) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO audit_events (user_id, action, address, detail) VALUES ($1, $2, $3, $4)")
            .bind(user)
            .bind(action)
            .bind(address)
            .bind(detail)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user's audit log, newest first, at most `limit` lines.
    pub async fn audit(&self, user: Uuid, limit: i64) -> sqlx::Result<Vec<AuditRow>> {
        sqlx::query_as(
            "SELECT at, action, address, detail FROM audit_events WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(user)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// The owner's projects whose VM runs or is starting, but `except`.
    pub async fn count_active_projects(&self, owner: Uuid, except: Uuid) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "SELECT count(*) FROM projects WHERE owner_id = $1 AND id <> $2 AND status IN ('starting', 'running')",
        )
        .bind(owner)
        .bind(except)
        .fetch_one(&self.pool)
        .await
    }

    /// Removes the account and everything that goes with it; usage rows
    /// stay, with no owner.
    pub async fn delete_user(&self, user: Uuid) -> sqlx::Result<bool> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1").bind(user).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }
}

impl super::EventTx {
    /// A line of the user's audit log, written with the event (a plan
    /// change a webhook makes).
    pub async fn record_audit(&mut self, user: Uuid, action: &str, detail: &str) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO audit_events (user_id, action, detail) VALUES ($1, $2, $3)")
            .bind(user)
            .bind(action)
            .bind(detail)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}
