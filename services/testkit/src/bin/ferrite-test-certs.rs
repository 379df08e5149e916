//! `ferrite-test-certs DIR`: write a throwaway CA and a server certificate for `localhost`
//! and `127.0.0.1` into DIR (`ca.pem`, `cert.pem`, `key.pem`) for test suites outside Rust,
//! and print their paths as one JSON line.

use anyhow::Context;
use ferrite_testkit::tls::TestCerts;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .context("usage: ferrite-test-certs DIR")?;
    let certs = TestCerts::generate(std::path::Path::new(&dir))?;
    println!(
        "{}",
        serde_json::json!({
            "ca": certs.ca,
            "cert": certs.cert,
            "key": certs.key,
        })
    );
    Ok(())
}
