//! `ferrite-test-certs DIR [NAME...]`: write a throwaway CA and a server certificate into
//! DIR (`ca.pem`, `cert.pem`, `key.pem`) for test suites outside Rust, and print their paths
//! as one JSON line. The certificate is for the NAMEs (DNS names or IP addresses), or for
//! `localhost` and `127.0.0.1` when none is given.

use anyhow::Context;
use ferrite_testkit::tls::TestCerts;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .context("usage: ferrite-test-certs DIR [NAME...]")?;
    let names: Vec<String> = args.collect();
    let dir = std::path::Path::new(&dir);
    let certs = if names.is_empty() {
        TestCerts::generate(dir)?
    } else {
        TestCerts::generate_for(dir, &names)?
    };
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
