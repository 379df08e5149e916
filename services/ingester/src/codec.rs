//! Conversions between the in-process write types and their protobuf / Arrow IPC form, used
//! by the WAL and by the cluster's write RPC.

use arrow::array::{MutableArrayData, make_array};
use arrow::buffer::Buffer;
use arrow::error::ArrowError;
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use ferrite_model::{DatabaseId, TableId};
use ferrite_proto::ferrite::ingester::v1 as proto;

use crate::api::{TableWrite, WriteRequest};

/// Why bytes could not be turned back into a write.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The protobuf envelope is malformed.
    #[error("invalid write message: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The Arrow IPC payload is malformed.
    #[error("invalid Arrow IPC payload for table {table_id}: {source}")]
    Ipc {
        /// Table whose payload failed.
        table_id: i64,
        /// Arrow's reason.
        source: ArrowError,
    },
}

/// One record batch as an Arrow IPC stream.
pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let mut writer = StreamWriter::try_new(Vec::new(), &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    writer.into_inner()
}

/// All record batches of an Arrow IPC stream, concatenated into one.
pub fn decode_batch(bytes: &[u8]) -> Result<RecordBatch, ArrowError> {
    decode_buffer(Buffer::from(bytes))
}

/// [`decode_batch`] over owned bytes (no copy of the IPC payload before decoding).
///
/// Uses the incremental `StreamDecoder` rather than `StreamReader`: the reader allocates
/// whatever a length prefix claims before reading, so a few bytes of garbage from the
/// network could make it allocate and zero hundreds of megabytes.
///
/// The result owns compact memory per column: IPC decoding slices every column out of one
/// shared allocation, and `get_array_memory_size` (the buffer's size accounting) would count
/// that whole allocation once per column.
fn decode_buffer(mut buffer: Buffer) -> Result<RecordBatch, ArrowError> {
    let mut decoder = StreamDecoder::new();
    let mut batches = Vec::new();
    while let Some(batch) = decoder.decode(&mut buffer)? {
        batches.push(batch);
    }
    decoder.finish()?;
    let schema = decoder
        .schema()
        .ok_or_else(|| ArrowError::IpcError("Arrow IPC stream has no schema".into()))?;
    match batches.len() {
        0 => Ok(RecordBatch::new_empty(schema)),
        1 => compact(&batches[0]),
        // `concat_batches` copies every column into a fresh allocation.
        _ => arrow::compute::concat_batches(&schema, &batches),
    }
}

/// `batch` with every column copied into memory of its own.
fn compact(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            let data = c.to_data();
            let mut copy = MutableArrayData::new(vec![&data], false, data.len());
            copy.try_extend(0, 0, data.len())?;
            Ok(make_array(copy.freeze()))
        })
        .collect::<Result<_, ArrowError>>()?;
    RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

/// The protobuf form of a write.
pub fn encode_write(
    request: &WriteRequest,
    no_sync: bool,
) -> Result<proto::WriteRequest, ArrowError> {
    let tables = request
        .tables
        .iter()
        .map(|t| {
            Ok(proto::TableBatch {
                table_id: t.table_id.get(),
                partition_key: t.partition_key.clone(),
                arrow_ipc: encode_batch(&t.batch)?,
            })
        })
        .collect::<Result<_, ArrowError>>()?;
    Ok(proto::WriteRequest {
        database_id: request.database_id.get(),
        tables,
        no_sync,
    })
}

/// The in-process form of a protobuf write.
pub fn decode_write(message: proto::WriteRequest) -> Result<WriteRequest, DecodeError> {
    let tables = message
        .tables
        .into_iter()
        .map(|t| {
            let batch = decode_buffer(Buffer::from_vec(t.arrow_ipc)).map_err(|source| {
                DecodeError::Ipc {
                    table_id: t.table_id,
                    source,
                }
            })?;
            Ok(TableWrite {
                table_id: TableId(t.table_id),
                partition_key: t.partition_key,
                batch,
            })
        })
        .collect::<Result<_, DecodeError>>()?;
    Ok(WriteRequest {
        database_id: DatabaseId(message.database_id),
        tables,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray, TimestampNanosecondArray};
    use arrow::datatypes::Schema;
    use ferrite_model::ColumnType;

    use super::*;

    fn batch(rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            ColumnType::Tag.arrow_field("host"),
            ColumnType::Tag.arrow_field("region"),
            ColumnType::F64.arrow_field("a"),
            ColumnType::F64.arrow_field("b"),
            ColumnType::F64.arrow_field("c"),
            ColumnType::Time.arrow_field("time"),
        ]));
        let strings = || {
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| format!("host-{i}")),
            ))
        };
        let floats = || Arc::new(Float64Array::from_iter_values((0..rows).map(|i| i as f64)));
        RecordBatch::try_new(
            schema,
            vec![
                strings(),
                strings(),
                floats(),
                floats(),
                floats(),
                Arc::new(TimestampNanosecondArray::from_iter_values(0..rows as i64)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn batches_round_trip() {
        let b = batch(1000);
        assert_eq!(decode_batch(&encode_batch(&b).unwrap()).unwrap(), b);
    }

    #[test]
    fn decoded_batches_do_not_look_bigger_than_they_are() {
        // The buffer's size accounting uses `get_array_memory_size`, which counts a buffer's
        // whole allocation: columns sliced out of one shared IPC allocation would each count
        // all of it.
        let b = batch(10_000);
        let decoded = decode_batch(&encode_batch(&b).unwrap()).unwrap();
        let (original, decoded) = (b.get_array_memory_size(), decoded.get_array_memory_size());
        assert!(
            decoded < original * 2,
            "decoded {decoded} bytes vs original {original}"
        );
    }

    #[test]
    fn garbage_is_refused_without_allocating_what_it_claims() {
        // "not " read as a length prefix claims a ~544 MB message.
        let started = std::time::Instant::now();
        assert!(decode_batch(b"not arrow").is_err());
        assert!(decode_batch(b"").is_err());
        assert!(decode_batch(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err());
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
    }
}
