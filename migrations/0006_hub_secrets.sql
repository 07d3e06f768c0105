-- Secrets every hub replica shares and that must outlive a redeploy (the SSH
-- jump host's host key, which agents pin), sealed with the hub's secrets key.
CREATE TABLE hub_secrets (
    name       text PRIMARY KEY,
    sealed     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
