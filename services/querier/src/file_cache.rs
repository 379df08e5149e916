//! Parquet files kept whole in the querier's memory, so repeated queries do not fetch the
//! same bytes from the object store again.
//!
//! ```text
//!  DataFusion's Parquet reader ─ get_opts / get_ranges ─► FileCache
//!       plain read (no conditions, no version, not HEAD) ─► cached? ─ yes ─► slice of it
//!                                                            │ no (one fetch per file at a time)
//!                                                            ▼
//!       the whole object from the store ─ small enough? ─ yes ─► cache (LRU by bytes), slice
//!                                                          └ no ─► the range from the store
//!  everything else (writes, lists, conditional reads) ─────────────► the store
//! ```
//!
//! Invariants:
//! - only immutable objects are read through it: a Parquet file's path holds a fresh UUID
//!   and its bytes never change, so an entry never goes stale (a deleted file's entry only
//!   ages out);
//! - an object larger than one cache shard is never held: it is read range by range, as
//!   without the cache.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    Attributes, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    Result,
};
use quick_cache::Weighter;
use quick_cache::sync::Cache;

/// One object's bytes and what a [`GetResult`] reports about it.
#[derive(Debug)]
struct CachedFile {
    meta: ObjectMeta,
    attributes: Attributes,
    bytes: Bytes,
}

#[derive(Debug, Clone)]
struct ByBytes;

impl Weighter<Path, Arc<CachedFile>> for ByBytes {
    fn weight(&self, _: &Path, file: &Arc<CachedFile>) -> u64 {
        file.bytes.len() as u64 + 1
    }
}

/// An object store whose plain reads are served from whole cached objects. See the module
/// docs.
pub(crate) struct FileCache {
    inner: Arc<dyn ObjectStore>,
    files: Cache<Path, Arc<CachedFile>, ByBytes>,
    /// Objects found too large to hold, so they are not fetched whole again.
    too_large: Cache<Path, ()>,
    /// Largest object held: one shard's share of the capacity.
    largest: u64,
}

/// Objects a cache of this size is expected to hold, for sizing its table.
const EXPECTED_FILE_BYTES: u64 = 4 << 20;

/// Shards of the cache: concurrent readers of different files rarely contend.
const SHARDS: usize = 8;

/// Paths of objects too large to hold that are remembered.
const TOO_LARGE_REMEMBERED: usize = 1 << 16;

impl FileCache {
    /// `inner` with up to `capacity` bytes of whole objects kept in memory.
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, capacity: u64) -> Self {
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity((capacity / EXPECTED_FILE_BYTES).max(16) as usize)
            .weight_capacity(capacity)
            .shards(SHARDS)
            .build()
            .expect("valid cache options");
        Self {
            inner,
            files: Cache::with_options(options, ByBytes, Default::default(), Default::default()),
            too_large: Cache::new(TOO_LARGE_REMEMBERED),
            largest: capacity / SHARDS as u64,
        }
    }

    /// The whole object at `location`, from the cache or fetched into it; `None` when it is
    /// too large to hold.
    async fn file(&self, location: &Path) -> Result<Option<Arc<CachedFile>>> {
        if let Some(file) = self.files.get(location) {
            metrics::counter!("ferrite_query_file_cache_requests_total", "result" => "hit")
                .increment(1);
            return Ok(Some(file));
        }
        if self.too_large.get(location).is_some() {
            return Ok(None);
        }
        // Concurrent misses of one file wait for the first one's fetch.
        let fetched = self
            .files
            .get_or_insert_async(location, async {
                let got = self.inner.get_opts(location, GetOptions::default()).await?;
                if got.meta.size > self.largest {
                    return Err(TooLarge(got.meta.size).into());
                }
                let (meta, attributes) = (got.meta.clone(), got.attributes.clone());
                let bytes = got.bytes().await?;
                metrics::counter!("ferrite_query_file_cache_requests_total", "result" => "miss")
                    .increment(1);
                Ok::<_, object_store::Error>(Arc::new(CachedFile {
                    meta,
                    attributes,
                    bytes,
                }))
            })
            .await;
        match fetched {
            Ok(file) => Ok(Some(file)),
            Err(object_store::Error::Generic { source, .. }) if source.is::<TooLarge>() => {
                self.too_large.insert(location.clone(), ());
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// An object larger than the cache holds.
#[derive(Debug)]
struct TooLarge(u64);

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "object of {} bytes is larger than the file cache holds",
            self.0
        )
    }
}

impl std::error::Error for TooLarge {}

impl From<TooLarge> for object_store::Error {
    fn from(e: TooLarge) -> Self {
        object_store::Error::Generic {
            store: "file cache",
            source: Box::new(e),
        }
    }
}

/// A read the cache may answer: the current bytes, unconditionally.
fn is_plain(options: &GetOptions) -> bool {
    options.if_match.is_none()
        && options.if_none_match.is_none()
        && options.if_modified_since.is_none()
        && options.if_unmodified_since.is_none()
        && options.version.is_none()
        && !options.head
}

impl fmt::Debug for FileCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileCache")
            .field("inner", &self.inner)
            .field("bytes", &self.files.weight())
            .field("capacity", &self.files.capacity())
            .finish()
    }
}

impl fmt::Display for FileCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileCache({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FileCache {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if !is_plain(&options) {
            return self.inner.get_opts(location, options).await;
        }
        let Some(file) = self.file(location).await? else {
            return self.inner.get_opts(location, options).await;
        };
        let range = match &options.range {
            Some(r) => r
                .as_range(file.meta.size)
                .map_err(|e| object_store::Error::Generic {
                    store: "file cache",
                    source: Box::new(e),
                })?,
            None => 0..file.meta.size,
        };
        let bytes = file.bytes.slice(range.start as usize..range.end as usize);
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream::once(async move { Ok(bytes) }).boxed()),
            meta: file.meta.clone(),
            range,
            attributes: file.attributes.clone(),
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let Some(file) = self.file(location).await? else {
            return self.inner.get_ranges(location, ranges).await;
        };
        ranges
            .iter()
            .map(|r| {
                if r.start > r.end || r.end > file.meta.size {
                    return Err(object_store::Error::Generic {
                        store: "file cache",
                        source: format!(
                            "range {r:?} is outside {location} ({} bytes)",
                            file.meta.size
                        )
                        .into(),
                    });
                }
                Ok(file.bytes.slice(r.start as usize..r.end as usize))
            })
            .collect()
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::{GetRange, ObjectStoreExt};

    use super::*;

    #[tokio::test]
    async fn reads_are_served_from_the_whole_file_once_fetched() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let small = Path::from("a/small.parquet");
        inner
            .put(&small, Bytes::from_static(b"0123456789").into())
            .await
            .unwrap();
        let cache = FileCache::new(Arc::clone(&inner), 8 * 1024);

        assert_eq!(cache.get_range(&small, 2..5).await.unwrap(), &b"234"[..]);
        let suffix = GetOptions {
            range: Some(GetRange::Suffix(3)),
            ..GetOptions::default()
        };
        let got = cache.get_opts(&small, suffix).await.unwrap();
        assert_eq!(got.range, 7..10);
        assert_eq!(got.bytes().await.unwrap(), &b"789"[..]);
        assert_eq!(
            cache.get_ranges(&small, &[0..1, 9..10]).await.unwrap(),
            vec![Bytes::from_static(b"0"), Bytes::from_static(b"9")]
        );
        assert!(cache.get_ranges(&small, &[0..1, 5..11]).await.is_err());

        // Served from memory: the store no longer has it.
        inner.delete(&small).await.unwrap();
        assert_eq!(cache.get_range(&small, 0..3).await.unwrap(), &b"012"[..]);
        // A HEAD is not answered from the cache.
        assert!(cache.head(&small).await.is_err());
    }

    #[tokio::test]
    async fn objects_larger_than_a_shard_are_read_from_the_store() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let big = Path::from("big.parquet");
        inner
            .put(&big, Bytes::from(vec![7u8; 4096]).into())
            .await
            .unwrap();
        let cache = FileCache::new(Arc::clone(&inner), 8 * 1024);
        assert_eq!(cache.get_range(&big, 10..12).await.unwrap(), &[7u8, 7][..]);
        inner.delete(&big).await.unwrap();
        assert!(cache.get_range(&big, 10..12).await.is_err(), "never cached");
        // A missing object is an error, not an empty cache entry.
        assert!(cache.get_range(&Path::from("missing"), 0..1).await.is_err());
    }
}
