//! Native checks of the committed fixtures and of the platform-independent API.
#![cfg(not(target_arch = "wasm32"))]

mod common {
    pub mod vectors;
}

use common::vectors;
use mpc_wasm::api::BundleCore;
use serde_json::Value;

const AUTH_VECTORS: &str = include_str!("fixtures/auth-vectors.json");
const WALLET: &str = include_str!("../../../testing/fixtures/dev-wallet.json");

#[test]
fn committed_vectors_match_the_server_code() {
    let committed: Value = serde_json::from_str(AUTH_VECTORS).unwrap();
    assert!(
        !committed.as_object().is_some_and(|o| o.is_empty()),
        "tests/fixtures/auth-vectors.json is empty: run `cargo run --release -p mpc-wasm --example gen_fixtures`"
    );
    assert_eq!(
        committed,
        vectors::compute(),
        "cosigner-api auth changed: regenerate with `cargo run -p mpc-wasm --example gen_fixtures`"
    );
}

#[test]
fn fixture_bundles_load_and_sign() {
    let w: Value = serde_json::from_str(WALLET).unwrap();
    let bundles: Vec<BundleCore> = w["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| BundleCore::from_bytes(serde_json::to_vec(b).unwrap().as_slice()).unwrap())
        .collect();
    assert!(
        !bundles.is_empty(),
        "testing/fixtures/dev-wallet.json is empty: run `cargo run --release -p mpc-core --features backend-num-bigint --example gen_dev_wallet`"
    );
    assert_eq!(bundles.len(), 3);
    let pk = &bundles[0].accounts()[0].public_key;
    for b in &bundles {
        assert_eq!(&b.accounts()[0].public_key, pk);
        b.key_share("hd-0").unwrap();
        b.key_share("ind-0").unwrap();
    }
    // Passphrase round trip with the native keystore format.
    let file = bundles[0].encrypt("pw", true).unwrap();
    let back = BundleCore::decrypt(&file, "pw").unwrap();
    assert_eq!(back.accounts()[0].public_key, *pk);
    let e = BundleCore::decrypt(&file, "wrong").err().unwrap();
    assert_eq!(e.code, mpc_wasm::Code::WrongPassphrase);
}
