//! Conversions between the in-process write types and their protobuf / Arrow IPC form, used
//! by the WAL and by the cluster's write RPC.

use std::io::Cursor;

use arrow::error::ArrowError;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
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
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    if batches.len() == 1 {
        return Ok(batches.into_iter().next().expect("one batch"));
    }
    arrow::compute::concat_batches(&schema, &batches)
}

/// The protobuf form of a write.
pub fn encode_write(request: &WriteRequest, no_sync: bool) -> Result<proto::WriteRequest, ArrowError> {
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
            let batch = decode_batch(&t.arrow_ipc).map_err(|source| DecodeError::Ipc {
                table_id: t.table_id,
                source,
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
