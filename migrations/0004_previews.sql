-- Preview visibility per port, and one-time tokens that open private previews.

CREATE TABLE port_settings (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    port       integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    visibility text NOT NULL CHECK (visibility IN ('private', 'public')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, port)
);

-- Only the SHA-256 of a token is stored.
CREATE TABLE preview_tokens (
    hash       bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    port       integer NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX preview_tokens_expires ON preview_tokens (expires_at);
