//! Encrypted backups of one party's key shares.
//!
//! A backup is the party's **key-share file** (`mpc_core::keystore`: Argon2id +
//! XChaCha20-Poly1305, the header bound as associated data), encrypted under a backup
//! passphrase of its own, with one more top-level member: `"wallet"`, the public wallet
//! metadata otherwise kept next to the share file (`<stem>.wallet.json`, a
//! [`WalletMeta`]: wallet id, party index, cosigner URL, label, creation time):
//!
//! ```json
//! { "format": "wallet-mpc/key-shares", "version": 1, "party_index": 0,
//!   "kdf": { … }, "aead": { … }, "ciphertext": "…",
//!   "wallet": { "format": "wallet-mpc/wallet", "wallet_id": "…", "party_index": 0, … } }
//! ```
//!
//! The format itself (writing, reading, checking) is `mpc_core::backup`, the one
//! implementation the browser package (`mpc-wasm`) uses too, so both write and read the
//! same bytes. `KeyShareBundle::decrypt` reads a backup unchanged (it ignores the extra
//! member). Like the `.wallet.json` file, the
//! `wallet` member is not secret and not authenticated: editing it only makes the
//! cosigner refuse the imported share (the identities that matter live in the encrypted
//! bundle). Its party index must equal the authenticated header's.

use std::path::Path;

use mpc_core::backup::BackupFormatError;
use mpc_core::keystore::{check_passphrase, KeyShareBundle};
use serde::{Deserialize, Serialize};
use wallet_types::ErrorCode;
use zeroize::Zeroizing;

use crate::error::MpcError;
use crate::store::WalletMeta;
use crate::types::AccountInfo;

pub use mpc_core::backup::{BACKUP_WALLET_MEMBER, MAX_BACKUP_BYTES};

/// Why a backup could not be imported (or made). Switch on [`BackupError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The passphrase does not open the backup, or the backup was modified. Nothing was
    /// written.
    #[error("the backup does not open with this passphrase (or it was modified)")]
    WrongPassphrase,
    /// The bytes are not a wallet backup (not a key-share file, no wallet metadata,
    /// inconsistent party index, the cosigner's share...). Nothing was written.
    #[error("not a wallet backup: {reason}")]
    NotABackup {
        /// What is wrong.
        reason: String,
    },
    /// The share file the backup would be written to holds another wallet's share.
    /// Nothing was written.
    #[error(
        "{path} holds the share of wallet {existing_wallet_id}; refusing to overwrite it with \
         the backup of wallet {backup_wallet_id}"
    )]
    OtherWallet {
        /// The existing share file.
        path: String,
        /// The wallet of the existing share.
        existing_wallet_id: String,
        /// The wallet of the backup.
        backup_wallet_id: String,
    },
    /// The share file holds a share of the same wallet and party that differs from the
    /// backup's (an older or newer share). Nothing was written.
    #[error(
        "{path} holds a different share of wallet {wallet_id} (party {party}); refusing to \
         overwrite it"
    )]
    DifferentShare {
        /// The existing share file.
        path: String,
        /// The wallet.
        wallet_id: String,
        /// The party index.
        party: u16,
    },
    /// Any other client error (configuration, the existing file's passphrase, I/O...).
    #[error(transparent)]
    Client(#[from] MpcError),
}

impl BackupError {
    /// The machine-readable category: `wrong_passphrase`, `storage` (not a backup),
    /// `wallet_exists` (another wallet's or a different share is in the way), or the
    /// client error's own code.
    pub fn code(&self) -> ErrorCode {
        match self {
            BackupError::WrongPassphrase => ErrorCode::WrongPassphrase,
            BackupError::NotABackup { .. } => ErrorCode::Storage,
            BackupError::OtherWallet { .. } | BackupError::DifferentShare { .. } => {
                ErrorCode::WalletExists
            }
            BackupError::Client(e) => e.code(),
        }
    }
}

/// What [`crate::MpcClient::import_backup`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupImport {
    /// The wallet of the imported share.
    pub wallet_id: String,
    /// Its party index (0 device, 2 recovery).
    pub party_index: u16,
    /// The share file written (or found identical).
    pub path: String,
    /// `true` when the identical share was already there (nothing was written).
    pub already_present: bool,
    /// The wallet's accounts, from the imported share.
    pub accounts: Vec<AccountInfo>,
}

/// A backup, opened: the decrypted bundle and its wallet metadata.
pub struct OpenedBackup {
    /// The decrypted bundle (secret).
    pub bundle: KeyShareBundle,
    /// The wallet metadata of the backup.
    pub meta: WalletMeta,
}

impl std::fmt::Debug for OpenedBackup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedBackup")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// Encrypts `bundle` under `passphrase` as a backup carrying `meta` (the key-share file
/// plus its `wallet` member: `mpc_core::backup::encrypt_backup`). The bundle's party must
/// be 0 or 2 and match `meta`.
pub fn encrypt_backup(
    bundle: &KeyShareBundle,
    meta: &WalletMeta,
    passphrase: &str,
    params: mpc_core::keystore::KdfParams,
) -> Result<Vec<u8>, MpcError> {
    mpc_core::backup::encrypt_backup(bundle, meta, passphrase, params).map_err(|e| match e {
        BackupFormatError::EmptyPassphrase => MpcError::input("the backup passphrase is empty"),
        other => MpcError::internal(other.to_string()),
    })
}

/// Opens a backup (`mpc_core::backup::decrypt_backup`): checks its shape, decrypts it
/// with `passphrase` (Argon2id: about a second with the default parameters) and returns
/// the bundle and metadata.
pub fn decrypt_backup(bytes: &[u8], passphrase: &str) -> Result<OpenedBackup, BackupError> {
    let opened =
        mpc_core::backup::decrypt_backup::<WalletMeta>(bytes, passphrase).map_err(|e| match e {
            BackupFormatError::WrongPassphrase => BackupError::WrongPassphrase,
            BackupFormatError::NotABackup(reason) => BackupError::NotABackup { reason },
            BackupFormatError::EmptyPassphrase => {
                MpcError::input("the backup passphrase is empty").into()
            }
            other => MpcError::internal(other.to_string()).into(),
        })?;
    Ok(OpenedBackup {
        bundle: opened.bundle,
        meta: opened.meta,
    })
}

/// Checks a backup passphrase chosen now: at least the strength of a new key file's,
/// unless `allow_weak`.
pub(crate) fn check_backup_passphrase(passphrase: &str, allow_weak: bool) -> Result<(), MpcError> {
    if passphrase.is_empty() {
        return Err(MpcError::input("the backup passphrase is empty"));
    }
    if allow_weak {
        return Ok(());
    }
    check_passphrase(passphrase).map_err(|e| {
        MpcError::input(format!(
            "the backup passphrase: {e} (allow_weak_passphrase overrides)"
        ))
    })
}

/// Whether two bundles are the same share (compared as their JSON, which is
/// deterministic: structs and ordered maps).
pub(crate) fn same_bundle(a: &KeyShareBundle, b: &KeyShareBundle) -> Result<bool, MpcError> {
    let ser = |x: &KeyShareBundle| {
        serde_json::to_vec(x)
            .map(Zeroizing::new)
            .map_err(|e| MpcError::internal(format!("cannot serialize a bundle: {e}")))
    };
    Ok(*ser(a)? == *ser(b)?)
}

/// The existing files at `path` compared with a backup: `Ok(None)` when nothing is there,
/// `Ok(Some(()))` when the identical share is, an error when something else is.
pub(crate) fn check_target(
    path: &Path,
    existing_passphrase: &str,
    backup: &OpenedBackup,
) -> Result<Option<()>, BackupError> {
    let meta_file = crate::store::meta_path(path);
    if !path.exists() && !meta_file.exists() {
        return Ok(None);
    }
    let p = path.display().to_string();
    if !meta_file.exists() {
        // A share without metadata (key-gen's files): we cannot say whose it is.
        return Err(MpcError::WalletExists { path: p }.into());
    }
    let existing = WalletMeta::load(path)?;
    if existing.wallet_id != backup.meta.wallet_id {
        return Err(BackupError::OtherWallet {
            path: p,
            existing_wallet_id: existing.wallet_id,
            backup_wallet_id: backup.meta.wallet_id.clone(),
        });
    }
    if !path.exists() {
        return Err(MpcError::WalletExists {
            path: meta_file.display().to_string(),
        }
        .into());
    }
    let different = || BackupError::DifferentShare {
        path: p.clone(),
        wallet_id: existing.wallet_id.clone(),
        party: backup.bundle.party_index,
    };
    if existing.party_index != backup.meta.party_index {
        return Err(different());
    }
    let current = KeyShareBundle::load(path, existing_passphrase)
        .map_err(|e| crate::error::keystore_error(path, e))?;
    if same_bundle(&current, &backup.bundle)? {
        Ok(Some(()))
    } else {
        Err(different())
    }
}
