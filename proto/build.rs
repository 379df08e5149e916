//! Generates Rust from `protos/` with a vendored protoc, so no system protoc is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("protos");
    let protos = [
        "influxdata/iox/querier/v1/flight.proto",
        "ferrite/ingester/v1/write.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    tonic_prost_build::configure()
        .protoc_arg("--experimental_allow_proto3_optional")
        .compile_with_config(
            {
                let mut c = tonic_prost_build::Config::new();
                c.protoc_executable(protoc);
                c
            },
            &protos.map(|p| root.join(p)),
            &[root],
        )?;
    Ok(())
}
