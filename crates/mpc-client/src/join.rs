//! Joining a wallet creation as ONE party, given the rooms the cosigner opened.
//!
//! [`MpcClient::create_wallet`](crate::MpcClient::create_wallet) runs the device and
//! recovery parties in one process. When the parties live in different processes (a
//! browser device plus a `recovery-agent`, or any split deployment), each of them:
//!
//! 1. learns the rooms: the party that talks to the cosigner calls
//!    [`CosignerClient::open_wallet`] and hands the [`WalletRooms`] to the other;
//! 2. runs [`join_wallet_creation`] (aux info, then one DKG per account) and gets its
//!    [`KeyShareBundle`];
//! 3. writes it with [`save_party_files`] (encrypted bundle + `.wallet.json` metadata,
//!    the format `MpcClient` reads, so the share can later sign with `--role recovery`);
//! 4. the party that opened the wallet checks that every party reports the same public
//!    keys and calls [`CosignerClient::confirm_wallet_keys`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gateway_client::GatewayClient;
use mpc_core::keystore::{write_atomically, KeyShareBundle};
use mpc_core::primes::PrimeSet;
use mpc_core::{Account, Session, SessionOutput, PARTIES, THRESHOLD};
use mpc_party::{run_session, PartyContext};
use mpc_wire::{IdentityKey, PublicIdentity, Roster, SessionId};

use crate::cosigner::{CosignerClient, RoomInfo};
use crate::error::MpcError;
use crate::store::{kdf, meta_path, WalletMeta};
use crate::types::{AccountKind, Progress, ProgressEvent};

/// The keygen room of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRoom {
    /// The account id (shared by all parties).
    pub account_id: String,
    /// Where its DKG runs.
    pub keygen: RoomInfo,
}

/// Everything a party needs to know about a wallet the cosigner opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletRooms {
    /// The cosigner's wallet id.
    pub wallet_id: String,
    /// The cosigner's public identity (hex).
    pub cosigner_identity: String,
    /// The aux-info room.
    pub aux_info: RoomInfo,
    /// One keygen room per account, in order.
    pub accounts: Vec<AccountRoom>,
}

/// What one party needs to join a wallet creation.
#[derive(Clone)]
pub struct JoinRequest {
    /// This party's keygen index (0 device, 2 recovery; 1 is the cosigner).
    pub me: u16,
    /// This party's identity key (its secret is stored in the resulting bundle).
    pub identity: IdentityKey,
    /// The public identities of the two other parties, by keygen index.
    pub peers: BTreeMap<u16, PublicIdentity>,
    /// This party's four safe primes for aux info.
    pub primes: PrimeSet,
    /// Kind of every account.
    pub kind: AccountKind,
    /// The aux-info room.
    pub aux_info: RoomInfo,
    /// The keygen rooms.
    pub accounts: Vec<AccountRoom>,
    /// Gateway URL to use instead of the rooms' announced one.
    pub gateway_url: Option<String>,
    /// Deadline of each session.
    pub session_timeout: Duration,
}

impl std::fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinRequest")
            .field("me", &self.me)
            .field("kind", &self.kind)
            .field("aux_info", &self.aux_info)
            .field("accounts", &self.accounts)
            .field("gateway_url", &self.gateway_url)
            .finish_non_exhaustive()
    }
}

/// Most accounts one wallet creation may have.
pub const MAX_ACCOUNTS: usize = 100;

impl JoinRequest {
    /// Checks indices, identities, rooms and primes before any network traffic.
    pub fn validate(&self) -> Result<(), MpcError> {
        if self.me >= PARTIES || self.me == crate::COSIGNER {
            return Err(MpcError::input(format!(
                "party index {} cannot join as a user party (0 or 2)",
                self.me
            )));
        }
        let expected: BTreeSet<u16> = (0..PARTIES).filter(|&i| i != self.me).collect();
        let got: BTreeSet<u16> = self.peers.keys().copied().collect();
        if got != expected {
            return Err(MpcError::input(format!(
                "need the identities of parties {expected:?}, got {got:?}"
            )));
        }
        let mut ids = BTreeSet::from([self.identity.public().to_bytes()]);
        for id in self.peers.values() {
            if !ids.insert(id.to_bytes()) {
                return Err(MpcError::input("the three parties' identities must differ"));
            }
        }
        if self.accounts.is_empty() || self.accounts.len() > MAX_ACCOUNTS {
            return Err(MpcError::input(format!(
                "need 1..={MAX_ACCOUNTS} accounts, got {}",
                self.accounts.len()
            )));
        }
        let mut sessions = BTreeSet::new();
        let mut accounts = BTreeSet::new();
        for (what, room) in std::iter::once(("aux_info", &self.aux_info)).chain(
            self.accounts
                .iter()
                .map(|a| (a.account_id.as_str(), &a.keygen)),
        ) {
            check_room(what, room)?;
            if !sessions.insert(room.session_id.as_str()) {
                return Err(MpcError::input(format!(
                    "session id {} is used twice",
                    room.session_id
                )));
            }
            if self.gateway_url.is_none() && room.gateway_url.trim().is_empty() {
                return Err(MpcError::input(format!(
                    "room {what} has no gateway_url and no override is configured"
                )));
            }
        }
        for a in &self.accounts {
            if a.account_id.is_empty() || a.account_id.len() > 128 {
                return Err(MpcError::input("account ids must have 1..=128 characters"));
            }
            if !accounts.insert(a.account_id.as_str()) {
                return Err(MpcError::input(format!(
                    "account id {} is used twice",
                    a.account_id
                )));
            }
        }
        self.primes
            .to_pregenerated()
            .map_err(|e| MpcError::config(format!("primes: {e}")))?;
        if self.session_timeout.is_zero() {
            return Err(MpcError::config("the session timeout is zero"));
        }
        Ok(())
    }

    fn roster(&self) -> Result<Roster, MpcError> {
        let mut all: Vec<(u16, PublicIdentity)> =
            self.peers.iter().map(|(&i, id)| (i, *id)).collect();
        all.push((self.me, self.identity.public()));
        all.sort_by_key(|(i, _)| *i);
        Roster::new(all).map_err(|e| MpcError::input(format!("roster: {e}")))
    }

    fn context(&self, room: &RoomInfo, roster: &Roster) -> Result<PartyContext, MpcError> {
        let url = self
            .gateway_url
            .clone()
            .unwrap_or_else(|| room.gateway_url.clone());
        let gateway = GatewayClient::new(&url).map_err(|e| MpcError::GatewayUnavailable {
            reason: format!("{url}: {e}"),
        })?;
        Ok(PartyContext {
            gateway,
            room: room.room.clone(),
            token: (!room.room_token.is_empty()).then(|| room.room_token.clone()),
            session_id: SessionId::new(room.session_id.clone())
                .map_err(|e| MpcError::input(format!("session id: {e}")))?,
            me: self.me,
            identity: self.identity.clone(),
            roster: roster.clone(),
            timeout: self.session_timeout,
        })
    }
}

fn check_room(what: &str, room: &RoomInfo) -> Result<(), MpcError> {
    if room.room.is_empty() || room.room.len() > 256 {
        return Err(MpcError::input(format!(
            "room {what}: the room name must have 1..=256 characters"
        )));
    }
    SessionId::new(room.session_id.clone())
        .map_err(|e| MpcError::input(format!("room {what}: invalid session id: {e}")))?;
    if room.room_token.len() > 4096 {
        return Err(MpcError::input(format!("room {what}: room token too long")));
    }
    Ok(())
}

fn report(
    progress: &Progress,
    stage: &str,
    me: u16,
    account: Option<&str>,
    done: u32,
    total: u32,
    finished: bool,
) {
    progress.on_progress(ProgressEvent {
        stage: stage.into(),
        party: Some(me),
        account_id: account.map(str::to_string),
        done,
        total,
        finished,
    });
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
    let roster = req.roster()?;
    let me = req.me;
    let primes = req
        .primes
        .to_pregenerated()
        .map_err(|e| MpcError::config(format!("primes: {e}")))?;

    let ctx = req.context(&req.aux_info, &roster)?;
    let sid = req.aux_info.session_id.clone();
    let sid2 = sid.clone();
    let pr = round_progress(&progress, "aux-info", me, None);
    let out = run_session(
        ctx,
        move || Session::aux_info(sid2.as_bytes(), me, PARTIES, primes),
        pr,
    )
    .await
    .map_err(|e| MpcError::party("aux-info", &sid, e))?;
    let aux = match out {
        SessionOutput::AuxInfo(a) => *a,
        _ => return Err(unexpected("aux-info", &sid)),
    };

    let mut bundle = KeyShareBundle::new(me);
    let created_at = crate::now_secs();
    for acct in &req.accounts {
        let ctx = req.context(&acct.keygen, &roster)?;
        let sid = acct.keygen.session_id.clone();
        let sid2 = sid.clone();
        let pr = round_progress(&progress, "keygen", me, Some(acct.account_id.clone()));
        let out = run_session(
            ctx,
            move || Session::keygen(sid2.as_bytes(), me, PARTIES, THRESHOLD),
            pr,
        )
        .await
        .map_err(|e| MpcError::party("keygen", &sid, e))?;
        let share = match out {
            SessionOutput::Keygen(s) => *s,
            _ => return Err(unexpected("keygen", &sid)),
        };
        let a = Account::new(acct.account_id.clone(), req.kind.into(), share, created_at);
        a.complete(&aux).map_err(|e| MpcError::SessionFailed {
            stage: "keygen".into(),
            session_id: sid.clone(),
            reason: format!("the new share does not fit the aux info: {e}"),
            blamed: Vec::new(),
        })?;
        bundle.accounts.insert(a.id.clone(), a);
    }
    bundle.aux_info = Some(aux);
    bundle.identity_secret = Some(req.identity.to_seed_hex().to_string());
    bundle.peers = req
        .peers
        .iter()
        .map(|(&i, id)| (i, id.to_string()))
        .collect();
    Ok(bundle)
}

fn unexpected(stage: &str, sid: &str) -> MpcError {
    MpcError::SessionFailed {
        stage: stage.into(),
        session_id: sid.into(),
        reason: "the session produced an unexpected kind of output".into(),
        blamed: Vec::new(),
    }
}

fn round_progress(
    progress: &Progress,
    stage: &'static str,
    me: u16,
    account: Option<String>,
) -> impl Fn(mpc_core::session::Progress) + Send + 'static {
    let progress = Arc::clone(progress);
    move |p| {
        report(
            &progress,
            stage,
            me,
            account.as_deref(),
            u32::from(p.round.min(p.total_rounds)),
            u32::from(p.total_rounds),
            p.finished,
        )
    }
}

/// The public keys (compressed SEC1 hex) of a bundle's accounts, by account id.
pub fn bundle_public_keys(bundle: &KeyShareBundle) -> BTreeMap<String, String> {
    bundle
        .accounts
        .values()
        .map(|a| (a.id.clone(), a.public_key.clone()))
        .collect()
}

/// Writes a party's bundle (encrypted under `passphrase`) to `path` and its metadata to
/// `<stem>.wallet.json`, both atomically, then syncs the directory. Blocking (Argon2
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
        std::fs::create_dir_all(dir).map_err(|e| MpcError::io(dir, e))?;
    }
    // Encrypt first: nothing is written if that fails.
    let text = bundle
        .encrypt(passphrase, kdf(insecure_fast_kdf))
        .map_err(|e| MpcError::keystore(path, e))?;
    meta.save(path)?;
    if let Err(e) = write_atomically(path, text.as_bytes()) {
        let _ = std::fs::remove_file(&meta_file);
        return Err(MpcError::keystore(path, e));
    }
    // The renames are durable only once the directory entry is synced.
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
            let _ = std::fs::remove_file(path);
            let _ = std::fs::remove_file(&meta_file);
            return Err(MpcError::io(dir, e));
        }
    }
    Ok(())
}

impl CosignerClient {
    /// Opens a wallet at the cosigner as the device (`CreateWallet`, signed by
    /// `device`): registers the device and recovery identities and returns the rooms of
    /// aux info and of one DKG per account. The caller then runs (or has the other
    /// parties run) [`join_wallet_creation`].
    pub async fn open_wallet(
        &self,
        device: &IdentityKey,
        recovery: &PublicIdentity,
        accounts: u32,
        kind: AccountKind,
        label: &str,
    ) -> Result<WalletRooms, MpcError> {
        if !(1..=MAX_ACCOUNTS as u32).contains(&accounts) {
            return Err(MpcError::input(format!(
                "accounts must be between 1 and {MAX_ACCOUNTS}, got {accounts}"
            )));
        }
        let created = self
            .create_wallet(device, recovery, accounts, kind, label)
            .await?;
        if created.accounts.len() != accounts as usize {
            return Err(MpcError::CosignerRejected {
                code: "invalid_response".into(),
                reason: format!(
                    "asked for {accounts} accounts, the cosigner opened {}",
                    created.accounts.len()
                ),
            });
        }
        Ok(WalletRooms {
            wallet_id: created.wallet_id,
            cosigner_identity: created.cosigner_identity,
            aux_info: created.aux_info,
            accounts: created
                .accounts
                .into_iter()
                .map(|a| AccountRoom {
                    account_id: a.account_id,
                    keygen: a.keygen,
                })
                .collect(),
        })
    }

    /// Confirms the wallet's public keys (`ConfirmWallet`, signed by the device key
    /// registered with [`open_wallet`](Self::open_wallet)); the cosigner commits the
    /// wallet when they match its own. Retries while its DKG is still running.
    pub async fn confirm_wallet_keys(
        &self,
        device: &IdentityKey,
        wallet_id: &str,
        public_keys: BTreeMap<String, String>,
    ) -> Result<bool, MpcError> {
        self.confirm_wallet(device, wallet_id, 0, public_keys).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpc_core::primes::dev_fixture_primes;

    fn room(sid: &str) -> RoomInfo {
        RoomInfo {
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
            primes: dev_fixture_primes()[2].clone(),
            kind: AccountKind::Hd,
            aux_info: room("aux-session-0001"),
            accounts: vec![AccountRoom {
                account_id: "acct-0".into(),
                keygen: room("keygen-session-0001"),
            }],
            gateway_url: None,
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
        r.accounts[0].keygen.session_id = r.aux_info.session_id.clone();
        assert!(r.validate().is_err(), "reused session id accepted");
        let mut r = request();
        r.accounts.push(r.accounts[0].clone());
        r.accounts[1].keygen = room("keygen-session-0002");
        assert!(r.validate().is_err(), "duplicate account id accepted");
        let mut r = request();
        r.accounts.clear();
        assert!(r.validate().is_err());
        let mut r = request();
        r.aux_info.gateway_url.clear();
        assert!(r.validate().is_err());
        r.gateway_url = Some("http://127.0.0.1:2".into());
        r.validate().unwrap();
        let mut r = request();
        r.primes.primes[0] = "zz".into();
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
