//! What one compaction round of a partition does, decided from catalog rows alone.
//!
//! ```text
//!  live files of a partition
//!    ├─ level 0 (as persisted, may overlap anything), in write order
//!    └─ levels 1 and 2: never overlap one another (the invariant every round keeps)
//!
//!  L0 round (enough L0 files, or the partition has gone cold):
//!     the oldest L0 files that fit the memory budget + every L1/L2 file inside their time
//!     hull  ──►  level max(1, levels taken), split by time into target-sized files
//!  L2 round (no L0 due; a run of adjacent small compacted files, long enough or cold):
//!     the run's files, time-adjacent, that fit ──► level 2, split by time
//! ```
//!
//! "Small" is under half the target size. An L0 round writes what the new L0 files hold,
//! often a small file next to the last one; L2 rounds merge such runs, so a partition
//! written all day keeps about one file per half target of data, not one per round.
//!
//! Invariants:
//! - outputs cover the inputs' time hull, split at time boundaries, so they never overlap one
//!   another, and every L1/L2 file inside the hull is an input, so they never overlap the
//!   L1/L2 files left: after any round, L1 and L2 files of a partition do not overlap;
//! - L0 files are taken oldest first in write order (`max_sequence_number`, then id), so no
//!   L0 file left behind holds an older write than a file compacted: the outputs take the
//!   inputs' highest sequence number and still order correctly against what is left;
//! - a round's memory is estimated per output range from the inputs it reads; a partition
//!   whose oldest L0 file cannot fit is reported, never retried in a loop.

use ferrite_catalog::ParquetFile;

/// Bytes the compactor lets a row group of its own files reach (compressed, estimated from
/// the inputs' bytes per row). Reading a file holds one row group at a time.
pub const ROW_GROUP_BYTES: u64 = 16 << 20;
/// A decoded batch of one input, estimated.
const BATCH_BYTES: u64 = 4 << 20;
/// An output file being written: its row group being encoded, estimated.
const WRITER_BYTES: u64 = 3 * ROW_GROUP_BYTES;

/// The knobs planning depends on.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Split outputs so each holds about this many bytes.
    pub target_file_bytes: u64,
    /// Largest estimated memory of one output range's merge.
    pub memory_budget_bytes: u64,
    /// Compact L0 files once a partition has this many...
    pub l0_trigger_files: usize,
    /// Merge adjacent small compacted files once this many are in a row...
    pub l1_trigger_files: usize,
    /// ...or either once the partition's newest file is this old (ns): it has gone cold.
    pub cold_after_ns: i64,
}

/// One round of compaction of one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    /// The files read, in write order: a later file's value wins for the same key.
    pub inputs: Vec<ParquetFile>,
    /// Level of the outputs.
    pub level: i16,
    /// Time ranges of the outputs, `[min, max]` inclusive, ascending and disjoint, covering
    /// every input row. A range that receives no row makes no file.
    pub ranges: Vec<(i64, i64)>,
}

/// What a partition needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing now.
    Idle,
    /// One round.
    Round(Round),
    /// The partition cannot be compacted within the budget: why.
    TooLarge(String),
}

/// Decide the next round for a partition's live `files` at time `now` (ns).
pub fn plan(files: &[ParquetFile], now: i64, limits: &Limits) -> Plan {
    let mut l0: Vec<&ParquetFile> = files.iter().filter(|f| level(f) == 0).collect();
    l0.sort_by_key(|f| (f.params.max_sequence_number, f.id));
    let compacted: Vec<&ParquetFile> = files.iter().filter(|f| level(f) > 0).collect();
    let newest = files.iter().map(|f| f.created_at).max().unwrap_or(now);
    let cold = now.saturating_sub(newest) >= limits.cold_after_ns;

    if !l0.is_empty() && (l0.len() >= limits.l0_trigger_files || cold) {
        return l0_round(&l0, &compacted, limits);
    }
    let need = if cold {
        2
    } else {
        limits.l1_trigger_files.max(2)
    };
    match small_runs(&compacted, limits.target_file_bytes / 2)
        .into_iter()
        .find(|run| run.len() >= need)
    {
        Some(run) => l2_round(&run, limits),
        None => Plan::Idle,
    }
}

/// Runs of time-adjacent compacted files smaller than `small` bytes, in time order. The
/// files of a run have no other compacted file between them, so their time hull holds no
/// other: merging a run keeps L1/L2 files apart.
fn small_runs<'a>(compacted: &[&'a ParquetFile], small: u64) -> Vec<Vec<&'a ParquetFile>> {
    let mut sorted = compacted.to_vec();
    sorted.sort_by_key(|f| f.params.min_time);
    let mut runs: Vec<Vec<&ParquetFile>> = vec![];
    let mut run: Vec<&ParquetFile> = vec![];
    for f in sorted {
        if (f.params.file_size_bytes.max(0) as u64) < small {
            run.push(f);
        } else if !run.is_empty() {
            runs.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

fn level(f: &ParquetFile) -> i16 {
    f.params.compaction_level
}

fn l0_round(l0: &[&ParquetFile], compacted: &[&ParquetFile], limits: &Limits) -> Plan {
    let mut best: Option<Round> = None;
    for taken in 1..=l0.len() {
        let chosen = &l0[..taken];
        let extra = inside_hull(chosen, compacted);
        let round = round_of(chosen, &extra, limits);
        let need = peak_memory(&round);
        if need > limits.memory_budget_bytes {
            if best.is_none() {
                return Plan::TooLarge(format!(
                    "its oldest level-0 file (id {}) with the {} compacted files it overlaps \
                     needs an estimated {} MiB, over the memory budget of {} MiB",
                    chosen[0].id,
                    extra.len(),
                    need >> 20,
                    limits.memory_budget_bytes >> 20
                ));
            }
            break;
        }
        best = Some(round);
    }
    best.map_or(Plan::Idle, Plan::Round)
}

fn l2_round(run: &[&ParquetFile], limits: &Limits) -> Plan {
    let mut best: Option<Round> = None;
    for taken in 2..=run.len() {
        let mut round = round_of(&run[..taken], &[], limits);
        round.level = 2;
        if peak_memory(&round) > limits.memory_budget_bytes {
            break;
        }
        best = Some(round);
    }
    // Fewer than two files fit: they stay as they are, which queries read just as well.
    best.map_or(Plan::Idle, Plan::Round)
}

/// The files of `candidates` that overlap the time hull of `chosen`, with the hull grown by
/// each one taken. One pass suffices: `candidates` (L1/L2) do not overlap one another.
fn inside_hull<'a>(
    chosen: &[&ParquetFile],
    candidates: &[&'a ParquetFile],
) -> Vec<&'a ParquetFile> {
    let (mut lo, mut hi) = hull(chosen.iter().copied());
    let mut sorted: Vec<&ParquetFile> = candidates.to_vec();
    sorted.sort_by_key(|f| f.params.min_time);
    let mut taken = vec![];
    for f in sorted {
        if f.params.min_time <= hi && f.params.max_time >= lo {
            lo = lo.min(f.params.min_time);
            hi = hi.max(f.params.max_time);
            taken.push(f);
        }
    }
    taken
}

fn hull<'a>(files: impl Iterator<Item = &'a ParquetFile>) -> (i64, i64) {
    files.fold((i64::MAX, i64::MIN), |(lo, hi), f| {
        (lo.min(f.params.min_time), hi.max(f.params.max_time))
    })
}

fn round_of(chosen: &[&ParquetFile], extra: &[&ParquetFile], limits: &Limits) -> Round {
    let mut inputs: Vec<ParquetFile> = chosen.iter().chain(extra).map(|f| (*f).clone()).collect();
    inputs.sort_by_key(|f| (f.params.max_sequence_number, f.id));
    let level = inputs.iter().map(level).max().unwrap_or(0).max(1);
    let ranges = split_ranges(&inputs, limits.target_file_bytes);
    Round {
        inputs,
        level,
        ranges,
    }
}

/// Estimated memory of the costliest output range: the inputs it reads and one writer.
pub fn peak_memory(round: &Round) -> u64 {
    round
        .ranges
        .iter()
        .map(|&(lo, hi)| {
            round
                .inputs
                .iter()
                .filter(|f| f.params.min_time <= hi && f.params.max_time >= lo)
                .map(input_memory)
                .sum::<u64>()
                + WRITER_BYTES
        })
        .max()
        .unwrap_or(0)
}

/// Reading a file holds one row group's compressed bytes and a decoded batch. An ingester's
/// file counts whole (its row groups are bounded by rows, not bytes: an upper bound); the
/// compactor bounds its row groups by bytes too.
fn input_memory(f: &ParquetFile) -> u64 {
    let size = f.params.file_size_bytes.max(0) as u64;
    let row_group = if level(f) == 0 {
        size
    } else {
        size.min(ROW_GROUP_BYTES)
    };
    row_group + BATCH_BYTES
}

/// Split the inputs' time hull into ranges of about `target` bytes each, assuming each
/// file's bytes spread evenly over its time range.
pub fn split_ranges(inputs: &[ParquetFile], target: u64) -> Vec<(i64, i64)> {
    let (lo, hi) = hull(inputs.iter());
    if lo > hi {
        return vec![];
    }
    let total: u64 = inputs
        .iter()
        .map(|f| f.params.file_size_bytes.max(0) as u64)
        .sum();
    let n = total.div_ceil(target.max(1)).max(1);
    let mut bounds = vec![lo];
    for k in 1..n {
        let want = total as f64 * k as f64 / n as f64;
        let t = first_time_reaching(inputs, lo, hi, want);
        if t > *bounds.last().expect("one bound") && t <= hi {
            bounds.push(t);
        }
    }
    let mut ranges: Vec<(i64, i64)> = bounds.windows(2).map(|w| (w[0], w[1] - 1)).collect();
    ranges.push((*bounds.last().expect("one bound"), hi));
    ranges
}

/// Bytes at or before `t`, assuming uniform spread over each file's range.
fn bytes_before(inputs: &[ParquetFile], t: i64) -> f64 {
    inputs
        .iter()
        .map(|f| {
            let (min, max) = (f.params.min_time, f.params.max_time);
            let size = f.params.file_size_bytes.max(0) as f64;
            if t < min {
                0.0
            } else if t >= max {
                size
            } else {
                size * ((t - min) as f64 + 1.0) / ((max - min) as f64 + 1.0)
            }
        })
        .sum()
}

/// The smallest time in `[lo, hi]` at which `bytes_before` reaches `want`.
fn first_time_reaching(inputs: &[ParquetFile], mut lo: i64, mut hi: i64, want: f64) -> i64 {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if bytes_before(inputs, mid) >= want {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use ferrite_catalog::ParquetFileParams;
    use ferrite_model::{DatabaseId, ParquetFileId, PartitionId, TableId};

    use super::*;

    const MIB: i64 = 1 << 20;

    fn f(id: i64, level: i16, (min, max): (i64, i64), size: i64, seq: i64) -> ParquetFile {
        ParquetFile {
            id: ParquetFileId(id),
            params: ParquetFileParams {
                database_id: DatabaseId(1),
                table_id: TableId(1),
                partition_id: PartitionId(1),
                object_store_id: uuid::Uuid::new_v4(),
                min_time: min,
                max_time: max,
                row_count: 100,
                file_size_bytes: size,
                compaction_level: level,
                max_sequence_number: seq,
            },
            created_at: 0,
        }
    }

    fn limits() -> Limits {
        Limits {
            target_file_bytes: 100 << 20,
            memory_budget_bytes: 1 << 30,
            l0_trigger_files: 3,
            l1_trigger_files: 4,
            cold_after_ns: 1_000,
        }
    }

    fn ids(round: &Round) -> Vec<i64> {
        round.inputs.iter().map(|f| f.id.get()).collect()
    }

    fn round(plan: Plan) -> Round {
        match plan {
            Plan::Round(r) => r,
            other => panic!("expected a round, got {other:?}"),
        }
    }

    #[test]
    fn few_recent_l0_files_wait_and_cold_ones_do_not() {
        let files = vec![f(1, 0, (0, 10), MIB, 1), f(2, 0, (5, 20), MIB, 2)];
        assert_eq!(plan(&files, 500, &limits()), Plan::Idle);
        let r = round(plan(&files, 1_000, &limits()));
        assert_eq!(ids(&r), vec![1, 2]);
        assert_eq!(r.level, 1);
        assert_eq!(r.ranges, vec![(0, 20)]);
    }

    #[test]
    fn l0_rounds_take_the_compacted_files_inside_their_hull() {
        let files = vec![
            f(1, 1, (0, 9), MIB, 1),
            f(2, 1, (10, 19), MIB, 2),
            f(3, 2, (20, 29), MIB, 3),
            f(4, 1, (40, 49), MIB, 4),
            // L0 over 15..=25: pulls in 2 (10..19) and 3 (20..29), not 1 or 4.
            f(5, 0, (15, 25), MIB, 9),
            f(6, 0, (16, 17), MIB, 7),
            f(7, 0, (21, 22), MIB, 8),
        ];
        let r = round(plan(&files, 0, &limits()));
        // Write order: sequence numbers.
        assert_eq!(ids(&r), vec![2, 3, 6, 7, 5]);
        assert_eq!(r.level, 2, "an L2 input makes L2 outputs");
        assert_eq!(r.ranges, vec![(10, 29)]);
    }

    #[test]
    fn runs_of_small_compacted_files_merge_into_l2() {
        let files = vec![
            f(1, 1, (0, 9), MIB, 1),
            f(2, 1, (20, 29), MIB, 2),
            f(3, 2, (10, 19), MIB, 3),
            // Large: ends the run; the small files after it are a run of their own.
            f(4, 1, (30, 39), 80 * MIB, 4),
            f(5, 1, (40, 49), MIB, 5),
            f(6, 1, (50, 59), MIB, 6),
        ];
        assert_eq!(
            plan(&files, 10, &limits()),
            Plan::Idle,
            "not cold, runs of 3 and 2"
        );
        let r = round(plan(&files, 1_000, &limits()));
        assert_eq!(ids(&r), vec![1, 2, 3], "cold: the first run");
        assert_eq!(r.level, 2);
        assert_eq!(r.ranges, vec![(0, 29)]);
        let mut hot = limits();
        hot.l1_trigger_files = 2;
        assert_eq!(ids(&round(plan(&files[3..], 10, &hot))), vec![5, 6]);
        assert_eq!(
            plan(&files[3..4], 1_000, &limits()),
            Plan::Idle,
            "large files stay"
        );
    }

    #[test]
    fn outputs_split_by_time_at_about_the_target_size() {
        let inputs = vec![
            f(1, 0, (0, 999), 250 * MIB, 1),
            f(2, 0, (0, 999), 50 * MIB, 2),
        ];
        let ranges = split_ranges(&inputs, 100 << 20);
        assert_eq!(ranges.len(), 3);
        assert_eq!(ranges[0].0, 0);
        assert_eq!(ranges[2].1, 999);
        for w in ranges.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0, "adjacent, disjoint: {ranges:?}");
        }
        // Evenly spread bytes: thirds.
        assert!((330..=336).contains(&ranges[1].0), "{ranges:?}");
        // One file of one instant cannot be split.
        assert_eq!(
            split_ranges(&[f(1, 0, (5, 5), 900 * MIB, 1)], 100 << 20),
            vec![(5, 5)]
        );
    }

    #[test]
    fn the_budget_limits_l0_files_per_round_and_reports_what_cannot_fit() {
        let mut tight = limits();
        tight.memory_budget_bytes = 120 << 20;
        let files = vec![
            f(1, 0, (0, 10), 40 * MIB, 1),
            f(2, 0, (0, 10), 40 * MIB, 2),
            f(3, 0, (0, 10), 40 * MIB, 3),
        ];
        let r = round(plan(&files, 0, &tight));
        assert_eq!(ids(&r), vec![1], "the oldest files that fit");
        assert!(peak_memory(&r) <= tight.memory_budget_bytes);

        let huge = vec![
            f(1, 0, (0, 10), 500 * MIB, 1),
            f(2, 0, (0, 10), MIB, 2),
            f(3, 0, (0, 1), MIB, 3),
        ];
        match plan(&huge, 0, &tight) {
            Plan::TooLarge(why) => assert!(why.contains("memory budget of 120 MiB"), "{why}"),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
}
