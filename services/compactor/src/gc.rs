//! Garbage collection: objects of files marked (replaced by compaction, expired, of purged
//! tables) once their grace period has passed, and objects no catalog row references (an
//! upload whose registration never happened) once they are older than the grace period.
//!
//! ```text
//!  files_to_collect(grace) ─► delete objects ─► delete_files(rows)        (marked files)
//!  list dbs/… ─► older than grace? ─► referenced_objects? no ─► delete     (orphans)
//! ```
//!
//! Invariants: an object a row references (live or marked within the grace period) is never
//! deleted; an object younger than the grace period is never deleted, so an upload whose
//! registration is still on its way (an ingester's persist, a compaction round) is safe as
//! long as it registers within the grace period; a row goes only after its object.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferrite_catalog::CatalogRef;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use tracing::{info, warn};

/// Marked files handled per catalog call.
const BATCH: i64 = 1000;

/// What one collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Objects of marked files deleted (with their rows).
    pub marked: u64,
    /// Unreferenced objects deleted.
    pub orphans: u64,
}

/// Delete the objects and rows of files marked more than `grace` ago.
pub async fn collect_marked(
    catalog: &CatalogRef,
    store: &Arc<dyn ObjectStore>,
    grace: Duration,
) -> Result<u64, String> {
    let grace_ns = nanos(grace);
    let mut removed = 0;
    loop {
        let files = catalog
            .files_to_collect(grace_ns, BATCH)
            .await
            .map_err(|e| format!("listing marked files: {e}"))?;
        if files.is_empty() {
            return Ok(removed);
        }
        for f in &files {
            let path = Path::from(f.params.object_path());
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(format!("deleting {path}: {e}")),
            }
        }
        let ids: Vec<_> = files.iter().map(|f| f.id).collect();
        removed += catalog
            .delete_files(&ids)
            .await
            .map_err(|e| format!("removing collected file rows: {e}"))?;
        if (files.len() as i64) < BATCH {
            return Ok(removed);
        }
    }
}

/// Delete objects under `dbs/` older than `grace` that no file row references.
pub async fn collect_orphans(
    catalog: &CatalogRef,
    store: &Arc<dyn ObjectStore>,
    grace: Duration,
) -> Result<u64, String> {
    let cutoff = SystemTime::now() - grace;
    let prefix = Path::from("dbs");
    let mut old: Vec<(uuid::Uuid, ObjectMeta)> = vec![];
    let mut listing = store.list(Some(&prefix));
    while let Some(meta) = listing
        .try_next()
        .await
        .map_err(|e| format!("listing the object store: {e}"))?
    {
        if SystemTime::from(meta.last_modified) > cutoff {
            continue;
        }
        match object_id(&meta.location) {
            Some(id) => old.push((id, meta)),
            None => warn!(path = %meta.location, "an object ferrite did not write; left alone"),
        }
    }
    let mut removed = 0;
    for chunk in old.chunks(BATCH as usize) {
        let ids: Vec<uuid::Uuid> = chunk.iter().map(|(id, _)| *id).collect();
        let referenced: HashSet<uuid::Uuid> = catalog
            .referenced_objects(&ids)
            .await
            .map_err(|e| format!("checking objects against the catalog: {e}"))?
            .into_iter()
            .collect();
        for (id, meta) in chunk {
            if referenced.contains(id) {
                continue;
            }
            match store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    info!(path = %meta.location, "deleted an object no file references");
                    removed += 1;
                }
                Err(e) => return Err(format!("deleting {}: {e}", meta.location)),
            }
        }
    }
    Ok(removed)
}

/// The object id in `dbs/<db>/tables/<t>/partitions/<p>/<uuid>.parquet`.
fn object_id(path: &Path) -> Option<uuid::Uuid> {
    let name = path.filename()?.strip_suffix(".parquet")?;
    uuid::Uuid::parse_str(name).ok()
}

pub(crate) fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_come_from_ferrite_paths_only() {
        let id = uuid::Uuid::new_v4();
        let p = Path::from(format!("dbs/1/tables/2/partitions/3/{id}.parquet"));
        assert_eq!(object_id(&p), Some(id));
        assert_eq!(object_id(&Path::from("dbs/1/notes.txt")), None);
        assert_eq!(object_id(&Path::from("dbs/1/x.parquet")), None);
    }
}
