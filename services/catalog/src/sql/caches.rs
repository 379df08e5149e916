//! Last-value and distinct-value cache definitions on a [`SqlCatalog`]: created and deleted
//! by the management API (the process that owns the catalog database), listed by every
//! ingester and querier through [`crate::Catalog::list_caches`].
//!
//! A definition is checked against the table's columns when created and stores the columns'
//! types, so whoever builds the cache needs nothing else. Creating or deleting one bumps the
//! catalog version: that is how ingesters learn of it.

use ferrite_model::cache::{CacheDefinition, CacheDefinitionError, CacheKind, CacheSpec};
use ferrite_model::{DatabaseId, TableId, TableSchema, cache::validate_cache_name};

use super::{SqlCatalog, bump_version, now_ns};
use crate::{Catalog as _, Error, Result};

/// The columns [`cache_definition`] reads, joined with the table for its name and database.
pub(super) const SELECT_CACHES: &str = "SELECT c.id, t.database_id, c.table_id, t.name, c.name, \
     c.definition FROM table_caches c JOIN tables t ON t.id = c.table_id \
     JOIN databases d ON d.id = t.database_id \
     WHERE t.deleted_at IS NULL AND d.deleted_at IS NULL";

pub(super) type CacheRow = (i64, i64, i64, String, String, String);

pub(super) fn cache_definition(row: CacheRow) -> Result<CacheDefinition> {
    let (id, database_id, table_id, table, name, definition) = row;
    Ok(CacheDefinition {
        id,
        database_id: DatabaseId(database_id),
        table_id: TableId(table_id),
        table,
        name,
        spec: CacheSpec::from_json(&definition).map_err(Error::Corrupt)?,
    })
}

impl From<CacheDefinitionError> for Error {
    fn from(e: CacheDefinitionError) -> Self {
        Error::Invalid(e.0)
    }
}

impl SqlCatalog {
    /// Create a cache on `database`.`table`, its spec built by `spec` from the table's
    /// columns; named `name` or, without one, as Core names it. [`Error::Conflict`] if the
    /// table has a cache of that kind and name, [`Error::Invalid`] for a bad definition.
    pub async fn create_cache(
        &self,
        database: &str,
        table: &str,
        name: Option<&str>,
        spec: impl FnOnce(&TableSchema) -> std::result::Result<CacheSpec, CacheDefinitionError>,
    ) -> Result<CacheDefinition> {
        let (db, t) = self.live_table(database, table).await?;
        let schema = self.table_schema(t.id).await?;
        let spec = spec(&schema)?;
        let name = match name {
            Some(n) => {
                validate_cache_name(n)?;
                n.to_string()
            }
            None => spec.default_name(table),
        };
        let kind = spec.kind();
        let mut tx = self.begin_write().await?;
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM table_caches WHERE table_id = $1 AND kind = $2 AND name = $3",
        )
        .bind(t.id.get())
        .bind(kind.name())
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_some() {
            return Err(Error::Conflict(format!(
                "table '{table}' already has a {} cache named '{name}'",
                kind.name()
            )));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO table_caches (table_id, kind, name, definition, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(t.id.get())
        .bind(kind.name())
        .bind(&name)
        .bind(spec.to_json())
        .bind(now_ns())
        .fetch_one(&mut *tx)
        .await?;
        bump_version(&mut tx).await?;
        self.commit(tx).await?;
        Ok(CacheDefinition {
            id,
            database_id: db.id,
            table_id: t.id,
            table: table.to_string(),
            name,
            spec,
        })
    }

    /// Delete the `kind` cache `name` of `database`.`table`; [`Error::NotFound`] if there
    /// is none.
    pub async fn delete_cache(
        &self,
        database: &str,
        table: &str,
        kind: CacheKind,
        name: &str,
    ) -> Result<()> {
        let (_, t) = self.live_table(database, table).await?;
        let mut tx = self.begin_write().await?;
        let deleted =
            sqlx::query("DELETE FROM table_caches WHERE table_id = $1 AND kind = $2 AND name = $3")
                .bind(t.id.get())
                .bind(kind.name())
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if deleted == 0 {
            return Err(Error::NotFound(format!(
                "table '{table}' has no {} cache named '{name}'",
                kind.name()
            )));
        }
        bump_version(&mut tx).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// The caches of a live database, by table then kind then name.
    pub async fn database_caches(&self, database: &str) -> Result<Vec<CacheDefinition>> {
        let db = self.live_database(database).await?;
        let mut caches: Vec<_> = self
            .list_caches()
            .await?
            .into_iter()
            .filter(|c| c.database_id == db.id)
            .collect();
        caches.sort_by(|a, b| {
            (&a.table, a.spec.kind().name(), &a.name).cmp(&(
                &b.table,
                b.spec.kind().name(),
                &b.name,
            ))
        });
        Ok(caches)
    }
}
