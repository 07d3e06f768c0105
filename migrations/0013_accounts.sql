-- Accounts a user can manage: revocable sign-in sessions with rotating
-- refresh tokens, one-time mailed links, an audit log, and verified email.

ALTER TABLE users ADD COLUMN email_verified_at timestamptz;
-- Accounts from before verification existed are taken as verified: their
-- owners were never asked, and nothing they have should stop working.
UPDATE users SET email_verified_at = created_at;

-- A signed-in device. Access tokens name their session and are refused
-- once its row is gone; revoking is deleting.
CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now(),
    address      text NOT NULL DEFAULT '',
    client       text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id, created_at);

-- Every refresh token a session was given (SHA-256 only). The current one
-- has used_at NULL; presenting a used one again means it was copied, and
-- the whole session ends.
CREATE TABLE refresh_tokens (
    hash       bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Mailed one-time links (SHA-256 only): verify an address, reset a
-- password, confirm a new address (`email` is the address it is for).
CREATE TABLE email_tokens (
    hash       bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('verify', 'reset', 'change')),
    email      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);

-- What happened to an account, for its owner to read. Never secrets.
CREATE TABLE audit_events (
    id      bigserial PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    action  text NOT NULL,
    address text NOT NULL DEFAULT '',
    detail  text NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_user_at ON audit_events (user_id, id DESC);

-- Usage is kept for accounting when its user deletes the account, without
-- who they were: the owner becomes NULL rather than the rows going.
ALTER TABLE vm_boots DROP CONSTRAINT vm_boots_owner_id_fkey;
ALTER TABLE vm_boots ALTER COLUMN owner_id DROP NOT NULL;
ALTER TABLE vm_boots ADD CONSTRAINT vm_boots_owner_id_fkey
    FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE SET NULL;

-- The same for the usage records the provider audits.
ALTER TABLE usage_records DROP CONSTRAINT usage_records_owner_id_fkey;
ALTER TABLE usage_records ALTER COLUMN owner_id DROP NOT NULL;
ALTER TABLE usage_records ADD CONSTRAINT usage_records_owner_id_fkey
    FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE SET NULL;
