//! Finding peers: a static list of URLs, or DNS names re-resolved every few seconds (a
//! Kubernetes headless Service gives one address per pod). Kubernetes API discovery will sit
//! behind the same [`Peers`] interface.
//!
//! Accepted forms, comma-separated: `http://host:port` (used as is) and
//! `dns+http://name:port` (every address `name` resolves to becomes `http://addr:port`).

use std::time::Duration;

use anyhow::{Context, bail};
use ferrite_retry::FailureLog;
use tokio::sync::watch;
use tracing::{info, warn};

/// How often DNS names are resolved again.
const RESOLVE_EVERY: Duration = Duration::from_secs(2);

/// A parsed peer specification.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Spec {
    Url(String),
    Dns { host: String, port: u16 },
}

/// The current peer URLs, kept up to date in the background.
#[derive(Debug, Clone)]
pub struct Peers {
    rx: watch::Receiver<Vec<String>>,
}

impl Peers {
    /// Parse `spec` and start resolving. Fails on malformed entries, not on unreachable ones.
    pub fn start(spec: &str) -> anyhow::Result<Self> {
        let specs = parse(spec)?;
        let initial: Vec<String> = specs
            .iter()
            .filter_map(|s| match s {
                Spec::Url(u) => Some(u.clone()),
                Spec::Dns { .. } => None,
            })
            .collect();
        let (tx, rx) = watch::channel(initial);
        if specs.iter().any(|s| matches!(s, Spec::Dns { .. })) {
            tokio::spawn(async move {
                // A name that stays unresolvable is logged once a minute, not every poll.
                let mut failures = FailureLog::new(Duration::from_secs(60));
                loop {
                    let mut urls = Vec::new();
                    let mut failed = false;
                    for s in &specs {
                        match s {
                            Spec::Url(u) => urls.push(u.clone()),
                            Spec::Dns { host, port } => {
                                match tokio::net::lookup_host((host.as_str(), *port)).await {
                                    Ok(addrs) => urls.extend(addrs.map(|a| format!("http://{a}"))),
                                    Err(e) => {
                                        failed = true;
                                        if let Some(n) = failures.failure() {
                                            warn!(name = %host, error = %e, failures = n, "cannot resolve peers");
                                        }
                                    }
                                }
                            }
                        }
                    }
                    if !failed && let Some(n) = failures.success() {
                        info!(failures = n, "peers resolve again");
                    }
                    urls.sort();
                    urls.dedup();
                    // A failed lookup says nothing about the peers: keep the last list rather
                    // than drop every peer of that name over a DNS blip.
                    if !failed {
                        tx.send_if_modified(|cur| {
                            let changed = *cur != urls;
                            if changed {
                                *cur = urls.clone();
                            }
                            changed
                        });
                    }
                    if tx.is_closed() {
                        return;
                    }
                    tokio::time::sleep(RESOLVE_EVERY).await;
                }
            });
        }
        Ok(Self { rx })
    }

    /// The peers now.
    pub fn current(&self) -> Vec<String> {
        self.rx.borrow().clone()
    }

    /// A receiver that changes when the peers do.
    pub fn subscribe(&self) -> watch::Receiver<Vec<String>> {
        self.rx.clone()
    }
}

fn parse(spec: &str) -> anyhow::Result<Vec<Spec>> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(rest) = item.strip_prefix("dns+http://") {
            let (host, port) = rest
                .rsplit_once(':')
                .with_context(|| format!("peer '{item}' needs a port"))?;
            out.push(Spec::Dns {
                host: host.to_string(),
                port: port
                    .parse()
                    .with_context(|| format!("bad port in peer '{item}'"))?,
            });
        } else if item.starts_with("http://") || item.starts_with("https://") {
            out.push(Spec::Url(item.trim_end_matches('/').to_string()));
        } else {
            bail!("peer '{item}' must start with http://, https:// or dns+http://");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_lists_parse() {
        assert_eq!(
            parse("http://a:1/, dns+http://ingesters.ns.svc:8181").unwrap(),
            vec![
                Spec::Url("http://a:1".into()),
                Spec::Dns {
                    host: "ingesters.ns.svc".into(),
                    port: 8181
                }
            ]
        );
        assert!(parse("a:1").is_err());
        assert!(parse("dns+http://nohost").is_err());
    }

    #[tokio::test]
    async fn dns_names_resolve_to_urls() {
        let peers = Peers::start("dns+http://localhost:9999").unwrap();
        let mut rx = peers.subscribe();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|v| !v.is_empty()))
            .await
            .unwrap()
            .unwrap();
        assert!(peers.current().iter().any(|u| u == "http://127.0.0.1:9999"));
    }
}
