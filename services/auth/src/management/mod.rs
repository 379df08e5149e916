//! The management API: databases, tables and tokens, for the admin token only. One set of
//! operations behind two transports, so both check, refuse and answer alike.
//!
//! ```text
//!  /api/v0/…  (HTTP + JSON, InfluxDB Clustered's paths and bodies) ─► http.rs ─┐
//!  ferrite.management.v1.{Database,Table,Token}Service (gRPC)      ─► grpc.rs ─┴─► Management ─► SqlCatalog
//! ```
//!
//! Permissions name a database or `*`. A named database must exist; it is stored by id, so
//! the token does not open a later database of the same name.

mod grpc;
mod http;

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use ferrite_catalog::{
    Action, Catalog, DatabaseInfo, Error as CatalogError, LimitsUpdate, NewToken, PartitionSummary,
    Permission, Resource, SqlCatalog, Status, TableInfo, TokenRecord, TokenUpdate,
};
use ferrite_model::{
    DatabaseId, DatabaseLimits, PartitionId, PartitionTemplate, TableId, TemplatePart,
};

use crate::authorizer::{AuthError, Authorizer, Caller, now_nanos};
use crate::secret::{generate_token, hash_token};

mod caches;

pub use grpc::add_grpc_services;
pub use http::http_routes;

/// What the management operations work on.
#[derive(Debug, Clone)]
pub struct Management {
    /// The catalog database itself: management runs where it is (`serve`, the catalog
    /// service).
    catalog: Arc<SqlCatalog>,
    /// Told about changes made here, so this process sees them at once (others follow the
    /// catalog's change feed). `None` when authentication is off.
    authorizer: Option<Arc<Authorizer>>,
}

/// A refused or failed management call: a status and a message naming what went wrong.
/// HTTP answers `{code, message}`; gRPC the matching status code.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// The same failure as a gRPC status.
    pub(crate) fn to_status(&self) -> tonic::Status {
        let code = match self.status {
            StatusCode::BAD_REQUEST => tonic::Code::InvalidArgument,
            StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
            StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
            StatusCode::NOT_FOUND => tonic::Code::NotFound,
            StatusCode::CONFLICT => tonic::Code::AlreadyExists,
            StatusCode::UNPROCESSABLE_ENTITY => tonic::Code::FailedPrecondition,
            StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
            _ => tonic::Code::Internal,
        };
        tonic::Status::new(code, self.message.clone())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        Self {
            status: e.http_status(),
            message: e.to_string(),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        let status = match &e {
            CatalogError::DatabaseNotFound(_)
            | CatalogError::TableNotFound(_)
            | CatalogError::TokenNotFound(_)
            | CatalogError::NotFound(_) => StatusCode::NOT_FOUND,
            CatalogError::Conflict(_) => StatusCode::CONFLICT,
            CatalogError::Invalid(_) => StatusCode::BAD_REQUEST,
            CatalogError::TableLimit { .. } | CatalogError::ColumnLimit { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            CatalogError::Unavailable(_) | CatalogError::Rpc(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            message: e.to_string(),
        }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// A new database: unset settings take the defaults.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewDatabase {
    pub name: String,
    pub retention_period_ns: Option<i64>,
    pub max_tables: Option<i32>,
    pub max_columns_per_table: Option<i32>,
    /// Parts as given; `None`: the default (UTC days).
    pub partition_template: Option<Vec<TemplatePart>>,
}

/// A template as given: checked, or a 400 that says what is wrong.
pub(crate) fn template_of(
    parts: Option<Vec<TemplatePart>>,
) -> ApiResult<Option<PartitionTemplate>> {
    parts
        .map(|p| PartitionTemplate::new(p).map_err(|e| ApiError::bad_request(e.to_string())))
        .transpose()
}

/// A permission as given and shown: `read`/`write` on a database name or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PermissionSpec {
    pub action: String,
    pub resource: String,
}

/// A token as shown: permissions by database name (`#<id>` for one that is gone).
#[derive(Debug, Clone)]
pub(crate) struct TokenView {
    pub id: uuid::Uuid,
    pub description: String,
    pub permissions: Vec<PermissionSpec>,
    /// ns since the epoch.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What `create_token` answers: the token, and its secret shown this once.
#[derive(Debug)]
pub(crate) struct CreatedToken {
    pub token: TokenView,
    pub secret: String,
}

/// A token's id as given: a UUID, or the token is not found.
pub(crate) fn token_id(text: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(text)
        .map_err(|_| ApiError::not_found(format!("token '{text}' not found: token ids are UUIDs")))
}

impl Management {
    /// Manage `catalog`'s databases and tokens.
    pub fn new(catalog: Arc<SqlCatalog>, authorizer: Option<Arc<Authorizer>>) -> Self {
        Self {
            catalog,
            authorizer,
        }
    }

    async fn changed(&self) {
        if let Some(a) = &self.authorizer
            && let Err(e) = a.reload().await
        {
            tracing::warn!(error = %e, "cannot reload tokens after a change; the change feed will");
        }
    }

    pub(crate) async fn list_databases(
        &self,
        caller: &Caller,
        status: Status,
    ) -> ApiResult<Vec<DatabaseInfo>> {
        caller.require_admin("listing databases")?;
        Ok(self.catalog.databases(status).await?)
    }

    pub(crate) async fn create_database(
        &self,
        caller: &Caller,
        new: NewDatabase,
    ) -> ApiResult<DatabaseInfo> {
        caller.require_admin("creating a database")?;
        let defaults = DatabaseLimits::default();
        let limits = DatabaseLimits {
            retention_period_ns: new
                .retention_period_ns
                .unwrap_or(defaults.retention_period_ns),
            max_tables: new.max_tables.unwrap_or(defaults.max_tables),
            max_columns_per_table: new
                .max_columns_per_table
                .unwrap_or(defaults.max_columns_per_table),
        };
        let template = template_of(new.partition_template)?.unwrap_or_default();
        let db = self
            .catalog
            .create_database_with(&new.name, limits, &template)
            .await?;
        self.changed().await;
        Ok(db)
    }

    pub(crate) async fn update_database(
        &self,
        caller: &Caller,
        name: &str,
        update: LimitsUpdate,
    ) -> ApiResult<DatabaseInfo> {
        caller.require_admin("updating a database")?;
        let db = self.catalog.update_database(name, update).await?;
        self.changed().await;
        Ok(db)
    }

    pub(crate) async fn delete_database(&self, caller: &Caller, name: &str) -> ApiResult<()> {
        caller.require_admin("deleting a database")?;
        self.catalog.delete_database(name).await?;
        self.changed().await;
        Ok(())
    }

    pub(crate) async fn rename_database(
        &self,
        caller: &Caller,
        name: &str,
        new_name: &str,
    ) -> ApiResult<DatabaseInfo> {
        caller.require_admin("renaming a database")?;
        let db = self.catalog.rename_database(name, new_name).await?;
        self.changed().await;
        Ok(db)
    }

    /// By id: several deleted databases may have had the same name.
    pub(crate) async fn undelete_database(
        &self,
        caller: &Caller,
        id: DatabaseId,
    ) -> ApiResult<DatabaseInfo> {
        caller.require_admin("undeleting a database")?;
        let db = self.catalog.undelete_database(id).await?;
        self.changed().await;
        Ok(db)
    }

    /// Partitions with live files, their files per compaction level and the compactor's
    /// skip records; narrowed to a database, a table of it, or skipped partitions only.
    pub(crate) async fn partitions(
        &self,
        caller: &Caller,
        database: Option<&str>,
        table: Option<&str>,
        skipped_only: bool,
    ) -> ApiResult<Vec<PartitionSummary>> {
        caller.require_admin("listing partitions")?;
        if table.is_some() && database.is_none() {
            return Err(ApiError::bad_request(
                "a table filter needs a database: ?db=<database>&table=<table>",
            ));
        }
        if let Some(db) = database {
            // 404 for a database or table that does not exist, as everywhere.
            let tables = self.catalog.tables(db, Status::Active).await?;
            if let Some(t) = table
                && !tables.iter().any(|info| info.name == t)
            {
                return Err(CatalogError::NotFound(format!(
                    "table '{t}' not found in database '{db}'"
                ))
                .into());
            }
        }
        let all = self.catalog.partition_summaries().await?;
        Ok(all
            .into_iter()
            .filter(|p| database.is_none_or(|d| p.database == d))
            .filter(|p| table.is_none_or(|t| p.table == t))
            .filter(|p| !skipped_only || p.skipped.is_some())
            .collect())
    }

    /// Let the compactor try a skipped partition again.
    pub(crate) async fn unskip_partition(&self, caller: &Caller, id: PartitionId) -> ApiResult<()> {
        caller.require_admin("clearing a skipped partition")?;
        if self.catalog.unskip_partition(id).await? {
            Ok(())
        } else {
            Err(CatalogError::NotFound(format!(
                "partition {} is not skipped by the compactor",
                id.get()
            ))
            .into())
        }
    }

    pub(crate) async fn list_tables(
        &self,
        caller: &Caller,
        database: &str,
        status: Status,
    ) -> ApiResult<Vec<TableInfo>> {
        caller.require_admin("listing tables")?;
        Ok(self.catalog.tables(database, status).await?)
    }

    pub(crate) async fn create_table(
        &self,
        caller: &Caller,
        database: &str,
        name: &str,
        partition_template: Option<Vec<TemplatePart>>,
    ) -> ApiResult<TableInfo> {
        caller.require_admin("creating a table")?;
        let template = template_of(partition_template)?;
        let table = self
            .catalog
            .create_table_named(database, name, template.as_ref())
            .await?;
        self.changed().await;
        Ok(table)
    }

    pub(crate) async fn delete_table(
        &self,
        caller: &Caller,
        database: &str,
        name: &str,
    ) -> ApiResult<()> {
        caller.require_admin("deleting a table")?;
        self.catalog.delete_table(database, name).await?;
        self.changed().await;
        Ok(())
    }

    pub(crate) async fn rename_table(
        &self,
        caller: &Caller,
        database: &str,
        name: &str,
        new_name: &str,
    ) -> ApiResult<TableInfo> {
        caller.require_admin("renaming a table")?;
        let table = self.catalog.rename_table(database, name, new_name).await?;
        self.changed().await;
        Ok(table)
    }

    /// By id: several deleted tables may have had the same name.
    pub(crate) async fn undelete_table(
        &self,
        caller: &Caller,
        database: &str,
        id: TableId,
    ) -> ApiResult<TableInfo> {
        caller.require_admin("undeleting a table")?;
        let table = self.catalog.undelete_table(database, id).await?;
        self.changed().await;
        Ok(table)
    }

    /// A new token; `expires_at` (ns since the epoch) must be in the future.
    pub(crate) async fn create_token(
        &self,
        caller: &Caller,
        description: String,
        permissions: &[PermissionSpec],
        expires_at: Option<i64>,
    ) -> ApiResult<CreatedToken> {
        caller.require_admin("creating a token")?;
        let permissions = self.resolve(permissions).await?;
        if let Some(at) = expires_at
            && at <= now_nanos()
        {
            return Err(ApiError::bad_request(format!(
                "the expiry {} is in the past",
                crate::authorizer::rfc3339(at)
            )));
        }
        let secret = generate_token();
        let record = self
            .catalog
            .create_token(NewToken {
                id: uuid::Uuid::new_v4(),
                description,
                hash: hash_token(&secret),
                permissions,
                expires_at,
            })
            .await?;
        self.changed().await;
        let token = view(&record, &self.names().await?);
        Ok(CreatedToken { token, secret })
    }

    pub(crate) async fn list_tokens(
        &self,
        caller: &Caller,
        include_revoked: bool,
    ) -> ApiResult<Vec<TokenView>> {
        caller.require_admin("listing tokens")?;
        let names = self.names().await?;
        let tokens = self.catalog.list_tokens().await?;
        Ok(tokens
            .iter()
            .filter(|t| include_revoked || t.revoked_at.is_none())
            .map(|t| view(t, &names))
            .collect())
    }

    pub(crate) async fn get_token(&self, caller: &Caller, id: uuid::Uuid) -> ApiResult<TokenView> {
        caller.require_admin("reading a token")?;
        let token = self
            .catalog
            .list_tokens()
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or(CatalogError::TokenNotFound(id))?;
        Ok(view(&token, &self.names().await?))
    }

    /// `permissions`, when given, replace the token's.
    pub(crate) async fn update_token(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
        description: Option<String>,
        permissions: Option<&[PermissionSpec]>,
    ) -> ApiResult<TokenView> {
        caller.require_admin("updating a token")?;
        let permissions = match permissions {
            Some(p) => Some(self.resolve(p).await?),
            None => None,
        };
        let token = self
            .catalog
            .update_token(
                id,
                TokenUpdate {
                    description,
                    permissions,
                },
            )
            .await?;
        self.changed().await;
        Ok(view(&token, &self.names().await?))
    }

    pub(crate) async fn revoke_token(&self, caller: &Caller, id: uuid::Uuid) -> ApiResult<()> {
        caller.require_admin("revoking a token")?;
        self.catalog.revoke_token(id).await?;
        self.changed().await;
        Ok(())
    }

    /// Permissions as stored: database names resolved to ids, which must exist.
    async fn resolve(&self, permissions: &[PermissionSpec]) -> ApiResult<Vec<Permission>> {
        if permissions.is_empty() {
            return Err(ApiError::bad_request(
                "a token needs at least one permission",
            ));
        }
        let mut out = Vec::with_capacity(permissions.len());
        for p in permissions {
            let action = Action::parse(&p.action).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown permission action '{}': expected read or write",
                    p.action
                ))
            })?;
            let resource = if p.resource == "*" {
                Resource::AllDatabases
            } else {
                let db = self
                    .catalog
                    .database_by_name(&p.resource)
                    .await?
                    .ok_or_else(|| {
                        ApiError::not_found(format!(
                            "database '{}' not found: a token can only name an existing \
                             database",
                            p.resource
                        ))
                    })?;
                Resource::Database(db.id)
            };
            let permission = Permission { action, resource };
            if !out.contains(&permission) {
                out.push(permission);
            }
        }
        Ok(out)
    }

    /// Database ids back to names for display.
    async fn names(&self) -> ApiResult<HashMap<DatabaseId, String>> {
        Ok(self
            .catalog
            .list_databases()
            .await?
            .into_iter()
            .map(|d| (d.id, d.name))
            .collect())
    }
}

/// `t` for display: database ids back to names, `#<id>` for one that is gone.
fn view(t: &TokenRecord, names: &HashMap<DatabaseId, String>) -> TokenView {
    TokenView {
        id: t.id,
        description: t.description.clone(),
        permissions: t
            .permissions
            .iter()
            .map(|p| PermissionSpec {
                action: p.action.to_string(),
                resource: match p.resource {
                    Resource::AllDatabases => "*".to_string(),
                    Resource::Database(id) => names
                        .get(&id)
                        .cloned()
                        .unwrap_or_else(|| format!("#{}", id.get())),
                },
            })
            .collect(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        revoked_at: t.revoked_at,
    }
}
