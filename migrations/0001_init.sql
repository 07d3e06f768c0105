-- Users, projects, one-time tickets, tunnels and heartbeat-based VM boots.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    password_hash text,
    display_name  text NOT NULL DEFAULT '',
    plan          text NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'pro', 'team')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE projects (
    id                 uuid PRIMARY KEY,
    owner_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name               text NOT NULL,
    description        text NOT NULL DEFAULT '',
    status             text NOT NULL DEFAULT 'stopped'
                       CHECK (status IN ('stopped', 'starting', 'running', 'stopping', 'error')),
    error_message      text,
    base_image         text NOT NULL DEFAULT 'default',
    env_vars           jsonb NOT NULL DEFAULT '{}'::jsonb,
    machine_token_hash bytea,
    machine_id         text,
    last_heartbeat_at  timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    last_accessed_at   timestamptz
);
CREATE INDEX projects_owner_created ON projects (owner_id, created_at DESC);

-- WebSocket tickets: only the SHA-256 of the ticket is stored.
CREATE TABLE tickets (
    hash       bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    purpose    text NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX tickets_expires ON tickets (expires_at);

-- Which hub instance holds each project's tunnel.
CREATE TABLE tunnels (
    project_id   uuid PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    hub_instance text NOT NULL,
    boot_id      text NOT NULL,
    connected_at timestamptz NOT NULL DEFAULT now()
);

-- One row per VM boot, extended idempotently by each heartbeat (boot id +
-- sequence number): the raw material of usage metering.
CREATE TABLE vm_boots (
    project_id    uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    boot_id       text NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seq      bigint NOT NULL,
    heartbeats    bigint NOT NULL DEFAULT 1,
    uptime_ms     bigint NOT NULL DEFAULT 0,
    last_activity_at timestamptz,
    terminal_sessions integer NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, boot_id)
);
