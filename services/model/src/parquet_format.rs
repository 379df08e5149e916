//! How ferrite encodes a table's rows as Parquet: one choice for the ingester's persisted
//! files and the compactor's merged ones, so that every file of a table reads alike.
//!
//! ```text
//!  column type              encoding                         why
//!  tag, string, bool        dictionary (RLE indices)         few distinct values per file
//!  float                    dictionary, else plain           gauges repeat few values
//!  integer, unsigned, time  DELTA_BINARY_PACKED, no dict     sorted by series then time,
//!                                                            neighbours differ by little
//!  tag                      + a bloom filter per row group   rules out row groups a
//!                                                            tag = 'v' query cannot match
//!  all                      zstd(1) · page statistics · pages of at most 16 Ki rows ·
//!                           row groups of at most 64 Ki rows
//! ```
//!
//! Rows arrive sorted by the partition's sort key (tags, then time; see [`crate::sort_key`]),
//! so one series' values lie side by side in time order. A timestamp column then has a constant delta, and an integer gauge
//! or counter moves by a few units a row: its deltas pack into two or three bits where a
//! dictionary index of a 0–100 gauge needs seven. On TSBS's cpu data (ten integer gauges)
//! `make bench-peers` measured 0.94 bytes per value before and 0.39 after (`docs/benchmarks.md`).
//!
//! Only the leading tag is ordered across a file; a later one, such as a host (the most
//! distinct values, so the last tag), is not: a page or row group spanning two series of
//! `host` holds, say, `host_31` and `host_45`, and its min/max admit every host between them. Statistics alone kept 35 of 53 pages of a
//! 864,000-row file for one host. So files are cut into row groups of a few series each,
//! with a bloom filter per tag that rules out the row groups lacking the host; the page
//! index then prunes within the rest. Each filter is sized for a row group's rows and then
//! folded down to the values it holds (at most 1 KiB for a few hundred). Several row groups
//! also let a scan of one file split across cores: DataFusion hands out whole row groups.
//!

use arrow::datatypes::{DataType, Schema};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

use crate::{ColumnType, DatabaseId, TableId, column_type_of};

/// Rows per data page: small enough that the page index prunes a query to a few pages.
pub const DATA_PAGE_ROWS: usize = 16 * 1024;

/// Rows per row group: a few series of a typical table, so a tag's bloom filter rules most
/// row groups out for one series, and enough row groups in a day's file to keep two cores
/// busy scanning it.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Writer settings for one file of `schema`'s rows in a partition. The key-value metadata
/// names the database, table and partition, so a file found alone in the object store
/// says where it belongs. Callers add what is theirs (a smaller row group) before `build()`.
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
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_key_value_metadata(Some(vec![
            KeyValue::new("ferrite:database_id".into(), database_id.to_string()),
            KeyValue::new("ferrite:table_id".into(), table_id.to_string()),
            KeyValue::new("ferrite:partition_key".into(), partition_key.to_string()),
        ]));
    for field in schema.fields() {
        let path = ColumnPath::from(field.name().as_str());
        if delta_encoded(field.data_type()) {
            builder = builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
        } else if column_type_of(field) == Some(ColumnType::Tag) {
            // Sized for a row group of distinct values, folded down to those it holds.
            builder = builder
                .set_column_bloom_filter_enabled(path.clone(), true)
                .set_column_bloom_filter_max_ndv(path, ROW_GROUP_ROWS as u64);
        }
    }
    builder
}

/// The Parquet form of a file's sort order: `key`'s columns of `schema` (a flat schema, so
/// a field's index is its column's), ascending, nulls first. Readers learn the order from
/// the file itself; ferrite's own readers take it from the partition's key.
pub fn sorting_columns(schema: &Schema, key: &[String]) -> Vec<SortingColumn> {
    key.iter()
        .filter_map(|name| schema.index_of(name).ok())
        .map(|i| SortingColumn {
            column_idx: i as i32,
            descending: false,
            nulls_first: true,
        })
        .collect()
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

    /// `rows` rows of `hosts` series, sorted by host then time.
    fn hosts(hosts: usize, rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            ColumnType::Tag.arrow_field("host"),
            ColumnType::Tag.arrow_field("region"),
            ColumnType::I64.arrow_field("load"),
            ColumnType::Time.arrow_field("time"),
        ]));
        let per_host = rows.div_ceil(hosts);
        let host = |i: usize| format!("host_{:03}", i / per_host);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values((0..rows).map(host))),
            Arc::new(StringArray::from(vec!["eu"; rows])),
            Arc::new(Int64Array::from_iter_values(
                (0..rows as i64).map(|i| i % 100),
            )),
            Arc::new(TimestampNanosecondArray::from_iter_values(
                (0..rows).map(|i| (i % per_host) as i64 * 10_000_000_000),
            )),
        ];
        RecordBatch::try_new(schema, columns).expect("valid batch")
    }

    #[test]
    fn row_groups_are_bounded_and_each_has_a_bloom_filter_per_tag() {
        let rows = 2 * ROW_GROUP_ROWS + 1_000;
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(write(&hosts(30, rows))))
                .expect("reader");
        let metadata = reader.metadata();
        assert_eq!(metadata.num_row_groups(), 3);
        let column = |name: &str| {
            metadata
                .file_metadata()
                .schema_descr()
                .columns()
                .iter()
                .position(|c| c.name() == name)
                .expect("column")
        };
        let filter = |g, name| {
            reader
                .get_row_group_column_bloom_filter(g, column(name))
                .expect("readable filter")
        };
        for g in 0..metadata.num_row_groups() {
            assert!(metadata.row_group(g).num_rows() <= ROW_GROUP_ROWS as i64);
            assert!(filter(g, "load").is_none());
            assert!(filter(g, "time").is_none());
            assert!(filter(g, "region").is_some());
            let host = filter(g, "host").expect("host filter");
            // Folded from a row group's worth of values down to its ~15 hosts.
            let length = metadata
                .row_group(g)
                .column(column("host"))
                .bloom_filter_length();
            assert!(length.is_some_and(|n| n <= 1024), "{length:?}");
            // The rows are sorted by host, 30 hosts over three row groups: the first row
            // group's filter has the first host and, within its false-positive rate, not
            // the last one; the last row group's the other way round.
            let (first, last) = ("host_000", "host_029");
            if g == 0 {
                assert!(host.check(first) && !host.check(last));
            }
            if g == 2 {
                assert!(host.check(last) && !host.check(first));
            }
        }
    }
}
