//! Wallet creation: the pending wallets (created, DKG running or done, not confirmed
//! yet), the cosigner's side of aux info (`auxinfo`; skipped for a wallet from an
//! enrollment, whose stored aux info it reuses) + one DKG per account as a background
//! job, and the confirmation that compares public keys and commits the wallet to the
//! store (spending its enrollment in the same transaction).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cosigner_api::auth::now_ms;
use cosigner_api::{pb, PARTY_COSIGNER};
use mpc_core::{Account, AccountKind, AuxInfo, IncompleteKeyShare, Session, SessionOutput};
use mpc_party::run_session;
use mpc_wire::{PublicIdentity, Roster, SessionId};
use tokio::sync::watch;

use crate::audit::AuditRecord;
use crate::auxinfo::{admit_to_compute, remaining, run_aux_info, with_context};
use crate::error::CosignerError;
use crate::metrics::SessionKind;
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
    /// The enrollment whose aux info the wallet reuses (spent when it is committed).
    enrollment_id: Option<String>,
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
    /// From an enrollment: only the DKGs run, with its aux info.
    pub enrollment: Option<Enrolled>,
}

/// The finished enrollment a wallet is created from.
pub(crate) struct Enrolled {
    /// Its id (spent when the wallet is committed).
    pub id: String,
    /// The cosigner's aux info of the enrollment.
    pub aux: Box<AuxInfo>,
}

/// A started wallet creation: where the parties meet.
pub(crate) struct Created {
    pub wallet_id: String,
    /// The aux-info room (none for a wallet from an enrollment).
    pub aux_room: Option<pb::SessionRoom>,
    pub keygens: Vec<(String, pb::SessionRoom)>,
    pub expires_at_ms: u64,
}

/// Registers a pending wallet and starts the cosigner's side of its aux info (unless it
/// comes from an enrollment) and DKG in the background. Holds nothing but the pending
/// entry (bounded by `max_pending_creations`, with the running enrollments) until the
/// other parties are live: see [`dkg`].
pub(crate) fn start(
    st: &Arc<State>,
    w: NewWallet,
    now: u64,
    registration: &str,
) -> Result<Created, CosignerError> {
    let me = st.identity.public();
    let roster = Roster::new([(0, w.device), (PARTY_COSIGNER, me), (2, w.recovery)])
        .map_err(|e| CosignerError::invalid(e.to_string()))?;
    st.check_pending_capacity()?;
    let wallet_id = random_id()?.to_string();
    let deadline_ms = now + st.cfg.wallet_creation_timeout_secs * 1000;
    let expiry_unix = deadline_ms / 1000 + 1;
    let (aux, aux_room, enrollment_id) = match w.enrollment {
        Some(e) => (AuxSource::Enrolled(e.aux), None, Some(e.id)),
        None => {
            let room = st.room(&random_id()?, expiry_unix);
            (AuxSource::Run(room.clone()), Some(room), None)
        }
    };
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
            enrollment_id,
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
        aux,
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

/// Where a wallet's aux info comes from.
enum AuxSource {
    /// Run now in this room, before the DKGs (the combined CreateWallet).
    Run(pb::SessionRoom),
    /// The cosigner's aux info of a finished enrollment.
    Enrolled(Box<AuxInfo>),
}

/// The cosigner's side of the wallet's aux info (unless it comes from an enrollment)
/// and of every account's DKG. Until every other party is live this creation holds no
/// slot and no primes: a caller that never joins costs a pending entry and one gateway
/// subscription.
async fn dkg(
    st: &Arc<State>,
    wallet_id: &str,
    aux: AuxSource,
    keygens: Vec<(String, pb::SessionRoom)>,
    roster: Roster,
    deadline_ms: u64,
) -> Result<DkgResult, CosignerError> {
    let (aux, _slot) = match aux {
        AuxSource::Run(room) => {
            let slot = admit_to_compute(st, &room, &roster, deadline_ms, "aux-info").await?;
            let aux = run_aux_info(st, wallet_id, &room, &roster, deadline_ms).await?;
            (aux, slot)
        }
        AuxSource::Enrolled(aux) => {
            let first = keygens
                .first()
                .map(|(_, room)| room.clone())
                .ok_or_else(|| CosignerError::internal("a wallet without accounts"))?;
            let slot = admit_to_compute(st, &first, &roster, deadline_ms, "keygen").await?;
            (*aux, slot)
        }
    };
    let mut shares = Vec::with_capacity(keygens.len());
    for (account_id, room) in keygens {
        let sid = SessionId::new(room.session_id.clone()).map_err(CosignerError::internal)?;
        let sid_bytes = sid.as_str().as_bytes().to_vec();
        let ctx = st.party_ctx(&room, sid, roster.clone(), remaining(deadline_ms));
        let out = run_session(
            ctx,
            move || Session::keygen(&sid_bytes, PARTY_COSIGNER, 3, 2),
            |_| {},
        )
        .await;
        st.metrics.session(SessionKind::Keygen, out.is_ok());
        let out = out.map_err(|e| with_context(&format!("keygen of {account_id}"), e.into()))?;
        let SessionOutput::Keygen(share) = out else {
            return Err(CosignerError::internal(format!(
                "keygen of {account_id} produced another output"
            )));
        };
        tracing::info!(wallet_id = %wallet_id, account_id = %account_id, "keygen done");
        shares.push((account_id, *share));
    }
    Ok(DkgResult { aux, shares })
}

async fn run_dkg(
    st: Arc<State>,
    wallet_id: String,
    aux: AuxSource,
    keygens: Vec<(String, pb::SessionRoom)>,
    roster: Roster,
    deadline_ms: u64,
    tx: watch::Sender<DkgState>,
) {
    let result = dkg(&st, &wallet_id, aux, keygens, roster, deadline_ms).await;
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
        share_epoch: 0,
        last_refresh_at_ms: None,
        retired_device_identities: Vec::new(),
    };
    let rec2 = rec.clone();
    let enrollment = p.enrollment_id.clone();
    let committed = st
        .blocking(move |s| match &enrollment {
            Some(id) => s.insert_wallet_from_enrollment(&rec2, id, now),
            None => s.insert_wallet(&rec2),
        })
        .await;
    match committed {
        Ok(()) | Err(CosignerError::Store(StoreError::Exists(_))) => {}
        Err(CosignerError::Store(StoreError::EnrollmentGone(id))) => {
            // Another wallet committed from the same enrollment first (or it expired).
            discard(format!(
                "enrollment {id} is unknown, expired or already spent"
            ))?;
            return Err(CosignerError::UnknownEnrollment(id));
        }
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
                    enrollment_id: None,
                    state: rx.clone(),
                },
            );
        }
        assert_eq!(c.expire(500), 1);
        assert!(c.get("old").is_none() && c.get("new").is_some());
    }
}
