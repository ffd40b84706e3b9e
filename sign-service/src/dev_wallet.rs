//! The committed test wallet (`testing/fixtures/dev-wallet.json`, made by
//! `mpc-core`'s `gen_dev_wallet` example from the PUBLIC dev primes) for the unit tests:
//! a test that needs an aux info or a key share, but does not test how they are made,
//! loads them here instead of running minutes of aux info in its own process. Built
//! for the unit tests and with `test-hooks` (the integration tests; debug builds only).

use std::sync::OnceLock;

use mpc_core::keystore::KeyShareBundle;

/// The three parties' bundles (finished aux info; accounts `hd-0`, HD, and `ind-0`,
/// independent; identity secrets from fixed public seeds). Test keys only.
pub fn bundles() -> &'static [KeyShareBundle] {
    static BUNDLES: OnceLock<Vec<KeyShareBundle>> = OnceLock::new();
    BUNDLES.get_or_init(|| {
        #[derive(serde::Deserialize)]
        struct File {
            bundles: Vec<KeyShareBundle>,
        }
        let file: File =
            serde_json::from_str(include_str!("../../testing/fixtures/dev-wallet.json"))
                .expect("testing/fixtures/dev-wallet.json");
        assert_eq!(file.bundles.len(), 3, "three parties in the dev wallet");
        file.bundles
    })
}

/// The cosigner's (party 1's) aux info of the dev wallet.
pub fn cosigner_aux() -> mpc_core::AuxInfo {
    bundles()[1]
        .aux_info
        .clone()
        .expect("aux info in the dev wallet")
}
