//! Parquet files kept whole in the querier's memory, and optionally on its local disk, so
//! repeated queries do not fetch the same bytes from the object store again.
//!
//! ```text
//!  DataFusion's Parquet reader ─ get_opts / get_ranges ─► FileCache
//!       plain read (no conditions, no version, not HEAD) ─► in memory? ─ yes ─► slice of it
//!                                                            │ no (one fetch per file at a time)
//!                                                            ▼
//!       on the local disk (if configured)? ─ yes ─► read it ─► memory (LRU by bytes), slice
//!                                          │ no
//!       the whole object from the store ─ small enough? ─ yes ─► disk, memory, slice
//!                                                          └ no ─► the range from the store
//!  everything else (writes, lists, conditional reads) ─────────────► the store
//! ```
//!
//! Invariants:
//! - only immutable objects are read through it: a Parquet file's path holds a fresh UUID
//!   and its bytes never change, so an entry never goes stale (a deleted file's entry only
//!   ages out);
//! - an object larger than one memory shard is never held: it is read range by range, as
//!   without the cache;
//! - the disk tier is a cache, never a source of truth: a file appears under its name only
//!   once completely written (written aside, then renamed), one that cannot be read is
//!   dropped and fetched again, and its directory is indexed afresh at start, so files
//!   cached before a restart are served after it.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
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
    /// The local-disk tier, when configured.
    disk: Option<DiskTier>,
}

/// Where and how much a querier caches on its local disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskCacheConfig {
    /// A directory of the querier's own (created if missing; its files are the cache's).
    pub dir: PathBuf,
    /// Bytes of files kept there, least recently used out first.
    pub capacity: u64,
}

/// Whole objects as files in one directory, up to a byte budget.
struct DiskTier {
    dir: PathBuf,
    /// Cached objects and their sizes; evicting one deletes its file.
    index: Cache<Path, u64, BySize, quick_cache::DefaultHashBuilder, DeleteOnEvict>,
    /// Largest object kept: one shard's share of the capacity.
    largest: u64,
}

#[derive(Debug, Clone)]
struct BySize;

impl Weighter<Path, u64> for BySize {
    fn weight(&self, _: &Path, size: &u64) -> u64 {
        size + 1
    }
}

/// Removes an evicted object's file.
#[derive(Debug, Clone)]
struct DeleteOnEvict(PathBuf);

impl quick_cache::Lifecycle<Path, u64> for DeleteOnEvict {
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn on_evict(&self, _: &mut Self::RequestState, key: Path, size: u64) {
        let file = self.0.join(file_name(&key, size));
        if let Err(e) = std::fs::remove_file(&file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %file.display(), error = %e, "cannot remove an evicted cache file");
        }
    }
}

/// The file name of an object of `size` bytes in the disk tier: its path with `%` and `/`
/// escaped, so names are flat and distinct, then `~` and the size, so a file cut short is
/// recognised.
fn file_name(location: &Path, size: u64) -> String {
    let path = location.as_ref().replace('%', "%25").replace('/', "%2F");
    format!("{path}~{size}")
}

/// The object path and size a disk tier file name stands for.
fn object_path(name: &str) -> Option<(Path, u64)> {
    let (path, size) = name.rsplit_once('~')?;
    let path = path.replace("%2F", "/").replace("%25", "%");
    Some((Path::parse(path).ok()?, size.parse().ok()?))
}

/// Prefix of files being written: never served, removed at start.
const PARTIAL: &str = ".partial-";

impl DiskTier {
    /// The tier in `config.dir`, indexing the files already there.
    fn open(config: &DiskCacheConfig) -> std::io::Result<Self> {
        std::fs::create_dir_all(&config.dir)?;
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity((config.capacity / EXPECTED_FILE_BYTES).max(16) as usize)
            .weight_capacity(config.capacity)
            .shards(SHARDS)
            .build()
            .expect("valid cache options");
        let tier = Self {
            dir: config.dir.clone(),
            index: Cache::with_options(
                options,
                BySize,
                Default::default(),
                DeleteOnEvict(config.dir.clone()),
            ),
            largest: config.capacity / SHARDS as u64,
        };
        let mut found: Vec<(std::time::SystemTime, Path, u64, PathBuf)> = vec![];
        for entry in std::fs::read_dir(&config.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            match object_path(&name) {
                Some((path, size)) if !name.starts_with(PARTIAL) && size == meta.len() => {
                    let used = meta.accessed().or_else(|_| meta.modified())?;
                    found.push((used, path, size, entry.path()));
                }
                // Half written, cut short, or not the cache's: not served.
                _ => std::fs::remove_file(entry.path())?,
            }
        }
        // Oldest first, so that what does not fit is what was used least recently.
        found.sort_by_key(|f| f.0);
        for (_, path, size, file) in found {
            if size > tier.largest {
                std::fs::remove_file(file)?;
            } else {
                tier.index.insert(path, size);
            }
        }
        Ok(tier)
    }

    /// The object's bytes if the tier holds them. A file that cannot be read is dropped.
    async fn read(&self, location: &Path) -> Option<Bytes> {
        let size = self.index.get(location)?;
        let problem = match tokio::fs::read(self.dir.join(file_name(location, size))).await {
            Ok(bytes) if bytes.len() as u64 == size => return Some(bytes.into()),
            Ok(bytes) => format!("{} bytes where {size} were written", bytes.len()),
            Err(e) => e.to_string(),
        };
        tracing::warn!(%location, problem, "cannot read a cached file; fetching it again");
        self.index.remove(location);
        None
    }

    /// Keep `bytes` as the object at `location`, if they fit. A failure only means the next
    /// miss fetches the object again.
    async fn write(&self, location: &Path, bytes: &Bytes) {
        if bytes.len() as u64 > self.largest || self.index.get(location).is_some() {
            return;
        }
        let partial = self
            .dir
            .join(format!("{PARTIAL}{}", uuid::Uuid::new_v4().simple()));
        let done = self.dir.join(file_name(location, bytes.len() as u64));
        let written = async {
            tokio::fs::write(&partial, bytes).await?;
            tokio::fs::rename(&partial, &done).await
        }
        .await;
        match written {
            Ok(()) => self.index.insert(location.clone(), bytes.len() as u64),
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                tracing::warn!(%location, error = %e, "cannot write a file to the disk cache");
            }
        }
    }
}

/// Objects a cache of this size is expected to hold, for sizing its table.
const EXPECTED_FILE_BYTES: u64 = 4 << 20;

/// Shards of the cache: concurrent readers of different files rarely contend.
const SHARDS: usize = 8;

/// Paths of objects too large to hold that are remembered.
const TOO_LARGE_REMEMBERED: usize = 1 << 16;

impl FileCache {
    /// `inner` with up to `capacity` bytes of whole objects kept in memory.
    #[cfg(test)]
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, capacity: u64) -> Self {
        Self::with_disk(inner, capacity, None).expect("no disk tier to open")
    }

    /// `inner` with up to `capacity` bytes of whole objects kept in memory and, with
    /// `disk`, more on the local disk.
    pub(crate) fn with_disk(
        inner: Arc<dyn ObjectStore>,
        capacity: u64,
        disk: Option<&DiskCacheConfig>,
    ) -> std::io::Result<Self> {
        let disk = disk.map(DiskTier::open).transpose()?;
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity((capacity / EXPECTED_FILE_BYTES).max(16) as usize)
            .weight_capacity(capacity)
            .shards(SHARDS)
            .build()
            .expect("valid cache options");
        Ok(Self {
            inner,
            files: Cache::with_options(options, ByBytes, Default::default(), Default::default()),
            too_large: Cache::new(TOO_LARGE_REMEMBERED),
            largest: capacity / SHARDS as u64,
            disk,
        })
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
                if let Some(disk) = &self.disk
                    && let Some(bytes) = disk.read(location).await
                {
                    metrics::counter!("ferrite_query_file_cache_requests_total", "result" => "disk")
                        .increment(1);
                    return Ok(Arc::new(CachedFile {
                        meta: ObjectMeta {
                            location: location.clone(),
                            last_modified: chrono::Utc::now(),
                            size: bytes.len() as u64,
                            e_tag: None,
                            version: None,
                        },
                        attributes: Attributes::default(),
                        bytes,
                    }));
                }
                let got = self.inner.get_opts(location, GetOptions::default()).await?;
                if got.meta.size > self.largest {
                    return Err(TooLarge(got.meta.size).into());
                }
                let (meta, attributes) = (got.meta.clone(), got.attributes.clone());
                let bytes = got.bytes().await?;
                metrics::counter!("ferrite_query_file_cache_requests_total", "result" => "miss")
                    .increment(1);
                if let Some(disk) = &self.disk {
                    disk.write(location, &bytes).await;
                }
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

    fn files_in(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn the_disk_tier_serves_files_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskCacheConfig {
            dir: dir.path().join("cache"),
            capacity: 1 << 20,
        };
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let a = Path::from("dbs/1/tables/2/a%b.parquet");
        let b = Path::from("dbs/1/tables/2/b.parquet");
        for (path, body) in [(&a, &b"0123456789"[..]), (&b, &b"abcdef"[..])] {
            inner
                .put(path, Bytes::from_static(body).into())
                .await
                .unwrap();
        }
        let cache = FileCache::with_disk(Arc::clone(&inner), 8 * 1024, Some(&disk)).unwrap();
        assert_eq!(cache.get_range(&a, 2..5).await.unwrap(), &b"234"[..]);
        assert_eq!(cache.get_range(&b, 0..2).await.unwrap(), &b"ab"[..]);
        assert_eq!(
            files_in(&disk.dir),
            [
                "dbs%2F1%2Ftables%2F2%2Fa%2525b.parquet~10",
                "dbs%2F1%2Ftables%2F2%2Fb.parquet~6"
            ]
        );
        drop(cache);

        // A restart: memory is empty, the store has lost the files, the disk still serves
        // them. A half-written file left by a crash is removed, never served.
        std::fs::write(disk.dir.join(format!("{PARTIAL}x")), b"01").unwrap();
        inner.delete(&a).await.unwrap();
        let cache = FileCache::with_disk(Arc::clone(&inner), 8 * 1024, Some(&disk)).unwrap();
        assert_eq!(files_in(&disk.dir).len(), 2, "{:?}", files_in(&disk.dir));
        assert_eq!(cache.get_range(&a, 7..10).await.unwrap(), &b"789"[..]);

        // A damaged file is dropped and fetched from the store again.
        let b_file = disk.dir.join(file_name(&b, 6));
        drop(cache);
        std::fs::write(&b_file, b"abc").unwrap();
        let cache = FileCache::with_disk(Arc::clone(&inner), 8 * 1024, Some(&disk)).unwrap();
        assert_eq!(cache.get_range(&b, 3..6).await.unwrap(), &b"def"[..]);
        assert_eq!(std::fs::read(&b_file).unwrap(), b"abcdef");
    }

    #[tokio::test]
    async fn the_disk_tier_keeps_to_its_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskCacheConfig {
            dir: dir.path().to_path_buf(),
            capacity: 8 * 1000,
        };
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let cache = FileCache::with_disk(Arc::clone(&inner), 1 << 20, Some(&disk)).unwrap();
        for i in 0..100 {
            let path = Path::from(format!("f{i}.parquet"));
            inner
                .put(&path, Bytes::from(vec![i as u8; 500]).into())
                .await
                .unwrap();
            assert_eq!(cache.get_range(&path, 0..1).await.unwrap(), &[i as u8][..]);
        }
        let held = files_in(&disk.dir);
        assert!(
            !held.is_empty() && held.len() <= 16,
            "at most 8,000 bytes of 500-byte files: {held:?}"
        );
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
