//! An object store that counts, times and traces every request it passes on: the
//! `ferrite_object_store_*` metrics and an `object_store` span per request.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use tracing::Instrument as _;

/// `inner`, observed.
#[derive(Debug)]
pub struct ObservedStore {
    inner: Arc<dyn ObjectStore>,
}

impl ObservedStore {
    /// Observe every request to `inner`.
    pub fn wrap(inner: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
        Arc::new(Self { inner })
    }
}

impl fmt::Display for ObservedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// Run `request`, recording it as `operation` on `path`.
async fn observed<T>(
    operation: &'static str,
    path: &Path,
    request: impl Future<Output = Result<T>>,
) -> Result<T> {
    // Only as part of a trace: a read from a task DataFusion spawned has no current span,
    // and would otherwise start a one-span trace of its own.
    let span = if tracing::Span::current().is_none() {
        tracing::Span::none()
    } else {
        tracing::debug_span!("object_store", otel.name = operation, path = %path)
    };
    let started = Instant::now();
    let result = request.instrument(span).await;
    count(operation, started, result.is_err());
    result
}

fn count(operation: &'static str, started: Instant, failed: bool) {
    metrics::counter!("ferrite_object_store_requests_total", "operation" => operation).increment(1);
    metrics::histogram!("ferrite_object_store_request_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    if failed {
        metrics::counter!("ferrite_object_store_errors_total", "operation" => operation)
            .increment(1);
    }
}

fn bytes(direction: &'static str, n: u64) {
    metrics::counter!("ferrite_object_store_bytes_total", "direction" => direction).increment(n);
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for ObservedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let n = payload.content_length() as u64;
        let r = observed(
            "put",
            location,
            self.inner.put_opts(location, payload, opts),
        )
        .await;
        if r.is_ok() {
            bytes("write", n);
        }
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let upload = observed(
            "put_multipart",
            location,
            self.inner.put_multipart_opts(location, opts),
        )
        .await?;
        Ok(Box::new(ObservedUpload { inner: upload }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let operation = if options.head { "head" } else { "get" };
        let r = observed(operation, location, self.inner.get_opts(location, options)).await;
        if let Ok(g) = &r
            && operation == "get"
        {
            bytes("read", g.range.end - g.range.start);
        }
        r
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let r = observed("get", location, self.inner.get_ranges(location, ranges)).await;
        if let Ok(parts) = &r {
            bytes("read", parts.iter().map(|b| b.len() as u64).sum());
        }
        r
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let started = Instant::now();
        self.inner
            .delete_stream(locations)
            .inspect(move |r| count("delete", started, r.is_err()))
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        count("list", Instant::now(), false);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        count("list", Instant::now(), false);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let root = Path::default();
        observed(
            "list",
            prefix.unwrap_or(&root),
            self.inner.list_with_delimiter(prefix),
        )
        .await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        observed("copy", to, self.inner.copy_opts(from, to, options)).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        observed("rename", to, self.inner.rename_opts(from, to, options)).await
    }
}

/// A multipart upload whose parts count as written bytes.
#[derive(Debug)]
struct ObservedUpload {
    inner: Box<dyn MultipartUpload>,
}

#[async_trait]
impl MultipartUpload for ObservedUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        let n = data.content_length() as u64;
        let part = self.inner.put_part(data);
        Box::pin(async move {
            let started = Instant::now();
            let r = part.await;
            count("put_multipart", started, r.is_err());
            if r.is_ok() {
                bytes("write", n);
            }
            r
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let started = Instant::now();
        let r = self.inner.complete().await;
        count("put_multipart", started, r.is_err());
        r
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt as _;

    use super::*;

    #[tokio::test]
    async fn requests_pass_through_unchanged() {
        let store = ObservedStore::wrap(Arc::new(object_store::memory::InMemory::new()));
        let p = Path::from("a/b.parquet");
        store
            .put(&p, Bytes::from_static(b"hello").into())
            .await
            .unwrap();
        let got = store.get(&p).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"hello");
        assert_eq!(store.head(&p).await.unwrap().size, 5);
        assert_eq!(
            store.get_ranges(&p, &[0..2, 3..5]).await.unwrap(),
            vec![Bytes::from_static(b"he"), Bytes::from_static(b"lo")]
        );
        store.delete(&p).await.unwrap();
        assert!(store.get(&p).await.is_err());
    }
}
