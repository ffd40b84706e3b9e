//! Shared setup for the integration tests: the committed test wallet (aux info made
//! once from the public dev primes) and DKG.
#![allow(dead_code)]

use std::sync::OnceLock;

use mpc_core::keystore::KeyShareBundle;
use mpc_core::local::run_sessions;
use mpc_core::{AccountKind, AuxInfo, KeyShare, Session, SessionOutput, PARTIES, THRESHOLD};

pub struct Wallet {
    pub aux: Vec<AuxInfo>,
    /// Complete key shares of one HD account, by party.
    pub shares: Vec<KeyShare>,
    pub accounts: Vec<mpc_core::Account>,
}

/// The committed test wallet (`testing/fixtures/dev-wallet.json`, made by
/// `examples/gen_dev_wallet.rs` from the public dev primes): three bundles with finished
/// aux info, so these tests never wait minutes for it.
pub fn dev_wallet() -> &'static Vec<KeyShareBundle> {
    static W: OnceLock<Vec<KeyShareBundle>> = OnceLock::new();
    W.get_or_init(|| {
        #[derive(serde::Deserialize)]
        struct File {
            bundles: Vec<KeyShareBundle>,
        }
        let file: File =
            serde_json::from_str(include_str!("../../../../testing/fixtures/dev-wallet.json"))
                .expect("testing/fixtures/dev-wallet.json");
        assert_eq!(file.bundles.len(), usize::from(PARTIES));
        file.bundles
    })
}

/// The three parties' aux info (from the committed test wallet).
pub fn aux_infos() -> &'static Vec<AuxInfo> {
    static AUX: OnceLock<Vec<AuxInfo>> = OnceLock::new();
    AUX.get_or_init(|| {
        dev_wallet()
            .iter()
            .map(|b| b.aux_info.clone().expect("fixture bundles carry aux info"))
            .collect()
    })
}

pub fn keygen(session_id: &[u8], kind: AccountKind) -> Vec<mpc_core::Account> {
    let sessions = (0..PARTIES)
        .map(|i| Session::keygen(session_id, i, PARTIES, THRESHOLD).expect("keygen"))
        .collect();
    let outs = run_sessions(sessions, None).expect("dkg");
    outs.into_iter()
        .map(|o| match o {
            SessionOutput::Keygen(s) => mpc_core::Account::new("acct", kind, *s, 0),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

pub fn wallet() -> &'static Wallet {
    static W: OnceLock<Wallet> = OnceLock::new();
    W.get_or_init(|| {
        let aux = aux_infos().clone();
        let accounts: Vec<mpc_core::Account> = dev_wallet()
            .iter()
            .map(|b| b.accounts["hd-0"].clone())
            .collect();
        assert!(accounts.iter().all(|a| a.kind == AccountKind::Hd));
        let shares = accounts
            .iter()
            .zip(&aux)
            .map(|(a, x)| a.complete(x).expect("complete"))
            .collect();
        Wallet {
            aux,
            shares,
            accounts,
        }
    })
}

/// An in-memory presignature store that hands each presignature out once and refuses
/// an id it has seen before (what the persistent stores enforce), for the tests.
pub mod store {
    use std::collections::{BTreeMap, BTreeSet};

    use mpc_core::presign::StoredPresignature;
    use mpc_core::{CoreError, PartyIndex};

    /// An in-memory, serializable presignature store (persist it as a whole, e.g. inside an
    /// encrypted key-share bundle; databases implement the same rule with a transaction).
    #[derive(Default)]
    pub struct PresignatureStore {
        available: BTreeMap<String, StoredPresignature>,
        used: BTreeSet<String>,
    }

    impl PresignatureStore {
        /// An empty store.
        pub fn new() -> Self {
            Self::default()
        }

        /// Adds a presignature; refused if its id was ever added before.
        pub fn insert(&mut self, p: StoredPresignature) -> Result<(), CoreError> {
            if self.used.contains(&p.id) || self.available.contains_key(&p.id) {
                return Err(CoreError::PresignatureReused(p.id));
            }
            self.available.insert(p.id.clone(), p);
            Ok(())
        }

        /// Removes and returns the presignature `id`, marking it used forever.
        pub fn take(&mut self, id: &str) -> Result<StoredPresignature, CoreError> {
            match self.available.remove(id) {
                Some(p) => {
                    self.used.insert(id.to_string());
                    Ok(p)
                }
                None if self.used.contains(id) => {
                    Err(CoreError::PresignatureReused(id.to_string()))
                }
                None => Err(CoreError::Invalid {
                    what: "presignature id",
                    reason: format!("{id} is unknown"),
                }),
            }
        }

        /// Ids of unused presignatures for an account and signer set, oldest first.
        pub fn available_for(&self, account_id: &str, signers: &[PartyIndex]) -> Vec<String> {
            self.available
                .values()
                .filter(|p| p.account_id == account_id && p.signers == signers)
                .map(|p| p.id.clone())
                .collect()
        }

        /// Number of unused presignatures.
        pub fn len(&self) -> usize {
            self.available.len()
        }

        /// Whether no unused presignature is left.
        pub fn is_empty(&self) -> bool {
            self.available.is_empty()
        }
    }
}
