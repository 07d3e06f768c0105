//! Usage records (`usage`): compute seconds by user and project, the
//! records' life, and plan limits' checks over them.

use super::Db;
use chrono::{DateTime, Utc};
use uuid::Uuid;

impl Db {
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
}

/// The size columns a new record takes from its owner's plan.
const SIZE: &str = "COALESCE((SELECT cpus FROM plan_limits WHERE plan = u.plan), 1), \
                    COALESCE((SELECT memory_mb FROM plan_limits WHERE plan = u.plan), 2048)";

impl Db {
    /// Opens a record for run `key` of the project, from `at`.
    pub async fn usage_open(&self, project: Uuid, key: &str, at: DateTime<Utc>) -> sqlx::Result<()> {
        self.usage_insert_run(project, key, at, None).await
    }

    /// Records run `key` (ended at `end`, or open) if it isn't recorded.
    pub async fn usage_insert_run(
        &self,
        project: Uuid,
        key: &str,
        start: DateTime<Utc>,
        end: Option<DateTime<Utc>>,
    ) -> sqlx::Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO usage_records (id, project_id, owner_id, run_key, started_at, ended_at, last_tick_at, cpus, memory_mb) \
             SELECT $1, p.id, p.owner_id, $3, $4, $5, COALESCE($5, GREATEST($4, now())), {SIZE} \
             FROM projects p JOIN users u ON u.id = p.owner_id WHERE p.id = $2 \
             ON CONFLICT (project_id, run_key) DO NOTHING"
        )))
        .bind(Uuid::new_v4())
        .bind(project)
        .bind(key)
        .bind(start)
        .bind(end)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The records of the project among runs `keys`, with their ends.
    pub async fn usage_records_of(
        &self,
        project: Uuid,
        keys: &[String],
    ) -> sqlx::Result<Vec<(String, Option<DateTime<Utc>>)>> {
        sqlx::query_as("SELECT run_key, ended_at FROM usage_records WHERE project_id = $1 AND run_key = ANY($2)")
            .bind(project)
            .bind(keys)
            .fetch_all(&self.pool)
            .await
    }

    /// Closes run `key`'s open record at `end`, or at its last tick when
    /// the provider can't say when it ended.
    pub async fn usage_close_run(&self, project: Uuid, key: &str, end: Option<DateTime<Utc>>) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE usage_records SET ended_at = GREATEST(started_at, COALESCE($3, last_tick_at)) \
             WHERE project_id = $1 AND run_key = $2 AND ended_at IS NULL",
        )
        .bind(project)
        .bind(key)
        .bind(end)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Closes the project's open records whose runs aren't among `keys`,
    /// each at its last tick.
    pub async fn usage_close_unlisted(&self, project: Uuid, keys: &[String]) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE usage_records SET ended_at = GREATEST(started_at, last_tick_at) \
             WHERE project_id = $1 AND ended_at IS NULL AND NOT (run_key = ANY($2))",
        )
        .bind(project)
        .bind(keys)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Closes the project's open records at `at` (not before each one's
    /// start), or at each one's last tick.
    pub async fn usage_close(&self, project: Uuid, at: Option<DateTime<Utc>>) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE usage_records SET ended_at = GREATEST(started_at, COALESCE($2, last_tick_at)) \
             WHERE project_id = $1 AND ended_at IS NULL",
        )
        .bind(project)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Closes the project's open records of a machine that isn't running:
    /// at `stopped` (the provider's time), when it falls within the record,
    /// else at the last tick.
    pub async fn usage_close_stopped(&self, project: Uuid, stopped: Option<DateTime<Utc>>) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE usage_records SET ended_at = CASE WHEN $2 >= started_at AND $2 <= now() THEN $2 \
               ELSE GREATEST(started_at, last_tick_at) END \
             WHERE project_id = $1 AND ended_at IS NULL",
        )
        .bind(project)
        .bind(stopped)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The provider says the project's machine runs: its open record ticks.
    pub async fn usage_confirm(&self, project: Uuid) -> sqlx::Result<()> {
        sqlx::query("UPDATE usage_records SET last_tick_at = now() WHERE project_id = $1 AND ended_at IS NULL")
            .bind(project)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A heartbeat ticks the project's open record forward, once per boot
    /// id and sequence number (a replay, or an older one, changes nothing).
    pub async fn usage_heartbeat(&self, project: Uuid, boot_id: &str, seq: i64) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE usage_records SET last_tick_at = GREATEST(last_tick_at, now()), boot_id = $2, last_seq = $3 \
             WHERE project_id = $1 AND ended_at IS NULL AND (boot_id IS DISTINCT FROM $2 OR last_seq < $3)",
        )
        .bind(project)
        .bind(boot_id)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Each port's (port, keeps_awake, wakes_on_visit) the owner set.
    pub async fn port_flags(&self, project: Uuid) -> sqlx::Result<Vec<(i32, bool, bool)>> {
        sqlx::query_as("SELECT port, keeps_awake, wakes_on_visit FROM port_settings WHERE project_id = $1")
            .bind(project)
            .fetch_all(&self.pool)
            .await
    }

    /// Sets a port's flags (those given); returns them as they now stand.
    pub async fn set_port_flags(
        &self,
        project: Uuid,
        port: u16,
        keeps_awake: Option<bool>,
        wakes_on_visit: Option<bool>,
    ) -> sqlx::Result<(bool, bool)> {
        sqlx::query_as(
            "INSERT INTO port_settings (project_id, port, visibility, keeps_awake, wakes_on_visit) \
             VALUES ($1, $2, 'private', COALESCE($3, false), COALESCE($4, false)) \
             ON CONFLICT (project_id, port) DO UPDATE SET \
               keeps_awake = COALESCE($3, port_settings.keeps_awake), \
               wakes_on_visit = COALESCE($4, port_settings.wakes_on_visit), updated_at = now() \
             RETURNING keeps_awake, wakes_on_visit",
        )
        .bind(project)
        .bind(i32::from(port))
        .bind(keeps_awake)
        .bind(wakes_on_visit)
        .fetch_one(&self.pool)
        .await
    }

    /// Whether a public visit to the port may start the stopped VM.
    pub async fn wakes_on_visit(&self, project: Uuid, port: u16) -> sqlx::Result<bool> {
        let found: Option<bool> =
            sqlx::query_scalar("SELECT wakes_on_visit FROM port_settings WHERE project_id = $1 AND port = $2")
                .bind(project)
                .bind(i32::from(port))
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.unwrap_or(false))
    }

    /// Ports of running VMs whose public visitors keep them awake.
    pub async fn keeps_awake_ports(&self) -> sqlx::Result<Vec<(Uuid, i32)>> {
        sqlx::query_as(
            "SELECT s.project_id, s.port FROM port_settings s JOIN projects p ON p.id = s.project_id \
             WHERE s.keeps_awake AND p.status = 'running'",
        )
        .fetch_all(&self.pool)
        .await
    }

    /// Projects with an open record.
    pub async fn usage_open_projects(&self) -> sqlx::Result<Vec<Uuid>> {
        sqlx::query_scalar("SELECT DISTINCT project_id FROM usage_records WHERE ended_at IS NULL")
            .fetch_all(&self.pool)
            .await
    }

    /// The user's compute seconds since `since`, by day (UTC), oldest first.
    pub async fn compute_by_day(
        &self,
        user: Uuid,
        since: DateTime<Utc>,
    ) -> sqlx::Result<Vec<(chrono::NaiveDate, i64)>> {
        sqlx::query_as(
            "SELECT d::date, SUM(EXTRACT(EPOCH FROM LEAST(COALESCE(r.ended_at, now()), (d + interval '1 day') AT TIME ZONE 'UTC') \
                                   - GREATEST(r.started_at, d AT TIME ZONE 'UTC')))::bigint \
             FROM usage_records r \
             CROSS JOIN LATERAL generate_series(date_trunc('day', GREATEST(r.started_at, $2) AT TIME ZONE 'UTC'), \
                                                date_trunc('day', COALESCE(r.ended_at, now()) AT TIME ZONE 'UTC'), \
                                                interval '1 day') AS d \
             WHERE r.owner_id = $1 AND COALESCE(r.ended_at, now()) > $2 \
             GROUP BY d ORDER BY d",
        )
        .bind(user)
        .bind(since)
        .fetch_all(&self.pool)
        .await
    }

    /// The project's disk exists from `at` (if it isn't recorded yet), at
    /// `size_gb`, for its owner.
    pub async fn storage_open(&self, project: Uuid, size_gb: i32, at: DateTime<Utc>) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO storage_records (project_id, owner_id, size_gb, created_at) \
             SELECT id, owner_id, $2, $3 FROM projects WHERE id = $1 \
             ON CONFLICT (project_id) DO NOTHING",
        )
        .bind(project)
        .bind(size_gb)
        .bind(at)
        .execute(&self.pool)
        .await
        .map(drop)
    }

    /// The project's disk is gone as of `at`.
    pub async fn storage_close(&self, project: Uuid, at: DateTime<Utc>) -> sqlx::Result<()> {
        sqlx::query("UPDATE storage_records SET deleted_at = GREATEST($2, created_at) WHERE project_id = $1 AND deleted_at IS NULL")
            .bind(project)
            .bind(at)
            .execute(&self.pool)
            .await
            .map(drop)
    }

    /// The user's storage roll-up (`storage_monthly`): GB-hours by month,
    /// newest first.
    pub async fn storage_monthly(&self, user: Uuid) -> sqlx::Result<Vec<(chrono::NaiveDateTime, f64)>> {
        sqlx::query_as("SELECT month, gb_hours FROM storage_monthly WHERE owner_id = $1 ORDER BY month DESC LIMIT 120")
            .bind(user)
            .fetch_all(&self.pool)
            .await
    }

    /// The user's monthly roll-up (`usage_monthly`): compute seconds by
    /// month and machine size, newest first.
    pub async fn usage_monthly(&self, user: Uuid) -> sqlx::Result<Vec<(chrono::NaiveDateTime, i32, i64, i64)>> {
        sqlx::query_as(
            "SELECT month, cpus, memory_mb, compute_seconds FROM usage_monthly WHERE owner_id = $1 \
             ORDER BY month DESC, cpus, memory_mb LIMIT 120",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await
    }
}

/// One record's compute seconds since the SQL expression `since`,
/// counting an open record up to now.
pub fn record_seconds(since: &str) -> String {
    format!("EXTRACT(EPOCH FROM COALESCE(ended_at, now()) - GREATEST(started_at, {since}))")
}
