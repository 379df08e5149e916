//! `database()`: the schema user tables live in (`iox`). Grafana's built-in InfluxDB SQL
//! datasource lists tables with `… WHERE table_schema = database()` when no schema is chosen
//! (MySQL's sense of the word: the current schema), so the browser shows the user tables.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::engine::SCHEMA_NAME;

/// The `database()` function.
pub(crate) fn udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(Database {
        signature: Signature::exact(vec![], Volatility::Immutable),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Database {
    signature: Signature,
}

impl ScalarUDFImpl for Database {
    fn name(&self) -> &str {
        "database"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            SCHEMA_NAME.to_string(),
        ))))
    }
}
