//! Local wallet files: the encrypted key-share bundle of a party and its public
//! metadata file (wallet id, cosigner URL), next to it.

use std::path::{Path, PathBuf};

use client_core::Party;
use mpc_core::keystore::{write_atomically, KdfParams, KeyShareBundle};
use serde::{Deserialize, Serialize};

use crate::error::{io_error, keystore_error, MpcError};

/// The `format` field of the metadata file (and of a backup's `wallet` member).
pub const WALLET_META_FORMAT: &str = mpc_core::backup::WALLET_META_FORMAT;

/// Public facts about the wallet a key-share file belongs to.
///
/// Stored unencrypted next to the share file (`<stem>.wallet.json`): nothing in it is
/// secret, and tampering with it only makes the cosigner refuse the requests (the
/// identities that matter for security live inside the encrypted bundle).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletMeta {
    /// Always [`WALLET_META_FORMAT`].
    pub format: String,
    /// The cosigner's wallet id.
    pub wallet_id: String,
    /// This file's party index.
    pub party_index: u16,
    /// The cosigner URL used at creation (informational).
    pub cosigner_url: String,
    /// Optional label.
    #[serde(default)]
    pub label: String,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: u64,
}

/// The metadata path of a key-share file: `dir/stem.wallet.json`.
pub fn meta_path(share_path: &Path) -> PathBuf {
    let stem = share_path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "key_shares".into());
    share_path.with_file_name(format!("{stem}.wallet.json"))
}

impl WalletMeta {
    /// Reads the metadata of the key-share file at `share_path`.
    pub fn load(share_path: &Path) -> Result<Self, MpcError> {
        let path = meta_path(share_path);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(MpcError::corrupt(
                    path.display(),
                    format!(
                        "missing: {} has no wallet metadata (was it made by create-wallet?)",
                        share_path.display()
                    ),
                ))
            }
            Err(e) => return Err(io_error(&path, e)),
        };
        let meta: WalletMeta = serde_json::from_str(&text).map_err(|e| {
            MpcError::corrupt(path.display(), format!("not a wallet metadata file: {e}"))
        })?;
        if meta.format != WALLET_META_FORMAT {
            return Err(MpcError::corrupt(
                path.display(),
                format!(
                    "format is {:?}, expected {WALLET_META_FORMAT:?}",
                    meta.format
                ),
            ));
        }
        Ok(meta)
    }

    /// Writes the metadata next to `share_path` (atomically).
    pub fn save(&self, share_path: &Path) -> Result<(), MpcError> {
        let path = meta_path(share_path);
        let text =
            serde_json::to_string_pretty(self).map_err(|e| MpcError::internal(e.to_string()))?;
        write_atomically(&path, text.as_bytes()).map_err(|e| keystore_error(&path, e))
    }
}

/// A party's files, opened: the core's [`Party`] (the decrypted bundle) and where it
/// lives.
pub(crate) struct PartyFiles {
    pub path: PathBuf,
    pub party: Party,
}

impl PartyFiles {
    /// Loads and checks the bundle of `expected` party at `path`.
    pub fn load(path: &Path, passphrase: &str, expected: u16) -> Result<Self, MpcError> {
        if passphrase.is_empty() {
            return Err(MpcError::config(format!(
                "no passphrase for {}",
                path.display()
            )));
        }
        let bundle = KeyShareBundle::load(path, passphrase).map_err(|e| keystore_error(path, e))?;
        if bundle.party_index != expected {
            return Err(MpcError::corrupt(
                path.display(),
                format!(
                    "holds the share of party {}, expected party {expected}",
                    bundle.party_index
                ),
            ));
        }
        let meta = WalletMeta::load(path)?;
        if meta.party_index != expected {
            return Err(MpcError::corrupt(
                path.display(),
                format!(
                    "its wallet metadata is for party {}, expected {expected}",
                    meta.party_index
                ),
            ));
        }
        let party = Party::new(meta.wallet_id, bundle, path.display().to_string())?;
        Ok(PartyFiles {
            path: path.to_path_buf(),
            party,
        })
    }

    /// This party's presignature pool (a directory next to the share file).
    pub(crate) fn pool(&self) -> crate::pool::PoolDir {
        crate::pool::PoolDir::new(
            &self.path,
            self.party.wallet_id(),
            self.party.index(),
            self.party.bundle(),
        )
    }
}

/// KDF parameters for new files.
pub(crate) fn kdf(insecure_fast: bool) -> KdfParams {
    if insecure_fast {
        KdfParams::insecure_for_tests()
    } else {
        KdfParams::default()
    }
}
