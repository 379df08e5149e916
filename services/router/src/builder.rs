//! Columnar batch building: validated lines become one Arrow batch per (table, partition).
//!
//! A column first seen at row N is back-filled with N nulls; a column a row does not set is
//! padded with a null before the next value (or at `finish`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampNanosecondArray, UInt64Builder,
};
use arrow::datatypes::{Field, Schema};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use ferrite_lineproto::{FieldValue, ParsedLine};
use ferrite_model::{ColumnType, TIME_COLUMN};

enum Column {
    Str(StringBuilder),
    I64(Int64Builder),
    U64(UInt64Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
}

impl Column {
    fn new(t: ColumnType) -> Self {
        match t {
            ColumnType::Tag | ColumnType::String => Self::Str(StringBuilder::new()),
            ColumnType::I64 => Self::I64(Int64Builder::new()),
            ColumnType::U64 => Self::U64(UInt64Builder::new()),
            ColumnType::F64 => Self::F64(Float64Builder::new()),
            // `time` is kept apart; a Time-typed entry never reaches here.
            ColumnType::Bool | ColumnType::Time => Self::Bool(BooleanBuilder::new()),
        }
    }

    fn builder(&mut self) -> &mut dyn ArrayBuilder {
        match self {
            Self::Str(b) => b,
            Self::I64(b) => b,
            Self::U64(b) => b,
            Self::F64(b) => b,
            Self::Bool(b) => b,
        }
    }

    fn pad_to(&mut self, rows: usize) {
        let missing = rows - self.builder().len();
        if missing == 0 {
            return;
        }
        match self {
            Self::Str(b) => b.append_nulls(missing),
            Self::I64(b) => b.append_nulls(missing),
            Self::U64(b) => b.append_nulls(missing),
            Self::F64(b) => b.append_nulls(missing),
            Self::Bool(b) => b.append_nulls(missing),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        self.builder().finish()
    }
}

/// Rows of one table and partition being built.
pub(crate) struct BatchBuilder {
    rows: usize,
    time: Vec<i64>,
    columns: HashMap<String, (ColumnType, Column)>,
}

impl BatchBuilder {
    pub(crate) fn new() -> Self {
        Self {
            rows: 0,
            time: Vec::new(),
            columns: HashMap::new(),
        }
    }

    fn column(&mut self, name: &str, t: ColumnType) -> &mut Column {
        let rows = self.rows;
        if !self.columns.contains_key(name) {
            self.columns.insert(name.to_string(), (t, Column::new(t)));
        }
        let (_, c) = self.columns.get_mut(name).expect("inserted above");
        c.pad_to(rows);
        c
    }

    /// Append a line that was validated: its columns have the types given by the line's
    /// syntax, and they agree with the table schema.
    pub(crate) fn append(&mut self, line: &ParsedLine<'_>, time: i64) {
        for (k, v) in &line.tags {
            if let Column::Str(b) = self.column(k, ColumnType::Tag) {
                b.append_value(v);
            }
        }
        let next = self.rows + 1;
        for (k, v) in &line.fields {
            match (self.column(k, field_type(v)), v) {
                (Column::Str(b), FieldValue::String(s)) => b.append_value(s),
                (Column::I64(b), FieldValue::I64(x)) => b.append_value(*x),
                (Column::U64(b), FieldValue::U64(x)) => b.append_value(*x),
                (Column::F64(b), FieldValue::F64(x)) => b.append_value(*x),
                (Column::Bool(b), FieldValue::Bool(x)) => b.append_value(*x),
                // Validation guarantees the stored builder matches the value's type.
                (c, _) => c.pad_to(next),
            }
        }
        self.time.push(time);
        self.rows += 1;
    }

    /// The batch: columns sorted by name, each with its ferrite column type.
    pub(crate) fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let mut names: Vec<String> = self.columns.keys().cloned().collect();
        names.push(TIME_COLUMN.to_string());
        names.sort();
        let mut fields: Vec<Field> = Vec::with_capacity(names.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(names.len());
        let time = std::mem::take(&mut self.time);
        let mut time = Some(time);
        for name in names {
            if name == TIME_COLUMN && !self.columns.contains_key(TIME_COLUMN) {
                fields.push(ColumnType::Time.arrow_field(TIME_COLUMN));
                arrays.push(Arc::new(TimestampNanosecondArray::from(
                    time.take().unwrap_or_default(),
                )));
                continue;
            }
            let (t, mut c) = self.columns.remove(&name).expect("name from map");
            c.pad_to(self.rows);
            fields.push(t.arrow_field(&name));
            arrays.push(c.finish());
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
    }
}

/// The column type a field value's syntax implies.
pub(crate) fn field_type(v: &FieldValue<'_>) -> ColumnType {
    match v {
        FieldValue::F64(_) => ColumnType::F64,
        FieldValue::I64(_) => ColumnType::I64,
        FieldValue::U64(_) => ColumnType::U64,
        FieldValue::Bool(_) => ColumnType::Bool,
        FieldValue::String(_) => ColumnType::String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Float64Array, StringArray};

    #[test]
    fn columns_missing_from_a_row_are_null() {
        let body = "cpu,host=a usage=1 1\ncpu,host=b,region=eu load=2i 2\ncpu usage=3 3";
        let mut b = BatchBuilder::new();
        for line in ferrite_lineproto::parse_lines(body) {
            let line = line.unwrap();
            b.append(&line, line.timestamp.unwrap());
        }
        let batch = b.finish().unwrap();
        let names: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, vec!["host", "load", "region", "time", "usage"]);
        let host = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(
            host.iter().collect::<Vec<_>>(),
            vec![Some("a"), Some("b"), None]
        );
        let usage = batch
            .column(4)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(
            usage.iter().collect::<Vec<_>>(),
            vec![Some(1.0), None, Some(3.0)]
        );
        assert_eq!(batch.column(2).null_count(), 2);
        assert_eq!(
            ferrite_model::column_type_of(batch.schema().field(0)),
            Some(ColumnType::Tag)
        );
    }
}
