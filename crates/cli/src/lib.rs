//! Shared helpers of the wallet's command-line tools.

use std::path::Path;

pub mod evm;
pub mod input;

use anyhow::{bail, Context, Result};
use mpc_core::keystore::KeyShareBundle;

/// File names written by `key-gen`, by party index.
pub const SHARE_FILES: [&str; 3] = [
    "client_key_shares.json",
    "service_key_shares.json",
    "recovery_key_shares.json",
];

/// Environment variables holding each party's passphrase, by party index.
pub const PASSPHRASE_ENV: [&str; 3] = [
    "WALLET_CLIENT_PASSPHRASE",
    "WALLET_SERVICE_PASSPHRASE",
    "WALLET_RECOVERY_PASSPHRASE",
];

/// Role names by party index.
pub const ROLES: [&str; 3] = ["device (client)", "cosigner (service)", "recovery"];

/// Reads the passphrase of party `i` from its environment variable.
///
/// There is deliberately no built-in default: a share file encrypted under a known
/// passphrase would not be protected at all.
pub fn passphrase_for(i: usize) -> Result<String> {
    let var = PASSPHRASE_ENV[i];
    match std::env::var(var) {
        Ok(p) if !p.is_empty() => Ok(p),
        Ok(_) => bail!("{var} is empty; set it to the passphrase of the {} share file", ROLES[i]),
        Err(_) => bail!(
            "{var} is not set; set it to the passphrase of the {} share file (e.g. `export {var}=...`)",
            ROLES[i]
        ),
    }
}

/// Loads a key-share file, trying the passphrase of the party it declares.
pub fn load_share_file(path: &Path) -> Result<KeyShareBundle> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let party = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("party_index").and_then(|p| p.as_u64()))
        .filter(|&p| p < 3)
        .with_context(|| format!("{} is not a key-share file", path.display()))?
        as usize;
    let pass = passphrase_for(party)?;
    KeyShareBundle::decrypt(&text, &pass).with_context(|| format!("cannot open {}", path.display()))
}
