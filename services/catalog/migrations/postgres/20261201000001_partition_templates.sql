-- Partition templates (see ferrite_model::partition): the JSON form of a template, '' for
-- the default (one partition per UTC day). A database's template is what its new tables
-- get unless a table is created with its own; a table's never changes after creation.
ALTER TABLE databases ADD COLUMN partition_template TEXT NOT NULL DEFAULT '';
ALTER TABLE tables ADD COLUMN partition_template TEXT NOT NULL DEFAULT '';
