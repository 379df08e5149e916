-- The ferrite catalog, SQLite flavour. Keep it equivalent to migrations/postgres: one SQL
-- implementation (services/catalog/src/sql.rs) runs against both.
--
-- Times are INTEGER nanoseconds since the Unix epoch. Column types are the codes of
-- ferrite_model::ColumnType::code() (I64=1 … Tag=7) and never change once written.
-- AUTOINCREMENT so an id is never reused after a delete: caches key on ids.

-- A monotonic counter bumped in the same transaction as every create (database, table,
-- column, parquet file). Writers are serialised by SQLite's write lock, so versions commit
-- in order.
CREATE TABLE catalog_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO catalog_version (id, version) VALUES (1, 0);

CREATE TABLE databases (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    CONSTRAINT databases_name_unique UNIQUE (name)
);

CREATE TABLE tables (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    database_id INTEGER NOT NULL REFERENCES databases (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    CONSTRAINT tables_database_name_unique UNIQUE (database_id, name)
);

CREATE TABLE columns (
    id          INTEGER  PRIMARY KEY AUTOINCREMENT,
    table_id    INTEGER  NOT NULL REFERENCES tables (id) ON DELETE CASCADE,
    name        TEXT     NOT NULL,
    column_type SMALLINT NOT NULL,
    CONSTRAINT columns_table_name_unique UNIQUE (table_id, name)
);

CREATE TABLE partitions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    table_id      INTEGER NOT NULL REFERENCES tables (id) ON DELETE CASCADE,
    partition_key TEXT    NOT NULL,
    CONSTRAINT partitions_table_key_unique UNIQUE (table_id, partition_key)
);

-- No cascades: a file row may only go once the object is gone (the compactor's garbage
-- collector decides that), never as a side effect of deleting its table.
CREATE TABLE parquet_files (
    id                  INTEGER  PRIMARY KEY AUTOINCREMENT,
    database_id         INTEGER  NOT NULL REFERENCES databases (id),
    table_id            INTEGER  NOT NULL REFERENCES tables (id),
    partition_id        INTEGER  NOT NULL REFERENCES partitions (id),
    -- The UUID in its hyphenated lower-case text form.
    object_store_id     TEXT     NOT NULL,
    min_time            INTEGER  NOT NULL,
    max_time            INTEGER  NOT NULL,
    row_count           INTEGER  NOT NULL,
    file_size_bytes     INTEGER  NOT NULL,
    compaction_level    SMALLINT NOT NULL,
    max_sequence_number INTEGER  NOT NULL,
    created_at          INTEGER  NOT NULL,
    -- Soft delete: when set (ns), the file is no longer part of the table.
    to_delete           INTEGER,
    CONSTRAINT parquet_files_object_store_id_unique UNIQUE (object_store_id)
);

-- Queriers list the live files of a table; the compactor those of a partition.
CREATE INDEX parquet_files_table_live ON parquet_files (table_id, id) WHERE to_delete IS NULL;
CREATE INDEX parquet_files_partition_live ON parquet_files (partition_id, id) WHERE to_delete IS NULL;
-- Garbage collection scans soft-deleted files by deletion time.
CREATE INDEX parquet_files_to_delete ON parquet_files (to_delete) WHERE to_delete IS NOT NULL;
