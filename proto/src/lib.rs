//! ferrite's gRPC and protobuf contracts, generated from `protos/` at build time with a
//! vendored protoc.
//!
//! - `influxdata.iox.querier.v1`: the Flight `ReadInfo` ticket of IOx and InfluxDB 3 clients.
//! - `ferrite.ingester.v1`: router → ingester writes, also the WAL record format.
//! - `ferrite.catalog.v1`: the catalog service (databases, tables, columns, partitions,
//!   parquet files) and its version change feed.
//! - `ferrite.management.v1`: the management API (databases, tables, tokens) over gRPC.

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
    /// `ferrite.management.*`
    pub mod management {
        /// `ferrite.management.v1`: databases, tables and tokens, for the admin token.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/ferrite.management.v1.rs"));
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

/// How ferrite's services identify themselves to each other: the cluster-internal token as
/// `authorization: Bearer …` on every call.
pub mod auth {
    use std::fmt;

    use tonic::metadata::{Ascii, MetadataValue};
    use tonic::service::Interceptor;
    use tonic::service::interceptor::InterceptedService;
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

    /// A channel whose calls carry the internal token.
    pub type AuthChannel = InterceptedService<Channel, Bearer>;

    /// How a service reaches its peers: the internal token on every call, and TLS (the
    /// system's roots plus a CA) for `https://` peers.
    #[derive(Debug, Clone, Default)]
    pub struct ClientAuth {
        /// The token sent on every call.
        pub bearer: Bearer,
        tls: Option<ClientTlsConfig>,
    }

    impl ClientAuth {
        /// No token, no extra CA (tests, `--without-auth`).
        pub fn none() -> Self {
            Self::default()
        }

        /// `bearer` on every call; `https://` peers verified against the system's roots and
        /// `ca_pem`, if given.
        pub fn new(bearer: Bearer, ca_pem: Option<Vec<u8>>) -> Self {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some(pem) = ca_pem {
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            Self {
                bearer,
                tls: Some(tls),
            }
        }

        /// The same, but an `https://` peer's certificate is checked against `name` rather
        /// than the URL's host: for peers dialled at an address that were found by a name
        /// (a Kubernetes Service, a DNS name).
        pub fn verifying_as(&self, name: &str) -> Self {
            Self {
                bearer: self.bearer.clone(),
                tls: self.tls.clone().map(|tls| tls.domain_name(name)),
            }
        }

        /// `endpoint` with TLS when its URL is `https://`.
        pub fn endpoint(&self, endpoint: Endpoint) -> Result<Endpoint, tonic::transport::Error> {
            match &self.tls {
                Some(tls) if endpoint.uri().scheme_str() == Some("https") => {
                    endpoint.tls_config(tls.clone())
                }
                _ => Ok(endpoint),
            }
        }

        /// `channel` with the token on every call.
        pub fn channel(&self, channel: Channel) -> AuthChannel {
            self.bearer.channel(channel)
        }
    }

    /// Adds `authorization: Bearer <token>` to every call (without a token, auth turned off,
    /// none) and the current span's `traceparent`. The token never appears in `Debug` output.
    #[derive(Clone, Default)]
    pub struct Bearer(Option<MetadataValue<Ascii>>);

    /// A token that cannot travel in a header (not visible ASCII).
    #[derive(Debug, thiserror::Error)]
    #[error("the internal token must be visible ASCII")]
    pub struct InvalidToken;

    impl Bearer {
        /// Send `token`, or nothing when `None`.
        pub fn new(token: Option<&str>) -> Result<Self, InvalidToken> {
            token
                .map(|t| format!("Bearer {t}").parse().map_err(|_| InvalidToken))
                .transpose()
                .map(Self)
        }

        /// Send nothing.
        pub fn none() -> Self {
            Self(None)
        }

        /// `channel` with this token on every call.
        pub fn channel(&self, channel: Channel) -> AuthChannel {
            InterceptedService::new(channel, self.clone())
        }
    }

    impl fmt::Debug for Bearer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(if self.0.is_some() {
                "Bearer(<redacted>)"
            } else {
                "Bearer(none)"
            })
        }
    }

    impl Interceptor for Bearer {
        fn call(
            &mut self,
            mut request: tonic::Request<()>,
        ) -> Result<tonic::Request<()>, tonic::Status> {
            if let Some(value) = &self.0 {
                request
                    .metadata_mut()
                    .insert("authorization", value.clone());
            }
            // Every call between services continues the caller's trace.
            ferrite_telemetry::propagation::inject_metadata(request.metadata_mut());
            Ok(request)
        }
    }
}
