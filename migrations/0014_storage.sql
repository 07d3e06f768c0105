-- Storage metering: one record per project disk (volume), from the boot
-- that made it to the project's deletion, at its size. The monthly roll-up
-- sums GB-hours over each month's share of each record, so a disk deleted
-- late or a record closed late stays correct.
--
-- Disks made before this migration are recorded from their next boot.
CREATE TABLE storage_records (
    project_id uuid PRIMARY KEY,
    -- Kept for accounting when the account goes, without who it was.
    owner_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    size_gb    integer NOT NULL CHECK (size_gb > 0),
    created_at timestamptz NOT NULL,
    deleted_at timestamptz,
    CHECK (deleted_at IS NULL OR deleted_at >= created_at)
);
CREATE INDEX storage_records_owner ON storage_records (owner_id, created_at);

CREATE VIEW storage_monthly AS
SELECT s.owner_id, m.month,
       SUM(s.size_gb * EXTRACT(EPOCH FROM LEAST(COALESCE(s.deleted_at, now()), (m.month AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC')
                                       - GREATEST(s.created_at, m.month AT TIME ZONE 'UTC')) / 3600.0)::double precision AS gb_hours
FROM storage_records s
CROSS JOIN LATERAL generate_series(
    date_trunc('month', s.created_at AT TIME ZONE 'UTC'),
    date_trunc('month', COALESCE(s.deleted_at, now()) AT TIME ZONE 'UTC'),
    interval '1 month') AS m(month)
GROUP BY s.owner_id, m.month;
