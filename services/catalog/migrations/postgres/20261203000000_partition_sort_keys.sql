-- The tags a partition's files are sorted by, before `time` (see ferrite_model::sort_key):
-- a JSON array, '[]' until the first persist chooses it, then only ever extended. NULL
-- for the partitions from before: their files are sorted by every tag in name order.
ALTER TABLE partitions ADD COLUMN sort_key TEXT;
