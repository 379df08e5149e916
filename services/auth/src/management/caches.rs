//! Last-value and distinct-value caches over HTTP: InfluxDB 3's configure API and the
//! management API's own paths, both admin-only.
//!
//! ```text
//!  POST   /api/v3/configure/last_cache      {db, table, name?, key_columns?, value_columns?,
//!                                            count?, ttl? (s)}                       → 201
//!  DELETE /api/v3/configure/last_cache?db=&table=&name=   (or the same as a JSON body) → 200
//!  POST   /api/v3/configure/distinct_cache  {db, table, name?, columns, max_cardinality?,
//!                                            max_age? (s)}                           → 201
//!  DELETE /api/v3/configure/distinct_cache?db=&table=&name=                          → 200
//!  GET    /api/v0/databases/{db}/caches
//!  POST   /api/v0/databases/{db}/tables/{table}/caches   {kind: last|distinct, name?, …} → 201
//!  DELETE /api/v0/databases/{db}/tables/{table}/caches/{kind}/{name}                 → 204
//! ```
//!
//! A bad definition (unknown column, a field as key, count out of range) is 400; a name the
//! table already has for that kind, 409; an unknown database, table or cache, 404.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Extensions, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use ferrite_model::cache::{CacheDefinition, CacheKind, CacheSpec};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, Management};
use crate::authorizer::Caller;
use crate::layer::caller_of;

/// How a new cache is asked for, whichever API it comes from.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewCache {
    pub(crate) name: Option<String>,
    pub(crate) key_columns: Option<Vec<String>>,
    pub(crate) value_columns: Option<Vec<String>>,
    pub(crate) count: Option<usize>,
    pub(crate) ttl_seconds: Option<u64>,
    pub(crate) columns: Option<Vec<String>>,
    pub(crate) max_cardinality: Option<usize>,
    pub(crate) max_age_seconds: Option<u64>,
}

impl Management {
    /// Create a cache of `kind` on `database`.`table`.
    pub(crate) async fn create_cache(
        &self,
        caller: &Caller,
        database: &str,
        table: &str,
        kind: CacheKind,
        new: NewCache,
    ) -> ApiResult<CacheDefinition> {
        caller.require_admin("creating a cache")?;
        let name = new.name.clone();
        let definition = self
            .catalog
            .create_cache(database, table, name.as_deref(), |schema| match kind {
                CacheKind::Last => CacheSpec::last(
                    schema,
                    new.key_columns,
                    new.value_columns,
                    new.count,
                    new.ttl_seconds,
                ),
                CacheKind::Distinct => CacheSpec::distinct(
                    schema,
                    new.columns.unwrap_or_default(),
                    new.max_cardinality,
                    new.max_age_seconds,
                ),
            })
            .await?;
        Ok(definition)
    }

    /// Delete the `kind` cache `name` of `database`.`table`.
    pub(crate) async fn delete_cache(
        &self,
        caller: &Caller,
        database: &str,
        table: &str,
        kind: CacheKind,
        name: &str,
    ) -> ApiResult<()> {
        caller.require_admin("deleting a cache")?;
        Ok(self
            .catalog
            .delete_cache(database, table, kind, name)
            .await?)
    }

    /// The caches of `database`.
    pub(crate) async fn list_caches(
        &self,
        caller: &Caller,
        database: &str,
    ) -> ApiResult<Vec<CacheDefinition>> {
        caller.require_admin("listing caches")?;
        Ok(self.catalog.database_caches(database).await?)
    }
}

/// The cache routes of both APIs.
pub(crate) fn cache_routes() -> Router<Management> {
    Router::new()
        .route(
            "/api/v3/configure/last_cache",
            post(create_v3_last).delete(delete_v3_last),
        )
        .route(
            "/api/v3/configure/distinct_cache",
            post(create_v3_distinct).delete(delete_v3_distinct),
        )
        .route("/api/v0/databases/{db}/caches", get(list_v0))
        .route(
            "/api/v0/databases/{db}/tables/{table}/caches",
            post(create_v0),
        )
        .route(
            "/api/v0/databases/{db}/tables/{table}/caches/{kind}/{name}",
            delete(delete_v0),
        )
}

fn caller(extensions: &Extensions) -> ApiResult<Caller> {
    Ok(caller_of(extensions)?)
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

/// A cache as both APIs show it (snake_case on `/api/v3`, camelCase on `/api/v0`).
#[derive(Debug, Serialize)]
struct CacheBody {
    id: i64,
    table: String,
    name: String,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_columns: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_columns: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<usize>,
    /// Seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    columns: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_cardinality: Option<usize>,
    /// Seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_age: Option<u64>,
}

impl From<CacheDefinition> for CacheBody {
    fn from(d: CacheDefinition) -> Self {
        let mut body = CacheBody {
            id: d.id,
            table: d.table,
            name: d.name,
            kind: d.spec.kind().name(),
            key_columns: None,
            value_columns: None,
            count: None,
            ttl: None,
            columns: None,
            max_cardinality: None,
            max_age: None,
        };
        match d.spec {
            CacheSpec::Last {
                key_columns,
                value_columns,
                count,
                ttl_seconds,
            } => {
                body.key_columns = Some(key_columns);
                body.value_columns = Some(value_columns.into_iter().map(|c| c.name).collect());
                body.count = Some(count);
                body.ttl = Some(ttl_seconds);
            }
            CacheSpec::Distinct {
                columns,
                max_cardinality,
                max_age_seconds,
            } => {
                body.columns = Some(columns);
                body.max_cardinality = Some(max_cardinality);
                body.max_age = Some(max_age_seconds);
            }
        }
        body
    }
}

/// [`CacheBody`] with camelCase keys, as the rest of `/api/v0`.
fn camel_case(body: CacheBody) -> serde_json::Value {
    let value = serde_json::to_value(body).expect("a cache body serializes");
    let serde_json::Value::Object(map) = value else {
        return value;
    };
    map.into_iter()
        .map(|(k, v)| {
            let mut out = String::new();
            let mut upper = false;
            for ch in k.chars() {
                if ch == '_' {
                    upper = true;
                } else if upper {
                    out.extend(ch.to_uppercase());
                    upper = false;
                } else {
                    out.push(ch);
                }
            }
            (out, v)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct V3LastCache {
    db: String,
    table: String,
    name: Option<String>,
    key_columns: Option<Vec<String>>,
    value_columns: Option<Vec<String>>,
    count: Option<usize>,
    ttl: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct V3DistinctCache {
    db: String,
    table: String,
    name: Option<String>,
    columns: Vec<String>,
    max_cardinality: Option<usize>,
    max_age: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct V3Delete {
    db: Option<String>,
    table: Option<String>,
    name: Option<String>,
}

async fn create_v3_last(
    State(m): State<Management>,
    extensions: Extensions,
    body: Bytes,
) -> ApiResult<Response> {
    let caller = caller(&extensions)?;
    let r: V3LastCache = json_body(&body)?;
    let new = NewCache {
        name: r.name,
        key_columns: r.key_columns,
        value_columns: r.value_columns,
        count: r.count,
        ttl_seconds: r.ttl,
        ..NewCache::default()
    };
    let d = m
        .create_cache(&caller, &r.db, &r.table, CacheKind::Last, new)
        .await?;
    Ok((StatusCode::CREATED, Json(CacheBody::from(d))).into_response())
}

async fn create_v3_distinct(
    State(m): State<Management>,
    extensions: Extensions,
    body: Bytes,
) -> ApiResult<Response> {
    let caller = caller(&extensions)?;
    let r: V3DistinctCache = json_body(&body)?;
    let new = NewCache {
        name: r.name,
        columns: Some(r.columns),
        max_cardinality: r.max_cardinality,
        max_age_seconds: r.max_age,
        ..NewCache::default()
    };
    let d = m
        .create_cache(&caller, &r.db, &r.table, CacheKind::Distinct, new)
        .await?;
    Ok((StatusCode::CREATED, Json(CacheBody::from(d))).into_response())
}

async fn delete_v3(
    m: Management,
    extensions: Extensions,
    query: V3Delete,
    body: Bytes,
    kind: CacheKind,
) -> ApiResult<Response> {
    let caller = caller(&extensions)?;
    // Core's clients send the names as query parameters; a JSON body is taken too.
    let from_body: V3Delete = if body.iter().all(u8::is_ascii_whitespace) {
        V3Delete::default()
    } else {
        json_body(&body)?
    };
    let field = |q: Option<String>, b: Option<String>, name: &str| {
        q.or(b).ok_or_else(|| {
            ApiError::bad_request(format!("missing '{name}' (query parameter or body)"))
        })
    };
    let db = field(query.db, from_body.db, "db")?;
    let table = field(query.table, from_body.table, "table")?;
    let name = field(query.name, from_body.name, "name")?;
    m.delete_cache(&caller, &db, &table, kind, &name).await?;
    Ok(StatusCode::OK.into_response())
}

async fn delete_v3_last(
    State(m): State<Management>,
    extensions: Extensions,
    Query(query): Query<V3Delete>,
    body: Bytes,
) -> ApiResult<Response> {
    delete_v3(m, extensions, query, body, CacheKind::Last).await
}

async fn delete_v3_distinct(
    State(m): State<Management>,
    extensions: Extensions,
    Query(query): Query<V3Delete>,
    body: Bytes,
) -> ApiResult<Response> {
    delete_v3(m, extensions, query, body, CacheKind::Distinct).await
}

async fn list_v0(
    State(m): State<Management>,
    extensions: Extensions,
    Path(db): Path<String>,
) -> ApiResult<Response> {
    let caller = caller(&extensions)?;
    let caches: Vec<serde_json::Value> = m
        .list_caches(&caller, &db)
        .await?
        .into_iter()
        .map(|d| camel_case(d.into()))
        .collect();
    Ok(Json(caches).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct V0Cache {
    kind: String,
    name: Option<String>,
    key_columns: Option<Vec<String>>,
    value_columns: Option<Vec<String>>,
    count: Option<usize>,
    ttl: Option<u64>,
    columns: Option<Vec<String>>,
    max_cardinality: Option<usize>,
    max_age: Option<u64>,
}

fn kind_of(text: &str) -> ApiResult<CacheKind> {
    CacheKind::from_name(text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown cache kind '{text}': expected last or distinct"
        ))
    })
}

async fn create_v0(
    State(m): State<Management>,
    extensions: Extensions,
    Path((db, table)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let caller = caller(&extensions)?;
    let r: V0Cache = json_body(&body)?;
    let kind = kind_of(&r.kind)?;
    let misplaced = match kind {
        CacheKind::Last => [
            ("columns", r.columns.is_some()),
            ("maxCardinality", r.max_cardinality.is_some()),
            ("maxAge", r.max_age.is_some()),
        ],
        CacheKind::Distinct => [
            ("keyColumns", r.key_columns.is_some()),
            ("valueColumns", r.value_columns.is_some()),
            ("count", r.count.is_some() || r.ttl.is_some()),
        ],
    };
    if let Some((field, _)) = misplaced.iter().find(|(_, set)| *set) {
        return Err(ApiError::bad_request(format!(
            "'{field}' does not apply to a {} cache",
            kind.name()
        )));
    }
    let new = NewCache {
        name: r.name,
        key_columns: r.key_columns,
        value_columns: r.value_columns,
        count: r.count,
        ttl_seconds: r.ttl,
        columns: r.columns,
        max_cardinality: r.max_cardinality,
        max_age_seconds: r.max_age,
    };
    let d = m.create_cache(&caller, &db, &table, kind, new).await?;
    Ok((StatusCode::CREATED, Json(camel_case(d.into()))).into_response())
}

async fn delete_v0(
    State(m): State<Management>,
    extensions: Extensions,
    Path((db, table, kind, name)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    let caller = caller(&extensions)?;
    let kind = kind_of(&kind)?;
    m.delete_cache(&caller, &db, &table, kind, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
