//! The order of a partition's rows in its Parquet files: its tags, fewest distinct values
//! first, then `time`.
//!
//! ```text
//!  first persist of a partition ──► its tags by estimated cardinality ──► catalog
//!  a later persist with new tags ──► those appended, ordered alike    ──► catalog
//!  the compactor ──► the key as the catalog holds it after listing its inputs ──► merge
//! ```
//!
//! Few distinct values first gives the leading tags long runs: their dictionary indices
//! pack into long RLE runs, and a row group's or page's min/max of them is narrow, so a
//! filter on a low-cardinality tag prunes by statistics alone. A high-cardinality tag (a
//! host) sorts last among the tags; its bloom filter rules out row groups instead.
//!
//! Invariant: every file of a partition is sorted by the partition's key. A file lacking a
//! tag holds nulls there, a constant column, so it is sorted by a key that puts that tag
//! anywhere: a key may therefore grow at its end, and is never reordered. A partition from
//! before keys were chosen has none: its files are sorted by every tag in name order, and
//! stay so as the table gains tags.

use std::collections::HashSet;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;

use crate::{ColumnType, TIME_COLUMN, column_type_of, primary_key};

/// Rows sampled to estimate a tag's distinct values: enough to order tags
/// by cardinality, cheap beside the sort that follows.
pub const SAMPLE_ROWS: usize = 16 * 1024;

/// The tags of `batch`, fewest distinct values first (estimated from at most
/// [`SAMPLE_ROWS`] rows), ties in name order.
pub fn by_cardinality(batch: &RecordBatch) -> Vec<String> {
    let rows = batch.num_rows();
    let sample = sample_rows(rows);
    let mut tags: Vec<(usize, String)> = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| column_type_of(f) == Some(ColumnType::Tag))
        .map(|(f, column)| {
            let distinct = column.as_string_opt::<i32>().map_or(usize::MAX, |values| {
                sample
                    .iter()
                    .map(|&i| values.is_valid(i).then(|| values.value(i)))
                    .collect::<HashSet<_>>()
                    .len()
            });
            (distinct, f.name().clone())
        })
        .collect();
    tags.sort();
    tags.into_iter().map(|(_, name)| name).collect()
}

/// Every row when there are at most [`SAMPLE_ROWS`], else that many drawn pseudo-randomly
/// (the same every time): a stride would alias with series written in a fixed rotation.
fn sample_rows(rows: usize) -> Vec<usize> {
    if rows <= SAMPLE_ROWS {
        return (0..rows).collect();
    }
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..SAMPLE_ROWS)
        .map(|_| {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % rows as u64) as usize
        })
        .collect()
}

/// The columns a file of `schema`'s rows is sorted by: the tags of `chosen` that `schema`
/// has, in that order, then its other tags in name order, then `time`. Without a chosen
/// key (a partition from before keys were recorded), every tag in name order.
pub fn sort_columns(chosen: Option<&[String]>, schema: &Schema) -> Vec<String> {
    let Some(chosen) = chosen else {
        return primary_key(schema);
    };
    let is_tag = |name: &str| {
        schema
            .field_with_name(name)
            .is_ok_and(|f| column_type_of(f) == Some(ColumnType::Tag))
    };
    let mut columns: Vec<String> = chosen.iter().filter(|t| is_tag(t)).cloned().collect();
    for name in primary_key(schema) {
        if name != TIME_COLUMN && !columns.contains(&name) {
            columns.push(name);
        }
    }
    columns.push(TIME_COLUMN.to_string());
    columns
}

/// The tags of `wanted` that `key` lacks, in `wanted`'s order: what a persist appends.
pub fn missing<'a>(key: &[String], wanted: &'a [String]) -> Vec<&'a String> {
    wanted.iter().filter(|t| !key.contains(t)).collect()
}

/// A key as the catalog stores it: a JSON array of tag names (a tag name may hold any
/// character, a comma included).
pub fn to_json(tags: &[String]) -> String {
    serde_json::to_string(tags).expect("a list of strings serializes")
}

/// A key from its stored form.
pub fn from_json(text: &str) -> Result<Vec<String>, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, StringArray, TimestampNanosecondArray};

    use super::*;

    fn batch(rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            ColumnType::Tag.arrow_field("host"),
            ColumnType::Tag.arrow_field("region"),
            ColumnType::Tag.arrow_field("arch"),
            ColumnType::Time.arrow_field(TIME_COLUMN),
            ColumnType::F64.arrow_field("usage"),
        ]));
        let col = |f: &dyn Fn(usize) -> Option<String>| -> ArrayRef {
            Arc::new((0..rows).map(f).collect::<StringArray>())
        };
        RecordBatch::try_new(
            schema,
            vec![
                col(&|i| Some(format!("host_{}", i % 500))),
                col(&|i| Some(format!("region_{}", i % 7))),
                col(&|i| (i % 3 == 0).then(|| "x86".to_string())),
                Arc::new(TimestampNanosecondArray::from_iter_values(0..rows as i64)),
                Arc::new(arrow::array::Float64Array::from(vec![1.0; rows])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn tags_are_ordered_by_distinct_values() {
        // arch: a value and null (2), region: 7, host: 500; also from a sample.
        for rows in [1_000, 100_000] {
            assert_eq!(by_cardinality(&batch(rows)), ["arch", "region", "host"]);
        }
    }

    #[test]
    fn a_chosen_key_orders_the_tags_a_file_has() {
        let schema = batch(1).schema();
        let chosen = ["region".to_string(), "gone".to_string(), "host".to_string()];
        // `gone` is not in this file; `arch` is new to the key and follows it.
        assert_eq!(
            sort_columns(Some(&chosen), &schema),
            ["region", "host", "arch", "time"]
        );
        assert_eq!(
            sort_columns(None, &schema),
            ["arch", "host", "region", "time"]
        );
        assert_eq!(missing(&chosen, &["arch".into(), "host".into()]), ["arch"]);
    }

    #[test]
    fn keys_round_trip_through_json() {
        let key = vec!["a,b".to_string(), "host".to_string()];
        assert_eq!(from_json(&to_json(&key)).unwrap(), key);
        assert_eq!(from_json("[]").unwrap(), Vec::<String>::new());
        assert!(from_json("host").is_err());
    }
}
