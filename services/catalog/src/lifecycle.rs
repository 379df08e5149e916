//! What the compactor reads and changes in the catalog: its lease, the partitions that hold
//! files, the replacement of files by their compacted form, partitions it had to skip,
//! retention, and the files and objects garbage collection may remove.
//!
//! ```text
//!  compactor ──acquire_lease("compactor")──► leases           (one active compactor)
//!            ──partition_summaries────────► files per level ─► plan a round
//!            ──replace_files(inputs, outputs)  one transaction: inputs marked, outputs live
//!            ──skip_partition(reason)──────► skipped_compactions
//!            ──expire_files / purge_deleted ─► files marked (retention, deleted tables)
//!            ──files_to_collect ─► delete objects ─► delete_files (rows)
//! ```
//!
//! A "marked" file has `to_delete` set: it is no longer part of its table (readers never see
//! it) but its object is kept until the garbage collector's grace period has passed, so a
//! query that listed it just before keeps reading it.

/// The state of a named lease after an attempt to take or renew it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it now.
    pub holder: String,
    /// Until when, ns since the epoch (the catalog's clock).
    pub expires_at: i64,
    /// True when the caller holds it.
    pub acquired: bool,
}

/// Files of one compaction level in a partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LevelStats {
    /// Live files.
    pub files: i64,
    /// Their rows.
    pub rows: i64,
    /// Their size.
    pub bytes: i64,
}

/// Why the compactor stopped trying a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedCompaction {
    /// The reason, for people.
    pub reason: String,
    /// When, ns since the epoch.
    pub skipped_at: i64,
}

/// A partition with live files, as the compactor and operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSummary {
    /// The partition.
    pub partition: crate::Partition,
    /// Its database.
    pub database_id: ferrite_model::DatabaseId,
    /// Database name.
    pub database: String,
    /// Table name.
    pub table: String,
    /// Live files by compaction level: 0 (as persisted), 1, 2.
    pub levels: [LevelStats; 3],
    /// When the newest live level-0 file was registered (ns), if any.
    pub newest_l0_at: Option<i64>,
    /// Set when the compactor skips this partition.
    pub skipped: Option<SkippedCompaction>,
}

impl PartitionSummary {
    /// Live files of every level.
    pub fn files(&self) -> i64 {
        self.levels.iter().map(|l| l.files).sum()
    }
}

/// The highest compaction level.
pub const MAX_LEVEL: i16 = 2;
