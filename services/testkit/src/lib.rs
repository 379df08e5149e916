//! Test and benchmark helpers: throwaway PostgreSQL servers, TSBS-style data, the real
//! `ferrite` processes started for end-to-end tests, and a real Kubernetes control plane.

pub mod cluster;
pub mod kube;
pub mod postgres;
pub mod s3;
pub mod server;
pub mod tls;
pub mod tsbs;
mod watchdog;

use std::path::{Path, PathBuf};

/// Overrides where the tools the tests need (MinIO, kube-apiserver, helm, …) are found.
pub const TOOLS_DIR_ENV: &str = "FERRITE_TOOLS_DIR";

/// The directory of those tools' binaries: `${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}/bin`
/// (where the `deploy/dev/install-*.sh` scripts put them).
pub fn tools_bin_dir() -> anyhow::Result<PathBuf> {
    let tools = match std::env::var_os(TOOLS_DIR_ENV).filter(|p| !p.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .map(|home| Path::new(&home).join(".cache/ferrite-tools"))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "neither ${TOOLS_DIR_ENV} nor $HOME is set: cannot find the test tools"
                )
            })?,
    };
    Ok(tools.join("bin"))
}
