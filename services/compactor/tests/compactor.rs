//! The compactor against the real parts of `ferrite serve`, in one process: a SQLite
//! catalog, a local-directory object store, an ingester with its WAL, the router's write
//! path and the query engine. What it must keep (answers) and change (files) is checked
//! through the same interfaces users and operators see.

#[path = "compactor/harness.rs"]
mod harness;

#[path = "compactor/answers.rs"]
mod answers;

#[path = "compactor/lifecycle.rs"]
mod lifecycle;

#[path = "compactor/sort_keys.rs"]
mod sort_keys;
