//! Test and benchmark helpers: throwaway PostgreSQL servers, TSBS-style data, and the real
//! `ferrite` processes started for end-to-end tests.

pub mod cluster;
pub mod postgres;
pub mod s3;
pub mod server;
pub mod tls;
pub mod tsbs;
mod watchdog;
