-- Last-value and distinct-value caches (see ferrite_model::cache). `kind` is 'last' or
-- 'distinct'; `definition` the JSON form of a CacheSpec: its columns with their types, so an
-- ingester builds the cache without reading the table's schema. A name is unique per table
-- and kind. Creating or deleting one bumps catalog_version, which is how ingesters learn of it.
CREATE TABLE table_caches (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    table_id   INTEGER NOT NULL REFERENCES tables (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    CONSTRAINT table_caches_name_unique UNIQUE (table_id, kind, name)
);
