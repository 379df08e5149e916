//! A query's tag predicates ([`TagIn`]), applied to buffered rows before they are sliced out
//! for the querier. A query for one host of a hundred then copies, and in a cluster sends,
//! a hundredth of the rows. Tags are in the primary key, so dropping rows by tag before
//! deduplication keeps every row that shares a key with a kept row.

use std::collections::HashSet;

use arrow::array::{Array, AsArray, BooleanArray, StringArray};
use arrow::datatypes::{DataType, Schema};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use ferrite_model::{ColumnType, column_type_of};

use crate::api::TagIn;

/// The checked predicates of one query.
#[derive(Debug, Default)]
pub(crate) struct TagFilter {
    predicates: Vec<(String, Values)>,
}

#[derive(Debug)]
enum Values {
    One(String),
    Any(HashSet<String>),
}

impl TagFilter {
    /// `tags`, each checked to name a Utf8 tag column of `schema`; the error says which
    /// does not.
    pub(crate) fn new(schema: &Schema, tags: &[TagIn]) -> Result<Self, String> {
        let predicates = tags
            .iter()
            .map(|t| {
                let field = schema.field_with_name(&t.column).map_err(|_| {
                    format!(
                        "tag predicate on '{}', which is not in the requested schema",
                        t.column
                    )
                })?;
                if column_type_of(field) != Some(ColumnType::Tag)
                    || field.data_type() != &DataType::Utf8
                {
                    return Err(format!(
                        "tag predicate on '{}', which is not a Utf8 tag column (only tags may \
                         be filtered before deduplication)",
                        t.column
                    ));
                }
                let values = match t.values.as_slice() {
                    [one] => Values::One(one.clone()),
                    many => Values::Any(many.iter().cloned().collect()),
                };
                Ok((t.column.clone(), values))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { predicates })
    }

    /// The rows of `batch` whose tags pass every predicate. A batch without one of the
    /// columns has only null tags there: no row passes.
    pub(crate) fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        let mut keep: Option<BooleanArray> = None;
        for (column, values) in &self.predicates {
            let Some(array) = batch.column_by_name(column) else {
                return Ok(batch.slice(0, 0));
            };
            let strings = array.as_string_opt::<i32>().ok_or_else(|| {
                ArrowError::SchemaError(format!(
                    "tag column '{column}' is {} in the buffer, not Utf8",
                    array.data_type()
                ))
            })?;
            let passes = match values {
                Values::One(value) => arrow::compute::kernels::cmp::eq(
                    strings,
                    &StringArray::new_scalar(value.as_str()),
                )?,
                // A null tag gives a null mask entry, which `filter` drops as SQL does.
                Values::Any(set) => strings.iter().map(|v| v.map(|v| set.contains(v))).collect(),
            };
            keep = Some(match keep {
                None => passes,
                Some(k) => arrow::compute::and(&k, &passes)?,
            });
        }
        match keep {
            Some(keep) if keep.true_count() == batch.num_rows() => Ok(batch.clone()),
            Some(keep) => arrow::compute::filter_record_batch(batch, &keep),
            None => Ok(batch.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array};

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            ColumnType::Tag.arrow_field("host"),
            ColumnType::Tag.arrow_field("region"),
            ColumnType::I64.arrow_field("load"),
        ])
    }

    fn batch() -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![
                Some("a"),
                Some("b"),
                Some("c"),
                None,
            ])),
            Arc::new(StringArray::from(vec![
                Some("eu"),
                None,
                Some("us"),
                Some("eu"),
            ])),
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
        ];
        RecordBatch::try_new(Arc::new(schema()), columns).expect("batch")
    }

    fn tag(column: &str, values: &[&str]) -> TagIn {
        TagIn {
            column: column.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn loads(filter: &TagFilter, batch: &RecordBatch) -> Vec<i64> {
        let out = filter.apply(batch).expect("apply");
        out.column_by_name("load")
            .expect("load")
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("i64")
            .values()
            .to_vec()
    }

    #[test]
    fn keeps_rows_whose_tags_are_in_every_list_and_never_a_null_tag() {
        let one = TagFilter::new(&schema(), &[tag("host", &["b"])]).expect("valid");
        assert_eq!(loads(&one, &batch()), vec![2]);
        let many = TagFilter::new(&schema(), &[tag("host", &["a", "c", "z"])]).expect("valid");
        assert_eq!(loads(&many, &batch()), vec![1, 3]);
        let both = TagFilter::new(
            &schema(),
            &[tag("host", &["a", "b", "c"]), tag("region", &["eu"])],
        )
        .expect("valid");
        assert_eq!(loads(&both, &batch()), vec![1]);
        let empty_list = TagFilter::new(&schema(), &[tag("region", &[])]).expect("valid");
        assert_eq!(loads(&empty_list, &batch()), Vec::<i64>::new());
    }

    #[test]
    fn a_batch_without_the_tag_has_no_row_that_passes() {
        let narrow = batch().project(&[0, 2]).expect("project");
        let filter = TagFilter::new(&schema(), &[tag("region", &["eu"])]).expect("valid");
        assert_eq!(loads(&filter, &narrow), Vec::<i64>::new());
    }

    #[test]
    fn only_utf8_tags_of_the_schema_may_be_filtered() {
        let missing = TagFilter::new(&schema(), &[tag("zone", &["x"])]).unwrap_err();
        assert!(
            missing.contains("'zone', which is not in the requested schema"),
            "{missing}"
        );
        let field = TagFilter::new(&schema(), &[tag("load", &["1"])]).unwrap_err();
        assert!(
            field.contains("'load', which is not a Utf8 tag column"),
            "{field}"
        );
    }
}
