//! Postgres: the pool, migrations, and the hub's SQL, one file per table
//! family (users, projects, tunnels, usage, previews, agents, billing,
//! accounts). SQL lives here (plan lookups aside: `plans`, `idle`). Queries are checked at run time (`query_as` with
//! `FromRow`), so building needs no database.

use crate::secrets::Sealer;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::sync::Arc;
use uuid::Uuid;

mod accounts;
mod agents;
mod billing;
mod plans;
mod previews;
mod projects;
mod tunnels;
mod usage;
mod users;
pub use accounts::{AuditRow, EmailToken, Refreshed, SessionRow};
pub use agents::{Agent, AgentSession, AgentSessionRecord};
pub use billing::{BillingRow, EventTx, SubscriptionRecord};
pub use plans::Plan;
pub use projects::ComputeRow;
pub use usage::record_seconds;

/// A handle on the database.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: PgPool,
    /// Seals project environment variables at rest.
    sealer: Arc<Sealer>,
}

/// A user account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub password_hash: Option<String>,
    pub display_name: String,
    pub plan: String,
}

/// A project's row (`api::model::Project` is what the API and the event
/// stream show of it).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Project {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub description: String,
    pub status: String,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_accessed_at: Option<DateTime<Utc>>,
    pub base_image: String,
    /// Why the hub stopped the project by itself (`idle`, `compute_limit`,
    /// `payment`), until it starts again.
    pub stop_reason: Option<String>,
    pub stopped_at: Option<DateTime<Utc>>,
    /// Opened from `env_sealed` by `Db`.
    #[sqlx(skip)]
    pub env_vars: serde_json::Value,
    pub env_sealed: Option<Vec<u8>>,
}

const PROJECT_COLS: &str = "id, owner_id, name, description, status, error_message, created_at, \
                            updated_at, last_accessed_at, base_image, env_sealed, stop_reason, stopped_at";

/// A redeemed ticket.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Ticket {
    pub user_id: Uuid,
    pub project_id: Uuid,
    pub purpose: String,
}

/// One heartbeat as recorded.
#[derive(Debug, Clone)]
pub struct HeartbeatRecord<'a> {
    pub project_id: Uuid,
    pub boot_id: &'a str,
    pub seq: i64,
    pub uptime_ms: i64,
    pub last_activity: Option<DateTime<Utc>>,
    pub terminal_sessions: i32,
    pub ssh_sessions: i32,
}

/// Whether a unique constraint refused an insert.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

impl Db {
    pub async fn connect(options: PgConnectOptions, sealer: Sealer) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // While the database is down a request waits this long, then
            // answers 503 (sqlx retries a refused connection until then).
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations").run(&pool).await?;
        let db = Self { pool, sealer: Arc::new(sealer) };
        db.check_secrets_key().await?;
        db.seal_legacy_env().await?;
        Ok(db)
    }

    /// Refuses a secrets key that can't open what is stored: starting anyway
    /// would fail every read of those projects.
    async fn check_secrets_key(&self) -> anyhow::Result<()> {
        let row: Option<(Uuid, Vec<u8>)> =
            sqlx::query_as("SELECT id, env_sealed FROM projects WHERE env_sealed IS NOT NULL LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        if let Some((id, sealed)) = row {
            anyhow::ensure!(
                self.sealer.open(id, &sealed).is_some(),
                "the secrets key does not open the project env vars stored in this database; \
                 start the hub with the AETHER_SECRETS_KEY (or data folder) they were sealed with"
            );
        }
        Ok(())
    }

    /// Seals environment variables stored in plaintext before they were
    /// sealed, and clears the plaintext.
    async fn seal_legacy_env(&self) -> anyhow::Result<()> {
        let rows: Vec<(Uuid, serde_json::Value)> =
            sqlx::query_as("SELECT id, env_vars FROM projects WHERE env_sealed IS NULL AND env_vars <> '{}'::jsonb")
                .fetch_all(&self.pool)
                .await?;
        for (id, env) in rows {
            sqlx::query("UPDATE projects SET env_sealed = $2, env_vars = '{}'::jsonb WHERE id = $1")
                .bind(id)
                .bind(self.sealer.seal(id, &serde_json::to_vec(&env)?)?)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// The hub-wide secret `name`, stored sealed; the first hub to ask
    /// stores `initial`, and every hub then gets what was stored (replicas
    /// racing at their first start agree on one value).
    pub async fn hub_secret(&self, name: &str, initial: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        // Hub-wide secrets are sealed with the nil id: no project has it.
        let sealed = self.sealer.seal(Uuid::nil(), &initial)?;
        sqlx::query("INSERT INTO hub_secrets (name, sealed) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(sealed)
            .execute(&self.pool)
            .await?;
        let stored: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM hub_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        self.sealer.open(Uuid::nil(), &stored).ok_or_else(|| {
            anyhow::anyhow!(
                "the secrets key does not open the stored {name}; start the hub with the key it was sealed with"
            )
        })
    }

    /// `env` sealed for `project`.
    fn seal_env(&self, project: Uuid, env: &serde_json::Value) -> sqlx::Result<Vec<u8>> {
        let plain = serde_json::to_vec(env).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        self.sealer.seal(project, &plain).map_err(|e| sqlx::Error::Encode(e.into()))
    }

    /// The project with its environment variables opened.
    fn opened(&self, mut p: Project) -> sqlx::Result<Project> {
        p.env_vars = match p.env_sealed.take() {
            None => serde_json::Value::Object(Default::default()),
            Some(sealed) => {
                let plain = self.sealer.open(p.id, &sealed).ok_or_else(|| {
                    sqlx::Error::Decode(
                        format!("project {}'s env_vars do not open with this hub's secrets key", p.id).into(),
                    )
                })?;
                serde_json::from_slice(&plain).map_err(|e| sqlx::Error::Decode(Box::new(e)))?
            }
        };
        Ok(p)
    }

    fn opened_one(&self, p: Option<Project>) -> sqlx::Result<Option<Project>> {
        p.map(|p| self.opened(p)).transpose()
    }

    fn opened_all(&self, ps: Vec<Project>) -> sqlx::Result<Vec<Project>> {
        ps.into_iter().map(|p| self.opened(p)).collect()
    }

    /// Whether the database answers, within 3 s.
    pub async fn ping(&self) -> bool {
        let ping = sqlx::query("SELECT 1").execute(&self.pool);
        tokio::time::timeout(std::time::Duration::from_secs(3), ping).await.is_ok_and(|r| r.is_ok())
    }
}
