//! Values for `$name` placeholders, from the two wire forms clients send: a JSON object of
//! scalars (HTTP `params`, JSON Flight tickets) and the protobuf `QueryParamValue` map of a
//! `ReadInfo` ticket.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use datafusion::common::{ParamValues, ScalarValue};
use ferrite_proto::influxdata::iox::querier::v1::QueryParamValue;
use ferrite_proto::influxdata::iox::querier::v1::query_param_value::Value as ProtoValue;

use crate::error::QueryError;

/// Named query parameters. Names are given without the leading `$`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryParams {
    values: BTreeMap<String, ScalarValue>,
}

impl QueryParams {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or replace one parameter.
    pub fn with(mut self, name: impl Into<String>, value: ScalarValue) -> Self {
        self.values.insert(normalize(name.into()), value);
        self
    }

    /// The value of parameter `name` (with or without its `$`).
    pub(crate) fn get(&self, name: &str) -> Option<&ScalarValue> {
        self.values.get(&normalize(name.to_string()))
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Parameters from a JSON object of scalars: null, bool, integer (signed, or unsigned above
    /// `i64::MAX`), float, string. `null` as the whole value means no parameters.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, QueryError> {
        match value {
            serde_json::Value::Null => Ok(Self::new()),
            serde_json::Value::Object(map) => {
                let mut params = Self::new();
                for (name, v) in map {
                    params = params.with(name.clone(), json_scalar(name, v)?);
                }
                Ok(params)
            }
            other => Err(QueryError::InvalidParams(format!(
                "expected a JSON object of parameter names to values, got {}",
                json_kind(other)
            ))),
        }
    }

    /// Parameters from the JSON text of an HTTP `params` query parameter.
    pub fn from_json_str(text: &str) -> Result<Self, QueryError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| QueryError::InvalidParams(format!("params is not valid JSON: {e}")))?;
        Self::from_json(&value)
    }

    /// Parameters from a protobuf `ReadInfo.params` map.
    pub fn from_proto<'a>(
        map: impl IntoIterator<Item = (&'a String, &'a QueryParamValue)>,
    ) -> Result<Self, QueryError> {
        let mut params = Self::new();
        for (name, value) in map {
            let scalar = match &value.value {
                None | Some(ProtoValue::Null(_)) => ScalarValue::Null,
                Some(ProtoValue::Boolean(b)) => ScalarValue::Boolean(Some(*b)),
                Some(ProtoValue::UInt64(u)) => ScalarValue::UInt64(Some(*u)),
                Some(ProtoValue::Int64(i)) => ScalarValue::Int64(Some(*i)),
                Some(ProtoValue::Float64(f)) => ScalarValue::Float64(Some(*f)),
                Some(ProtoValue::String(s)) => ScalarValue::Utf8(Some(s.clone())),
            };
            params = params.with(name.clone(), scalar);
        }
        Ok(params)
    }

    /// Values a Flight SQL client bound to a prepared statement: row `row` of `batch`. Column
    /// `i` is placeholder `$<i+1>`, unless its name is a placeholder itself (`$name`).
    pub(crate) fn from_bound_row(batch: &RecordBatch, row: usize) -> Result<Self, QueryError> {
        let mut params = Self::new();
        for (i, (field, column)) in batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .enumerate()
        {
            let name = match field.name().strip_prefix('$') {
                Some(name) if !name.is_empty() => name.to_string(),
                _ => (i + 1).to_string(),
            };
            let value = ScalarValue::try_from_array(column, row).map_err(|e| {
                QueryError::InvalidParams(format!("parameter {}: {e}", field.name()))
            })?;
            params = params.with(name, value);
        }
        Ok(params)
    }

    /// The parameters as a one-row batch, a column per parameter named without `$` (the
    /// inverse of [`QueryParams::from_batch`]).
    pub(crate) fn to_batch(&self) -> Result<RecordBatch, QueryError> {
        let mut fields = Vec::with_capacity(self.values.len());
        let mut columns = Vec::with_capacity(self.values.len());
        for (name, value) in &self.values {
            let column = value
                .to_array()
                .map_err(|e| QueryError::Internal(format!("parameter {name}: {e}")))?;
            fields.push(Field::new(name, column.data_type().clone(), true));
            columns.push(column);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(1));
        RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)
            .map_err(|e| QueryError::Internal(format!("parameter batch: {e}")))
    }

    /// Parameters from a batch made by [`QueryParams::to_batch`].
    pub(crate) fn from_batch(batch: &RecordBatch) -> Result<Self, QueryError> {
        if batch.num_rows() != 1 {
            return Err(QueryError::InvalidRequest(format!(
                "statement handle holds {} parameter rows, expected 1",
                batch.num_rows()
            )));
        }
        let mut params = Self::new();
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let value = ScalarValue::try_from_array(column, 0).map_err(|e| {
                QueryError::InvalidRequest(format!("parameter {}: {e}", field.name()))
            })?;
            params = params.with(field.name().clone(), value);
        }
        Ok(params)
    }

    /// The DataFusion form.
    pub(crate) fn to_param_values(&self) -> ParamValues {
        ParamValues::from(
            self.values
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>(),
        )
    }
}

/// Accept `$name` as well as `name`.
fn normalize(name: String) -> String {
    match name.strip_prefix('$') {
        Some(stripped) => stripped.to_string(),
        None => name,
    }
}

fn json_scalar(name: &str, value: &serde_json::Value) -> Result<ScalarValue, QueryError> {
    Ok(match value {
        serde_json::Value::Null => ScalarValue::Null,
        serde_json::Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                ScalarValue::Int64(Some(i))
            } else if let Some(u) = n.as_u64() {
                ScalarValue::UInt64(Some(u))
            } else if let Some(f) = n.as_f64() {
                ScalarValue::Float64(Some(f))
            } else {
                return Err(QueryError::InvalidParams(format!(
                    "parameter '{name}': number {n} is out of range"
                )));
            }
        }
        serde_json::Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        other => {
            return Err(QueryError::InvalidParams(format!(
                "parameter '{name}' must be a scalar (null, boolean, number or string), got {}",
                json_kind(other)
            )));
        }
    })
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_scalars_map_to_sql_types() {
        let p = QueryParams::from_json(&json!({
            "n": null, "b": true, "i": -3, "u": u64::MAX, "f": 1.5, "s": "x", "$d": 1
        }))
        .unwrap();
        let expected = QueryParams::new()
            .with("n", ScalarValue::Null)
            .with("b", ScalarValue::Boolean(Some(true)))
            .with("i", ScalarValue::Int64(Some(-3)))
            .with("u", ScalarValue::UInt64(Some(u64::MAX)))
            .with("f", ScalarValue::Float64(Some(1.5)))
            .with("s", ScalarValue::Utf8(Some("x".into())))
            .with("d", ScalarValue::Int64(Some(1)));
        assert_eq!(p, expected);
    }

    #[test]
    fn non_scalars_are_refused() {
        assert!(matches!(
            QueryParams::from_json(&json!({"a": [1]})),
            Err(QueryError::InvalidParams(m)) if m.contains("'a'") && m.contains("array")
        ));
        assert!(QueryParams::from_json(&json!([1])).is_err());
        assert!(QueryParams::from_json_str("{").is_err());
        assert!(QueryParams::from_json(&json!(null)).unwrap().is_empty());
    }

    #[test]
    fn bound_rows_map_columns_to_positional_or_named_placeholders() {
        use arrow::array::{Int64Array, StringArray};
        let batch = RecordBatch::try_from_iter([
            ("a", Arc::new(StringArray::from(vec!["x", "y"])) as _),
            ("$limit", Arc::new(Int64Array::from(vec![5, 6])) as _),
        ])
        .unwrap();
        let params = QueryParams::from_bound_row(&batch, 1).unwrap();
        assert_eq!(
            params,
            QueryParams::new()
                .with("1", ScalarValue::Utf8(Some("y".into())))
                .with("limit", ScalarValue::Int64(Some(6)))
        );
        let round_trip = QueryParams::from_batch(&params.to_batch().unwrap()).unwrap();
        assert_eq!(round_trip, params);
        assert_eq!(
            QueryParams::from_batch(&QueryParams::new().to_batch().unwrap()).unwrap(),
            QueryParams::new()
        );
    }

    #[test]
    fn proto_values_map_to_sql_types() {
        let map = [
            (
                "a".to_string(),
                QueryParamValue {
                    value: Some(ProtoValue::UInt64(7)),
                },
            ),
            (
                "b".to_string(),
                QueryParamValue {
                    value: Some(ProtoValue::String("x".into())),
                },
            ),
        ];
        let p = QueryParams::from_proto(map.iter().map(|(k, v)| (k, v))).unwrap();
        assert_eq!(
            p,
            QueryParams::new()
                .with("a", ScalarValue::UInt64(Some(7)))
                .with("b", ScalarValue::Utf8(Some("x".into())))
        );
    }
}
