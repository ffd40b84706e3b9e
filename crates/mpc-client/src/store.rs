//! Local wallet files: the encrypted key-share bundle of a party and its public
//! metadata file (wallet id, cosigner URL), next to it.

use std::path::{Path, PathBuf};

use mpc_core::keystore::{write_atomically, KdfParams, KeyShareBundle};
use mpc_wire::{IdentityKey, PublicIdentity, Roster};
use serde::{Deserialize, Serialize};

use crate::error::MpcError;

/// The `format` field of the metadata file.
pub const WALLET_META_FORMAT: &str = "wallet-mpc/wallet";

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
                return Err(MpcError::CorruptFile {
                    path: path.display().to_string(),
                    reason: format!(
                        "missing: {} has no wallet metadata (was it made by create-wallet?)",
                        share_path.display()
                    ),
                })
            }
            Err(e) => return Err(MpcError::io(&path, e)),
        };
        let meta: WalletMeta = serde_json::from_str(&text).map_err(|e| MpcError::CorruptFile {
            path: path.display().to_string(),
            reason: format!("not a wallet metadata file: {e}"),
        })?;
        if meta.format != WALLET_META_FORMAT {
            return Err(MpcError::CorruptFile {
                path: path.display().to_string(),
                reason: format!(
                    "format is {:?}, expected {WALLET_META_FORMAT:?}",
                    meta.format
                ),
            });
        }
        Ok(meta)
    }

    /// Writes the metadata next to `share_path` (atomically).
    pub fn save(&self, share_path: &Path) -> Result<(), MpcError> {
        let path = meta_path(share_path);
        let text =
            serde_json::to_string_pretty(self).map_err(|e| MpcError::internal(e.to_string()))?;
        write_atomically(&path, text.as_bytes()).map_err(|e| MpcError::keystore(&path, e))
    }
}

/// A party's decrypted bundle with what is derived from it.
pub(crate) struct PartyFiles {
    pub path: PathBuf,
    pub bundle: KeyShareBundle,
    pub identity: IdentityKey,
    pub meta: WalletMeta,
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
        let bundle =
            KeyShareBundle::load(path, passphrase).map_err(|e| MpcError::keystore(path, e))?;
        let corrupt = |reason: String| MpcError::CorruptFile {
            path: path.display().to_string(),
            reason,
        };
        if bundle.party_index != expected {
            return Err(corrupt(format!(
                "holds the share of party {}, expected party {expected}",
                bundle.party_index
            )));
        }
        if bundle.aux_info.is_none() {
            return Err(corrupt("has no aux info".into()));
        }
        let secret = bundle.identity_secret.as_deref().ok_or_else(|| {
            corrupt("has no identity key (made by key-gen, not create-wallet?)".into())
        })?;
        let identity = IdentityKey::from_seed_hex(secret)
            .map_err(|e| corrupt(format!("identity key: {e}")))?;
        let meta = WalletMeta::load(path)?;
        if meta.party_index != expected {
            return Err(corrupt(format!(
                "its wallet metadata is for party {}, expected {expected}",
                meta.party_index
            )));
        }
        Ok(PartyFiles {
            path: path.to_path_buf(),
            bundle,
            identity,
            meta,
        })
    }

    /// This party's presignature pool (a directory next to the share file).
    pub(crate) fn pool(&self) -> crate::pool::PoolDir {
        crate::pool::PoolDir::new(
            &self.path,
            &self.meta.wallet_id,
            self.bundle.party_index,
            &self.identity,
        )
    }

    /// The public identity of party `i` (own or a peer's).
    pub fn identity_of(&self, i: u16) -> Result<PublicIdentity, MpcError> {
        if i == self.bundle.party_index {
            return Ok(self.identity.public());
        }
        let hex = self
            .bundle
            .peers
            .get(&i)
            .ok_or_else(|| MpcError::CorruptFile {
                path: self.path.display().to_string(),
                reason: format!("no identity of party {i} stored"),
            })?;
        hex.parse().map_err(|e| MpcError::CorruptFile {
            path: self.path.display().to_string(),
            reason: format!("identity of party {i}: {e}"),
        })
    }

    /// The roster of the given parties.
    pub fn roster(&self, parties: &[u16]) -> Result<Roster, MpcError> {
        let ids = parties
            .iter()
            .map(|&p| self.identity_of(p).map(|id| (p, id)))
            .collect::<Result<Vec<_>, _>>()?;
        Roster::new(ids).map_err(|e| MpcError::internal(format!("roster: {e}")))
    }

    /// The account with `id`.
    pub fn account(&self, id: &str) -> Result<&mpc_core::Account, MpcError> {
        self.bundle
            .accounts
            .get(id)
            .ok_or_else(|| MpcError::UnknownAccount {
                account_id: id.to_string(),
                available: self.bundle.accounts.keys().cloned().collect(),
            })
    }

    /// The complete key share (with aux info) of an account.
    pub fn key_share(&self, id: &str) -> Result<mpc_core::KeyShare, MpcError> {
        let acct = self.account(id)?;
        let aux = self
            .bundle
            .aux_info
            .as_ref()
            .ok_or_else(|| MpcError::CorruptFile {
                path: self.path.display().to_string(),
                reason: "has no aux info".into(),
            })?;
        acct.complete(aux).map_err(|e| MpcError::CorruptFile {
            path: self.path.display().to_string(),
            reason: format!("account {id}: {e}"),
        })
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
