//! A user party's keys, as the flows use them: the wallet id, the decrypted bundle and
//! the identity key (which never leaves this crate).

use std::sync::Arc;

use mpc_core::hd::DerivationPath;
use mpc_core::keystore::KeyShareBundle;
use mpc_core::{address, Account, KeyShare};
use mpc_wire::{IdentityKey, PublicIdentity, Roster};
use wallet_types::{AccountKind, PartyRole};

use crate::error::ClientError;
use crate::types::{AccountInfo, PublicKeyInfo};

/// One user party (device or recovery) of one wallet: what every flow but creation
/// starts from. Cheap to clone (the bundle is shared).
#[derive(Clone)]
pub struct Party {
    wallet_id: String,
    source: String,
    role: PartyRole,
    bundle: Arc<KeyShareBundle>,
    identity: IdentityKey,
}

impl std::fmt::Debug for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Party")
            .field("wallet_id", &self.wallet_id)
            .field("role", &self.role)
            .field("accounts", &self.bundle.accounts.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Party {
    /// The party whose decrypted `bundle` belongs to wallet `wallet_id`; `source` names
    /// where it was stored (a file, a wallet name), for error messages.
    ///
    /// Checks that the bundle is a user party's with aux info and an identity key.
    pub fn new(
        wallet_id: impl Into<String>,
        bundle: KeyShareBundle,
        source: impl Into<String>,
    ) -> Result<Self, ClientError> {
        let source = source.into();
        let corrupt = |reason: String| ClientError::corrupt(&source, reason);
        let role = PartyRole::of_index(bundle.party_index).ok_or_else(|| {
            corrupt(format!(
                "holds the share of party {}, not of a user party",
                bundle.party_index
            ))
        })?;
        if bundle.aux_info.is_none() {
            return Err(corrupt("has no aux info".into()));
        }
        let secret = bundle.identity_secret.as_deref().ok_or_else(|| {
            corrupt("has no identity key (made by key-gen, not create-wallet?)".into())
        })?;
        let identity = IdentityKey::from_seed_hex(secret)
            .map_err(|e| corrupt(format!("identity key: {e}")))?;
        Ok(Party {
            wallet_id: wallet_id.into(),
            source,
            role,
            bundle: Arc::new(bundle),
            identity,
        })
    }

    /// The wallet id.
    pub fn wallet_id(&self) -> &str {
        &self.wallet_id
    }

    /// Device or recovery.
    pub fn role(&self) -> PartyRole {
        self.role
    }

    /// The keygen index.
    pub fn index(&self) -> u16 {
        self.role.index()
    }

    /// This party's public identity.
    pub fn public_identity(&self) -> PublicIdentity {
        self.identity.public()
    }

    /// The decrypted bundle.
    pub fn bundle(&self) -> &KeyShareBundle {
        &self.bundle
    }

    pub(crate) fn identity(&self) -> &IdentityKey {
        &self.identity
    }

    /// The signer pair with the cosigner, sorted.
    pub fn pair_with_cosigner(&self) -> Vec<u16> {
        self.role.pair_with_cosigner().to_vec()
    }

    /// The account with `id`.
    pub fn account(&self, id: &str) -> Result<&Account, ClientError> {
        self.bundle
            .accounts
            .get(id)
            .ok_or_else(|| ClientError::UnknownAccount {
                account_id: id.to_string(),
                available: self.bundle.accounts.keys().cloned().collect(),
            })
    }

    /// The accounts.
    pub fn accounts(&self) -> Vec<AccountInfo> {
        self.bundle
            .accounts
            .values()
            .map(AccountInfo::from)
            .collect()
    }

    /// The public key and addresses of an account at a non-hardened `path` (`m` =
    /// root), computed locally.
    pub fn public_key(&self, account_id: &str, path: &str) -> Result<PublicKeyInfo, ClientError> {
        let path = parse_path(path)?;
        let pk = self.account(account_id)?.public_key_at(&path)?;
        let btc = |n| address::bitcoin_p2wpkh_address(&pk, n);
        Ok(PublicKeyInfo {
            account_id: account_id.to_string(),
            derivation_path: path.to_string(),
            public_key: hex::encode(pk.to_bytes(true)),
            ethereum_address: address::ethereum_address(&pk),
            bitcoin_address: btc(address::BitcoinNetwork::Mainnet)?,
            bitcoin_testnet_address: btc(address::BitcoinNetwork::Testnet)?,
        })
    }

    /// Fails unless the account is INDEPENDENT (the only kind with presignatures).
    /// The account, if it may have a presignature pool at `path`: an independent account
    /// at the root, an HD account at a child path (the cosigner further restricts HD
    /// pools to BIP-44-style paths and a number of paths per account).
    pub(crate) fn presign_account(
        &self,
        account_id: &str,
        path: &DerivationPath,
    ) -> Result<&Account, ClientError> {
        let a = self.account(account_id)?;
        match a.kind {
            AccountKind::Independent if !path.is_root() => Err(ClientError::input(format!(
                "account {account_id} is an independent account: its presignature pool is at \
                 the root, not at {path}"
            ))),
            AccountKind::Hd if path.is_root() => Err(ClientError::input(format!(
                "account {account_id} is an HD account: its presignature pools are per \
                 derivation path (e.g. m/44/60/0/0/0), not at the root"
            ))),
            _ => Ok(a),
        }
    }

    /// The complete key share (with aux info) of an account.
    pub(crate) fn key_share(&self, account_id: &str) -> Result<KeyShare, ClientError> {
        let acct = self.account(account_id)?;
        let aux = self
            .bundle
            .aux_info
            .as_ref()
            .ok_or_else(|| ClientError::corrupt(&self.source, "has no aux info"))?;
        acct.complete(aux)
            .map_err(|e| ClientError::corrupt(&self.source, format!("account {account_id}: {e}")))
    }

    /// The public identity of party `i` (own or a peer's).
    fn identity_of(&self, i: u16) -> Result<PublicIdentity, ClientError> {
        if i == self.index() {
            return Ok(self.identity.public());
        }
        let hex = self.bundle.peers.get(&i).ok_or_else(|| {
            ClientError::corrupt(&self.source, format!("no identity of party {i} stored"))
        })?;
        hex.parse()
            .map_err(|e| ClientError::corrupt(&self.source, format!("identity of party {i}: {e}")))
    }

    /// The roster of the given parties.
    pub(crate) fn roster(&self, parties: &[u16]) -> Result<Roster, ClientError> {
        let ids = parties
            .iter()
            .map(|&p| self.identity_of(p).map(|id| (p, id)))
            .collect::<Result<Vec<_>, _>>()?;
        Roster::new(ids).map_err(|e| ClientError::internal(format!("roster: {e}")))
    }

    /// Signs requests as this party.
    pub(crate) fn signer(&self) -> crate::cosigner::Signer {
        crate::cosigner::Signer::Party {
            key: self.identity.clone(),
            wallet_id: self.wallet_id.clone(),
            party: self.index(),
            audience: self.identity_of(wallet_types::COSIGNER).ok(),
        }
    }
}

/// Parses a non-hardened derivation path (`m`, `m/44/60/0/0/0`).
pub fn parse_path(path: &str) -> Result<DerivationPath, ClientError> {
    DerivationPath::parse(path).map_err(|e| ClientError::input(e.to_string()))
}
