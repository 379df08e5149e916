-- Retention, service protection limits and soft delete of databases and tables.
--
-- retention_period_ns: rows older than now minus this are refused on write and never
-- returned by queries; 0 means forever. max_tables and max_columns_per_table bound the
-- schema a database may grow.
--
-- Soft delete keeps the row (and every file) but moves the name aside: `name` becomes
-- `#<id>` (no database or table name can start with '#': database names start with a letter
-- or digit, and a line protocol line starting with '#' is a comment), the real name is kept
-- in `deleted_name`, and `deleted_at` records when. So the unique name constraints keep
-- holding for live objects, a new object may take the name, and undelete puts the name back
-- unless a live object holds it by then.
ALTER TABLE databases ADD COLUMN retention_period_ns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE databases ADD COLUMN max_tables INTEGER NOT NULL DEFAULT 500;
ALTER TABLE databases ADD COLUMN max_columns_per_table INTEGER NOT NULL DEFAULT 250;
ALTER TABLE databases ADD COLUMN deleted_at INTEGER;
ALTER TABLE databases ADD COLUMN deleted_name TEXT;
ALTER TABLE tables ADD COLUMN deleted_at INTEGER;
ALTER TABLE tables ADD COLUMN deleted_name TEXT;
