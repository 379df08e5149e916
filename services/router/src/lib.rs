//! The router: the front door for writes.
//!
//! ```text
//!  POST /api/v2/write | /write | /api/v3/write_lp
//!    └─► http: params, Content-Encoding, size limit, UTF-8      (http.rs)
//!        └─► Router::write: schema cache ─► validate + build    (write.rs, validate.rs, builder.rs)
//!            └─► catalog (only for new tables/columns)
//!            └─► IngesterWrite::write (in-process or gRPC)
//! ```
//!
//! Invariants:
//! - a request is acknowledged (204) only after the ingester acknowledged every good line;
//! - without `accept_partial`, one bad line rejects the whole request and stores nothing;
//! - known schema needs no catalog round trip.

mod builder;
pub mod http;
pub mod placement;
pub mod proxy;
pub mod validate;
pub mod write;

pub use http::http_routes;
pub use write::{Router, RouterConfig, WriteBody, WriteError, WriteOutcome};
