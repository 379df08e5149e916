//! Integration tests of the querier: a real SQLite catalog, a real local object store with
//! Parquet files written as the ingester writes them, an in-test ingester, and real HTTP and
//! gRPC on loopback.

#[path = "querier/harness.rs"]
mod harness;

#[path = "querier/engine.rs"]
mod engine;

#[path = "querier/flight.rs"]
mod flight;

#[path = "querier/http.rs"]
mod http;
