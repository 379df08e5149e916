//! Keep-alive for slow query results.
//!
//! A query that computes for minutes before its first (or next) batch leaves the gRPC stream
//! silent, and proxies and load balancers close idle HTTP/2 streams (and clients give up on
//! them). While the result stream is silent for `interval`, [`KeepAlive`] sends an empty
//! record batch — a valid Flight message every client skips — after the schema has gone out.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions};
use arrow::record_batch::RecordBatch;
use arrow_flight::FlightData;
use futures::Stream;
use tokio::time::{Instant, Sleep};
use tonic::Status;

/// How long a result stream may stay silent before a keep-alive message is sent.
pub(crate) const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// Wraps a Flight data stream whose first message is the schema of `schema`.
pub(crate) struct KeepAlive<S> {
    inner: S,
    interval: Duration,
    timer: Pin<Box<Sleep>>,
    empty_batch: FlightData,
    schema_sent: bool,
    done: bool,
}

impl<S> KeepAlive<S> {
    /// `schema` must be the wire schema (no dictionaries) of the batches `inner` sends.
    pub(crate) fn new(inner: S, schema: &SchemaRef, interval: Duration) -> Result<Self, Status> {
        let empty = RecordBatch::new_empty(SchemaRef::clone(schema));
        let mut tracker = DictionaryTracker::new(false);
        let (_, encoded) = IpcDataGenerator::default()
            .encode(
                &empty,
                &mut tracker,
                &IpcWriteOptions::default(),
                &mut IpcWriteContext::default(),
            )
            .map_err(|e| Status::internal(format!("encoding keep-alive batch: {e}")))?;
        Ok(Self {
            inner,
            interval,
            timer: Box::pin(tokio::time::sleep(interval)),
            empty_batch: encoded.into(),
            schema_sent: false,
            done: false,
        })
    }
}

impl<S> Stream for KeepAlive<S>
where
    S: Stream<Item = Result<FlightData, Status>> + Unpin,
{
    type Item = Result<FlightData, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(item)) => {
                self.schema_sent = true;
                let next = Instant::now() + self.interval;
                self.timer.as_mut().reset(next);
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                // Before the schema a data message would be out of order; the encoder sends
                // the schema at once anyway.
                if self.schema_sent && self.timer.as_mut().poll(cx).is_ready() {
                    let next = Instant::now() + self.interval;
                    self.timer.as_mut().reset(next);
                    return Poll::Ready(Some(Ok(self.empty_batch.clone())));
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow_flight::decode::FlightRecordBatchStream;
    use arrow_flight::encode::FlightDataEncoderBuilder;
    use arrow_flight::error::FlightError;
    use futures::{StreamExt, TryStreamExt};

    use super::*;

    #[tokio::test]
    async fn a_silent_stream_gets_empty_batches_that_decode_to_nothing() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(vec![1, 2]))],
        )
        .unwrap();
        // One batch after a silence of several intervals: the schema goes out first, then
        // keep-alives.
        let slow = futures::stream::once({
            let batch = batch.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<_, FlightError>(batch)
            }
        });
        let encoded = FlightDataEncoderBuilder::new()
            .with_schema(Arc::clone(&schema))
            .build(slow)
            .map_err(|e| Status::internal(e.to_string()));
        let keep_alive = KeepAlive::new(encoded, &schema, Duration::from_millis(50)).unwrap();
        let messages: Vec<FlightData> = keep_alive.try_collect().await.unwrap();
        // schema, at least one keep-alive, the batch.
        assert!(messages.len() >= 3, "{messages:?}");

        let decoded: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(
            futures::stream::iter(messages.into_iter().map(Ok)),
        )
        .try_collect()
        .await
        .unwrap();
        let rows: usize = decoded.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 2);
        assert_eq!(decoded.last(), Some(&batch));
    }

    #[tokio::test]
    async fn a_busy_stream_gets_no_keep_alives() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batches: Vec<_> = (0..3)
            .map(|i| {
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(Int64Array::from(vec![i]))],
                )
            })
            .collect();
        let stream = futures::stream::iter(batches)
            .map(|b| b.map_err(FlightError::from))
            .boxed();
        let encoded = FlightDataEncoderBuilder::new()
            .with_schema(Arc::clone(&schema))
            .build(stream)
            .map_err(|e| Status::internal(e.to_string()));
        let keep_alive = KeepAlive::new(encoded, &schema, Duration::from_secs(60)).unwrap();
        let messages: Vec<FlightData> = keep_alive.try_collect().await.unwrap();
        assert_eq!(messages.len(), 4); // schema + 3 batches
    }
}
