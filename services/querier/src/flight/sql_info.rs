//! What Flight SQL clients learn about the server before they query: `GetSqlInfo` (server
//! identity and SQL dialect, read by JDBC's `DatabaseMetaData` and ADBC's `get_info`) and
//! `GetXdbcTypeInfo` (the SQL types columns can have).
//!
//! Both are fixed for a build, so they are built once. Bitmask values are `1 << variant`, as
//! the Flight SQL spec defines them.

use std::sync::LazyLock;

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlOuterJoinsSupportLevel,
    SqlSupportedCaseSensitivity, SqlSupportedGroupBy, SqlSupportedSubqueries,
    SqlSupportedTransaction, SqlSupportedUnions, SupportedSqlGrammar, XdbcDataType,
    XdbcDatetimeSubcode,
};
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;

/// Scalar functions clients may list (JDBC `getNumericFunctions` etc.). All are DataFusion's.
const NUMERIC_FUNCTIONS: &[&str] = &[
    "abs",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "cbrt",
    "ceil",
    "cos",
    "cosh",
    "cot",
    "degrees",
    "exp",
    "factorial",
    "floor",
    "gcd",
    "isnan",
    "iszero",
    "lcm",
    "ln",
    "log",
    "log10",
    "log2",
    "nanvl",
    "pi",
    "pow",
    "power",
    "radians",
    "random",
    "round",
    "signum",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
    "trunc",
];
const STRING_FUNCTIONS: &[&str] = &[
    "ascii",
    "bit_length",
    "btrim",
    "char_length",
    "character_length",
    "chr",
    "concat",
    "concat_ws",
    "ends_with",
    "initcap",
    "left",
    "length",
    "levenshtein",
    "lower",
    "lpad",
    "ltrim",
    "octet_length",
    "regexp_like",
    "regexp_match",
    "regexp_replace",
    "repeat",
    "replace",
    "reverse",
    "right",
    "rpad",
    "rtrim",
    "split_part",
    "starts_with",
    "strpos",
    "substr",
    "substring",
    "to_hex",
    "translate",
    "trim",
    "upper",
];
const DATETIME_FUNCTIONS: &[&str] = &[
    "current_date",
    "current_time",
    "date_bin",
    "date_part",
    "date_trunc",
    "datepart",
    "datetrunc",
    "from_unixtime",
    "make_date",
    "now",
    "to_char",
    "to_date",
    "to_timestamp",
    "to_timestamp_micros",
    "to_timestamp_millis",
    "to_timestamp_nanos",
    "to_timestamp_seconds",
    "to_unixtime",
];
const SYSTEM_FUNCTIONS: &[&str] = &["arrow_typeof", "coalesce", "nullif", "nvl", "nvl2"];

/// `SupportedAnsi92SqlGrammarLevel` variants (arrow-flight does not re-export the enum).
const ANSI92_ENTRY_SQL: i32 = 0;
const ANSI92_INTERMEDIATE_SQL: i32 = 1;

/// `1 << variant` for each of `variants`: the Flight SQL encoding of a set.
fn bitmask(variants: &[i32]) -> i32 {
    variants.iter().fold(0, |mask, v| mask | (1 << v))
}

/// The answer to `GetSqlInfo`.
pub(crate) static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    // The server.
    b.append(SqlInfo::FlightSqlServerName, "ferrite");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    b.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, false);
    // Handles are stateless, so they never expire (0 = no timeout).
    b.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    b.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);

    // The SQL dialect (DataFusion's).
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    // Unquoted identifiers are folded to lower case; quoted ones keep their case.
    b.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    // DataFusion sorts NULLs last in ascending order, i.e. as the highest value.
    b.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    let keywords: Vec<String> = ALL_KEYWORDS.iter().map(|k| k.to_string()).collect();
    b.append(SqlInfo::SqlKeywords, keywords);
    b.append(SqlInfo::SqlNumericFunctions, NUMERIC_FUNCTIONS);
    b.append(SqlInfo::SqlStringFunctions, STRING_FUNCTIONS);
    b.append(SqlInfo::SqlSystemFunctions, SYSTEM_FUNCTIONS);
    b.append(SqlInfo::SqlDatetimeFunctions, DATETIME_FUNCTIONS);
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    b.append(
        SqlInfo::SqlSupportedGroupBy,
        bitmask(&[
            SqlSupportedGroupBy::SqlGroupByUnrelated as i32,
            SqlSupportedGroupBy::SqlGroupByBeyondSelect as i32,
        ]),
    );
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(
        SqlInfo::SqlSupportedGrammar,
        bitmask(&[
            SupportedSqlGrammar::SqlMinimumGrammar as i32,
            SupportedSqlGrammar::SqlCoreGrammar as i32,
        ]),
    );
    b.append(
        SqlInfo::SqlAnsi92SupportedLevel,
        bitmask(&[ANSI92_ENTRY_SQL, ANSI92_INTERMEDIATE_SQL]),
    );
    b.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    b.append(
        SqlInfo::SqlOuterJoinsSupportLevel,
        SqlOuterJoinsSupportLevel::SqlFullOuterJoins as i32,
    );
    // In ferrite terms a schema is `iox` (user tables) or `information_schema`, and the one
    // catalog is `public`: a database is chosen by the `database` header, not by catalog.
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlProcedureTerm, "procedure");
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSchemasSupportedActions, 0i32);
    b.append(SqlInfo::SqlCatalogsSupportedActions, 0i32);
    b.append(SqlInfo::SqlSupportedPositionedCommands, 0i32);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    b.append(
        SqlInfo::SqlSupportedSubqueries,
        bitmask(&[
            SqlSupportedSubqueries::SqlSubqueriesInComparisons as i32,
            SqlSupportedSubqueries::SqlSubqueriesInExists as i32,
            SqlSupportedSubqueries::SqlSubqueriesInIns as i32,
        ]),
    );
    b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    b.append(
        SqlInfo::SqlSupportedUnions,
        bitmask(&[
            SqlSupportedUnions::SqlUnion as i32,
            SqlSupportedUnions::SqlUnionAll as i32,
        ]),
    );
    // No fixed maxima: 0 means "no limit or unknown" to JDBC.
    for max in [
        SqlInfo::SqlMaxBinaryLiteralLength,
        SqlInfo::SqlMaxCharLiteralLength,
        SqlInfo::SqlMaxColumnNameLength,
        SqlInfo::SqlMaxColumnsInGroupBy,
        SqlInfo::SqlMaxColumnsInIndex,
        SqlInfo::SqlMaxColumnsInOrderBy,
        SqlInfo::SqlMaxColumnsInSelect,
        SqlInfo::SqlMaxColumnsInTable,
        SqlInfo::SqlMaxConnections,
        SqlInfo::SqlMaxCursorNameLength,
        SqlInfo::SqlMaxIndexLength,
        SqlInfo::SqlDbSchemaNameLength,
        SqlInfo::SqlMaxProcedureNameLength,
        SqlInfo::SqlMaxCatalogNameLength,
        SqlInfo::SqlMaxRowSize,
        SqlInfo::SqlMaxStatementLength,
        SqlInfo::SqlMaxStatements,
        SqlInfo::SqlMaxTableNameLength,
        SqlInfo::SqlMaxTablesInSelect,
        SqlInfo::SqlMaxUsernameLength,
    ] {
        b.append(max, 0i64);
    }
    b.append(SqlInfo::SqlMaxRowSizeIncludesBlobs, true);
    b.append(SqlInfo::SqlDefaultTransactionIsolation, 0i64);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlSupportedTransactionsIsolationLevels, 0i32);
    b.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
    b.append(SqlInfo::SqlDataDefinitionsInTransactionsIgnored, true);
    b.append(SqlInfo::SqlBatchUpdatesSupported, false);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    b.append(SqlInfo::SqlLocatorsUpdateCopy, false);
    b.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
    b.build().expect("the SqlInfo table is well formed")
});

/// One `GetXdbcTypeInfo` row.
fn xdbc(
    type_name: &str,
    data_type: XdbcDataType,
    literal_quote: Option<&str>,
    unsigned: Option<bool>,
    subcode: Option<XdbcDatetimeSubcode>,
    num_prec_radix: Option<i32>,
) -> XdbcTypeInfo {
    XdbcTypeInfo {
        type_name: type_name.to_string(),
        data_type,
        column_size: None,
        literal_prefix: literal_quote.map(str::to_string),
        literal_suffix: literal_quote.map(str::to_string),
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: data_type == XdbcDataType::XdbcVarchar,
        searchable: Searchable::Full,
        unsigned_attribute: unsigned,
        fixed_prec_scale: false,
        auto_increment: None,
        local_type_name: Some(type_name.to_string()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type: data_type,
        datetime_subcode: subcode,
        num_prec_radix,
        interval_precision: None,
    }
}

/// The answer to `GetXdbcTypeInfo`: the SQL types of ferrite's columns (tags and string
/// fields, integer, unsigned, float and boolean fields, and time).
pub(crate) static XDBC_TYPE_INFO: LazyLock<XdbcTypeInfoData> = LazyLock::new(|| {
    let mut b = XdbcTypeInfoDataBuilder::new();
    b.append(xdbc(
        "VARCHAR",
        XdbcDataType::XdbcVarchar,
        Some("'"),
        None,
        None,
        None,
    ));
    b.append(xdbc(
        "BIGINT",
        XdbcDataType::XdbcBigint,
        None,
        Some(false),
        None,
        Some(10),
    ));
    b.append(xdbc(
        "BIGINT UNSIGNED",
        XdbcDataType::XdbcBigint,
        None,
        Some(true),
        None,
        Some(10),
    ));
    b.append(xdbc(
        "DOUBLE",
        XdbcDataType::XdbcDouble,
        None,
        Some(false),
        None,
        Some(2),
    ));
    b.append(xdbc(
        "BOOLEAN",
        XdbcDataType::XdbcBit,
        None,
        None,
        None,
        None,
    ));
    b.append(xdbc(
        "TIMESTAMP",
        XdbcDataType::XdbcTimestamp,
        Some("'"),
        None,
        Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
        None,
    ));
    b.build().expect("the XDBC type table is well formed")
});

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray, UInt32Array};
    use arrow::datatypes::UInt32Type;

    use super::*;

    #[test]
    fn sql_info_answers_every_requested_id_in_the_standard_schema() {
        let ids = [
            SqlInfo::FlightSqlServerName as u32,
            SqlInfo::FlightSqlServerTransaction as u32,
            SqlInfo::SqlIdentifierQuoteChar as u32,
        ];
        let batch = SQL_INFO.record_batch(ids).unwrap();
        assert_eq!(batch.num_rows(), 3);
        // The schema ADBC checks: uint32 info_name and a dense union value.
        assert_eq!(
            batch.schema().field(0).data_type(),
            &arrow::datatypes::DataType::UInt32
        );
        assert!(matches!(
            batch.schema().field(1).data_type(),
            arrow::datatypes::DataType::Union(_, arrow::datatypes::UnionMode::Dense)
        ));
        let names: &UInt32Array = batch.column(0).as_primitive::<UInt32Type>();
        let mut got: Vec<u32> = names.values().to_vec();
        got.sort_unstable();
        let mut want = ids.to_vec();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn all_sql_info_is_returned_for_an_empty_request() {
        let all = SQL_INFO.record_batch([]).unwrap();
        assert!(all.num_rows() > 50, "{} rows", all.num_rows());
        assert_eq!(all.column(1).null_count(), 0);
    }

    #[test]
    fn xdbc_type_info_filters_by_type() {
        let all = XDBC_TYPE_INFO.record_batch(None).unwrap();
        assert_eq!(all.num_rows(), 6);
        let bigints = XDBC_TYPE_INFO
            .record_batch(Some(XdbcDataType::XdbcBigint as i32))
            .unwrap();
        assert_eq!(bigints.num_rows(), 2);
    }
}
