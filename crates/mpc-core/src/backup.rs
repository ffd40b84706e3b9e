//! The backup file: one party's key-share file with its wallet metadata.
//!
//! A backup is the party's **key-share file** ([`crate::keystore`]: Argon2id +
//! XChaCha20-Poly1305, the header bound as associated data), encrypted under a backup
//! passphrase of its own, with one more top-level member, `"wallet"`: the public wallet
//! metadata (wallet id, party index, cosigner URL, label, creation time; natively the
//! `<stem>.wallet.json` file next to a share file):
//!
//! ```json
//! { "format": "wallet-mpc/key-shares", "version": 1, "party_index": 0,
//!   "kdf": { … }, "aead": { … }, "ciphertext": "…",
//!   "wallet": { "format": "wallet-mpc/wallet", "wallet_id": "…", "party_index": 0, … } }
//! ```
//!
//! This module is the ONE implementation of the format: the native client
//! (`mpc-client`) and the browser package (`mpc-wasm`) both write and read backups
//! through [`encrypt_backup`] and [`decrypt_backup`], so a backup made on one imports on
//! the other. [`KeyShareBundle::decrypt`] reads a backup unchanged (it ignores the extra
//! member). Like the `.wallet.json` file, the `wallet` member is not secret and not
//! authenticated: editing it only makes the cosigner refuse the imported share (the
//! identities that matter live in the encrypted bundle). Its party index must equal the
//! authenticated header's.
//!
//! The metadata type is the caller's (`mpc_client::WalletMeta` natively,
//! [`WalletMember`] in the browser): both serialize to the same JSON object; this module
//! checks the fields every backup must have (`format`, `wallet_id`, `party_index`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::keystore::{KdfParams, KeyShareBundle, KeystoreError};

/// The `format` field of the wallet metadata (`.wallet.json` and a backup's `wallet`).
pub const WALLET_META_FORMAT: &str = "wallet-mpc/wallet";

/// The top-level member of a backup that holds its wallet metadata.
pub const BACKUP_WALLET_MEMBER: &str = "wallet";

/// The largest backup accepted (a wallet of 100 accounts is well below it).
pub const MAX_BACKUP_BYTES: usize = 16 << 20;

/// The wallet metadata of a backup, as the browser writes it: the same JSON object as
/// the native client's `.wallet.json` (`mpc_client::WalletMeta`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletMember {
    /// Always [`WALLET_META_FORMAT`].
    pub format: String,
    /// The cosigner's wallet id.
    pub wallet_id: String,
    /// The party index of the share.
    pub party_index: u16,
    /// The cosigner URL used at creation (informational).
    pub cosigner_url: String,
    /// Optional label.
    #[serde(default)]
    pub label: String,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: u64,
}

/// The fields of the metadata every backup must have.
#[derive(Deserialize)]
struct MemberView {
    format: String,
    wallet_id: String,
    party_index: u16,
}

/// Why a backup could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackupFormatError {
    /// The passphrase does not open the backup, or the backup was modified.
    #[error("the backup does not open with this passphrase (or it was modified)")]
    WrongPassphrase,
    /// The bytes are not a wallet backup (not a key-share file, no wallet metadata,
    /// inconsistent party index, the cosigner's share...).
    #[error("not a wallet backup: {0}")]
    NotABackup(String),
    /// The backup passphrase is empty.
    #[error("the backup passphrase is empty")]
    EmptyPassphrase,
    /// The backup cannot be written (a bug: inconsistent metadata, serialization).
    #[error("cannot make the backup: {0}")]
    Internal(String),
}

/// A backup, opened: the decrypted bundle and its wallet metadata.
pub struct OpenedBackup<M> {
    /// The decrypted bundle (secret).
    pub bundle: KeyShareBundle,
    /// The wallet metadata of the backup.
    pub meta: M,
}

impl<M: std::fmt::Debug> std::fmt::Debug for OpenedBackup<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedBackup")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// Encrypts `bundle` under `passphrase` as a backup carrying `meta` (the key-share file
/// plus its `wallet` member). `meta` must serialize to an object with the
/// [`WALLET_META_FORMAT`], a wallet id and the bundle's party index; the party must be 0
/// or 2 (the user's shares).
pub fn encrypt_backup<M: Serialize>(
    bundle: &KeyShareBundle,
    meta: &M,
    passphrase: &str,
    params: KdfParams,
) -> Result<Vec<u8>, BackupFormatError> {
    let internal = BackupFormatError::Internal;
    if passphrase.is_empty() {
        return Err(BackupFormatError::EmptyPassphrase);
    }
    let meta_value = serde_json::to_value(meta).map_err(|e| internal(format!("metadata: {e}")))?;
    let view: MemberView = serde_json::from_value(meta_value.clone())
        .map_err(|e| internal(format!("metadata: {e}")))?;
    if view.format != WALLET_META_FORMAT || view.wallet_id.trim().is_empty() {
        return Err(internal(format!(
            "metadata of format {:?} with wallet id {:?}",
            view.format, view.wallet_id
        )));
    }
    if view.party_index != bundle.party_index {
        return Err(internal(format!(
            "metadata for party {} but bundle of party {}",
            view.party_index, bundle.party_index
        )));
    }
    if !matches!(bundle.party_index, 0 | 2) {
        return Err(internal(format!(
            "party {} is not a user party (0 device, 2 recovery)",
            bundle.party_index
        )));
    }
    let file = bundle.encrypt(passphrase, params).map_err(|e| match e {
        KeystoreError::EmptyPassphrase => BackupFormatError::EmptyPassphrase,
        other => internal(format!("cannot encrypt the backup: {other}")),
    })?;
    let mut value: serde_json::Value =
        serde_json::from_str(&file).map_err(|e| internal(format!("key-share file: {e}")))?;
    let obj = value
        .as_object_mut()
        .ok_or_else(|| internal("the key-share file is not a JSON object".into()))?;
    obj.insert(BACKUP_WALLET_MEMBER.into(), meta_value);
    serde_json::to_vec_pretty(&value).map_err(|e| internal(e.to_string()))
}

/// Opens a backup: checks its shape, decrypts it with `passphrase` (Argon2id: about a
/// second with the default parameters) and returns the bundle and its metadata read as
/// `M`. Never panics on any input.
pub fn decrypt_backup<M: DeserializeOwned>(
    bytes: &[u8],
    passphrase: &str,
) -> Result<OpenedBackup<M>, BackupFormatError> {
    let not = BackupFormatError::NotABackup;
    if bytes.len() > MAX_BACKUP_BYTES {
        return Err(not(format!("larger than {MAX_BACKUP_BYTES} bytes")));
    }
    if passphrase.is_empty() {
        return Err(BackupFormatError::EmptyPassphrase);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| not("not UTF-8 text".into()))?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| not(format!("not JSON: {e}")))?;
    let member = value.get(BACKUP_WALLET_MEMBER).ok_or_else(|| {
        not(format!(
            "no \"{BACKUP_WALLET_MEMBER}\" member (a bare key-share file has no wallet id: \
             make the backup with export-backup)"
        ))
    })?;
    let view: MemberView =
        serde_json::from_value(member.clone()).map_err(|e| not(format!("wallet metadata: {e}")))?;
    if view.format != WALLET_META_FORMAT {
        return Err(not(format!(
            "wallet metadata format is {:?}, expected {WALLET_META_FORMAT:?}",
            view.format
        )));
    }
    if view.wallet_id.trim().is_empty() {
        return Err(not("the wallet id is empty".into()));
    }
    let meta: M =
        serde_json::from_value(member.clone()).map_err(|e| not(format!("wallet metadata: {e}")))?;
    let bundle = KeyShareBundle::decrypt(text, passphrase).map_err(|e| match e {
        KeystoreError::WrongPassphrase => BackupFormatError::WrongPassphrase,
        KeystoreError::EmptyPassphrase => BackupFormatError::EmptyPassphrase,
        other => not(other.to_string()),
    })?;
    if bundle.party_index != view.party_index {
        return Err(not(format!(
            "the wallet metadata names party {}, the share is party {}",
            view.party_index, bundle.party_index
        )));
    }
    if !matches!(bundle.party_index, 0 | 2) {
        return Err(not(format!(
            "holds the share of party {} (only the device's and the recovery party's shares \
             are backed up here)",
            bundle.party_index
        )));
    }
    Ok(OpenedBackup { bundle, meta })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(party: u16) -> WalletMember {
        WalletMember {
            format: WALLET_META_FORMAT.into(),
            wallet_id: "w-1".into(),
            party_index: party,
            cosigner_url: "http://127.0.0.1:50051".into(),
            label: String::new(),
            created_at_ms: 1,
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let fast = KdfParams::insecure_for_tests();
        let bundle = KeyShareBundle::new(0);
        let bytes = encrypt_backup(&bundle, &member(0), "backup pass", fast).unwrap();
        let opened: OpenedBackup<WalletMember> = decrypt_backup(&bytes, "backup pass").unwrap();
        assert_eq!(opened.meta, member(0));
        assert_eq!(opened.bundle.party_index, 0);
        // The key-share file reader opens it unchanged.
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(KeyShareBundle::decrypt(text, "backup pass").is_ok());

        let err = |b: &[u8], p: &str| decrypt_backup::<WalletMember>(b, p).unwrap_err();
        assert_eq!(
            err(&bytes, "other pass"),
            BackupFormatError::WrongPassphrase
        );
        assert_eq!(err(&bytes, ""), BackupFormatError::EmptyPassphrase);
        assert!(matches!(
            err(b"\xff", "p"),
            BackupFormatError::NotABackup(_)
        ));
        assert!(matches!(err(b"{}", "p"), BackupFormatError::NotABackup(_)));
        // A bare key-share file is not a backup.
        let bare = bundle.encrypt("backup pass", fast).unwrap();
        assert!(matches!(
            err(bare.as_bytes(), "backup pass"),
            BackupFormatError::NotABackup(_)
        ));
        // The metadata's party must be the authenticated one.
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["wallet"]["party_index"] = 2.into();
        let edited = serde_json::to_vec(&v).unwrap();
        assert!(matches!(
            err(&edited, "backup pass"),
            BackupFormatError::NotABackup(_)
        ));
        // Inconsistent metadata is refused when writing.
        assert!(encrypt_backup(&bundle, &member(2), "backup pass", fast).is_err());
        assert!(encrypt_backup(&KeyShareBundle::new(1), &member(1), "pass", fast).is_err());
    }
}
