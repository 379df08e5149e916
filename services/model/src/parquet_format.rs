//! How ferrite encodes a table's rows as Parquet: one choice for the ingester's persisted
//! files and the compactor's merged ones, so that every file of a table reads alike.
//!
//! ```text
//!  column type              encoding                         why
//!  tag, string, bool        dictionary (RLE indices)         few distinct values per file
//!  float                    dictionary, else plain           gauges repeat few values
//!  integer, unsigned, time  DELTA_BINARY_PACKED, no dict     sorted by series then time,
//!                                                            neighbours differ by little
//!  all                      zstd(1) · page statistics · pages of at most 16 Ki rows
//! ```
//!
//! Rows arrive sorted by primary key (tags, then time), so one series' values lie side by
//! side in time order. A timestamp column then has a constant delta, and an integer gauge
//! or counter moves by a few units a row: its deltas pack into two or three bits where a
//! dictionary index of a 0–100 gauge needs seven. On TSBS's cpu data (ten integer gauges)
//! `make bench-peers` measured 0.94 bytes per value before and 0.39 after (`docs/benchmarks.md`).

use arrow::datatypes::{DataType, Schema};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

use crate::{DatabaseId, TableId};

/// Rows per data page: small enough that the page index prunes a query to a few pages.
pub const DATA_PAGE_ROWS: usize = 16 * 1024;

/// Writer settings for one file of `schema`'s rows in a partition. The key-value metadata
/// names the database, table and partition, so a file found alone in the object store
/// says where it belongs. Callers add what is theirs (row-group size) before `build()`.
pub fn writer_properties(
    schema: &Schema,
    database_id: DatabaseId,
    table_id: TableId,
    partition_key: &str,
) -> WriterPropertiesBuilder {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_data_page_row_count_limit(DATA_PAGE_ROWS)
        .set_key_value_metadata(Some(vec![
            KeyValue::new("ferrite:database_id".into(), database_id.to_string()),
            KeyValue::new("ferrite:table_id".into(), table_id.to_string()),
            KeyValue::new("ferrite:partition_key".into(), partition_key.to_string()),
        ]));
    for field in schema.fields() {
        if delta_encoded(field.data_type()) {
            let path = ColumnPath::from(field.name().as_str());
            builder = builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
        }
    }
    builder
}

/// Whether a column of this type is written as deltas rather than through a dictionary.
fn delta_encoded(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int64 | DataType::UInt64 | DataType::Timestamp(_, _)
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampNanosecondArray};
    use arrow::record_batch::RecordBatch;
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;
    use crate::ColumnType;

    /// A sorted series of a slowly moving integer gauge, a float and a tag.
    fn series(rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            ColumnType::Tag.arrow_field("host"),
            ColumnType::I64.arrow_field("load"),
            ColumnType::F64.arrow_field("temp"),
            ColumnType::Time.arrow_field("time"),
        ]));
        let mut level = 50i64;
        let load = Int64Array::from_iter_values((0..rows).map(|i| {
            level = (level + [1, 0, -1, 0][i % 4]).clamp(0, 100);
            level
        }));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["a"; rows])),
            Arc::new(load),
            Arc::new(Float64Array::from_iter_values(
                (0..rows).map(|i| (i % 7) as f64 / 2.0),
            )),
            Arc::new(TimestampNanosecondArray::from_iter_values(
                (0..rows as i64).map(|i| i * 10_000_000_000),
            )),
        ];
        RecordBatch::try_new(schema, columns).expect("valid batch")
    }

    fn write(batch: &RecordBatch) -> Vec<u8> {
        let props = writer_properties(&batch.schema(), DatabaseId(1), TableId(2), "2026-12-01");
        let mut writer =
            ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props.build())).expect("writer");
        writer.write(batch).expect("write");
        writer.into_inner().expect("close")
    }

    #[test]
    fn integers_and_time_are_delta_encoded_others_use_a_dictionary() {
        let bytes = write(&series(50_000));
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).expect("reader");
        let row_group = reader.metadata().row_group(0);
        let encodings = |name: &str| {
            let column = row_group
                .columns()
                .iter()
                .find(|c| c.column_path().string() == name)
                .expect("column present");
            column.encodings().collect::<Vec<_>>()
        };
        for name in ["load", "time"] {
            let used = encodings(name);
            assert!(
                used.contains(&Encoding::DELTA_BINARY_PACKED),
                "{name}: {used:?}"
            );
            assert!(
                !used.contains(&Encoding::RLE_DICTIONARY),
                "{name}: {used:?}"
            );
        }
        for name in ["host", "temp"] {
            let used = encodings(name);
            assert!(used.contains(&Encoding::RLE_DICTIONARY), "{name}: {used:?}");
        }
    }

    #[test]
    fn rows_and_file_identity_read_back_unchanged() {
        let batch = series(40_000);
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(write(&batch)))
            .expect("reader");
        let kv = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .expect("metadata")
            .clone();
        let value = |key: &str| {
            kv.iter()
                .find(|e| e.key == key)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(value("ferrite:database_id").as_deref(), Some("1"));
        assert_eq!(value("ferrite:table_id").as_deref(), Some("2"));
        assert_eq!(
            value("ferrite:partition_key").as_deref(),
            Some("2026-12-01")
        );
        let read: Vec<RecordBatch> = builder
            .build()
            .expect("build")
            .collect::<Result<_, _>>()
            .expect("read");
        let read = arrow::compute::concat_batches(&batch.schema(), &read).expect("concat");
        assert_eq!(read.num_rows(), batch.num_rows());
        for (a, b) in batch.columns().iter().zip(read.columns()) {
            assert_eq!(a.as_ref(), b.as_ref());
        }
    }
}
