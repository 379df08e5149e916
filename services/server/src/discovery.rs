//! Finding peers: a static list of URLs, DNS names re-resolved every few seconds, or the
//! ready endpoints of a Kubernetes Service, followed through the API server.
//!
//! Accepted forms, comma-separated (each `+http` form also comes as `+https`):
//!
//! - `http://host:port`: used as is;
//! - `dns+http://name:port`: every address `name` resolves to becomes `http://addr:port`;
//! - `k8s+http://service[.namespace]:port`: every ready endpoint of the Service's
//!   EndpointSlices becomes `http://addr:port` (`port` is the pods' port); with
//!   [`Endpoints::All`], every endpoint, ready or not (starting, draining). The namespace
//!   defaults to `--k8s-namespace`, else the one of the service account or kubeconfig.
//!
//! ```text
//!  static URLs ───────────────────────────┐
//!  dns+http  ─► resolve every 2 s ─────────┼─► merged, sorted ─► watch channel ─► placement, proxy
//!  k8s+http  ─► EndpointSlice watch (kube) ┘     (sent only when the list changes)
//! ```
//!
//! Inside a pod the API server is found from the service account; outside, from `KUBECONFIG`
//! (or `~/.kube/config`). The account needs get, list and watch on `endpointslices`.
//!
//! A discovered `https` peer is dialled at an address, but its certificate is checked
//! against the name it was found by ([`Peer::tls_name`]): the DNS name for `dns+https`,
//! `<service>.<namespace>.svc` for `k8s+https`. A certificate for a Service's names then
//! serves every pod behind it, as cert-manager issues them; pod addresses need not be in it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ferrite_retry::{Backoff, FailureLog};
use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::sync::watch;
use tracing::{info, warn};

/// How often DNS names are resolved again.
const RESOLVE_EVERY: Duration = Duration::from_secs(2);

/// A parsed peer specification.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Spec {
    Url(String),
    Dns {
        scheme: &'static str,
        host: String,
        port: u16,
    },
    Kube {
        scheme: &'static str,
        service: String,
        namespace: Option<String>,
        port: u16,
    },
}

/// Which endpoints of a Kubernetes Service are peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoints {
    /// Ready ones only: where writes and queries may be sent.
    Ready,
    /// Every pod the Service selects, ready or not. Queriers fan out to these ingesters: a
    /// draining one still holds rows it has not persisted yet, and a starting one may
    /// already hold rows the routers sent it; an ingester that cannot answer is skipped.
    All,
}

/// One peer: the URL to dial and, for an `https` peer found by discovery, the name its
/// certificate must be valid for (the URL's host is then an address).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer {
    pub url: String,
    pub tls_name: Option<String>,
    /// False for a Kubernetes endpoint that is not ready (starting, draining, or on a node
    /// that is gone); only [`Endpoints::All`] lists those.
    pub ready: bool,
}

impl Peer {
    /// A peer whose certificate is checked against its URL's host.
    pub fn url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tls_name: None,
            ready: true,
        }
    }

    /// A discovered peer: `scheme://address:port`, checked against `name` when `https`.
    fn found(scheme: &str, address: &str, port: u16, name: &str, ready: bool) -> Self {
        Self {
            url: format!("{scheme}://{address}:{port}"),
            tls_name: (scheme == "https").then(|| name.to_string()),
            ready,
        }
    }
}

/// The URLs of `peers`, in order (as logged).
pub fn urls(peers: &[Peer]) -> Vec<String> {
    peers.iter().map(|p| p.url.clone()).collect()
}

/// The current peers, kept up to date in the background.
#[derive(Debug, Clone)]
pub struct Peers {
    rx: watch::Receiver<Vec<Peer>>,
}

impl Peers {
    /// Parse `spec` and start following it; `namespace` is the default for `k8s+` entries.
    /// Fails on malformed entries, not on unreachable ones.
    pub fn start(spec: &str, namespace: Option<&str>) -> anyhow::Result<Self> {
        Self::start_with(spec, namespace, Endpoints::Ready)
    }

    /// [`Self::start`], with `endpoints` saying which of a Kubernetes Service's count.
    pub fn start_with(
        spec: &str,
        namespace: Option<&str>,
        endpoints: Endpoints,
    ) -> anyhow::Result<Self> {
        let mut fixed = Vec::new();
        let mut sources = Vec::new();
        for s in parse(spec)? {
            match s {
                Spec::Url(u) => fixed.push(Peer::url(u)),
                Spec::Dns { scheme, host, port } => sources.push(follow_dns(scheme, host, port)),
                Spec::Kube {
                    scheme,
                    service,
                    namespace: ns,
                    port,
                } => sources.push(follow_endpoint_slices(
                    scheme,
                    service,
                    ns.or_else(|| namespace.map(str::to_string)),
                    port,
                    endpoints,
                )),
            }
        }
        fixed.sort();
        fixed.dedup();
        let (tx, rx) = watch::channel(fixed.clone());
        if !sources.is_empty() {
            tokio::spawn(merge(fixed, sources, tx));
        }
        Ok(Self { rx })
    }

    /// The peers now.
    pub fn current(&self) -> Vec<Peer> {
        self.rx.borrow().clone()
    }

    /// A receiver that changes when the peers do.
    pub fn subscribe(&self) -> watch::Receiver<Vec<Peer>> {
        self.rx.clone()
    }
}

/// Send `fixed` plus every source's current list whenever one of them changes; ends when
/// nobody listens any more or every source has ended.
async fn merge(
    fixed: Vec<Peer>,
    mut sources: Vec<watch::Receiver<Vec<Peer>>>,
    tx: watch::Sender<Vec<Peer>>,
) {
    loop {
        let mut urls = fixed.clone();
        for s in &mut sources {
            urls.extend(s.borrow_and_update().iter().cloned());
        }
        urls.sort();
        urls.dedup();
        tx.send_if_modified(|cur| {
            let changed = *cur != urls;
            if changed {
                *cur = urls;
            }
            changed
        });
        let changes = sources.iter_mut().map(|s| Box::pin(s.changed()));
        let (changed, _, _) = futures::future::select_all(changes).await;
        if changed.is_err() || tx.is_closed() {
            return;
        }
    }
}

/// Resolve `host` every [`RESOLVE_EVERY`]. A failed lookup says nothing about the peers: the
/// last list stays rather than every peer of that name dropping over a DNS blip.
fn follow_dns(scheme: &'static str, host: String, port: u16) -> watch::Receiver<Vec<Peer>> {
    let (tx, rx) = watch::channel(Vec::new());
    tokio::spawn(async move {
        // A name that stays unresolvable is logged once a minute, not every poll.
        let mut failures = FailureLog::new(Duration::from_secs(60));
        while !tx.is_closed() {
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(addrs) => {
                    if let Some(n) = failures.success() {
                        info!(name = %host, failures = n, "peers resolve again");
                    }
                    let mut urls: Vec<Peer> = addrs
                        .map(|a| Peer::found(scheme, &ip_host(a.ip()), port, &host, true))
                        .collect();
                    urls.sort();
                    urls.dedup();
                    tx.send_if_modified(|cur| replace(cur, urls));
                }
                Err(e) => {
                    if let Some(n) = failures.failure() {
                        warn!(name = %host, error = %e, failures = n, "cannot resolve peers");
                    }
                }
            }
            tokio::time::sleep(RESOLVE_EVERY).await;
        }
    });
    rx
}

/// An address as a URL host: IPv6 in brackets.
fn ip_host(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

fn replace(cur: &mut Vec<Peer>, new: Vec<Peer>) -> bool {
    let changed = *cur != new;
    if changed {
        *cur = new;
    }
    changed
}

/// Follow the EndpointSlices of Service `service`: a watch through the API server, kept in
/// a local store; every event recomputes the endpoints. The watch re-lists and resumes by
/// itself after errors (with backoff); errors are logged at a bounded rate.
fn follow_endpoint_slices(
    scheme: &'static str,
    service: String,
    namespace: Option<String>,
    port: u16,
    endpoints: Endpoints,
) -> watch::Receiver<Vec<Peer>> {
    let (tx, rx) = watch::channel(Vec::new());
    tokio::spawn(async move {
        let mut failures = FailureLog::new(Duration::from_secs(60));
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let client = loop {
            match kube::Client::try_default().await {
                Ok(c) => break c,
                Err(e) => {
                    if let Some(n) = failures.failure() {
                        warn!(%service, error = %e, failures = n, "cannot reach the Kubernetes API");
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                    if tx.is_closed() {
                        return;
                    }
                }
            }
        };
        let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_string());
        info!(%service, %namespace, "following the Service's EndpointSlices");
        let tls_name = format!("{service}.{namespace}.svc");
        let api = kube::Api::<EndpointSlice>::namespaced(client, &namespace);
        let config =
            watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
        let (store, writer) = reflector::store();
        let events = reflector(writer, watcher(api, config)).default_backoff();
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(_) => {
                    if let Some(n) = failures.success() {
                        info!(%service, failures = n, "watching EndpointSlices again");
                    }
                    let urls = endpoint_peers(&store.state(), scheme, port, &tls_name, endpoints);
                    tx.send_if_modified(|cur| replace(cur, urls));
                }
                Err(e) => {
                    if let Some(n) = failures.failure() {
                        warn!(%service, %namespace, error = %e, failures = n, "cannot watch EndpointSlices");
                    }
                }
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    rx
}

/// Every endpoint `endpoints` selects, as `scheme://addr:port` checked against `tls_name`,
/// sorted. An endpoint whose readiness is not stated counts as ready (the API's rule); a
/// terminating pod is not ready.
fn endpoint_peers(
    slices: &[Arc<EndpointSlice>],
    scheme: &str,
    port: u16,
    tls_name: &str,
    endpoints: Endpoints,
) -> Vec<Peer> {
    let mut peers = Vec::new();
    for slice in slices {
        let v6 = slice.address_type == "IPv6";
        for endpoint in &slice.endpoints {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready && endpoints == Endpoints::Ready {
                continue;
            }
            for addr in &endpoint.addresses {
                let host = if v6 {
                    format!("[{addr}]")
                } else {
                    addr.clone()
                };
                peers.push(Peer::found(scheme, &host, port, tls_name, ready));
            }
        }
    }
    peers.sort();
    peers.dedup();
    peers
}

fn parse(spec: &str) -> anyhow::Result<Vec<Spec>> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (kind, scheme, rest) = if let Some(rest) = item.strip_prefix("dns+http://") {
            ("dns", "http", rest)
        } else if let Some(rest) = item.strip_prefix("dns+https://") {
            ("dns", "https", rest)
        } else if let Some(rest) = item.strip_prefix("k8s+http://") {
            ("k8s", "http", rest)
        } else if let Some(rest) = item.strip_prefix("k8s+https://") {
            ("k8s", "https", rest)
        } else if item.starts_with("http://") || item.starts_with("https://") {
            out.push(Spec::Url(item.trim_end_matches('/').to_string()));
            continue;
        } else {
            bail!(
                "peer '{item}' must start with http://, https://, dns+http(s):// or k8s+http(s)://"
            );
        };
        let (host, port) = rest
            .trim_end_matches('/')
            .rsplit_once(':')
            .with_context(|| format!("peer '{item}' needs a port"))?;
        let port: u16 = port
            .parse()
            .with_context(|| format!("bad port in peer '{item}'"))?;
        if host.is_empty() {
            bail!("peer '{item}' needs a host");
        }
        out.push(if kind == "dns" {
            Spec::Dns {
                scheme,
                host: host.to_string(),
                port,
            }
        } else {
            let (service, namespace) = match host.split_once('.') {
                Some((service, namespace)) => (service, Some(namespace.to_string())),
                None => (host, None),
            };
            Spec::Kube {
                scheme,
                service: service.to_string(),
                namespace,
                port,
            }
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_lists_parse() {
        assert_eq!(
            parse(
                "http://a:1/, dns+http://ingesters.ns.svc:8181, k8s+https://querier.prod:8181, \
                 k8s+http://ingester:8181"
            )
            .unwrap(),
            vec![
                Spec::Url("http://a:1".into()),
                Spec::Dns {
                    scheme: "http",
                    host: "ingesters.ns.svc".into(),
                    port: 8181
                },
                Spec::Kube {
                    scheme: "https",
                    service: "querier".into(),
                    namespace: Some("prod".into()),
                    port: 8181
                },
                Spec::Kube {
                    scheme: "http",
                    service: "ingester".into(),
                    namespace: None,
                    port: 8181
                },
            ]
        );
        assert!(parse("a:1").is_err());
        assert!(parse("dns+http://nohost").is_err());
        assert!(parse("k8s+http://:8181").is_err());
        assert!(parse("k8s+http://svc:port").is_err());
    }

    #[test]
    fn endpoints_become_peers_checked_against_the_service_name() {
        use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
        let endpoint = |addr: &str, ready: Option<bool>| Endpoint {
            addresses: vec![addr.to_string()],
            conditions: Some(EndpointConditions {
                ready,
                ..Default::default()
            }),
            ..Default::default()
        };
        let slices = vec![
            Arc::new(EndpointSlice {
                address_type: "IPv4".into(),
                endpoints: vec![
                    endpoint("10.1.0.2", Some(true)),
                    endpoint("10.1.0.3", Some(false)),
                    endpoint("10.1.0.1", None),
                ],
                ..Default::default()
            }),
            Arc::new(EndpointSlice {
                address_type: "IPv6".into(),
                endpoints: vec![endpoint("fd00::7", Some(true))],
                ..Default::default()
            }),
        ];
        let name = "ing.prod.svc";
        let ready = endpoint_peers(&slices, "https", 8181, name, Endpoints::Ready);
        let urls_of = |peers: &[Peer]| urls(peers);
        assert_eq!(
            urls_of(&ready),
            [
                "https://10.1.0.1:8181",
                "https://10.1.0.2:8181",
                "https://[fd00::7]:8181"
            ]
        );
        assert!(ready.iter().all(|p| p.tls_name.as_deref() == Some(name)));
        assert!(ready.iter().all(|p| p.ready));
        let all = endpoint_peers(&slices, "https", 8181, name, Endpoints::All);
        assert_eq!(all.len(), 4, "the not-ready endpoint too: {all:?}");
        let not_ready: Vec<&str> = all
            .iter()
            .filter(|p| !p.ready)
            .map(|p| p.url.as_str())
            .collect();
        assert_eq!(not_ready, ["https://10.1.0.3:8181"]);
        let plain = endpoint_peers(&slices, "http", 8181, name, Endpoints::Ready);
        assert!(plain.iter().all(|p| p.tls_name.is_none()));
    }

    #[tokio::test]
    async fn dns_names_resolve_to_urls() {
        let peers = Peers::start("dns+http://localhost:9999", None).unwrap();
        let mut rx = peers.subscribe();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|v| !v.is_empty()))
            .await
            .unwrap()
            .unwrap();
        assert!(
            peers
                .current()
                .iter()
                .any(|p| p.url == "http://127.0.0.1:9999" && p.tls_name.is_none())
        );
        let peers = Peers::start("dns+https://localhost:9999", None).unwrap();
        let mut rx = peers.subscribe();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|v| !v.is_empty()))
            .await
            .unwrap()
            .unwrap();
        // Dialled at the address, checked against the name it was found by.
        assert!(peers.current().iter().any(
            |p| p.url == "https://127.0.0.1:9999" && p.tls_name.as_deref() == Some("localhost")
        ));
    }
}
