-- The compactor's state: its lease, and the partitions it could not compact.
--
-- leases: one row per named lease. A holder owns it until expires_at (ns, the catalog
-- service's clock) and renews it before then; anyone may take it once it has expired. The
-- compactor holds the lease `compactor`, so exactly one compactor is active at a time.
CREATE TABLE leases (
    name       TEXT   PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);

-- A partition the compactor tried and could not compact (too large for its memory budget,
-- a file it cannot read): it is not tried again until an operator clears the row, so a
-- broken partition costs one attempt, not a hot loop.
CREATE TABLE skipped_compactions (
    partition_id BIGINT PRIMARY KEY REFERENCES partitions (id) ON DELETE CASCADE,
    reason       TEXT   NOT NULL,
    skipped_at   BIGINT NOT NULL
);
