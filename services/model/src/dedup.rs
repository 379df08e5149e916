//! Sort rows by primary key and merge rows of the same key, the later write winning field by
//! field. Used by ingester persistence (within a snapshot) and by the querier (across
//! overlapping chunks), so the upsert rule lives in one place.
//!
//! ```text
//!  rows (write order) ──► lexsort(pk…, write position) ──► runs of equal pk
//!        ──► per run: pk columns from any row, each field = last non-null value in the run
//! ```

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, UInt32Array, UInt64Array};
use arrow::compute::{SortColumn, SortOptions, lexsort_to_indices, take};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::{ColumnType, column_type_of};

/// Sort `batch` by its primary key (tags in lexicographic order, then `time`) and collapse
/// rows with equal keys. `order` gives each row's write position (higher = later write);
/// `None` means row order is write order. Returns the deduplicated rows sorted by key.
pub fn sort_dedup(
    batch: &RecordBatch,
    order: Option<&UInt64Array>,
) -> Result<RecordBatch, ArrowError> {
    sort_dedup_by(batch, &crate::primary_key(&batch.schema()), order)
}

/// [`sort_dedup`] with the key columns in the order `key` names them: every tag of `batch`
/// and `time`, as a partition's [`crate::sort_key`] gives them.
pub fn sort_dedup_by(
    batch: &RecordBatch,
    key: &[String],
    order: Option<&UInt64Array>,
) -> Result<RecordBatch, ArrowError> {
    if batch.num_rows() == 0 {
        return Ok(batch.clone());
    }
    let schema = batch.schema();
    let pk_names = key;
    let mut sort_columns = Vec::with_capacity(pk_names.len() + 1);
    for name in pk_names {
        let idx = schema.index_of(name)?;
        sort_columns.push(SortColumn {
            values: Arc::clone(batch.column(idx)),
            options: Some(SortOptions {
                descending: false,
                nulls_first: true,
            }),
        });
    }
    // The write position as the last key makes the sort stable: within a run of equal keys
    // rows appear in write order, so "last non-null" means "latest".
    let position: ArrayRef = match order {
        Some(o) => Arc::new(o.clone()),
        None => Arc::new(UInt64Array::from_iter_values(0..batch.num_rows() as u64)),
    };
    sort_columns.push(SortColumn {
        values: position,
        options: None,
    });
    let indices = lexsort_to_indices(&sort_columns, None)?;

    let pk_sorted: Vec<ArrayRef> = sort_columns[..pk_names.len()]
        .iter()
        .map(|c| take(c.values.as_ref(), &indices, None))
        .collect::<Result<_, _>>()?;
    let runs = key_runs(&pk_sorted)?;
    if runs.len() == batch.num_rows() {
        // No duplicate keys: just the sorted rows.
        let columns = batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &indices, None))
            .collect::<Result<Vec<_>, _>>()?;
        return RecordBatch::try_new(schema, columns);
    }

    // Position (into the original batch) of each run's first row: used for key columns.
    let first: UInt32Array = runs.iter().map(|r| indices.value(r.0)).collect();
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let is_key = matches!(
            column_type_of(field),
            Some(ColumnType::Tag | ColumnType::Time)
        ) || pk_names.iter().any(|n| n == field.name());
        if is_key {
            columns.push(take(column.as_ref(), &first, None)?);
            continue;
        }
        // For a field: the last row of the run whose value is not null (or the last row).
        let pick: UInt32Array = runs
            .iter()
            .map(|&(start, end)| {
                let mut chosen = indices.value(end - 1);
                for i in (start..end).rev() {
                    let row = indices.value(i);
                    if column.is_valid(row as usize) {
                        chosen = row;
                        break;
                    }
                }
                chosen
            })
            .collect();
        columns.push(take(column.as_ref(), &pick, None)?);
    }
    RecordBatch::try_new(schema, columns)
}

/// `[start, end)` ranges of consecutive rows with equal values in all `columns`.
fn key_runs(columns: &[ArrayRef]) -> Result<Vec<(usize, usize)>, ArrowError> {
    let ranges = arrow::compute::partition(columns)?.ranges();
    Ok(ranges.into_iter().map(|r| (r.start, r.end)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray, TimestampNanosecondArray};
    use arrow::datatypes::Schema;

    fn batch(
        hosts: &[&str],
        times: &[i64],
        usage: &[Option<f64>],
        load: &[Option<i64>],
    ) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            ColumnType::Tag.arrow_field("host"),
            ColumnType::Time.arrow_field("time"),
            ColumnType::F64.arrow_field("usage"),
            ColumnType::I64.arrow_field("load"),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(hosts.to_vec())),
                Arc::new(TimestampNanosecondArray::from(times.to_vec())),
                Arc::new(Float64Array::from(usage.to_vec())),
                Arc::new(Int64Array::from(load.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn later_write_wins_field_by_field() {
        let b = batch(
            &["a", "b", "a", "a"],
            &[1, 1, 1, 2],
            &[Some(1.0), Some(5.0), Some(2.0), None],
            &[Some(10), None, None, Some(7)],
        );
        let out = sort_dedup(&b, None).unwrap();
        let expected = batch(
            &["a", "a", "b"],
            &[1, 2, 1],
            &[Some(2.0), None, Some(5.0)],
            &[Some(10), Some(7), None],
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn explicit_order_overrides_row_order() {
        let b = batch(&["a", "a"], &[1, 1], &[Some(1.0), Some(2.0)], &[None, None]);
        let order = UInt64Array::from(vec![9, 3]);
        let out = sort_dedup(&b, Some(&order)).unwrap();
        assert_eq!(out, batch(&["a"], &[1], &[Some(1.0)], &[None]));
    }

    #[test]
    fn rows_without_duplicates_are_only_sorted() {
        let b = batch(
            &["b", "a"],
            &[1, 1],
            &[Some(1.0), Some(2.0)],
            &[None, Some(1)],
        );
        let out = sort_dedup(&b, None).unwrap();
        assert_eq!(
            out,
            batch(
                &["a", "b"],
                &[1, 1],
                &[Some(2.0), Some(1.0)],
                &[Some(1), None]
            )
        );
    }
}
