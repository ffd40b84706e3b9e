//! PSBTs for the tests: `wallet_btc::testing`'s builders (inputs spending P2WPKH outputs
//! of the wallet with witness UTXO and bip32_derivation, or foreign / Taproot / P2PKH
//! ones), serialized, and the wallet keys of a test account.

use wallet_btc::bitcoin::ScriptBuf;
use wallet_btc::WalletKeys;

// Not every test binary that includes `common` uses every builder.
#[allow(unused_imports)]
pub use wallet_btc::testing::{elsewhere, ours, path, Spend};

/// The wallet keys of an HD account of the test wallet.
pub fn wallet_keys(a: &mpc_core::Account) -> WalletKeys {
    let root = hex::decode(&a.public_key).expect("hex");
    let cc: [u8; 32] = hex::decode(a.chain_code.as_ref().expect("chain code"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    WalletKeys::new(&root, &cc).expect("keys")
}

/// The regtest address of `script`.
pub fn regtest(script: &ScriptBuf) -> String {
    wallet_btc::testing::regtest_address(script)
}

/// A version 0 PSBT, serialized: `inputs` (path, sats, kind; outpoints `salt+i`),
/// `outputs` (script, sats, change path).
pub fn psbt(
    keys: &WalletKeys,
    salt: u8,
    inputs: &[(&str, u64, Spend)],
    outputs: &[(ScriptBuf, u64, Option<&str>)],
) -> Vec<u8> {
    wallet_btc::testing::psbt(keys, salt, inputs, outputs).serialize()
}
