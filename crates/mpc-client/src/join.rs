//! Joining a wallet creation as ONE party, given the rooms the cosigner opened.
//!
//! [`MpcClient::create_wallet`](crate::MpcClient::create_wallet) runs the device and
//! recovery parties in one process. When the parties live in different processes (a
//! browser device plus a `recovery-agent`, or any split deployment), the device drives
//! [`create_wallet`](crate::create_wallet) with [`CreateEffects`](crate::CreateEffects)
//! that hand the rooms to the other party, and that party:
//!
//! 1. runs [`join_wallet_creation`] (aux info, then one DKG per account: the core's
//!    `Join` flow) and gets its [`KeyShareBundle`];
//! 2. writes it with [`save_party_files`] (encrypted bundle + `.wallet.json` metadata,
//!    the format `MpcClient` reads, so the share can later sign with `--role recovery`);
//! 3. reports its public keys ([`bundle_public_keys`]) to the device, which checks that
//!    every party obtained the same and confirms the wallet.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use client_core::{AccountRoom, JoinAux, JoinParams};
use mpc_core::keystore::{write_atomically, KeyShareBundle};
use mpc_wire::{IdentityKey, PublicIdentity};
use wallet_types::AccountKind;

use crate::driver::SessionSettings;
use crate::error::{io_error, keystore_error, MpcError};
use crate::store::{kdf, meta_path, WalletMeta};
use crate::types::Progress;

/// What one party needs to join a wallet creation.
#[derive(Clone)]
pub struct JoinRequest {
    /// This party's keygen index (0 device, 2 recovery; 1 is the cosigner).
    pub me: u16,
    /// This party's identity key (its secret is stored in the resulting bundle).
    pub identity: IdentityKey,
    /// The public identities of the two other parties, by keygen index.
    pub peers: BTreeMap<u16, PublicIdentity>,
    /// The aux info: run in its room with this party's primes, or from its enrollment
    /// (then only the keygens run).
    pub aux: JoinAux,
    /// Kind of every account.
    pub kind: AccountKind,
    /// The keygen rooms (none: an enrollment's aux-info room alone).
    pub accounts: Vec<AccountRoom>,
    /// Gateway URL to use instead of the rooms' announced one.
    pub gateway_url: Option<String>,
    /// A PEM file of extra CA certificates trusted for an `https://` gateway (beside
    /// the web PKI roots).
    pub ca_file: Option<String>,
    /// Deadline of each session.
    pub session_timeout: Duration,
}

impl std::fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinRequest")
            .field("me", &self.me)
            .field("kind", &self.kind)
            .field("aux", &self.aux)
            .field("accounts", &self.accounts)
            .field("gateway_url", &self.gateway_url)
            .finish_non_exhaustive()
    }
}

impl JoinRequest {
    fn into_parts(self) -> (JoinParams, SessionSettings) {
        (
            JoinParams {
                me: self.me,
                identity: self.identity,
                peers: self.peers,
                aux: self.aux,
                kind: self.kind,
                accounts: self.accounts,
                created_at: crate::driver::now_ms() / 1000,
            },
            SessionSettings {
                gateway_url: self.gateway_url,
                ca_file: self.ca_file,
                timeout: self.session_timeout,
            },
        )
    }

    /// Checks indices, identities, rooms, gateway URLs and primes before any network
    /// traffic.
    pub fn validate(&self) -> Result<(), MpcError> {
        if self.session_timeout.is_zero() {
            return Err(MpcError::config("the session timeout is zero"));
        }
        if self.gateway_url.is_none() {
            let aux_room = match &self.aux {
                JoinAux::Run { room, .. } => Some(("aux_info", room)),
                JoinAux::Ready(_) => None,
            };
            for (what, room) in aux_room.into_iter().chain(
                self.accounts
                    .iter()
                    .map(|a| (a.account_id.as_str(), &a.keygen)),
            ) {
                if room.gateway_url.trim().is_empty() {
                    return Err(MpcError::input(format!(
                        "room {what} has no gateway_url and no override is configured"
                    )));
                }
            }
        }
        self.clone().into_parts().0.validate()
    }
}

/// Runs this party's aux-info session and one DKG per account over the gateway and
/// returns its complete bundle (aux info, accounts, identity secret, peer identities).
///
/// Progress: stage `aux-info` then `keygen` (with the account id), one event per
/// protocol round (`done`/`total` are rounds), then a `finished` event per session.
/// Nothing is written to disk.
pub async fn join_wallet_creation(
    req: JoinRequest,
    progress: Progress,
) -> Result<KeyShareBundle, MpcError> {
    req.validate()?;
    let (params, settings) = req.into_parts();
    Ok(crate::driver::join(params, &settings, &progress)
        .await?
        .bundle)
}

/// Writes a party's bundle (encrypted under `passphrase`) to `path` and its metadata to
/// `<stem>.wallet.json`, both atomically (each rename synced into its directory). Blocking (Argon2
/// takes about a second with the default parameters): call it from a blocking thread.
///
/// Refuses to overwrite either file ([`MpcError::WalletExists`]); if the second write
/// fails, the first file is removed again, so a failure leaves nothing behind.
pub fn save_party_files(
    path: &Path,
    passphrase: &str,
    insecure_fast_kdf: bool,
    meta: &WalletMeta,
    bundle: &KeyShareBundle,
) -> Result<(), MpcError> {
    if passphrase.is_empty() {
        return Err(MpcError::config("the passphrase is empty"));
    }
    if meta.party_index != bundle.party_index {
        return Err(MpcError::internal(format!(
            "metadata for party {} but bundle of party {}",
            meta.party_index, bundle.party_index
        )));
    }
    let meta_file = meta_path(path);
    for f in [path, meta_file.as_path()] {
        if f.exists() {
            return Err(MpcError::WalletExists {
                path: f.display().to_string(),
            });
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    // Encrypt first: nothing is written if that fails.
    let text = bundle
        .encrypt(passphrase, kdf(insecure_fast_kdf))
        .map_err(|e| keystore_error(path, e))?;
    meta.save(path)?;
    if let Err(e) = write_atomically(path, text.as_bytes()) {
        let _ = std::fs::remove_file(&meta_file);
        return Err(keystore_error(path, e));
    }
    // Each write above synced the directory after its rename (write_atomically).
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use client_core::Room;
    use mpc_core::primes::dev_fixture_primes;

    fn room(sid: &str) -> Room {
        Room {
            session_id: sid.into(),
            room: format!("room-{sid}"),
            room_token: String::new(),
            gateway_url: "http://127.0.0.1:1".into(),
        }
    }

    fn request() -> JoinRequest {
        let ids: Vec<IdentityKey> = (0..3).map(|_| IdentityKey::generate().unwrap()).collect();
        JoinRequest {
            me: 2,
            identity: ids[2].clone(),
            peers: BTreeMap::from([(0, ids[0].public()), (1, ids[1].public())]),
            aux: JoinAux::Run {
                room: room("aux-session-0001"),
                primes: dev_fixture_primes()[2].clone(),
            },
            kind: AccountKind::Hd,
            accounts: vec![AccountRoom {
                account_id: "acct-0".into(),
                keygen: room("keygen-session-0001"),
            }],
            gateway_url: None,
            ca_file: None,
            session_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn validation_rejects_bad_requests() {
        request().validate().unwrap();
        let mut r = request();
        r.me = 1;
        assert!(r.validate().is_err());
        let mut r = request();
        r.peers.remove(&0);
        assert!(r.validate().is_err());
        let mut r = request();
        let own = r.identity.public();
        r.peers.insert(0, own);
        assert!(r.validate().is_err(), "duplicate identity accepted");
        let mut r = request();
        r.accounts[0].keygen.session_id = "aux-session-0001".into();
        assert!(r.validate().is_err(), "reused session id accepted");
        let mut r = request();
        r.accounts.push(r.accounts[0].clone());
        r.accounts[1].keygen = room("keygen-session-0002");
        assert!(r.validate().is_err(), "duplicate account id accepted");
        // No account: an enrollment's aux info alone.
        let mut r = request();
        r.accounts.clear();
        r.validate().unwrap();
        let mut r = request();
        if let JoinAux::Run { room, .. } = &mut r.aux {
            room.gateway_url.clear();
        }
        assert!(r.validate().is_err());
        r.gateway_url = Some("http://127.0.0.1:2".into());
        r.validate().unwrap();
        let mut r = request();
        if let JoinAux::Run { primes, .. } = &mut r.aux {
            primes.primes[0] = "zz".into();
        }
        assert!(r.validate().is_err());
    }

    #[test]
    fn save_refuses_to_overwrite_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w").join("recovery.json");
        let id = IdentityKey::generate().unwrap();
        let mut bundle = KeyShareBundle::new(2);
        bundle.identity_secret = Some(id.to_seed_hex().to_string());
        let meta = WalletMeta {
            format: crate::WALLET_META_FORMAT.into(),
            wallet_id: "w1".into(),
            party_index: 2,
            cosigner_url: String::new(),
            label: String::new(),
            created_at_ms: 1,
        };
        save_party_files(&path, "pass", true, &meta, &bundle).unwrap();
        assert_eq!(WalletMeta::load(&path).unwrap(), meta);
        let back = KeyShareBundle::load(&path, "pass").unwrap();
        assert_eq!(back.identity_secret, bundle.identity_secret);
        let e = save_party_files(&path, "pass", true, &meta, &bundle).unwrap_err();
        assert!(matches!(e, MpcError::WalletExists { .. }), "{e}");
        // Mismatched party: nothing written.
        let other = dir.path().join("x.json");
        let mut m2 = meta.clone();
        m2.party_index = 0;
        assert!(save_party_files(&other, "pass", true, &m2, &bundle).is_err());
        assert!(!other.exists() && !meta_path(&other).exists());
        assert!(save_party_files(&other, "", true, &meta, &bundle).is_err());
        assert!(!other.exists() && !meta_path(&other).exists());
    }
}
