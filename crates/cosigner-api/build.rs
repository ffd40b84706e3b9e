//! Generates the tonic client and server stubs from the cosigner proto with `protox`
//! (a pure-Rust protobuf compiler: no `protoc` needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
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
