//! The management HTTP API under `/api/v0`, with the paths and JSON bodies of InfluxDB
//! Clustered's management API. Every route needs the admin token.
//!
//! ```text
//!  GET    /api/v0/databases[?status=active|deleted|all]
//!  POST   /api/v0/databases            {name, retentionPeriod?, maxTables?, maxColumnsPerTable?} → 201
//!  PATCH  /api/v0/databases/{name}     {retentionPeriod?, maxTables?, maxColumnsPerTable?}
//!  DELETE /api/v0/databases/{name}     soft delete                            → 204
//!  PUT    /api/v0/databases/{name}/rename   {name}
//!  PUT    /api/v0/databases/{id}/undelete
//!  GET    /api/v0/databases/{db}/tables[?status=…]; POST {name}               → 201
//!  DELETE /api/v0/databases/{db}/tables/{table}; PUT …/{table}/rename {name}; PUT …/{id}/undelete
//!  GET    /api/v0/tokens               list (?includeRevoked=true)
//!  POST   /api/v0/tokens               {description, permissions, expiresAt?} → 201 + accessToken
//!  GET    /api/v0/tokens/{id}
//!  PATCH  /api/v0/tokens/{id}          {description?, permissions?}  (permissions replace)
//!  DELETE /api/v0/tokens/{id}          revoke                                 → 204
//! ```
//!
//! Permissions travel as `{"action": "read"|"write", "resource": "<database>"|"*"}`. A named
//! database must exist; it is stored by id, so the token does not open a later database of
//! the same name. Errors are `{"code": <status>, "message": "…"}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Extensions, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use ferrite_catalog::{
    Action, Catalog, DatabaseInfo, Error as CatalogError, LimitsUpdate, NewToken, Permission,
    Resource, SqlCatalog, Status, TableInfo, TokenRecord, TokenUpdate,
};
use ferrite_model::{DatabaseId, DatabaseLimits, TableId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::authorizer::{AuthError, Authorizer, now_nanos, rfc3339};
use crate::layer::caller_of;
use crate::secret::{generate_token, hash_token};

/// What the management routes work on.
#[derive(Debug, Clone)]
pub struct Management {
    /// The catalog database itself: management runs where it is (`serve`, the catalog
    /// service).
    catalog: Arc<SqlCatalog>,
    /// Told about changes made here, so this process sees them at once (others follow the
    /// catalog's change feed). `None` when authentication is off.
    authorizer: Option<Arc<Authorizer>>,
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
}

/// The `/api/v0` routes.
pub fn http_routes(management: Management) -> Router {
    Router::new()
        .route(
            "/api/v0/databases",
            get(list_databases).post(create_database),
        )
        .route(
            "/api/v0/databases/{db}",
            axum::routing::patch(update_database).delete(delete_database),
        )
        .route("/api/v0/databases/{db}/rename", put(rename_database))
        .route("/api/v0/databases/{db}/undelete", put(undelete_database))
        .route(
            "/api/v0/databases/{db}/tables",
            get(list_tables).post(create_table),
        )
        .route(
            "/api/v0/databases/{db}/tables/{table}",
            axum::routing::delete(delete_table),
        )
        .route(
            "/api/v0/databases/{db}/tables/{table}/rename",
            put(rename_table),
        )
        .route(
            "/api/v0/databases/{db}/tables/{table}/undelete",
            put(undelete_table),
        )
        .route("/api/v0/tokens", get(list_tokens).post(create_token))
        .route(
            "/api/v0/tokens/{id}",
            get(get_token).patch(update_token).delete(revoke_token),
        )
        .with_state(management)
}

/// A management API failure: `{code, message}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
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

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        Self::bad_request(format!("invalid request body: {}", e.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"code": self.status.as_u16(), "message": self.message})),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn admin(extensions: &Extensions, what: &'static str) -> ApiResult<()> {
    Ok(caller_of(extensions)?.require_admin(what)?)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DatabaseBody {
    id: i64,
    name: String,
    /// ns; 0: forever.
    retention_period: i64,
    max_tables: i32,
    max_columns_per_table: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_at: Option<String>,
}

impl From<DatabaseInfo> for DatabaseBody {
    fn from(d: DatabaseInfo) -> Self {
        Self {
            id: d.id.get(),
            name: d.name,
            retention_period: d.limits.retention_period_ns,
            max_tables: d.limits.max_tables,
            max_columns_per_table: d.limits.max_columns_per_table,
            deleted_at: d.deleted_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TableBody {
    id: i64,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_at: Option<String>,
}

impl From<TableInfo> for TableBody {
    fn from(t: TableInfo) -> Self {
        Self {
            id: t.id.get(),
            name: t.name,
            deleted_at: t.deleted_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateDatabase {
    name: String,
    retention_period: Option<i64>,
    max_tables: Option<i32>,
    max_columns_per_table: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateDatabase {
    retention_period: Option<i64>,
    max_tables: Option<i32>,
    max_columns_per_table: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
struct StatusFilter {
    status: Option<String>,
}

impl StatusFilter {
    fn status(&self) -> ApiResult<Status> {
        match self.status.as_deref() {
            None | Some("active") => Ok(Status::Active),
            Some("deleted") => Ok(Status::Deleted),
            Some("all") => Ok(Status::All),
            Some(other) => Err(ApiError::bad_request(format!(
                "unknown status '{other}': expected active, deleted or all"
            ))),
        }
    }
}

async fn list_databases(
    State(m): State<Management>,
    extensions: Extensions,
    Query(q): Query<StatusFilter>,
) -> ApiResult<Json<Vec<DatabaseBody>>> {
    admin(&extensions, "listing databases")?;
    let dbs = m.catalog.databases(q.status()?).await?;
    Ok(Json(dbs.into_iter().map(Into::into).collect()))
}

async fn create_database(
    State(m): State<Management>,
    extensions: Extensions,
    body: Result<Json<CreateDatabase>, JsonRejection>,
) -> ApiResult<Response> {
    admin(&extensions, "creating a database")?;
    let Json(body) = body?;
    let defaults = DatabaseLimits::default();
    let limits = DatabaseLimits {
        retention_period_ns: body
            .retention_period
            .unwrap_or(defaults.retention_period_ns),
        max_tables: body.max_tables.unwrap_or(defaults.max_tables),
        max_columns_per_table: body
            .max_columns_per_table
            .unwrap_or(defaults.max_columns_per_table),
    };
    let db = m.catalog.create_database_with(&body.name, limits).await?;
    m.changed().await;
    Ok((StatusCode::CREATED, Json(DatabaseBody::from(db))).into_response())
}

async fn update_database(
    State(m): State<Management>,
    extensions: Extensions,
    Path(db): Path<String>,
    body: Result<Json<UpdateDatabase>, JsonRejection>,
) -> ApiResult<Json<DatabaseBody>> {
    admin(&extensions, "updating a database")?;
    let Json(body) = body?;
    let update = LimitsUpdate {
        retention_period_ns: body.retention_period,
        max_tables: body.max_tables,
        max_columns_per_table: body.max_columns_per_table,
    };
    let db = m.catalog.update_database(&db, update).await?;
    m.changed().await;
    Ok(Json(db.into()))
}

async fn delete_database(
    State(m): State<Management>,
    extensions: Extensions,
    Path(db): Path<String>,
) -> ApiResult<StatusCode> {
    admin(&extensions, "deleting a database")?;
    m.catalog.delete_database(&db).await?;
    m.changed().await;
    Ok(StatusCode::NO_CONTENT)
}

async fn rename_database(
    State(m): State<Management>,
    extensions: Extensions,
    Path(db): Path<String>,
    body: Result<Json<Rename>, JsonRejection>,
) -> ApiResult<Json<DatabaseBody>> {
    admin(&extensions, "renaming a database")?;
    let Json(body) = body?;
    let db = m.catalog.rename_database(&db, &body.name).await?;
    m.changed().await;
    Ok(Json(db.into()))
}

/// By id: several deleted databases may have had the same name.
async fn undelete_database(
    State(m): State<Management>,
    extensions: Extensions,
    Path(id): Path<String>,
) -> ApiResult<Json<DatabaseBody>> {
    admin(&extensions, "undeleting a database")?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "undelete takes the deleted database's id (GET /api/v0/databases?status=deleted), \
             not '{id}'"
        ))
    })?;
    let db = m.catalog.undelete_database(DatabaseId(id)).await?;
    m.changed().await;
    Ok(Json(db.into()))
}

async fn list_tables(
    State(m): State<Management>,
    extensions: Extensions,
    Path(db): Path<String>,
    Query(q): Query<StatusFilter>,
) -> ApiResult<Json<Vec<TableBody>>> {
    admin(&extensions, "listing tables")?;
    let tables = m.catalog.tables(&db, q.status()?).await?;
    Ok(Json(tables.into_iter().map(Into::into).collect()))
}

async fn create_table(
    State(m): State<Management>,
    extensions: Extensions,
    Path(db): Path<String>,
    body: Result<Json<Rename>, JsonRejection>,
) -> ApiResult<Response> {
    admin(&extensions, "creating a table")?;
    let Json(body) = body?;
    let table = m.catalog.create_table_named(&db, &body.name).await?;
    m.changed().await;
    Ok((StatusCode::CREATED, Json(TableBody::from(table))).into_response())
}

async fn delete_table(
    State(m): State<Management>,
    extensions: Extensions,
    Path((db, table)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    admin(&extensions, "deleting a table")?;
    m.catalog.delete_table(&db, &table).await?;
    m.changed().await;
    Ok(StatusCode::NO_CONTENT)
}

async fn rename_table(
    State(m): State<Management>,
    extensions: Extensions,
    Path((db, table)): Path<(String, String)>,
    body: Result<Json<Rename>, JsonRejection>,
) -> ApiResult<Json<TableBody>> {
    admin(&extensions, "renaming a table")?;
    let Json(body) = body?;
    let table = m.catalog.rename_table(&db, &table, &body.name).await?;
    m.changed().await;
    Ok(Json(table.into()))
}

/// By id: several deleted tables may have had the same name.
async fn undelete_table(
    State(m): State<Management>,
    extensions: Extensions,
    Path((db, id)): Path<(String, String)>,
) -> ApiResult<Json<TableBody>> {
    admin(&extensions, "undeleting a table")?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "undelete takes the deleted table's id (GET \
             /api/v0/databases/{db}/tables?status=deleted), not '{id}'"
        ))
    })?;
    let table = m.catalog.undelete_table(&db, TableId(id)).await?;
    m.changed().await;
    Ok(Json(table.into()))
}

/// A permission on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionBody {
    action: String,
    resource: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateToken {
    #[serde(default)]
    description: String,
    permissions: Vec<PermissionBody>,
    expires_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateToken {
    description: Option<String>,
    permissions: Option<Vec<PermissionBody>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenBody {
    id: String,
    description: String,
    permissions: Vec<PermissionBody>,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
    /// Only in the answer to a create: the secret, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListTokens {
    #[serde(default)]
    include_revoked: bool,
}

/// Permissions as stored: database names resolved to ids, which must exist.
async fn resolve(m: &Management, permissions: &[PermissionBody]) -> ApiResult<Vec<Permission>> {
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
            let db = m
                .catalog
                .database_by_name(&p.resource)
                .await?
                .ok_or_else(|| ApiError {
                    status: StatusCode::NOT_FOUND,
                    message: format!(
                        "database '{}' not found: a token can only name an existing database",
                        p.resource
                    ),
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

/// Database ids back to names for display; a database that is gone shows as `#<id>`.
async fn names(m: &Management) -> ApiResult<HashMap<DatabaseId, String>> {
    Ok(m.catalog
        .list_databases()
        .await?
        .into_iter()
        .map(|d| (d.id, d.name))
        .collect())
}

fn body_of(t: &TokenRecord, names: &HashMap<DatabaseId, String>) -> TokenBody {
    TokenBody {
        id: t.id.hyphenated().to_string(),
        description: t.description.clone(),
        permissions: t
            .permissions
            .iter()
            .map(|p| PermissionBody {
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
        created_at: rfc3339(t.created_at),
        expires_at: t.expires_at.map(rfc3339),
        revoked_at: t.revoked_at.map(rfc3339),
        access_token: None,
    }
}

fn token_id(text: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(text).map_err(|_| ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("token '{text}' not found: token ids are UUIDs"),
    })
}

async fn create_token(
    State(m): State<Management>,
    extensions: Extensions,
    body: Result<Json<CreateToken>, JsonRejection>,
) -> ApiResult<Response> {
    admin(&extensions, "creating a token")?;
    let Json(body) = body?;
    let permissions = resolve(&m, &body.permissions).await?;
    let expires_at = match body.expires_at.as_deref() {
        None | Some("") => None,
        Some(text) => {
            let at = chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|e| {
                    ApiError::bad_request(format!(
                        "invalid expiresAt '{text}': {e} (expected RFC 3339, e.g. \
                         2030-01-01T00:00:00Z)"
                    ))
                })?
                .timestamp_nanos_opt()
                .ok_or_else(|| {
                    ApiError::bad_request(format!("expiresAt '{text}' is out of range"))
                })?;
            if at <= now_nanos() {
                return Err(ApiError::bad_request(format!(
                    "expiresAt '{text}' is in the past"
                )));
            }
            Some(at)
        }
    };
    let secret = generate_token();
    let record = m
        .catalog
        .create_token(NewToken {
            id: uuid::Uuid::new_v4(),
            description: body.description,
            hash: hash_token(&secret),
            permissions,
            expires_at,
        })
        .await?;
    m.changed().await;
    let mut out = body_of(&record, &names(&m).await?);
    out.access_token = Some(secret);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

async fn list_tokens(
    State(m): State<Management>,
    extensions: Extensions,
    Query(q): Query<ListTokens>,
) -> ApiResult<Json<Vec<TokenBody>>> {
    admin(&extensions, "listing tokens")?;
    let names = names(&m).await?;
    let tokens = m.catalog.list_tokens().await?;
    Ok(Json(
        tokens
            .iter()
            .filter(|t| q.include_revoked || t.revoked_at.is_none())
            .map(|t| body_of(t, &names))
            .collect(),
    ))
}

async fn find(m: &Management, id: uuid::Uuid) -> ApiResult<TokenRecord> {
    m.catalog
        .list_tokens()
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| CatalogError::TokenNotFound(id).into())
}

async fn get_token(
    State(m): State<Management>,
    extensions: Extensions,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenBody>> {
    admin(&extensions, "reading a token")?;
    let token = find(&m, token_id(&id)?).await?;
    Ok(Json(body_of(&token, &names(&m).await?)))
}

async fn update_token(
    State(m): State<Management>,
    extensions: Extensions,
    Path(id): Path<String>,
    body: Result<Json<UpdateToken>, JsonRejection>,
) -> ApiResult<Json<TokenBody>> {
    admin(&extensions, "updating a token")?;
    let id = token_id(&id)?;
    let Json(body) = body?;
    let permissions = match &body.permissions {
        Some(p) => Some(resolve(&m, p).await?),
        None => None,
    };
    let token = m
        .catalog
        .update_token(
            id,
            TokenUpdate {
                description: body.description,
                permissions,
            },
        )
        .await?;
    m.changed().await;
    Ok(Json(body_of(&token, &names(&m).await?)))
}

async fn revoke_token(
    State(m): State<Management>,
    extensions: Extensions,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    admin(&extensions, "revoking a token")?;
    m.catalog.revoke_token(token_id(&id)?).await?;
    m.changed().await;
    Ok(StatusCode::NO_CONTENT)
}
