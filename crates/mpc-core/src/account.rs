//! Accounts: one shared key per account, as held by one party.

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::hd::DerivationPath;
use crate::{AuxInfo, IncompleteKeyShare, KeyShare, PartyIndex, Point};

/// How an account's key is used (the shared vocabulary of `wallet-types`).
pub use wallet_types::AccountKind;

/// One account as held by one party: its key share and public metadata.
#[derive(Clone, Serialize, Deserialize)]
pub struct Account {
    /// Account id, unique within the wallet (shared by all parties).
    pub id: String,
    /// Optional human label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// HD or independent key.
    #[serde(default)]
    pub kind: AccountKind,
    /// This party's key share (without aux info, which is stored once per party).
    pub share: IncompleteKeyShare,
    /// The shared public key, compressed SEC1, hex.
    pub public_key: String,
    /// The BIP-32 chain code, hex (HD keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_code: Option<String>,
    /// Signers needed.
    pub threshold: u16,
    /// Parties sharing the key.
    pub parties: u16,
    /// This party's keygen index.
    pub party_index: PartyIndex,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("public_key", &self.public_key)
            .field("party_index", &self.party_index)
            .finish_non_exhaustive()
    }
}

impl Account {
    /// Wraps a freshly generated key share.
    pub fn new(
        id: impl Into<String>,
        kind: AccountKind,
        share: IncompleteKeyShare,
        created_at: u64,
    ) -> Self {
        let public_key = hex::encode(share.shared_public_key.to_bytes(true));
        let chain_code = share.chain_code.map(hex::encode);
        let parties = share.public_shares.len() as u16;
        let threshold = share
            .vss_setup
            .as_ref()
            .map(|v| v.min_signers)
            .unwrap_or(parties);
        let party_index = share.i;
        Account {
            id: id.into(),
            label: None,
            kind,
            share,
            public_key,
            chain_code,
            threshold,
            parties,
            party_index,
            created_at,
        }
    }

    /// The master public key.
    pub fn master_public_key(&self) -> Point {
        *self.share.shared_public_key
    }

    /// The public key at `path` (the master key for the root path).
    pub fn public_key_at(&self, path: &DerivationPath) -> Result<Point, CoreError> {
        if path.is_root() {
            return Ok(self.master_public_key());
        }
        let chain_code = self
            .share
            .chain_code
            .ok_or_else(|| CoreError::NotHd(path.to_string()))?;
        crate::hd::derive_public_key(&self.master_public_key(), &chain_code, path)
    }

    /// Completes the share with this party's aux info, for signing.
    pub fn complete(&self, aux: &AuxInfo) -> Result<KeyShare, CoreError> {
        KeyShare::from_parts((self.share.clone(), aux.clone()))
            .map_err(|e| CoreError::invalid("key share / aux info pair", e))
    }
}
