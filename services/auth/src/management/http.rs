//! The management API over HTTP, under `/api/v0`, with the paths and JSON bodies of InfluxDB
//! Clustered's management API.
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
//! Permissions travel as `{"action": "read"|"write", "resource": "<database>"|"*"}`. Errors
//! are `{"code": <status>, "message": "…"}`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Extensions, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use ferrite_catalog::{DatabaseInfo, LimitsUpdate, Status, TableInfo};
use ferrite_model::{DatabaseId, PartitionId, PartitionTemplate, TableId, TemplatePart};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiError, ApiResult, Management, NewDatabase, PermissionSpec, TokenView, token_id};
use crate::authorizer::{Caller, rfc3339};
use crate::layer::caller_of;
use ferrite_catalog::PartitionSummary;

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
        .route("/api/v0/partitions", get(list_partitions))
        .route("/api/v0/partitions/{id}/unskip", put(unskip_partition))
        .route("/api/v0/tokens", get(list_tokens).post(create_token))
        .route(
            "/api/v0/tokens/{id}",
            get(get_token).patch(update_token).delete(revoke_token),
        )
        .merge(super::caches::cache_routes())
        .with_state(management)
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

/// The authenticated caller; none (no layer ran) is refused like a missing token.
fn caller(extensions: &Extensions) -> ApiResult<Caller> {
    Ok(caller_of(extensions)?)
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
    partition_template: PartitionTemplate,
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
            partition_template: d.partition_template,
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
    partition_template: PartitionTemplate,
}

impl From<TableInfo> for TableBody {
    fn from(t: TableInfo) -> Self {
        Self {
            id: t.id.get(),
            name: t.name,
            deleted_at: t.deleted_at.map(rfc3339),
            partition_template: t.partition_template,
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
    partition_template: Option<Vec<TemplatePart>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateTable {
    name: String,
    partition_template: Option<Vec<TemplatePart>>,
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
    let dbs = m.list_databases(&caller(&extensions)?, q.status()?).await?;
    Ok(Json(dbs.into_iter().map(Into::into).collect()))
}

async fn create_database(
    State(m): State<Management>,
    extensions: Extensions,
    body: Result<Json<CreateDatabase>, JsonRejection>,
) -> ApiResult<Response> {
    let caller = caller(&extensions)?;
    let Json(body) = body?;
    let new = NewDatabase {
        name: body.name,
        retention_period_ns: body.retention_period,
        max_tables: body.max_tables,
        max_columns_per_table: body.max_columns_per_table,
        partition_template: body.partition_template,
    };
    let db = m.create_database(&caller, new).await?;
    Ok((StatusCode::CREATED, Json(DatabaseBody::from(db))).into_response())
}

async fn update_database(
    State(m): State<Management>,
    extensions: Extensions,
    Path(db): Path<String>,
    body: Result<Json<UpdateDatabase>, JsonRejection>,
) -> ApiResult<Json<DatabaseBody>> {
    let caller = caller(&extensions)?;
    let Json(body) = body?;
    let update = LimitsUpdate {
        retention_period_ns: body.retention_period,
        max_tables: body.max_tables,
        max_columns_per_table: body.max_columns_per_table,
    };
    Ok(Json(m.update_database(&caller, &db, update).await?.into()))
}

async fn delete_database(
    State(m): State<Management>,
    extensions: Extensions,
    Path(db): Path<String>,
) -> ApiResult<StatusCode> {
    m.delete_database(&caller(&extensions)?, &db).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rename_database(
    State(m): State<Management>,
    extensions: Extensions,
    Path(db): Path<String>,
    body: Result<Json<Rename>, JsonRejection>,
) -> ApiResult<Json<DatabaseBody>> {
    let caller = caller(&extensions)?;
    let Json(body) = body?;
    Ok(Json(
        m.rename_database(&caller, &db, &body.name).await?.into(),
    ))
}

async fn undelete_database(
    State(m): State<Management>,
    extensions: Extensions,
    Path(id): Path<String>,
) -> ApiResult<Json<DatabaseBody>> {
    let caller = caller(&extensions)?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "undelete takes the deleted database's id (GET /api/v0/databases?status=deleted), \
             not '{id}'"
        ))
    })?;
    Ok(Json(
        m.undelete_database(&caller, DatabaseId(id)).await?.into(),
    ))
}

/// `GET /api/v0/partitions` filters.
#[derive(Debug, Deserialize)]
struct PartitionFilter {
    db: Option<String>,
    table: Option<String>,
    #[serde(default)]
    skipped: bool,
}

/// Files of one compaction level of a partition.
#[derive(Debug, Serialize)]
struct LevelBody {
    level: usize,
    files: i64,
    rows: i64,
    bytes: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SkippedBody {
    reason: String,
    skipped_at: String,
}

/// A partition as `GET /api/v0/partitions` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PartitionBody {
    id: i64,
    database: String,
    table: String,
    key: String,
    /// The tags its files are sorted by, before `time`; `null` for a partition from before
    /// sort keys were recorded (every tag in name order).
    sort_key: Option<Vec<String>>,
    files: i64,
    rows: i64,
    bytes: i64,
    levels: Vec<LevelBody>,
    skipped: Option<SkippedBody>,
}

impl From<PartitionSummary> for PartitionBody {
    fn from(p: PartitionSummary) -> Self {
        Self {
            id: p.partition.id.get(),
            files: p.files(),
            rows: p.levels.iter().map(|l| l.rows).sum(),
            bytes: p.levels.iter().map(|l| l.bytes).sum(),
            levels: p
                .levels
                .iter()
                .enumerate()
                .map(|(level, l)| LevelBody {
                    level,
                    files: l.files,
                    rows: l.rows,
                    bytes: l.bytes,
                })
                .collect(),
            skipped: p.skipped.map(|s| SkippedBody {
                reason: s.reason,
                skipped_at: rfc3339(s.skipped_at),
            }),
            database: p.database,
            table: p.table,
            key: p.partition.key,
            sort_key: p.partition.sort_key,
        }
    }
}

async fn list_partitions(
    State(m): State<Management>,
    extensions: Extensions,
    Query(q): Query<PartitionFilter>,
) -> ApiResult<Json<Vec<PartitionBody>>> {
    let partitions = m
        .partitions(
            &caller(&extensions)?,
            q.db.as_deref(),
            q.table.as_deref(),
            q.skipped,
        )
        .await?;
    Ok(Json(partitions.into_iter().map(Into::into).collect()))
}

async fn unskip_partition(
    State(m): State<Management>,
    extensions: Extensions,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "a partition id is a number (see GET /api/v0/partitions), not '{id}'"
        ))
    })?;
    m.unskip_partition(&caller(&extensions)?, PartitionId(id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_tables(
    State(m): State<Management>,
    extensions: Extensions,
    Path(db): Path<String>,
    Query(q): Query<StatusFilter>,
) -> ApiResult<Json<Vec<TableBody>>> {
    let tables = m
        .list_tables(&caller(&extensions)?, &db, q.status()?)
        .await?;
    Ok(Json(tables.into_iter().map(Into::into).collect()))
}

async fn create_table(
    State(m): State<Management>,
    extensions: Extensions,
    Path(db): Path<String>,
    body: Result<Json<CreateTable>, JsonRejection>,
) -> ApiResult<Response> {
    let caller = caller(&extensions)?;
    let Json(body) = body?;
    let table = m
        .create_table(&caller, &db, &body.name, body.partition_template)
        .await?;
    Ok((StatusCode::CREATED, Json(TableBody::from(table))).into_response())
}

async fn delete_table(
    State(m): State<Management>,
    extensions: Extensions,
    Path((db, table)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    m.delete_table(&caller(&extensions)?, &db, &table).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rename_table(
    State(m): State<Management>,
    extensions: Extensions,
    Path((db, table)): Path<(String, String)>,
    body: Result<Json<Rename>, JsonRejection>,
) -> ApiResult<Json<TableBody>> {
    let caller = caller(&extensions)?;
    let Json(body) = body?;
    Ok(Json(
        m.rename_table(&caller, &db, &table, &body.name)
            .await?
            .into(),
    ))
}

async fn undelete_table(
    State(m): State<Management>,
    extensions: Extensions,
    Path((db, id)): Path<(String, String)>,
) -> ApiResult<Json<TableBody>> {
    let caller = caller(&extensions)?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "undelete takes the deleted table's id (GET \
             /api/v0/databases/{db}/tables?status=deleted), not '{id}'"
        ))
    })?;
    Ok(Json(
        m.undelete_table(&caller, &db, TableId(id)).await?.into(),
    ))
}

/// A permission on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionBody {
    action: String,
    resource: String,
}

impl From<PermissionBody> for PermissionSpec {
    fn from(p: PermissionBody) -> Self {
        Self {
            action: p.action,
            resource: p.resource,
        }
    }
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

impl From<TokenView> for TokenBody {
    fn from(t: TokenView) -> Self {
        Self {
            id: t.id.hyphenated().to_string(),
            description: t.description,
            permissions: t
                .permissions
                .into_iter()
                .map(|p| PermissionBody {
                    action: p.action,
                    resource: p.resource,
                })
                .collect(),
            created_at: rfc3339(t.created_at),
            expires_at: t.expires_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
            access_token: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListTokens {
    #[serde(default)]
    include_revoked: bool,
}

fn specs(permissions: Vec<PermissionBody>) -> Vec<PermissionSpec> {
    permissions.into_iter().map(Into::into).collect()
}

/// An RFC 3339 expiry as ns since the epoch; empty: none.
fn expiry(text: Option<&str>) -> ApiResult<Option<i64>> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let at = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid expiresAt '{text}': {e} (expected RFC 3339, e.g. 2030-01-01T00:00:00Z)"
        ))
    })?;
    at.timestamp_nanos_opt()
        .map(Some)
        .ok_or_else(|| ApiError::bad_request(format!("expiresAt '{text}' is out of range")))
}

async fn create_token(
    State(m): State<Management>,
    extensions: Extensions,
    body: Result<Json<CreateToken>, JsonRejection>,
) -> ApiResult<Response> {
    let caller = caller(&extensions)?;
    let Json(body) = body?;
    let expires_at = expiry(body.expires_at.as_deref())?;
    let created = m
        .create_token(
            &caller,
            body.description,
            &specs(body.permissions),
            expires_at,
        )
        .await?;
    let mut out = TokenBody::from(created.token);
    out.access_token = Some(created.secret);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

async fn list_tokens(
    State(m): State<Management>,
    extensions: Extensions,
    Query(q): Query<ListTokens>,
) -> ApiResult<Json<Vec<TokenBody>>> {
    let tokens = m
        .list_tokens(&caller(&extensions)?, q.include_revoked)
        .await?;
    Ok(Json(tokens.into_iter().map(Into::into).collect()))
}

async fn get_token(
    State(m): State<Management>,
    extensions: Extensions,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenBody>> {
    let caller = caller(&extensions)?;
    Ok(Json(m.get_token(&caller, token_id(&id)?).await?.into()))
}

async fn update_token(
    State(m): State<Management>,
    extensions: Extensions,
    Path(id): Path<String>,
    body: Result<Json<UpdateToken>, JsonRejection>,
) -> ApiResult<Json<TokenBody>> {
    let caller = caller(&extensions)?;
    let id = token_id(&id)?;
    let Json(body) = body?;
    let permissions = body.permissions.map(specs);
    let token = m
        .update_token(&caller, id, body.description, permissions.as_deref())
        .await?;
    Ok(Json(token.into()))
}

async fn revoke_token(
    State(m): State<Management>,
    extensions: Extensions,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let caller = caller(&extensions)?;
    m.revoke_token(&caller, token_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
