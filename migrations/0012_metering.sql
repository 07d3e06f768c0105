-- Metering the VM can't bend, plans as data, and idle stops.
--
-- A usage record per machine run (boot to stop), opened by the hub when it
-- starts the machine and closed when the provider says it stopped; the
-- provider's own timeline, where it keeps one (the local sandbox's start and
-- exit), sets both ends. Heartbeats tick an open record forward
-- (`last_tick_at`, idempotent by boot id and sequence number); a record
-- whose end the provider can't tell is closed at its last tick.
CREATE TABLE usage_records (
    id           uuid PRIMARY KEY,
    project_id   uuid NOT NULL,
    owner_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The provider's name for the run, or one the hub made up.
    run_key      text NOT NULL,
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    last_tick_at timestamptz NOT NULL,
    boot_id      text,
    last_seq     bigint NOT NULL DEFAULT 0,
    -- The machine's size while it ran.
    cpus         integer NOT NULL,
    memory_mb    bigint NOT NULL,
    CHECK (ended_at IS NULL OR ended_at >= started_at),
    UNIQUE (project_id, run_key)
);
CREATE INDEX usage_records_owner ON usage_records (owner_id, started_at);
CREATE INDEX usage_records_open ON usage_records (project_id) WHERE ended_at IS NULL;

-- What heartbeats alone recorded so far, as closed records.
INSERT INTO usage_records (id, project_id, owner_id, run_key, started_at, ended_at, last_tick_at, boot_id, last_seq, cpus, memory_mb)
SELECT md5(project_id::text || boot_id)::uuid, project_id, owner_id, 'boot-' || boot_id, first_seen_at, last_seen_at,
       last_seen_at, boot_id, last_seq, 1, 2048
FROM vm_boots;

-- Plans and their limits: changing a plan is an UPDATE.
CREATE TABLE plan_limits (
    plan                   text PRIMARY KEY,
    rank                   integer NOT NULL,
    projects               bigint NOT NULL,
    compute_seconds        bigint NOT NULL,
    storage_gb             bigint NOT NULL,
    idle_timeout_s         bigint NOT NULL,
    cpus                   integer NOT NULL,
    memory_mb              bigint NOT NULL,
    pids                   integer NOT NULL
);
INSERT INTO plan_limits VALUES
    ('free', 0, 5, 50 * 3600, 50, 30 * 60, 1, 2048, 4096),
    ('pro', 1, 50, 500 * 3600, 500, 2 * 3600, 2, 4096, 8192),
    ('team', 2, 200, 2000 * 3600, 2000, 4 * 3600, 4, 8192, 8192);

-- Compute seconds per user, month (UTC) and machine size, from the records
-- as they stand (a record closed late, or reconciled, counts as closed).
CREATE VIEW usage_monthly AS
SELECT r.owner_id, m.month, r.cpus, r.memory_mb,
       SUM(EXTRACT(EPOCH FROM LEAST(COALESCE(r.ended_at, now()), (m.month AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC')
                              - GREATEST(r.started_at, m.month AT TIME ZONE 'UTC')))::bigint AS compute_seconds
FROM usage_records r
CROSS JOIN LATERAL generate_series(
    date_trunc('month', r.started_at AT TIME ZONE 'UTC'),
    date_trunc('month', COALESCE(r.ended_at, now()) AT TIME ZONE 'UTC'),
    interval '1 month') AS m(month)
GROUP BY r.owner_id, m.month, r.cpus, r.memory_mb;

-- Why the hub stopped a project by itself, and when; cleared on start.
ALTER TABLE projects
    ADD COLUMN stop_reason text,
    ADD COLUMN stopped_at  timestamptz;

-- What a public visitor may do to a port's VM.
ALTER TABLE port_settings
    ADD COLUMN keeps_awake    boolean NOT NULL DEFAULT false,
    ADD COLUMN wakes_on_visit boolean NOT NULL DEFAULT false;
