//! Administration of databases and tables on a [`SqlCatalog`]: create with limits, list
//! with their status, reconfigure, soft delete, undelete and rename. Only the process that
//! owns the catalog database runs these (`ferrite serve`, the catalog service); the
//! management API calls them.
//!
//! Soft delete moves the name aside (see the `database_lifecycle` migration): the row keeps
//! its id, tables, columns and files, `name` becomes `#<id>` and the real name waits in
//! `deleted_name`. Readers that look up names therefore no longer find it, and a new object
//! may take the name. Every change bumps the catalog version, so caches drop what they knew.

use ferrite_model::{
    DatabaseId, DatabaseLimits, PartitionTemplate, TableId, validate_database_name,
};

use super::{SqlCatalog, bump_version, now_ns};
use crate::{Error, Result};

/// Which objects a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not deleted.
    Active,
    /// Soft-deleted.
    Deleted,
    /// Both.
    All,
}

impl Status {
    fn clause(self) -> &'static str {
        match self {
            Status::Active => "deleted_at IS NULL",
            Status::Deleted => "deleted_at IS NOT NULL",
            Status::All => "TRUE",
        }
    }
}

/// A database as the management API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseInfo {
    /// Catalog id.
    pub id: DatabaseId,
    /// Its name (the name it had, when deleted).
    pub name: String,
    /// Retention and limits.
    pub limits: DatabaseLimits,
    /// Soft-delete time, ns.
    pub deleted_at: Option<i64>,
    /// What its new tables are partitioned by, unless created with their own.
    pub partition_template: PartitionTemplate,
}

/// A table as the management API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Catalog id.
    pub id: TableId,
    /// Its name (the name it had, when deleted).
    pub name: String,
    /// Soft-delete time, ns.
    pub deleted_at: Option<i64>,
    /// How its rows are partitioned.
    pub partition_template: PartitionTemplate,
}

/// Changes to a database's settings; `None` keeps a value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitsUpdate {
    /// New retention period, ns (0: forever).
    pub retention_period_ns: Option<i64>,
    /// New max tables.
    pub max_tables: Option<i32>,
    /// New max columns per table.
    pub max_columns_per_table: Option<i32>,
}

type DatabaseRow = (
    i64,
    String,
    Option<String>,
    i64,
    i32,
    i32,
    Option<i64>,
    String,
);

const SELECT_DATABASES: &str = "SELECT id, name, deleted_name, retention_period_ns, max_tables, \
                                max_columns_per_table, deleted_at, partition_template \
                                FROM databases";

fn database_info(row: DatabaseRow) -> Result<DatabaseInfo> {
    let (
        id,
        name,
        deleted_name,
        retention_period_ns,
        max_tables,
        max_columns_per_table,
        deleted_at,
        template,
    ) = row;
    Ok(DatabaseInfo {
        partition_template: stored_template(&template)?,
        id: DatabaseId(id),
        name: deleted_name.unwrap_or(name),
        limits: DatabaseLimits {
            retention_period_ns,
            max_tables,
            max_columns_per_table,
        },
        deleted_at,
    })
}

/// A template as stored; a row that cannot be read back is corrupt.
pub(super) fn stored_template(text: &str) -> Result<PartitionTemplate> {
    PartitionTemplate::from_json(text).map_err(|e| Error::Corrupt(e.to_string()))
}

/// The stored form: '' for the default.
pub(super) fn template_text(template: &PartitionTemplate) -> String {
    if template.is_default() {
        String::new()
    } else {
        template.to_json()
    }
}

fn check_limits(limits: &DatabaseLimits) -> Result<()> {
    if limits.retention_period_ns < 0 || limits.max_tables < 1 || limits.max_columns_per_table < 2 {
        return Err(Error::Invalid(format!(
            "invalid database settings: retention period must be ≥ 0 (0: forever), max tables \
             ≥ 1 and max columns per table ≥ 2 (time and one field); got {}, {} and {}",
            limits.retention_period_ns, limits.max_tables, limits.max_columns_per_table
        )));
    }
    Ok(())
}

fn check_table_name(name: &str) -> Result<()> {
    if name.is_empty() || name.starts_with('#') {
        return Err(Error::Invalid(format!(
            "invalid table name '{name}': it must not be empty or start with '#'"
        )));
    }
    Ok(())
}

impl SqlCatalog {
    /// Databases with `status`, ordered by name.
    pub async fn databases(&self, status: Status) -> Result<Vec<DatabaseInfo>> {
        let sql = format!(
            "{SELECT_DATABASES} WHERE {} ORDER BY COALESCE(deleted_name, name), id",
            status.clause()
        );
        let rows: Vec<DatabaseRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(database_info).collect()
    }

    pub(super) async fn live_database(&self, name: &str) -> Result<DatabaseInfo> {
        let sql = format!("{SELECT_DATABASES} WHERE name = $1 AND deleted_at IS NULL");
        let row: Option<DatabaseRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        database_info(row.ok_or_else(|| Error::DatabaseNotFound(name.to_owned()))?)
    }

    async fn database_info_by_id(&self, id: DatabaseId) -> Result<DatabaseInfo> {
        let sql = format!("{SELECT_DATABASES} WHERE id = $1");
        let row: Option<DatabaseRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await?;
        database_info(row.ok_or_else(|| Error::DatabaseNotFound(id.to_string()))?)
    }

    /// Create a database with `limits` and a partition template for its tables;
    /// [`Error::Conflict`] if a live one has the name.
    pub async fn create_database_with(
        &self,
        name: &str,
        limits: DatabaseLimits,
        template: &PartitionTemplate,
    ) -> Result<DatabaseInfo> {
        validate_database_name(name).map_err(|e| Error::Invalid(e.to_string()))?;
        check_limits(&limits)?;
        let mut tx = self.begin_write().await?;
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO databases (name, created_at, retention_period_ns, max_tables, \
             max_columns_per_table, partition_template) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(now_ns())
        .bind(limits.retention_period_ns)
        .bind(limits.max_tables)
        .bind(limits.max_columns_per_table)
        .bind(template_text(template))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = inserted else {
            return Err(Error::Conflict(format!("database '{name}' already exists")));
        };
        bump_version(&mut tx).await?;
        self.commit(tx).await?;
        self.database_info_by_id(DatabaseId(id)).await
    }

    /// Change a live database's retention period or limits.
    pub async fn update_database(&self, name: &str, update: LimitsUpdate) -> Result<DatabaseInfo> {
        let db = self.live_database(name).await?;
        let limits = DatabaseLimits {
            retention_period_ns: update
                .retention_period_ns
                .unwrap_or(db.limits.retention_period_ns),
            max_tables: update.max_tables.unwrap_or(db.limits.max_tables),
            max_columns_per_table: update
                .max_columns_per_table
                .unwrap_or(db.limits.max_columns_per_table),
        };
        check_limits(&limits)?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE databases SET retention_period_ns = $2, max_tables = $3, \
             max_columns_per_table = $4 WHERE id = $1",
        )
        .bind(db.id.get())
        .bind(limits.retention_period_ns)
        .bind(limits.max_tables)
        .bind(limits.max_columns_per_table)
        .execute(&mut *tx)
        .await?;
        bump_version(&mut tx).await?;
        self.commit(tx).await?;
        self.database_info_by_id(db.id).await
    }

    /// Soft-delete a live database: invisible to writes and queries, kept whole.
    pub async fn delete_database(&self, name: &str) -> Result<DatabaseInfo> {
        let db = self.live_database(name).await?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE databases SET deleted_at = $2, deleted_name = name, name = $3 \
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(db.id.get())
        .bind(now_ns())
        .bind(format!("#{}", db.id.get()))
        .execute(&mut *tx)
        .await?;
        bump_version(&mut tx).await?;
        self.commit(tx).await?;
        self.database_info_by_id(db.id).await
    }

    /// Bring a soft-deleted database back, by id (several deleted ones may share a name).
    /// [`Error::Conflict`] if a live database has taken its name meanwhile.
    pub async fn undelete_database(&self, id: DatabaseId) -> Result<DatabaseInfo> {
        let db = self.database_info_by_id(id).await?;
        if db.deleted_at.is_none() {
            return Err(Error::Conflict(format!(
                "database '{}' (id {}) is not deleted",
                db.name,
                id.get()
            )));
        }
        let mut tx = self.begin_write().await?;
        let restored = sqlx::query(
            "UPDATE databases SET name = deleted_name, deleted_name = NULL, deleted_at = NULL \
             WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM databases WHERE name = $2)",
        )
        .bind(id.get())
        .bind(&db.name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if restored == 0 {
            return Err(Error::Conflict(format!(
                "cannot undelete database '{}' (id {}): a live database has that name; \
                 rename it first",
                db.name,
                id.get()
            )));
        }
        bump_version(&mut tx).await?;
        self.commit(tx).await?;
        self.database_info_by_id(id).await
    }

    /// Rename a live database. Tokens keep working: they name databases by id.
    pub async fn rename_database(&self, name: &str, new_name: &str) -> Result<DatabaseInfo> {
        validate_database_name(new_name).map_err(|e| Error::Invalid(e.to_string()))?;
        let db = self.live_database(name).await?;
        let mut tx = self.begin_write().await?;
        let renamed = sqlx::query(
            "UPDATE databases SET name = $2 WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM databases WHERE name = $2)",
        )
        .bind(db.id.get())
        .bind(new_name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if renamed == 0 {
            return Err(Error::Conflict(format!(
                "database '{new_name}' already exists"
            )));
        }
        bump_version(&mut tx).await?;
        self.commit(tx).await?;
        self.database_info_by_id(db.id).await
    }

    /// The tables of a live database with `status`, ordered by name.
    pub async fn tables(&self, database: &str, status: Status) -> Result<Vec<TableInfo>> {
        let db = self.live_database(database).await?;
        let sql = format!(
            "SELECT id, COALESCE(deleted_name, name), deleted_at, partition_template FROM tables \
             WHERE database_id = $1 AND {} ORDER BY COALESCE(deleted_name, name), id",
            status.clause()
        );
        let rows: Vec<(i64, String, Option<i64>, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(db.id.get())
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(id, name, deleted_at, template)| {
                Ok(TableInfo {
                    id: TableId(id),
                    name,
                    deleted_at,
                    partition_template: stored_template(&template)?,
                })
            })
            .collect()
    }

    pub(super) async fn live_table(
        &self,
        database: &str,
        table: &str,
    ) -> Result<(DatabaseInfo, TableInfo)> {
        let db = self.live_database(database).await?;
        let found = self
            .tables(database, Status::Active)
            .await?
            .into_iter()
            .find(|t| t.name == table)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "table '{table}' not found in database '{database}'"
                ))
            })?;
        Ok((db, found))
    }

    /// Create an empty table (it gets columns from writes), partitioned by `template` or,
    /// without one, by its database's; [`Error::Conflict`] if it exists.
    pub async fn create_table_named(
        &self,
        database: &str,
        table: &str,
        template: Option<&PartitionTemplate>,
    ) -> Result<TableInfo> {
        check_table_name(table)?;
        let db = self.live_database(database).await?;
        if self
            .tables(database, Status::Active)
            .await?
            .iter()
            .any(|t| t.name == table)
        {
            return Err(Error::Conflict(format!(
                "table '{table}' already exists in database '{database}'"
            )));
        }
        let t = self.create_table_with(db.id, table, template).await?;
        self.tables(database, Status::Active)
            .await?
            .into_iter()
            .find(|info| info.id == t.id)
            .ok_or_else(|| Error::Corrupt(format!("table '{table}' vanished")))
    }

    /// Soft-delete a live table.
    pub async fn delete_table(&self, database: &str, table: &str) -> Result<TableInfo> {
        let (_, t) = self.live_table(database, table).await?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE tables SET deleted_at = $2, deleted_name = name, name = $3 WHERE id = $1",
        )
        .bind(t.id.get())
        .bind(now_ns())
        .bind(format!("#{}", t.id.get()))
        .execute(&mut *tx)
        .await?;
        bump_version(&mut tx).await?;
        self.commit(tx).await?;
        Ok(TableInfo {
            deleted_at: Some(now_ns()),
            ..t
        })
    }

    /// Bring a soft-deleted table back, by id. [`Error::Conflict`] if a live table has taken
    /// its name, or the database is at its max tables.
    pub async fn undelete_table(&self, database: &str, id: TableId) -> Result<TableInfo> {
        let db = self.live_database(database).await?;
        let t = self
            .tables(database, Status::Deleted)
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no deleted table with id {} in database '{database}'",
                    id.get()
                ))
            })?;
        let mut tx = self.begin_write().await?;
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tables WHERE database_id = $1 AND deleted_at IS NULL",
        )
        .bind(db.id.get())
        .fetch_one(&mut *tx)
        .await?;
        if count >= i64::from(db.limits.max_tables) {
            return Err(Error::TableLimit {
                database: database.to_owned(),
                table: t.name,
                count,
                limit: db.limits.max_tables.into(),
            });
        }
        let restored = sqlx::query(
            "UPDATE tables SET name = deleted_name, deleted_name = NULL, deleted_at = NULL \
             WHERE id = $1 AND NOT EXISTS \
             (SELECT 1 FROM tables WHERE database_id = $2 AND name = $3)",
        )
        .bind(id.get())
        .bind(db.id.get())
        .bind(&t.name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if restored == 0 {
            return Err(Error::Conflict(format!(
                "cannot undelete table '{}' (id {}): a live table has that name",
                t.name,
                id.get()
            )));
        }
        bump_version(&mut tx).await?;
        self.commit(tx).await?;
        Ok(TableInfo {
            deleted_at: None,
            ..t
        })
    }

    /// Rename a live table.
    pub async fn rename_table(
        &self,
        database: &str,
        table: &str,
        new_name: &str,
    ) -> Result<TableInfo> {
        check_table_name(new_name)?;
        let (db, t) = self.live_table(database, table).await?;
        let mut tx = self.begin_write().await?;
        let renamed = sqlx::query(
            "UPDATE tables SET name = $2 WHERE id = $1 AND NOT EXISTS \
             (SELECT 1 FROM tables WHERE database_id = $3 AND name = $2)",
        )
        .bind(t.id.get())
        .bind(new_name)
        .bind(db.id.get())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if renamed == 0 {
            return Err(Error::Conflict(format!(
                "table '{new_name}' already exists in database '{database}'"
            )));
        }
        bump_version(&mut tx).await?;
        self.commit(tx).await?;
        Ok(TableInfo {
            name: new_name.to_owned(),
            ..t
        })
    }
}
