//! Access control: database tokens, the admin token, and the management API.
//!
//! ```text
//!  every process ─► layer::authenticate ─► Caller (request extension) ─► handler: caller.require(action, db)
//!                         │
//!                         ├─ router, querier, serve: Authorizer (tokens from the catalog, kept
//!                         │   current by the change feed; no catalog round trip per request)
//!                         └─ catalog, ingester: the cluster-internal token only
//!  management (/api/v0 HTTP, ferrite.management.v1 gRPC) ─► catalog: tokens, databases, tables
//! ```
//!
//! Tokens are random (256 bits), shown once, and stored as SHA-256 hashes with permissions
//! bound to database ids. See `docs/security.md`.

pub mod admin;
mod authorizer;
pub mod layer;
pub mod management;
mod secret;

pub use authorizer::{AuthError, Authorizer, Caller};
pub use layer::{AuthMode, authenticate, caller_of, grpc_caller};
pub use secret::{generate_token, hash_token, token_from_authorization};
