//! Regenerates the request-signature known-answer vectors of the wasm tests:
//!
//! ```text
//! cargo run --release -p mpc-wasm --example gen_fixtures
//! ```
//!
//! - `tests/fixtures/auth-vectors.json`: computed with `cosigner_api::auth` directly.
//!
//! (The test wallet, `testing/fixtures/dev-wallet.json`, comes from mpc-core's
//! `gen_dev_wallet` example.)

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR")?).join("tests/fixtures");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("auth-vectors.json"),
        serde_json::to_string_pretty(&vectors::compute())?,
    )?;

    eprintln!("wrote {}", dir.display());
    Ok(())
}

#[cfg(not(target_arch = "wasm32"))]
#[path = "../tests/common/vectors.rs"]
mod vectors;
