//! Generates the tonic client and server stubs from the cosigner proto with `protox`
//! (a pure-Rust protobuf compiler: no `protoc` needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not with env!(): the compiled build script is shared by every
    // checkout that uses the same CARGO_TARGET_DIR, and a path baked in at compile time
    // would point at whichever checkout built it first.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest_dir).join("../../proto");
    let file = root.join("wallet/cosigner/v1/cosigner.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let fds = protox::compile([&file], [&root])?;
    // wasm32: protobuf messages only (no tonic there, see Cargo.toml).
    let stubs = std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("wasm32");
    tonic_prost_build::configure()
        .build_server(stubs)
        .build_client(stubs)
        .compile_fds(fds)?;
    Ok(())
}
