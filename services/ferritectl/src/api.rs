//! The HTTP side of the server: one client for `/api/v0` (management) and
//! `/api/v3/write_lp`, and the errors a user sees when a request fails.
//!
//! Every request carries `Authorization: Bearer <token>`. A failure names the request
//! ("creating database 'x'"), the status and the server's message (`{"code","message"}`
//! on `/api/v0`, `{"error"}` elsewhere), plus a hint for the statuses people meet most.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::config::{Settings, TlsConfig};

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No connection.
    #[error("{what}: cannot reach ferrite at {url}: {reason}")]
    Unreachable {
        /// The request.
        what: String,
        /// The server.
        url: String,
        /// Why, from the innermost cause ("Connection refused (os error 111)").
        reason: String,
    },
    /// No answer in time.
    #[error("{what}: no answer from {url} within {timeout:?} (raise --timeout?)")]
    Timeout {
        /// The request.
        what: String,
        /// The server.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// The server said no.
    #[error("{what}: {status}: {message}{hint}")]
    Status {
        /// The request.
        what: String,
        /// The HTTP status.
        status: StatusCode,
        /// The server's message.
        message: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The answer does not parse.
    #[error("{what}: unexpected answer from the server: {reason}")]
    Answer {
        /// The request.
        what: String,
        /// Why.
        reason: String,
    },
    /// The TLS settings cannot be used.
    #[error("TLS settings: {0}")]
    Tls(String),
}

impl ApiError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Unreachable { .. }
            | Self::Timeout { .. }
            | Self::Answer { .. }
            | Self::Tls(_) => None,
        }
    }

    /// The server lacks this endpoint (an older ferrite).
    pub fn is_missing_endpoint(&self) -> bool {
        matches!(self, Self::Status { status, message, .. }
            if *status == StatusCode::NOT_FOUND && message.starts_with("no such endpoint"))
    }

    fn from_reqwest(what: &str, url: &Url, timeout: Duration, e: &reqwest::Error) -> Self {
        let url = origin(url);
        if e.is_timeout() {
            return Self::Timeout {
                what: what.to_string(),
                url,
                timeout,
            };
        }
        if e.is_decode() {
            return Self::Answer {
                what: what.to_string(),
                reason: innermost(e),
            };
        }
        Self::Unreachable {
            what: what.to_string(),
            url,
            reason: innermost(e),
        }
    }
}

/// `scheme://host:port` of a URL, for messages.
pub fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The innermost cause of an error: what actually went wrong.
pub fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// The hint shown after a status.
pub fn hint_for(status: StatusCode, message: &str) -> &'static str {
    match status.as_u16() {
        401 => {
            " (the token is missing, unknown, revoked or expired: check --token, FERRITE_TOKEN or \
             the profile's token)"
        }
        // ferrite's own message says what is missing ("… needs the admin token").
        403 if message.contains("permission denied") => "",
        403 => " (permission denied: the token lacks this permission)",
        404 if message.starts_with("no such endpoint") => {
            " (this ferrite server does not offer this API yet: upgrade the server)"
        }
        400 if message.contains("unknown field") => {
            " (this ferrite server does not know this setting yet: upgrade the server)"
        }
        429 | 503 => " (the server is busy: try again later)",
        _ => "",
    }
}

/// The server's message from an error body: `message` (`/api/v0`, v2) or `error`.
pub fn message_of(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => v
            .get("message")
            .or_else(|| v.get("error"))
            .and_then(Value::as_str)
            .map_or_else(|| body.trim().to_string(), str::to_string),
        Err(_) if body.trim().is_empty() => "(no message)".to_string(),
        Err(_) => body.trim().chars().take(2000).collect(),
    }
}

/// An HTTP client for one server and token.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    base: Url,
    token: String,
    timeout: Duration,
}

impl Http {
    /// A client for `settings`' host and token.
    pub fn new(settings: &Settings, token: &str, timeout: Duration) -> Result<Self, ApiError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("ferritectl/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)));
        builder = with_tls(builder, &settings.tls)?;
        let client = builder.build().map_err(|e| ApiError::Tls(innermost(&e)))?;
        Ok(Self {
            client,
            base: settings.host.clone(),
            token: token.to_string(),
            timeout,
        })
    }

    /// The URL of `segments` under the host (each segment percent-encoded).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// A request with the token.
    pub fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.client.request(method, url).bearer_auth(&self.token)
    }

    /// Send `request`; the answer, or the transport error as an [`ApiError`].
    pub async fn send(
        &self,
        what: &str,
        url: &Url,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ApiError> {
        request
            .send()
            .await
            .map_err(|e| ApiError::from_reqwest(what, url, self.timeout, &e))
    }

    /// Read a failed answer's body into an [`ApiError::Status`].
    pub async fn status_error(&self, what: &str, response: reqwest::Response) -> ApiError {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let message = message_of(&body);
        ApiError::Status {
            what: what.to_string(),
            hint: hint_for(status, &message),
            status,
            message,
        }
    }

    /// A JSON request to the management API; `Ok(None)` for 204.
    async fn call<T: DeserializeOwned>(
        &self,
        what: &str,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Option<T>, ApiError> {
        let mut url = self.url(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self.request(method, url.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send(what, &url, request).await?;
        if !response.status().is_success() {
            return Err(self.status_error(what, response).await);
        }
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let text = response
            .text()
            .await
            .map_err(|e| ApiError::from_reqwest(what, &url, self.timeout, &e))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ApiError::Answer {
                what: what.to_string(),
                reason: format!("{e}: {}", text.chars().take(200).collect::<String>()),
            })
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        what: &str,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<T, ApiError> {
        self.call(what, method, segments, query, body)
            .await?
            .ok_or_else(|| ApiError::Answer {
                what: what.to_string(),
                reason: "an empty answer where an object was expected".to_string(),
            })
    }

    async fn call_empty(
        &self,
        what: &str,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<(), ApiError> {
        self.call::<Value>(what, method, segments, &[], body)
            .await
            .map(drop)
    }
}

/// The CA and verification settings of an `https://` host.
fn with_tls(
    mut builder: reqwest::ClientBuilder,
    tls: &TlsConfig,
) -> Result<reqwest::ClientBuilder, ApiError> {
    if let Some(ca) = &tls.ca {
        let pem = std::fs::read(ca)
            .map_err(|e| ApiError::Tls(format!("cannot read the CA file {}: {e}", ca.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            ApiError::Tls(format!(
                "the CA file {} is not PEM: {}",
                ca.display(),
                innermost(&e)
            ))
        })?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder.danger_accept_invalid_certs(tls.insecure))
}

/// A database as the API describes it. Fields the server adds later are kept in `other`,
/// so `--format json` passes them on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Database {
    /// The id (what tokens refer to).
    pub id: i64,
    /// The name.
    pub name: String,
    /// Nanoseconds data is kept; 0 = for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_period: Option<i64>,
    /// The most tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tables: Option<i64>,
    /// The most columns per table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_columns_per_table: Option<i64>,
    /// When it was soft-deleted (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// Anything else the server sent.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// Files of one compaction level of a partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Level {
    /// 0: as persisted; 1 and 2: compacted.
    pub level: u8,
    /// Live files.
    pub files: i64,
    /// Their rows.
    pub rows: i64,
    /// Their bytes.
    pub bytes: i64,
}

/// Why the compactor skips a partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    /// The reason.
    pub reason: String,
    /// Since when (RFC 3339).
    pub skipped_at: String,
}

/// A partition as the API describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Partition {
    /// The id.
    pub id: i64,
    /// Database name.
    pub database: String,
    /// Table name.
    pub table: String,
    /// Partition key.
    pub key: String,
    /// The tags its files are sorted by, before `time` (`None`: every tag in name order).
    #[serde(default)]
    pub sort_key: Option<Vec<String>>,
    /// Live files.
    pub files: i64,
    /// Rows in them.
    pub rows: i64,
    /// Their bytes.
    pub bytes: i64,
    /// Per compaction level.
    pub levels: Vec<Level>,
    /// Set when the compactor skips it.
    pub skipped: Option<Skipped>,
}

/// A table as the API describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    /// The id.
    pub id: i64,
    /// The name.
    pub name: String,
    /// When it was soft-deleted (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// Anything else the server sent.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// One permission of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    /// `read` or `write`.
    pub action: String,
    /// A database name, `*`, or `#<id>` for a database that is gone.
    pub resource: String,
}

/// A token as the API describes it (the secret only in the answer to a create).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    /// A UUID.
    pub id: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// What it may do.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// The secret, in the answer to a create only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Anything else the server sent.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// A last-value or distinct-value cache as the API describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cache {
    /// Catalog id.
    pub id: i64,
    /// Its table.
    pub table: String,
    /// Unique per table and kind.
    pub name: String,
    /// `last` or `distinct`.
    pub kind: String,
    /// The rest: keyColumns, valueColumns, count, ttl (last); columns, maxCardinality,
    /// maxAge (distinct). Durations in seconds.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// Changes to a database's settings; absent fields stay.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSettings {
    /// Nanoseconds, 0 = for ever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_period: Option<u64>,
    /// The most tables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tables: Option<u64>,
    /// The most columns per table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_columns_per_table: Option<u64>,
}

impl DatabaseSettings {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.retention_period.is_none()
            && self.max_tables.is_none()
            && self.max_columns_per_table.is_none()
    }
}

/// A new token.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewToken {
    /// What it is for.
    pub description: String,
    /// What it may do.
    pub permissions: Vec<Permission>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// Changes to a token; absent fields stay, permissions replace.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenChanges {
    /// The new description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The new permissions (all of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<Permission>>,
}

fn to_value(body: &impl Serialize) -> Value {
    serde_json::to_value(body).unwrap_or(Value::Null)
}

/// The management API, `/api/v0`.
#[derive(Debug, Clone)]
pub struct Management {
    http: Http,
}

impl Management {
    /// Manage the server `http` talks to.
    pub fn new(http: Http) -> Self {
        Self { http }
    }

    /// `GET /api/v0/databases[?status=]`.
    pub async fn list_databases(&self, status: &str) -> Result<Vec<Database>, ApiError> {
        // `active` is the server's default: leave it out so older servers answer too.
        let query: &[(&str, &str)] = if status == "active" {
            &[]
        } else {
            &[("status", status)]
        };
        self.http
            .call_json(
                "listing databases",
                Method::GET,
                &["api", "v0", "databases"],
                query,
                None,
            )
            .await
    }

    /// `POST /api/v0/databases`.
    pub async fn create_database(
        &self,
        name: &str,
        settings: &DatabaseSettings,
        partition_template: Option<Value>,
    ) -> Result<Database, ApiError> {
        let mut body = to_value(settings);
        body["name"] = Value::from(name);
        if let Some(t) = partition_template {
            body["partitionTemplate"] = t;
        }
        self.http
            .call_json(
                &format!("creating database '{name}'"),
                Method::POST,
                &["api", "v0", "databases"],
                &[],
                Some(&body),
            )
            .await
    }

    /// `PATCH /api/v0/databases/{name}`.
    pub async fn update_database(
        &self,
        name: &str,
        settings: &DatabaseSettings,
    ) -> Result<Database, ApiError> {
        self.http
            .call_json(
                &format!("updating database '{name}'"),
                Method::PATCH,
                &["api", "v0", "databases", name],
                &[],
                Some(&to_value(settings)),
            )
            .await
    }

    /// `DELETE /api/v0/databases/{name}`.
    pub async fn delete_database(&self, name: &str) -> Result<(), ApiError> {
        self.http
            .call_empty(
                &format!("deleting database '{name}'"),
                Method::DELETE,
                &["api", "v0", "databases", name],
                None,
            )
            .await
    }

    /// `PUT /api/v0/databases/{name}/rename`.
    pub async fn rename_database(&self, old: &str, new: &str) -> Result<Database, ApiError> {
        self.http
            .call_json(
                &format!("renaming database '{old}' to '{new}'"),
                Method::PUT,
                &["api", "v0", "databases", old, "rename"],
                &[],
                Some(&serde_json::json!({ "name": new })),
            )
            .await
    }

    /// `PUT /api/v0/databases/{id}/undelete`.
    pub async fn undelete_database(&self, name: &str, id: i64) -> Result<Database, ApiError> {
        self.http
            .call_json(
                &format!("undeleting database '{name}' (id {id})"),
                Method::PUT,
                &["api", "v0", "databases", &id.to_string(), "undelete"],
                &[],
                None,
            )
            .await
    }

    /// `GET /api/v0/databases/{db}/tables[?status=]`.
    pub async fn list_tables(&self, database: &str, status: &str) -> Result<Vec<Table>, ApiError> {
        let query: &[(&str, &str)] = if status == "active" {
            &[]
        } else {
            &[("status", status)]
        };
        self.http
            .call_json(
                &format!("listing the tables of database '{database}'"),
                Method::GET,
                &["api", "v0", "databases", database, "tables"],
                query,
                None,
            )
            .await
    }

    /// `GET /api/v0/partitions[?db=&table=&skipped=true]`.
    pub async fn list_partitions(
        &self,
        database: Option<&str>,
        table: Option<&str>,
        skipped: bool,
    ) -> Result<Vec<Partition>, ApiError> {
        let mut query: Vec<(&str, &str)> = vec![];
        if let Some(db) = database {
            query.push(("db", db));
        }
        if let Some(t) = table {
            query.push(("table", t));
        }
        if skipped {
            query.push(("skipped", "true"));
        }
        self.http
            .call_json(
                "listing partitions",
                Method::GET,
                &["api", "v0", "partitions"],
                &query,
                None,
            )
            .await
    }

    /// `PUT /api/v0/partitions/{id}/unskip`.
    pub async fn unskip_partition(&self, id: i64) -> Result<(), ApiError> {
        self.http
            .call_empty(
                &format!("clearing the skip of partition {id}"),
                Method::PUT,
                &["api", "v0", "partitions", &id.to_string(), "unskip"],
                None,
            )
            .await
    }

    /// `POST /api/v0/databases/{db}/tables`.
    pub async fn create_table(
        &self,
        database: &str,
        table: &str,
        partition_template: Option<Value>,
    ) -> Result<Table, ApiError> {
        let mut body = serde_json::json!({ "name": table });
        if let Some(t) = partition_template {
            body["partitionTemplate"] = t;
        }
        self.http
            .call_json(
                &format!("creating table '{table}' in database '{database}'"),
                Method::POST,
                &["api", "v0", "databases", database, "tables"],
                &[],
                Some(&body),
            )
            .await
    }

    /// `DELETE /api/v0/databases/{db}/tables/{table}`.
    pub async fn delete_table(&self, database: &str, table: &str) -> Result<(), ApiError> {
        self.http
            .call_empty(
                &format!("deleting table '{table}' of database '{database}'"),
                Method::DELETE,
                &["api", "v0", "databases", database, "tables", table],
                None,
            )
            .await
    }

    /// `PUT /api/v0/databases/{db}/tables/{table}/rename`.
    pub async fn rename_table(
        &self,
        database: &str,
        old: &str,
        new: &str,
    ) -> Result<Table, ApiError> {
        self.http
            .call_json(
                &format!("renaming table '{old}' of database '{database}' to '{new}'"),
                Method::PUT,
                &["api", "v0", "databases", database, "tables", old, "rename"],
                &[],
                Some(&serde_json::json!({ "name": new })),
            )
            .await
    }

    /// `PUT /api/v0/databases/{db}/tables/{id}/undelete`.
    pub async fn undelete_table(
        &self,
        database: &str,
        table: &str,
        id: i64,
    ) -> Result<Table, ApiError> {
        self.http
            .call_json(
                &format!("undeleting table '{table}' (id {id}) of database '{database}'"),
                Method::PUT,
                &[
                    "api",
                    "v0",
                    "databases",
                    database,
                    "tables",
                    &id.to_string(),
                    "undelete",
                ],
                &[],
                None,
            )
            .await
    }

    /// `GET /api/v0/databases/{db}/caches`.
    pub async fn list_caches(&self, database: &str) -> Result<Vec<Cache>, ApiError> {
        self.http
            .call_json(
                &format!("listing the caches of database '{database}'"),
                Method::GET,
                &["api", "v0", "databases", database, "caches"],
                &[],
                None,
            )
            .await
    }

    /// `POST /api/v0/databases/{db}/tables/{table}/caches`: `body` holds the kind and the
    /// settings.
    pub async fn create_cache(
        &self,
        database: &str,
        table: &str,
        body: &Value,
    ) -> Result<Cache, ApiError> {
        let kind = body["kind"].as_str().unwrap_or("a");
        self.http
            .call_json(
                &format!("creating a {kind} cache on table '{table}' of database '{database}'"),
                Method::POST,
                &[
                    "api",
                    "v0",
                    "databases",
                    database,
                    "tables",
                    table,
                    "caches",
                ],
                &[],
                Some(body),
            )
            .await
    }

    /// `DELETE /api/v0/databases/{db}/tables/{table}/caches/{kind}/{name}`.
    pub async fn delete_cache(
        &self,
        database: &str,
        table: &str,
        kind: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        self.http
            .call_empty(
                &format!(
                    "deleting {kind} cache '{name}' of table '{table}' in database '{database}'"
                ),
                Method::DELETE,
                &[
                    "api",
                    "v0",
                    "databases",
                    database,
                    "tables",
                    table,
                    "caches",
                    kind,
                    name,
                ],
                None,
            )
            .await
    }

    /// `POST /api/v0/tokens`.
    pub async fn create_token(&self, token: &NewToken) -> Result<Token, ApiError> {
        self.http
            .call_json(
                "creating a token",
                Method::POST,
                &["api", "v0", "tokens"],
                &[],
                Some(&to_value(token)),
            )
            .await
    }

    /// `GET /api/v0/tokens[?includeRevoked=true]`.
    pub async fn list_tokens(&self, include_revoked: bool) -> Result<Vec<Token>, ApiError> {
        let query: &[(&str, &str)] = if include_revoked {
            &[("includeRevoked", "true")]
        } else {
            &[]
        };
        self.http
            .call_json(
                "listing tokens",
                Method::GET,
                &["api", "v0", "tokens"],
                query,
                None,
            )
            .await
    }

    /// `GET /api/v0/tokens/{id}`.
    pub async fn get_token(&self, id: &str) -> Result<Token, ApiError> {
        self.http
            .call_json(
                &format!("reading token {id}"),
                Method::GET,
                &["api", "v0", "tokens", id],
                &[],
                None,
            )
            .await
    }

    /// `PATCH /api/v0/tokens/{id}`.
    pub async fn update_token(&self, id: &str, changes: &TokenChanges) -> Result<Token, ApiError> {
        self.http
            .call_json(
                &format!("updating token {id}"),
                Method::PATCH,
                &["api", "v0", "tokens", id],
                &[],
                Some(&to_value(changes)),
            )
            .await
    }

    /// `DELETE /api/v0/tokens/{id}`.
    pub async fn revoke_token(&self, id: &str) -> Result<(), ApiError> {
        self.http
            .call_empty(
                &format!("revoking token {id}"),
                Method::DELETE,
                &["api", "v0", "tokens", id],
                None,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_come_from_either_error_shape() {
        assert_eq!(message_of(r#"{"code":403,"message":"no"}"#), "no");
        assert_eq!(message_of(r#"{"error":"bad"}"#), "bad");
        assert_eq!(message_of("plain text\n"), "plain text");
        assert_eq!(message_of(""), "(no message)");
    }

    #[test]
    fn hints_name_the_likely_cause() {
        assert!(hint_for(StatusCode::FORBIDDEN, "").contains("permission"));
        assert_eq!(
            hint_for(
                StatusCode::FORBIDDEN,
                "permission denied: x needs the admin token"
            ),
            ""
        );
        assert!(hint_for(StatusCode::NOT_FOUND, "no such endpoint: /x").contains("upgrade"));
        assert_eq!(
            hint_for(StatusCode::NOT_FOUND, "database 'x' not found"),
            ""
        );
    }

    #[test]
    fn api_objects_keep_fields_they_do_not_know() {
        let db: Database =
            serde_json::from_str(r#"{"id":1,"name":"a","retentionPeriod":0,"shards":3}"#).unwrap();
        assert_eq!(db.retention_period, Some(0));
        let back = serde_json::to_value(&db).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"id":1,"name":"a","retentionPeriod":0,"shards":3})
        );
    }
}
