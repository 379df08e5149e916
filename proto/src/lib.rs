//! ferrite's gRPC and protobuf contracts, generated from `protos/` at build time with a
//! vendored protoc.
//!
//! - `influxdata.iox.querier.v1`: the Flight `ReadInfo` ticket of IOx and InfluxDB 3 clients.
//! - `ferrite.ingester.v1`: router → ingester writes, also the WAL record format.
//! - `ferrite.catalog.v1`: the catalog service (databases, tables, columns, partitions,
//!   parquet files) and its version change feed.

#![allow(missing_docs, clippy::all, clippy::clone_on_ref_ptr)]

/// Protobuf packages under `influxdata.*` (public InfluxDB contracts we serve).
pub mod influxdata {
    /// `influxdata.iox.*`
    pub mod iox {
        /// `influxdata.iox.querier.*`
        pub mod querier {
            /// `influxdata.iox.querier.v1`
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/influxdata.iox.querier.v1.rs"));
            }
        }
    }
}

/// ferrite's own service contracts.
pub mod ferrite {
    /// `ferrite.catalog.*`
    pub mod catalog {
        /// `ferrite.catalog.v1`: the catalog service and its change feed.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/ferrite.catalog.v1.rs"));
        }
    }
    /// `ferrite.ingester.*`
    pub mod ingester {
        /// `ferrite.ingester.v1`: writes and WAL records.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/ferrite.ingester.v1.rs"));
        }
    }
}
