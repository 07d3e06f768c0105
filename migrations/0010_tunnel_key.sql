-- The key the first tunnel of a machine token bound it to (SHA-256 of the
-- Hello's boot_key): another aetherd holding the same token is refused
-- while the bound one is connected. Cleared with the token.
ALTER TABLE projects ADD COLUMN tunnel_key_hash bytea;
