//! Who is calling and what they may do, answered from memory.
//!
//! ```text
//!  request ─► hash(secret) ─► admin hash? ─ yes ─► Caller::Admin
//!                               │ no
//!                               ▼
//!              snapshot.tokens[hash] ─ miss ─► refresh (one GetVersion; reload if newer) ─► again
//!                               │ hit: revoked? expired? ─► 401
//!                               ▼
//!              Caller::Token ─► require(action, db name) ─► snapshot.databases[name] ─► id in grants? ─► 403
//!  change feed (catalog version) ─► background reload: every token and database name ─► snapshot
//! ```
//!
//! Invariants:
//! - no catalog round trip for a known token and database: the snapshot answers;
//! - a miss (unknown token or database) is never final while the catalog may know more: it
//!   reads the catalog's version once (concurrent misses share the read) and reloads when
//!   that is newer, so a token created through another router works at once;
//! - expiry is checked against the clock on every request, revocation as soon as the
//!   snapshot holds it (the change feed's interval, well under a second);
//! - the secret never leaves this module except as its hash.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ferrite_catalog::{Action, CatalogRef, Resource, TokenRecord};
use ferrite_model::DatabaseId;
use ferrite_retry::{Backoff, FailureLog};
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::secret::hash_token;

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials at all.
    #[error(
        "authentication required: send 'Authorization: Bearer <token>' ('Token <token>', or \
         Basic auth with the token as password, work too)"
    )]
    Missing,
    /// An `authorization` header of an unknown form.
    #[error(
        "malformed authorization header: expected 'Bearer <token>', 'Token <token>' or \
         'Basic base64(user:token)'"
    )]
    Malformed,
    /// No such token.
    #[error("unauthorized access: unknown token")]
    Unknown,
    /// The token was revoked.
    #[error("unauthorized access: token {0} has been revoked")]
    Revoked(uuid::Uuid),
    /// The token expired.
    #[error("unauthorized access: token {id} expired at {at}")]
    Expired {
        /// Token id.
        id: uuid::Uuid,
        /// Expiry, RFC 3339.
        at: String,
    },
    /// A valid token without the permission.
    #[error("permission denied: the token does not grant {action} on database '{database}'")]
    Forbidden {
        /// What was asked for.
        action: Action,
        /// On which database.
        database: String,
    },
    /// Only the admin token may do this.
    #[error("permission denied: {0} needs the admin token")]
    AdminOnly(&'static str),
    /// The catalog could not be asked.
    #[error("cannot check the token now: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// The HTTP status: 401 for bad credentials, 403 for a missing permission, 503 when the
    /// catalog cannot be asked.
    pub fn http_status(&self) -> http::StatusCode {
        match self {
            AuthError::Missing
            | AuthError::Malformed
            | AuthError::Unknown
            | AuthError::Revoked(_)
            | AuthError::Expired { .. } => http::StatusCode::UNAUTHORIZED,
            AuthError::Forbidden { .. } | AuthError::AdminOnly(_) => http::StatusCode::FORBIDDEN,
            AuthError::Unavailable(_) => http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The same as a gRPC status.
    pub fn to_status(&self) -> tonic::Status {
        let message = self.to_string();
        match self.http_status() {
            http::StatusCode::UNAUTHORIZED => tonic::Status::unauthenticated(message),
            http::StatusCode::FORBIDDEN => tonic::Status::permission_denied(message),
            _ => tonic::Status::unavailable(message),
        }
    }
}

/// The identity a request was authenticated as; handlers ask it for permissions.
#[derive(Debug, Clone)]
pub struct Caller {
    who: Who,
    authorizer: Option<Arc<Authorizer>>,
}

#[derive(Debug, Clone)]
enum Who {
    /// Authentication is turned off.
    Unrestricted,
    /// The admin (or cluster-internal) token.
    Admin,
    /// A database token.
    Token(Arc<TokenRecord>),
}

impl Caller {
    /// Anyone, when checking is turned off (`--without-auth`).
    pub fn unrestricted() -> Self {
        Self {
            who: Who::Unrestricted,
            authorizer: None,
        }
    }

    /// The admin token's holder.
    pub fn admin() -> Self {
        Self {
            who: Who::Admin,
            authorizer: None,
        }
    }

    /// May do everything (admin, or checking is off).
    pub fn is_admin(&self) -> bool {
        matches!(self.who, Who::Unrestricted | Who::Admin)
    }

    /// Fail unless the caller may do everything; `what` names the operation.
    pub fn require_admin(&self, what: &'static str) -> Result<(), AuthError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AuthError::AdminOnly(what))
        }
    }

    /// The database token, if that is what the caller holds.
    pub fn token(&self) -> Option<&TokenRecord> {
        match &self.who {
            Who::Token(t) => Some(t),
            Who::Unrestricted | Who::Admin => None,
        }
    }

    /// Fail unless the caller may `action` on the database named `database`. A name that
    /// belongs to no database (yet) is allowed only by a `*` permission, which is also what
    /// lets a write create a database.
    pub async fn require(&self, action: Action, database: &str) -> Result<(), AuthError> {
        let token = match &self.who {
            Who::Unrestricted | Who::Admin => return Ok(()),
            Who::Token(t) => t,
        };
        let grants = |resource: Resource| {
            token
                .permissions
                .iter()
                .any(|p| p.action == action && p.resource == resource)
        };
        if grants(Resource::AllDatabases) {
            return Ok(());
        }
        let forbidden = || AuthError::Forbidden {
            action,
            database: database.to_string(),
        };
        let Some(authorizer) = &self.authorizer else {
            return Err(forbidden());
        };
        let id = match authorizer.database_id(database).await? {
            Some(id) => id,
            None => return Err(forbidden()),
        };
        if grants(Resource::Database(id)) {
            Ok(())
        } else {
            Err(forbidden())
        }
    }

    /// Whether the caller may `action` on database `id` (for filtering listings).
    pub fn may(&self, action: Action, id: DatabaseId) -> bool {
        match &self.who {
            Who::Unrestricted | Who::Admin => true,
            Who::Token(t) => t.permissions.iter().any(|p| {
                p.action == action
                    && (p.resource == Resource::AllDatabases
                        || p.resource == Resource::Database(id))
            }),
        }
    }
}

/// What the authorizer knows, as of one catalog version.
#[derive(Debug, Default)]
struct Snapshot {
    /// Catalog version the lists were read at (or after); -1 before the first load.
    version: i64,
    tokens: HashMap<String, Arc<TokenRecord>>,
    databases: HashMap<String, DatabaseId>,
}

/// Checks tokens against the catalog's, from a snapshot kept current by the change feed.
#[derive(Debug)]
pub struct Authorizer {
    catalog: CatalogRef,
    admin_hash: String,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Start of the last refresh; held across it, so refreshes run one at a time and a miss
    /// that arrived before a refresh started is answered by it.
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
}

/// How long the change feed is watched after a change before reloading, so that a burst of
/// changes costs one reload. Part of the delay before a revocation applies everywhere.
const RELOAD_COALESCE: Duration = Duration::from_millis(100);

/// Longest a miss waits for the catalog.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(3);

impl Authorizer {
    /// Check tokens against `catalog`; `admin_hash` (see [`hash_token`]) may do everything.
    pub fn new(catalog: CatalogRef, admin_hash: String) -> Arc<Self> {
        Arc::new(Self {
            catalog,
            admin_hash,
            snapshot: RwLock::new(Arc::new(Snapshot {
                version: -1,
                ..Snapshot::default()
            })),
            last_refresh: tokio::sync::Mutex::new(None),
        })
    }

    /// Reload whenever `feed` (the catalog version) moves, until the authorizer is dropped.
    pub fn follow(self: &Arc<Self>, mut feed: watch::Receiver<i64>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
            let mut failures = FailureLog::new(Duration::from_secs(60));
            while feed.changed().await.is_ok() {
                // A burst of schema changes (a new database's tables and columns, files
                // being persisted) costs one reload, not one per change.
                tokio::time::sleep(RELOAD_COALESCE).await;
                let version = *feed.borrow_and_update();
                loop {
                    let Some(this) = weak.upgrade() else { return };
                    if this.snapshot.read().version >= version {
                        break;
                    }
                    match this.reload().await {
                        Ok(()) => {
                            backoff.reset();
                            failures.success();
                            break;
                        }
                        Err(e) => {
                            if let Some(n) = failures.failure() {
                                tracing::warn!(error = %e, failures = n, "cannot reload tokens");
                            }
                            drop(this);
                            tokio::time::sleep(backoff.next_delay()).await;
                        }
                    }
                }
            }
        });
    }

    /// Read every token and database name again (after a change made in this process, or
    /// when the feed moved).
    pub async fn reload(&self) -> Result<(), ferrite_catalog::Error> {
        let version = self.catalog.version().await?;
        let tokens = self.catalog.list_tokens().await?;
        let databases = self.catalog.list_databases().await?;
        let snapshot = Snapshot {
            version,
            tokens: tokens
                .into_iter()
                .map(|t| (t.hash.clone(), Arc::new(t)))
                .collect(),
            databases: databases.into_iter().map(|d| (d.name, d.id)).collect(),
        };
        let mut current = self.snapshot.write();
        if snapshot.version >= current.version {
            *current = Arc::new(snapshot);
        }
        Ok(())
    }

    /// Who holds `secret`.
    pub async fn authenticate(self: &Arc<Self>, secret: &str) -> Result<Caller, AuthError> {
        let hash = hash_token(secret);
        if hash == self.admin_hash {
            return Ok(Caller::admin());
        }
        let missed = Instant::now();
        let token = match self.lookup(|s| s.tokens.get(&hash).cloned()) {
            Some(t) => t,
            None => {
                self.refresh(missed).await?;
                self.lookup(|s| s.tokens.get(&hash).cloned())
                    .ok_or(AuthError::Unknown)?
            }
        };
        if token.revoked_at.is_some() {
            return Err(AuthError::Revoked(token.id));
        }
        if let Some(at) = token.expires_at
            && at <= now_nanos()
        {
            return Err(AuthError::Expired {
                id: token.id,
                at: rfc3339(at),
            });
        }
        Ok(Caller {
            who: Who::Token(token),
            authorizer: Some(Arc::clone(self)),
        })
    }

    /// The id of the database named `name`, refreshing once on a miss.
    async fn database_id(&self, name: &str) -> Result<Option<DatabaseId>, AuthError> {
        let missed = Instant::now();
        if let Some(id) = self.lookup(|s| s.databases.get(name).copied()) {
            return Ok(Some(id));
        }
        self.refresh(missed).await?;
        Ok(self.lookup(|s| s.databases.get(name).copied()))
    }

    fn lookup<T>(&self, f: impl FnOnce(&Snapshot) -> Option<T>) -> Option<T> {
        f(&self.snapshot.read())
    }

    /// After a miss at `missed`: make sure the snapshot is at least as new as the catalog was
    /// then. One version read per group of concurrent misses; a reload only if it is newer.
    async fn refresh(&self, missed: Instant) -> Result<(), AuthError> {
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|started| started >= missed) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let work = async {
            let version = self.catalog.version().await?;
            if version != self.snapshot.read().version {
                self.reload().await?;
            }
            Ok::<_, ferrite_catalog::Error>(())
        };
        match tokio::time::timeout(REFRESH_TIMEOUT, work).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AuthError::Unavailable(e.to_string())),
            Err(_) => Err(AuthError::Unavailable(format!(
                "the catalog did not answer within {REFRESH_TIMEOUT:?}"
            ))),
        }
    }
}

/// Nanoseconds since the epoch, now.
pub(crate) fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// `ns` since the epoch as RFC 3339 (UTC).
pub(crate) fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}
