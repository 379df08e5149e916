//! The `ferrite` binary's wiring: configuration, and the processes it can run. Service logic
//! lives in the service crates; this crate only connects them.

pub mod config;
pub mod discovery;
pub mod fanout;
pub mod ready;
pub mod run;
pub mod serve;
pub mod tls;
