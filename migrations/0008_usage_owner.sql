-- Usage belongs to the user and outlives the project it was used by:
-- deleting a project must not give back the month's compute hours. Each
-- boot records its owner, and no longer goes with its project.
ALTER TABLE vm_boots ADD COLUMN owner_id uuid REFERENCES users (id) ON DELETE CASCADE;
UPDATE vm_boots b SET owner_id = p.owner_id FROM projects p WHERE p.id = b.project_id;
ALTER TABLE vm_boots ALTER COLUMN owner_id SET NOT NULL;
ALTER TABLE vm_boots DROP CONSTRAINT vm_boots_project_id_fkey;
CREATE INDEX vm_boots_owner_seen ON vm_boots (owner_id, last_seen_at);
