-- The compute provider's volume (the project's disk) beside its machine:
-- stored for operators and reconciliation; the provider itself finds both
-- by the project id they carry.

ALTER TABLE projects ADD COLUMN volume_id text;
