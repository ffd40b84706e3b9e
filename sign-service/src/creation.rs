//! Wallet creation: the pending wallets (created, DKG running or done, not confirmed
//! yet), the cosigner's side of aux info + one DKG per account as a background job,
//! and the confirmation that compares public keys and commits the wallet to the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cosigner_api::auth::now_ms;
use cosigner_api::{pb, PARTY_COSIGNER};
use mpc_core::{
    Account, AccountKind, AuxInfo, IncompleteKeyShare, Session, SessionError, SessionOutput,
};
use mpc_party::run_session;
use mpc_wire::{PublicIdentity, Roster, SessionId};
use tokio::sync::watch;

use crate::audit::AuditRecord;
use crate::error::CosignerError;
use crate::state::{random_id, State};
use crate::store::{StoreError, WalletRecord};

/// Where the cosigner's side of a wallet's DKG stands.
#[derive(Clone)]
enum DkgState {
    Running,
    Done(Arc<DkgResult>),
    Failed(Arc<CosignerError>),
}

struct DkgResult {
    aux: AuxInfo,
    shares: Vec<(String, IncompleteKeyShare)>,
}

/// A wallet created and not confirmed yet.
pub(crate) struct Pending {
    device: PublicIdentity,
    recovery: PublicIdentity,
    kind: AccountKind,
    label: String,
    created_at_ms: u64,
    expires_at_ms: u64,
    state: watch::Receiver<DkgState>,
}

impl Pending {
    /// The registered identity of the caller `party` (0 device, else recovery).
    pub(crate) fn identity_of(&self, party: u16) -> PublicIdentity {
        if party == 0 {
            self.device
        } else {
            self.recovery
        }
    }
}

/// The pending wallets, by id.
#[derive(Default)]
pub(crate) struct Creations {
    pending: Mutex<HashMap<String, Arc<Pending>>>,
}

impl Creations {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Pending>>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The pending wallet `id`, if any.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Pending>> {
        self.lock().get(id).cloned()
    }

    fn insert(&self, id: String, p: Pending) {
        self.lock().insert(id, Arc::new(p));
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// How many wallets are pending.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Drops the pending wallets expired at `now`; returns how many.
    pub(crate) fn expire(&self, now: u64) -> usize {
        let mut p = self.lock();
        let before = p.len();
        p.retain(|_, w| w.expires_at_ms > now);
        before - p.len()
    }
}

/// A validated CreateWallet request.
pub(crate) struct NewWallet {
    pub device: PublicIdentity,
    pub recovery: PublicIdentity,
    pub accounts: u32,
    pub kind: AccountKind,
    pub label: String,
}

/// A started wallet creation: where the parties meet.
pub(crate) struct Created {
    pub wallet_id: String,
    pub aux_room: pb::SessionRoom,
    pub keygens: Vec<(String, pb::SessionRoom)>,
    pub expires_at_ms: u64,
}

/// Registers a pending wallet and starts the cosigner's side of its aux info and DKG
/// in the background. Holds nothing but the pending entry (bounded by
/// `max_pending_creations`) until the other parties are live: see [`dkg`].
pub(crate) fn start(
    st: &Arc<State>,
    w: NewWallet,
    now: u64,
    registration: &str,
) -> Result<Created, CosignerError> {
    let me = st.identity.public();
    let roster = Roster::new([(0, w.device), (PARTY_COSIGNER, me), (2, w.recovery)])
        .map_err(|e| CosignerError::invalid(e.to_string()))?;
    if st.creations.len() >= st.cfg.max_pending_creations {
        return Err(CosignerError::Busy);
    }
    let wallet_id = random_id()?.to_string();
    let deadline_ms = now + st.cfg.wallet_creation_timeout_secs * 1000;
    let expiry_unix = deadline_ms / 1000 + 1;
    let aux_room = st.room(&random_id()?, expiry_unix);
    let mut keygens = Vec::with_capacity(w.accounts as usize);
    for k in 0..w.accounts {
        keygens.push((format!("account-{k}"), st.room(&random_id()?, expiry_unix)));
    }
    let expires_at_ms = deadline_ms + st.cfg.pending_wallet_ttl_secs * 1000;
    let (tx, rx) = watch::channel(DkgState::Running);
    st.creations.insert(
        wallet_id.clone(),
        Pending {
            device: w.device,
            recovery: w.recovery,
            kind: w.kind,
            label: w.label,
            created_at_ms: now,
            expires_at_ms,
            state: rx,
        },
    );
    st.audit(AuditRecord {
        timestamp_ms: now,
        event: "create_wallet",
        wallet_id: wallet_id.clone(),
        party: Some(0),
        outcome: Some(format!(
            "started: {} accounts, registration {registration}",
            w.accounts
        )),
        ..Default::default()
    })?;
    tracing::info!(wallet_id = %wallet_id, accounts = w.accounts, "wallet creation started");
    tokio::spawn(run_dkg(
        Arc::clone(st),
        wallet_id.clone(),
        aux_room.clone(),
        keygens.clone(),
        roster,
        deadline_ms,
        tx,
    ));
    Ok(Created {
        wallet_id,
        aux_room,
        keygens,
        expires_at_ms,
    })
}

/// Waits until an authenticated envelope from EVERY other party of `roster` appears in
/// the room (the other parties broadcast their first aux-info round without waiting for
/// us, once they have their primes): the proof that they are live.
async fn wait_for_peers(
    st: &State,
    room: &pb::SessionRoom,
    roster: &Roster,
    timeout: Duration,
) -> Result<(), CosignerError> {
    use futures_util::StreamExt;
    let sid = SessionId::new(room.session_id.clone()).map_err(CosignerError::internal)?;
    let mut channel =
        mpc_wire::Channel::new(sid, PARTY_COSIGNER, st.identity.clone(), roster.clone())
            .map_err(CosignerError::internal)?;
    let token = (!room.room_token.is_empty()).then_some(room.room_token.as_str());
    let mut stream = Box::pin(st.gateway.subscribe(&room.room, token, None));
    let mut silent: Vec<u16> = roster
        .iter()
        .map(|(p, _)| p)
        .filter(|&p| p != PARTY_COSIGNER)
        .collect();
    let wait = async {
        while let Some(item) = stream.next().await {
            let (_, body) = item.map_err(|e| CosignerError::GatewayUnavailable(e.to_string()))?;
            let sender = match channel.open(&body) {
                Ok(mpc_wire::Opened::Message(m)) => Some(m.sender),
                Ok(mpc_wire::Opened::NotForMe { sender, .. }) => Some(sender),
                Ok(mpc_wire::Opened::OwnEcho { .. }) => None,
                Err(e) => {
                    tracing::warn!(room = %room.room, error = %e, "rejected envelope while waiting for peers");
                    None
                }
            };
            silent.retain(|&p| Some(p) != sender);
            if silent.is_empty() {
                return Ok(());
            }
        }
        Err(CosignerError::GatewayUnavailable(format!(
            "the gateway stream of room {} ended",
            room.room
        )))
    };
    let result = tokio::time::timeout(timeout, wait).await;
    match result {
        Ok(r) => r,
        Err(_) => Err(CosignerError::Timeout(format!(
            "parties {silent:?} did not join the aux-info session within {timeout:?}"
        ))),
    }
}

/// The cosigner's side of aux info and every account's DKG.
async fn dkg(
    st: &Arc<State>,
    wallet_id: &str,
    aux_room: pb::SessionRoom,
    keygens: Vec<(String, pb::SessionRoom)>,
    roster: Roster,
    deadline_ms: u64,
) -> Result<DkgResult, CosignerError> {
    let remaining = || Duration::from_millis(deadline_ms.saturating_sub(now_ms()).max(1));
    // Until every other party is live this creation holds no slot and no primes: a
    // caller that never joins costs a pending entry and one gateway subscription.
    wait_for_peers(st, &aux_room, &roster, remaining()).await?;
    // The creation budget, apart from the signing sessions': waiting here (the peers
    // wait in round 1) never takes a signing slot.
    let _slot = tokio::time::timeout(remaining(), st.creation_slot())
        .await
        .map_err(|_| {
            CosignerError::Timeout("no wallet-creation slot became free before the deadline".into())
        })??;
    let primes = st
        .primes
        .take(remaining())
        .await
        .map_err(|e| CosignerError::Timeout(e.to_string()))?;
    let sid = SessionId::new(aux_room.session_id.clone()).map_err(CosignerError::internal)?;
    let sid_bytes = sid.as_str().as_bytes().to_vec();
    let ctx = st.party_ctx(&aux_room, sid, roster.clone(), remaining());
    let wid = wallet_id.to_string();
    let out = run_session(
        ctx,
        move || {
            let primes = primes
                .to_pregenerated()
                .map_err(|e| SessionError::InvalidParams(e.to_string()))?;
            Session::aux_info(&sid_bytes, PARTY_COSIGNER, 3, primes)
        },
        move |p| tracing::debug!(wallet_id = %wid, round = p.round, "aux info progress"),
    )
    .await
    .map_err(|e| with_context("aux info", e.into()))?;
    let SessionOutput::AuxInfo(aux) = out else {
        return Err(CosignerError::internal(
            "aux info session produced another output",
        ));
    };
    tracing::info!(wallet_id = %wallet_id, "aux info done");
    // A peer whose Paillier modulus is made of the repository's PUBLIC test primes has
    // no Paillier secret at all: refused outside dev mode, before any key exists.
    let public = crate::import::parties_with_public_primes(&aux);
    if let Some(&party) = public.iter().find(|&&p| p != PARTY_COSIGNER) {
        if !st.cfg.insecure_dev_primes {
            return Err(CosignerError::SessionFailed {
                party: Some(party),
                reason: format!(
                    "aux info: party {party}'s Paillier modulus is built from the repository's \
                     public test primes (anyone can factor it); such peers are accepted only \
                     with insecure_dev_primes (tests and demos)"
                ),
            });
        }
    }
    if !public.is_empty() {
        tracing::warn!(wallet_id = %wallet_id, parties = ?public, "INSECURE: aux info uses the PUBLIC test primes (development only); the wallet is flagged");
    }
    let mut shares = Vec::with_capacity(keygens.len());
    for (account_id, room) in keygens {
        let sid = SessionId::new(room.session_id.clone()).map_err(CosignerError::internal)?;
        let sid_bytes = sid.as_str().as_bytes().to_vec();
        let ctx = st.party_ctx(&room, sid, roster.clone(), remaining());
        let out = run_session(
            ctx,
            move || Session::keygen(&sid_bytes, PARTY_COSIGNER, 3, 2),
            |_| {},
        )
        .await
        .map_err(|e| with_context(&format!("keygen of {account_id}"), e.into()))?;
        let SessionOutput::Keygen(share) = out else {
            return Err(CosignerError::internal(format!(
                "keygen of {account_id} produced another output"
            )));
        };
        tracing::info!(wallet_id = %wallet_id, account_id = %account_id, "keygen done");
        shares.push((account_id, *share));
    }
    Ok(DkgResult { aux: *aux, shares })
}

/// Prefixes a session failure's text with the stage it failed in.
fn with_context(stage: &str, e: CosignerError) -> CosignerError {
    match e {
        CosignerError::SessionFailed { party, reason } => CosignerError::SessionFailed {
            party,
            reason: format!("{stage}: {reason}"),
        },
        CosignerError::Timeout(r) => CosignerError::Timeout(format!("{stage}: {r}")),
        other => other,
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_dkg(
    st: Arc<State>,
    wallet_id: String,
    aux_room: pb::SessionRoom,
    keygens: Vec<(String, pb::SessionRoom)>,
    roster: Roster,
    deadline_ms: u64,
    tx: watch::Sender<DkgState>,
) {
    let result = dkg(&st, &wallet_id, aux_room, keygens, roster, deadline_ms).await;
    let (mut state, outcome) = match result {
        Ok(r) => (
            DkgState::Done(Arc::new(r)),
            "dkg complete, awaiting ConfirmWallet".to_string(),
        ),
        Err(e) => {
            tracing::error!(wallet_id = %wallet_id, error = %e, "wallet creation failed");
            let text = format!("failed: {e}");
            (DkgState::Failed(Arc::new(e)), text)
        }
    };
    let audited = st.audit(AuditRecord {
        timestamp_ms: now_ms(),
        event: "wallet_dkg",
        wallet_id,
        outcome: Some(outcome),
        ..Default::default()
    });
    if let Err(e) = audited {
        // A wallet whose creation is not in the audit log is not committed.
        state = DkgState::Failed(Arc::new(e));
    }
    let _ = tx.send(state);
}

fn norm_hex(s: &str) -> String {
    s.trim().trim_start_matches("0x").to_ascii_lowercase()
}

/// Compares the caller's public keys with ours: same account set, same keys.
pub(crate) fn keys_match(
    ours: &[(String, String)],
    theirs: &HashMap<String, String>,
) -> Result<(), String> {
    if ours.len() != theirs.len() {
        return Err(format!(
            "expected public keys of {} accounts, got {}",
            ours.len(),
            theirs.len()
        ));
    }
    for (id, pk) in ours {
        match theirs.get(id) {
            None => return Err(format!("no public key for account {id}")),
            Some(t) if norm_hex(t) != *pk => {
                return Err(format!(
                    "public key mismatch for account {id}: cosigner has {pk}, caller reported {t}"
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A retried confirmation of a wallet already committed: the keys must still match.
pub(crate) fn reconfirm(
    wallet: &WalletRecord,
    public_keys: &HashMap<String, String>,
) -> Result<(), CosignerError> {
    let ours: Vec<(String, String)> = wallet
        .accounts
        .values()
        .map(|a| (a.id.clone(), a.public_key.clone()))
        .collect();
    keys_match(&ours, public_keys).map_err(CosignerError::KeyMismatch)
}

/// Confirms a pending wallet for `party` (already authenticated): waits (up to
/// `confirm_wait_secs`) for the cosigner's DKG, compares the public keys and commits
/// the wallet. A DKG still running answers `wallet_not_ready` (retry); a failed DKG or
/// a key mismatch discards the wallet.
pub(crate) async fn confirm(
    st: &Arc<State>,
    wallet_id: &str,
    party: u16,
    p: &Pending,
    public_keys: &HashMap<String, String>,
) -> Result<WalletRecord, CosignerError> {
    let now = now_ms();
    let mut rx = p.state.clone();
    let wait = Duration::from_secs(st.cfg.confirm_wait_secs);
    let state = tokio::time::timeout(wait, async {
        rx.wait_for(|s| !matches!(s, DkgState::Running))
            .await
            .map(|r| (*r).clone())
    })
    .await;
    let state = match state {
        Err(_) => return Err(CosignerError::DkgRunning(wallet_id.to_string())),
        Ok(Err(_)) => return Err(CosignerError::internal("the wallet creation task vanished")),
        Ok(Ok(s)) => s,
    };
    let discard = |reason: String| -> Result<(), CosignerError> {
        st.creations.remove(wallet_id);
        st.audit(AuditRecord {
            timestamp_ms: now,
            event: "confirm_wallet",
            wallet_id: wallet_id.to_string(),
            party: Some(party),
            decision: Some("deny"),
            reason: Some(reason),
            outcome: Some("discarded".into()),
            ..Default::default()
        })
    };
    let result = match state {
        DkgState::Running => return Err(CosignerError::DkgRunning(wallet_id.to_string())),
        DkgState::Failed(e) => {
            discard(e.to_string())?;
            return Err(CosignerError::CreationFailed(Box::new(clone_failure(&e))));
        }
        DkgState::Done(r) => r,
    };
    let ours: Vec<(String, String)> = result
        .shares
        .iter()
        .map(|(id, s)| (id.clone(), hex::encode(s.shared_public_key.to_bytes(true))))
        .collect();
    if let Err(why) = keys_match(&ours, public_keys) {
        discard(why.clone())?;
        return Err(CosignerError::KeyMismatch(format!(
            "{why}; the wallet was discarded"
        )));
    }
    let created_at = p.created_at_ms / 1000;
    let accounts = result
        .shares
        .iter()
        .map(|(id, share)| {
            let mut a = Account::new(id.clone(), p.kind, share.clone(), created_at);
            if !p.label.is_empty() {
                a.label = Some(p.label.clone());
            }
            (id.clone(), a)
        })
        .collect();
    let rec = WalletRecord {
        wallet_id: wallet_id.to_string(),
        label: p.label.clone(),
        kind: p.kind,
        device_identity: p.device,
        recovery_identity: p.recovery,
        created_at_ms: p.created_at_ms,
        insecure_dev_primes: crate::import::uses_public_primes(&result.aux),
        aux_info: result.aux.clone(),
        accounts,
    };
    let rec2 = rec.clone();
    match st.blocking(move |s| s.insert_wallet(&rec2)).await {
        Ok(()) | Err(CosignerError::Store(StoreError::Exists(_))) => {}
        Err(e) => return Err(e),
    }
    st.creations.remove(wallet_id);
    st.audit(AuditRecord {
        timestamp_ms: now,
        event: "confirm_wallet",
        wallet_id: wallet_id.to_string(),
        party: Some(party),
        decision: Some("allow"),
        outcome: Some("committed".into()),
        insecure_dev_primes: rec.insecure_dev_primes.then_some(true),
        ..Default::default()
    })?;
    tracing::info!(wallet_id = %wallet_id, accounts = rec.accounts.len(), insecure_dev_primes = rec.insecure_dev_primes, "wallet committed");
    Ok(rec)
}

/// The failure of a DKG as an owned error (the state holds it shared).
fn clone_failure(e: &CosignerError) -> CosignerError {
    match e {
        CosignerError::SessionFailed { party, reason } => CosignerError::SessionFailed {
            party: *party,
            reason: reason.clone(),
        },
        CosignerError::Timeout(r) => CosignerError::Timeout(r.clone()),
        CosignerError::GatewayUnavailable(r) => CosignerError::GatewayUnavailable(r.clone()),
        other => CosignerError::internal(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirm_key_comparison() {
        let ours = vec![
            ("a".to_string(), "02ab".to_string()),
            ("b".to_string(), "03cd".to_string()),
        ];
        let theirs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(keys_match(&ours, &theirs(&[("a", "0x02AB"), ("b", "03cd")])).is_ok());
        assert!(keys_match(&ours, &theirs(&[("a", "02ab")]))
            .unwrap_err()
            .contains("2 accounts"));
        assert!(keys_match(&ours, &theirs(&[("a", "02ab"), ("c", "03cd")]))
            .unwrap_err()
            .contains("account b"));
        assert!(keys_match(&ours, &theirs(&[("a", "02ab"), ("b", "03ce")]))
            .unwrap_err()
            .contains("mismatch"));
    }

    #[test]
    fn expired_pending_wallets_are_dropped() {
        let c = Creations::default();
        let (_tx, rx) = watch::channel(DkgState::Running);
        let id = mpc_wire::IdentityKey::generate().unwrap().public();
        for (name, exp) in [("old", 10), ("new", 1000)] {
            c.insert(
                name.into(),
                Pending {
                    device: id,
                    recovery: id,
                    kind: AccountKind::Hd,
                    label: String::new(),
                    created_at_ms: 0,
                    expires_at_ms: exp,
                    state: rx.clone(),
                },
            );
        }
        assert_eq!(c.expire(500), 1);
        assert!(c.get("old").is_none() && c.get("new").is_some());
    }
}
