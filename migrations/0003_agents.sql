-- Agents over SSH: per-agent keys (public halves only), the VM's sshd host
-- keys as aetherd reports them, and every agent session's record.

-- A revoked agent keeps its row (revoked_at set) so that its sessions stay
-- attributed; only live rows (revoked_at IS NULL) grant access.
CREATE TABLE agents (
    id           uuid PRIMARY KEY,
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name         text NOT NULL,
    -- "type base64", no comment; the private key is never stored.
    public_key   text NOT NULL,
    -- "SHA256:..." as OpenSSH prints it.
    fingerprint  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz
);
CREATE UNIQUE INDEX agents_live_name ON agents (project_id, lower(name)) WHERE revoked_at IS NULL;
CREATE UNIQUE INDEX agents_live_key ON agents (project_id, fingerprint) WHERE revoked_at IS NULL;
CREATE INDEX agents_fingerprint ON agents (fingerprint) WHERE revoked_at IS NULL;

-- The VM's sshd as last reported: host keys ("type base64" per line) and login user.
CREATE TABLE vm_ssh (
    project_id uuid PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    host_keys  text NOT NULL,
    login_user text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per agent SSH session, keyed by the id aetherd's forced command chose.
CREATE TABLE agent_sessions (
    id          uuid PRIMARY KEY,
    project_id  uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    agent_id    uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    command     text NOT NULL,
    interactive boolean NOT NULL,
    session     text,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    exit_code   integer
);
CREATE INDEX agent_sessions_project_started ON agent_sessions (project_id, started_at DESC);
