//! Generates Rust from every `.proto` under `protos/` with a vendored protoc, so no system
//! protoc is needed.

use std::path::{Path, PathBuf};

fn protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script compiled in another checkout sharing the target
    // directory must not look for protos there.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("protos");
    // Relative to the package: an absolute path would tie the build cache to one checkout
    // (clones sharing a CARGO_TARGET_DIR would see each other's protos). A directory is
    // scanned recursively.
    println!("cargo:rerun-if-changed=protos");
    let mut files = Vec::new();
    protos(&root, &mut files)?;
    files.sort();
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .protoc_arg("--experimental_allow_proto3_optional")
        .compile_with_config(
            config,
            &files,
            &[root, protoc_bin_vendored::include_path()?],
        )?;
    Ok(())
}
