-- Project environment variables are sealed (AES-256-GCM) by the hub; the
-- plaintext column keeps only rows written before this, which the hub seals
-- and clears when it starts.
ALTER TABLE projects ADD COLUMN env_sealed bytea;
