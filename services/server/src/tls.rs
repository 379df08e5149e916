//! TLS for every listener (the front door and the internal services) and for the internal
//! clients, from PEM files.
//!
//! ```text
//!  accept ─► peek the first byte ─┬─ 0x16 (TLS handshake) ─► rustls (ALPN h2, http/1.1) ─► hyper auto (HTTP/1.1, HTTP/2) ─► app
//!                                  └─ anything else ─────────► "400: this port speaks TLS", close
//! ```
//!
//! HTTP and gRPC stay on one port: ALPN offers `h2` and `http/1.1`, and the same app splits
//! requests by content type as it does in plaintext.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use parking_lot::RwLock;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, info};

use crate::discovery::Peer;

/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE: u8 = 0x16;

/// How long a new connection may take to send its first byte and finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a plaintext request to a TLS port gets back.
const PLAINTEXT_REFUSAL: &str = "this port serves TLS: use https:// (grpc+tls:// for Flight)\n";

/// A server certificate chain and its key, from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing the TLS certificate {}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "no certificate in {} (expected PEM)",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS key {} (expected PEM)", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Root certificates a client trusts: the system's plus `ca` (PEM), if given.
pub fn client_roots(ca: Option<&Path>) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // An unreadable system certificate is skipped: the CA file may be all that is needed.
        let _ = roots.add(cert);
    }
    if let Some(ca) = ca {
        for cert in CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("reading the TLS CA {}", ca.display()))?
        {
            roots
                .add(cert.with_context(|| format!("parsing the TLS CA {}", ca.display()))?)
                .with_context(|| format!("the TLS CA {}", ca.display()))?;
        }
    }
    Ok(roots)
}

/// A rustls client configuration trusting [`client_roots`], offering h2 and http/1.1. A
/// peer dialled at an address that `names` knows is checked against the name it was found
/// by ([`crate::discovery::Peer::tls_name`]); every other peer against its URL's host.
pub fn client_config(ca: Option<&Path>, names: PeerNames) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(
        Arc::new(client_roots(ca)?),
        Arc::clone(&provider),
    )
    .build()
    .context("building the TLS certificate verifier")?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PeerNameVerifier { inner, names }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The names discovered `https` peers' certificates are checked against, by the address
/// they are dialled at; shared between discovery's subscribers and [`client_config`].
#[derive(Debug, Clone, Default)]
pub struct PeerNames(Arc<RwLock<HashMap<ServerName<'static>, ServerName<'static>>>>);

impl PeerNames {
    /// The names of `peers` dialled at an address, replacing the previous set (others are
    /// checked as usual). Connections already open stay open: only handshakes consult it,
    /// and only current peers are dialled.
    pub fn set(&self, peers: &[Peer]) {
        let mut names = self.0.write();
        names.clear();
        for peer in peers {
            let Some(name) = &peer.tls_name else { continue };
            let Ok(uri) = peer.url.parse::<http::Uri>() else {
                continue;
            };
            let Some(host) = uri.host() else { continue };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let (Ok(address), Ok(name)) = (
                ServerName::try_from(host.to_string()),
                ServerName::try_from(name.clone()),
            ) else {
                continue;
            };
            if matches!(address, ServerName::IpAddress(_)) {
                names.insert(address, name);
            }
        }
    }
}

/// The Web PKI verifier, asked about the peer's discovered name instead of the address it
/// was dialled at when [`PeerNames`] has one. Everything else is the inner verifier's.
#[derive(Debug)]
struct PeerNameVerifier {
    inner: Arc<WebPkiServerVerifier>,
    names: PeerNames,
}

impl ServerCertVerifier for PeerNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let discovered = self.names.0.read().get(&server_name.to_owned()).cloned();
        self.inner.verify_server_cert(
            end_entity,
            intermediates,
            discovered.as_ref().unwrap_or(server_name),
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// TLS settings of a process: what it serves with, and what its clients trust.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// Server certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
    /// Extra CA (PEM) for the process's own connections to `https://` peers.
    pub ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The server configuration, when a certificate is given.
    pub fn server(&self) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Ok(Some(server_config(cert, key)?)),
            (None, None) => Ok(None),
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        }
    }
}

/// Serve `app` over TLS on `listener` until `stop` says so, then give open connections
/// `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    config: Arc<rustls::ServerConfig>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(config);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
        }
        let (acceptor, app, watcher) = (acceptor.clone(), app.clone(), graceful.watcher());
        tokio::spawn(async move {
            let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                let mut first = [0u8; 1];
                let n = tcp.peek(&mut first).await?;
                if n == 1 && first[0] != TLS_HANDSHAKE {
                    refuse_plaintext(tcp).await;
                    return Ok(None);
                }
                acceptor.accept(tcp).await.map(Some)
            })
            .await;
            let stream = match tls {
                Ok(Ok(Some(stream))) => stream,
                Ok(Ok(None)) => return,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = TowerToHyperService::new(
                app.map_request(|request: http::Request<Incoming>| request.map(Body::new)),
            );
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    info!("shutting down: no new connections; draining");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        info!("grace period over; closing remaining connections");
    }
    Ok(())
}

/// A plaintext request to a TLS port: a clear answer instead of a failed handshake.
async fn refuse_plaintext(mut tcp: tokio::net::TcpStream) {
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{PLAINTEXT_REFUSAL}",
        PLAINTEXT_REFUSAL.len()
    );
    let _ = tcp.write_all(response.as_bytes()).await;
    let _ = tcp.shutdown().await;
}
