//! Postgres: the pool, migrations, and every SQL statement the hub runs.
//!
//! SQL lives only here. Queries are checked at run time (`query_as` with
//! `FromRow`), so building needs no database.

use crate::secrets::Sealer;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::sync::Arc;
use uuid::Uuid;

mod accounts;
pub use accounts::{AuditRow, EmailToken, Refreshed, SessionRow};

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

/// A project as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Project {
    pub id: Uuid,
    #[serde(skip)]
    pub owner_id: Uuid,
    pub name: String,
    pub description: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_accessed_at: Option<DateTime<Utc>>,
    pub base_image: String,
    /// Why the hub stopped the project by itself (`idle`, `compute_limit`,
    /// `payment`), until it starts again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<DateTime<Utc>>,
    /// Opened from `env_sealed` by `Db`.
    #[sqlx(skip)]
    pub env_vars: serde_json::Value,
    #[serde(skip)]
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

    // Tunnels and heartbeats

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

    /// Seconds of VM time the user's projects (deleted ones too) have had
    /// since `since`, from the usage records (`usage`).
    pub async fn compute_seconds(&self, user: Uuid, since: DateTime<Utc>) -> sqlx::Result<i64> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COALESCE(SUM({}), 0)::bigint FROM usage_records \
             WHERE owner_id = $1 AND COALESCE(ended_at, now()) > $2",
            record_seconds("$2")
        )))
        .bind(user)
        .bind(since)
        .fetch_one(&self.pool)
        .await
    }

    /// `compute_seconds` by project (deleted projects too), most first, and
    /// their total as `compute_seconds` counts it (each figure rounded once).
    pub async fn compute_by_project(&self, user: Uuid, since: DateTime<Utc>) -> sqlx::Result<(Vec<(Uuid, i64)>, i64)> {
        let rows: Vec<(Uuid, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT project_id, SUM({s})::bigint AS s, (SUM(SUM({s})) OVER ())::bigint FROM usage_records \
             WHERE owner_id = $1 AND COALESCE(ended_at, now()) > $2 GROUP BY project_id ORDER BY s DESC, project_id",
            s = record_seconds("$2")
        )))
        .bind(user)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let total = rows.first().map_or(0, |r| r.2);
        Ok((rows.into_iter().map(|(project, seconds, _)| (project, seconds)).collect(), total))
    }

    /// Projects `starting` or `running` whose owners have had at least
    /// their plan's seconds of VM time since `since`; `limits` gives the
    /// free, pro and team plans' seconds.
    pub async fn over_compute_limit(&self, since: DateTime<Utc>, limits: [i64; 3]) -> sqlx::Result<Vec<Uuid>> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "WITH active AS (SELECT DISTINCT owner_id FROM projects WHERE status IN ('starting', 'running')), \
             used AS (SELECT b.owner_id, SUM({}) AS s FROM usage_records b JOIN active a ON a.owner_id = b.owner_id \
               WHERE COALESCE(ended_at, now()) > $1 GROUP BY b.owner_id) \
             SELECT p.id FROM projects p JOIN users u ON u.id = p.owner_id JOIN used ON used.owner_id = p.owner_id \
             WHERE p.status IN ('starting', 'running') \
               AND used.s >= CASE u.plan WHEN 'team' THEN $4 WHEN 'pro' THEN $3 ELSE $2 END",
            record_seconds("$1")
        )))
        .bind(since)
        .bind(limits[0])
        .bind(limits[1])
        .bind(limits[2])
        .fetch_all(&self.pool)
        .await
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

// Previews
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

/// A user's account as billing sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BillingRow {
    pub id: Uuid,
    pub email: String,
    pub plan: String,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub subscription_plan: Option<String>,
    pub subscription_status: Option<String>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub grace_until: Option<DateTime<Utc>>,
}

const BILLING_COLS: &str = "id, email, plan, stripe_customer_id, stripe_subscription_id, subscription_plan, \
                            subscription_status, current_period_end, grace_until";

/// A subscription's state as a user's account stores it.
#[derive(Debug, Clone)]
pub struct SubscriptionRecord<'a> {
    pub id: &'a str,
    pub customer: &'a str,
    /// The plan the subscription pays for (`None`: none this hub sells).
    pub paid_plan: Option<&'a str>,
    pub status: &'a str,
    pub current_period_end: Option<DateTime<Utc>>,
    /// The user's plan from now on.
    pub plan: &'a str,
    pub grace_until: Option<DateTime<Utc>>,
}

/// A webhook event being applied: the event's id is claimed and the
/// user rows it changes are locked until `commit`; dropped without it,
/// nothing of it happened (and Stripe delivers it again).
pub struct EventTx {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
}

impl EventTx {
    /// The user with this id, locked.
    pub async fn lock_user(&mut self, id: Uuid) -> sqlx::Result<Option<BillingRow>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {BILLING_COLS} FROM users WHERE id = $1 FOR UPDATE")))
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
    }

    /// The user whose Stripe customer this is, locked.
    pub async fn lock_customer(&mut self, customer: &str) -> sqlx::Result<Option<BillingRow>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {BILLING_COLS} FROM users WHERE stripe_customer_id = $1 FOR UPDATE"
        )))
        .bind(customer)
        .fetch_optional(&mut *self.tx)
        .await
    }

    /// Stores the subscription's state and the plan it gives the user.
    pub async fn set_subscription(&mut self, user: Uuid, s: &SubscriptionRecord<'_>) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE users SET stripe_customer_id = COALESCE(stripe_customer_id, $2), stripe_subscription_id = $3, \
               subscription_plan = $4, subscription_status = $5, current_period_end = $6, plan = $7, \
               grace_until = $8 \
             WHERE id = $1",
        )
        .bind(user)
        .bind(s.customer)
        .bind(s.id)
        .bind(s.paid_plan)
        .bind(s.status)
        .bind(s.current_period_end)
        .bind(s.plan)
        .bind(s.grace_until)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Makes the event's effects, and its having been applied, permanent.
    pub async fn commit(self) -> sqlx::Result<()> {
        self.tx.commit().await
    }
}

impl Db {
    // Billing

    pub async fn billing(&self, user: Uuid) -> sqlx::Result<Option<BillingRow>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {BILLING_COLS} FROM users WHERE id = $1")))
            .bind(user)
            .fetch_optional(&self.pool)
            .await
    }

    /// Gives the user `customer` unless they have one; returns the one
    /// they have after.
    pub async fn set_stripe_customer(&self, user: Uuid, customer: &str) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar(
            "UPDATE users SET stripe_customer_id = COALESCE(stripe_customer_id, $2) WHERE id = $1 \
             RETURNING stripe_customer_id",
        )
        .bind(user)
        .bind(customer)
        .fetch_optional(&self.pool)
        .await
        .map(Option::flatten)
    }

    /// Claims webhook event `id` for applying: `None` if it was applied
    /// already. A second delivery of an event being applied waits here
    /// until the first commits (then `None`) or rolls back (then it
    /// applies it).
    pub async fn claim_event(&self, id: &str, kind: &str) -> sqlx::Result<Option<EventTx>> {
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query("INSERT INTO stripe_events (id, type) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
            .bind(id)
            .bind(kind)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        Ok((claimed == 1).then_some(EventTx { tx }))
    }

    /// Moves users whose grace ended to the free plan; returns them.
    pub async fn end_expired_grace(&self) -> sqlx::Result<Vec<Uuid>> {
        sqlx::query_scalar("UPDATE users SET plan = 'free' WHERE grace_until <= now() AND plan <> 'free' RETURNING id")
            .fetch_all(&self.pool)
            .await
    }

    /// The user's projects `starting` or `running`.
    pub async fn active_projects_of(&self, owner: Uuid) -> sqlx::Result<Vec<Uuid>> {
        sqlx::query_scalar("SELECT id FROM projects WHERE owner_id = $1 AND status IN ('starting', 'running')")
            .bind(owner)
            .fetch_all(&self.pool)
            .await
    }
}

/// One record's compute seconds since the SQL expression `since`,
/// counting an open record up to now.
pub fn record_seconds(since: &str) -> String {
    format!("EXTRACT(EPOCH FROM COALESCE(ended_at, now()) - GREATEST(started_at, {since}))")
}
