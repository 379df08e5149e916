//! Test and benchmark helpers: throwaway PostgreSQL servers, TSBS-style data, and the real
//! `ferrite` processes started for end-to-end tests.

pub mod postgres;
pub mod server;
pub mod tsbs;
