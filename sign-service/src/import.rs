//! `sign-service import`: a party-1 key-share file written by `key-gen`
//! (`service_key_shares.json`, `mpc_core::keystore::KeyShareBundle`, encrypted under a
//! passphrase) becomes a confirmed wallet in the store, and the test for aux info built
//! from the repository's PUBLIC dev primes.
//!
//! The device and recovery identities come from the bundle's `peers` (keygen indices 0
//! and 2); the cosigner signs with its own identity (the store's), so a bundle that
//! carries another party-1 identity is refused. The wallet id is derived from the
//! accounts' public keys, so importing the same shares twice is refused.

use std::collections::BTreeMap;

use mpc_core::keystore::{KeyShareBundle, KeystoreError};
use mpc_core::primes::dev_fixture_primes;
use mpc_core::{AccountKind, AuxInfo};
use mpc_wire::{IdentityKey, PublicIdentity};
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError, WalletRecord};

/// Why a key-share file cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be read or decrypted.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The file holds another party's shares.
    #[error("the file holds the shares of party {0}; the cosigner imports party 1 (key-gen's service_key_shares.json)")]
    WrongParty(u16),
    /// The file has no aux info.
    #[error("the file has no aux info")]
    NoAuxInfo,
    /// The file has no accounts.
    #[error("the file has no accounts")]
    NoAccounts,
    /// The accounts are of different kinds (a wallet has one kind).
    #[error("the accounts are of different kinds (hd and independent); a wallet has one kind")]
    MixedKinds,
    /// An account's share does not fit the aux info.
    #[error("account {0}: the share does not fit the aux info: {1}")]
    BadAccount(String, String),
    /// The identity of the device or recovery party is missing or malformed.
    #[error("the file has no valid identity of party {party} (peers[{party}]): {reason}; key-gen must record the device and recovery identities")]
    MissingPeer {
        /// Keygen index.
        party: u16,
        /// What is wrong.
        reason: String,
    },
    /// Two parties share an identity.
    #[error("the device, recovery and cosigner identities must be distinct")]
    SameIdentities,
    /// The file carries a party-1 identity other than this cosigner's.
    #[error("the file's cosigner identity {file} is not this cosigner's ({ours}); the other parties would not recognise it")]
    ForeignCosignerIdentity {
        /// In the file.
        file: String,
        /// The store's.
        ours: String,
    },
    /// The aux info uses the public dev primes and `--insecure-dev-primes` was not given.
    #[error("the aux info of this file was built from the repository's PUBLIC dev primes: anyone can read its Paillier keys, so the wallet would not be safe to hold money. Pass --insecure-dev-primes to import it anyway for development")]
    DevPrimes,
    /// The key store failed (or the wallet was imported before).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Options of an import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Accept aux info built from the public dev primes (the wallet is flagged).
    pub allow_dev_primes: bool,
    /// Wallet label.
    pub label: String,
}

/// Whether any party's Paillier modulus (or ring-Pedersen modulus) in `aux` has a
/// factor among the repository's PUBLIC dev primes (`mpc_core::primes`' fixture): such
/// aux info gives every reader that party's Paillier private key.
pub fn uses_public_primes(aux: &AuxInfo) -> bool {
    !parties_with_public_primes(aux).is_empty()
}

/// The parties (keygen indices, ascending) whose Paillier or ring-Pedersen modulus in
/// `aux` has a factor among the repository's PUBLIC dev primes.
pub fn parties_with_public_primes(aux: &AuxInfo) -> Vec<u16> {
    let fixtures: Vec<_> = dev_fixture_primes()
        .iter()
        .filter_map(|set| set.to_pregenerated().ok())
        .flat_map(|p| p.into_primes())
        .collect();
    let mut out = Vec::new();
    for i in 0..aux.N.len().max(aux.pedersen_params.len()) {
        let mut moduli = aux
            .N
            .get(i)
            .into_iter()
            .chain(aux.pedersen_params.get(i).map(|p| &p.hat_N));
        let public = moduli.any(|n| {
            fixtures
                .iter()
                .any(|p| n.modulo_ref(p).cmp0() == std::cmp::Ordering::Equal)
        });
        if let (true, Ok(party)) = (public, u16::try_from(i)) {
            out.push(party);
        }
    }
    out
}

fn peer(bundle: &KeyShareBundle, party: u16) -> Result<PublicIdentity, ImportError> {
    let missing = |reason: String| ImportError::MissingPeer { party, reason };
    bundle
        .peers
        .get(&party)
        .ok_or_else(|| missing("absent".into()))?
        .parse()
        .map_err(|e| missing(format!("{e}")))
}

/// The wallet id of an imported wallet: derived from its accounts' public keys.
fn wallet_id_of(accounts: &BTreeMap<String, mpc_core::Account>) -> String {
    let mut h = Sha256::new();
    h.update(b"wallet-mpc/sign-service/import/v1");
    for (id, a) in accounts {
        h.update((id.len() as u64).to_be_bytes());
        h.update(id.as_bytes());
        h.update(a.public_key.as_bytes());
        h.update([0]);
    }
    format!("imported-{}", &hex::encode(h.finalize())[..32])
}

/// Checks `bundle` and stores it as a confirmed wallet; returns the record.
pub fn import_bundle(
    store: &Store,
    bundle: KeyShareBundle,
    opts: &ImportOptions,
    now_ms: u64,
) -> Result<WalletRecord, ImportError> {
    if bundle.party_index != 1 {
        return Err(ImportError::WrongParty(bundle.party_index));
    }
    let aux = bundle.aux_info.clone().ok_or(ImportError::NoAuxInfo)?;
    let kind = {
        let mut kinds = bundle.accounts.values().map(|a| a.kind);
        let first: AccountKind = kinds.next().ok_or(ImportError::NoAccounts)?;
        if kinds.any(|k| k != first) {
            return Err(ImportError::MixedKinds);
        }
        first
    };
    for (id, a) in &bundle.accounts {
        a.complete(&aux)
            .map_err(|e| ImportError::BadAccount(id.clone(), e.to_string()))?;
    }
    let ours = store.load_or_create_identity()?.public();
    if let Some(secret) = &bundle.identity_secret {
        let file = IdentityKey::from_seed_hex(secret)
            .map_err(|e| ImportError::MissingPeer {
                party: 1,
                reason: format!("identity_secret: {e}"),
            })?
            .public();
        if file != ours {
            return Err(ImportError::ForeignCosignerIdentity {
                file: file.to_string(),
                ours: ours.to_string(),
            });
        }
    }
    let device = peer(&bundle, 0)?;
    let recovery = peer(&bundle, 2)?;
    if device == recovery || device == ours || recovery == ours {
        return Err(ImportError::SameIdentities);
    }
    let insecure = uses_public_primes(&aux);
    if insecure && !opts.allow_dev_primes {
        return Err(ImportError::DevPrimes);
    }
    let created_at_ms = bundle
        .accounts
        .values()
        .map(|a| a.created_at.saturating_mul(1000))
        .min()
        .filter(|&t| t > 0)
        .unwrap_or(now_ms);
    let rec = WalletRecord {
        wallet_id: wallet_id_of(&bundle.accounts),
        label: opts.label.clone(),
        kind,
        device_identity: device,
        recovery_identity: recovery,
        created_at_ms,
        insecure_dev_primes: insecure,
        aux_info: aux,
        accounts: bundle.accounts,
        share_epoch: 0,
        last_refresh_at_ms: None,
        retired_device_identities: Vec::new(),
    };
    store.insert_wallet(&rec)?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeySource;
    use mpc_core::Account;

    fn store(name: &str) -> Store {
        let d =
            std::env::temp_dir().join(format!("sign-service-import-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Store::open(&d.join("s.redb"), &KeySource::InsecureDev).unwrap()
    }

    /// Party 1's bundle of a 2-of-3 wallet made with the public dev primes (the
    /// committed dev wallet: its aux info and its independent account, renamed
    /// `account-0`), with fresh device and recovery identities.
    fn dev_bundle() -> KeyShareBundle {
        let dev = &crate::dev_wallet::bundles()[1];
        let share = dev
            .accounts
            .values()
            .find(|a| a.kind == AccountKind::Independent)
            .expect("an independent account in the dev wallet")
            .share
            .clone();
        let mut b = KeyShareBundle::new(1);
        b.aux_info = dev.aux_info.clone();
        let acct = Account::new("account-0", AccountKind::Independent, share, 1_700_000_000);
        b.accounts.insert(acct.id.clone(), acct);
        for p in [0u16, 2] {
            b.peers
                .insert(p, IdentityKey::generate().unwrap().public().to_string());
        }
        b
    }

    #[test]
    fn dev_primes_are_refused_unless_allowed_and_flagged() {
        let b = dev_bundle();
        assert!(uses_public_primes(b.aux_info.as_ref().unwrap()));
        let s = store("dev");
        assert!(matches!(
            import_bundle(&s, b.clone(), &ImportOptions::default(), 1),
            Err(ImportError::DevPrimes)
        ));
        assert_eq!(s.wallet_count().unwrap(), 0);
        let opts = ImportOptions {
            allow_dev_primes: true,
            label: "dev".into(),
        };
        let rec = import_bundle(&s, b.clone(), &opts, 1).unwrap();
        assert!(rec.insecure_dev_primes);
        assert_eq!(rec.kind, AccountKind::Independent);
        assert_eq!(rec.created_at_ms, 1_700_000_000_000);
        let stored = s.get_wallet(&rec.wallet_id).unwrap().unwrap();
        assert!(stored.insecure_dev_primes);
        assert_eq!(stored.device_identity.to_string(), b.peers[&0]);
        // The same shares again: refused.
        assert!(matches!(
            import_bundle(&s, b, &opts, 1),
            Err(ImportError::Store(StoreError::Exists(_)))
        ));
    }

    #[test]
    fn malformed_bundles_are_refused() {
        let s = store("bad");
        let ok = dev_bundle();
        let allow = ImportOptions {
            allow_dev_primes: true,
            label: String::new(),
        };
        let mut b = ok.clone();
        b.party_index = 0;
        assert!(matches!(
            import_bundle(&s, b, &allow, 1),
            Err(ImportError::WrongParty(0))
        ));
        let mut b = ok.clone();
        b.peers.remove(&2);
        assert!(matches!(
            import_bundle(&s, b, &allow, 1),
            Err(ImportError::MissingPeer { party: 2, .. })
        ));
        let mut b = ok.clone();
        b.peers.insert(0, "zz".into());
        assert!(matches!(
            import_bundle(&s, b, &allow, 1),
            Err(ImportError::MissingPeer { party: 0, .. })
        ));
        let mut b = ok.clone();
        let dev = b.peers[&0].clone();
        b.peers.insert(2, dev);
        assert!(matches!(
            import_bundle(&s, b, &allow, 1),
            Err(ImportError::SameIdentities)
        ));
        let mut b = ok.clone();
        b.identity_secret = Some(IdentityKey::generate().unwrap().to_seed_hex().to_string());
        assert!(matches!(
            import_bundle(&s, b, &allow, 1),
            Err(ImportError::ForeignCosignerIdentity { .. })
        ));
        let mut b = ok.clone();
        b.aux_info = None;
        assert!(matches!(
            import_bundle(&s, b, &allow, 1),
            Err(ImportError::NoAuxInfo)
        ));
        let mut b = ok;
        b.accounts.clear();
        assert!(matches!(
            import_bundle(&s, b, &allow, 1),
            Err(ImportError::NoAccounts)
        ));
        assert_eq!(s.wallet_count().unwrap(), 0);
    }
}
