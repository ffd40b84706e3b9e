//! Key lifecycle (docs/lifecycle.md): a proactive refresh of every share of a wallet
//! (StartRefresh) and the replacement of its device keeping every address
//! (ReplaceDevice: repair of index 0's share for the new device, a refresh among the new
//! group, new aux info). This module keeps the pending sessions (in memory, like the
//! pending wallets of `creation`: at most one per wallet) and opens their rooms;
//! `run` is the cosigner's side of the protocol sessions in the background, `confirm`
//! the ConfirmLifecycle step that commits the result (`Store::commit_lifecycle`).
//!
//! Until the commit the wallet keeps signing with its epoch-`e` shares; a session that
//! fails, mismatches or expires changes nothing.

mod confirm;
mod run;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use cosigner_api::{pb, PARTY_COSIGNER};
use mpc_core::{AuxInfo, IncompleteKeyShare};
use mpc_wire::{PublicIdentity, Roster};
use tokio::sync::watch;

use crate::audit::AuditRecord;
use crate::error::CosignerError;
use crate::state::{random_id, State};
use crate::store::WalletRecord;

pub(crate) use confirm::{confirm, reconfirm};

/// What a lifecycle session does.
// One value per pending session (not a hot path): boxing the identity buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A proactive refresh among the wallet's three parties.
    Refresh,
    /// A device replacement: the new device identity (index 0 of the new group).
    Replace(PublicIdentity),
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Refresh => "refresh",
            Kind::Replace(_) => "device replacement",
        }
    }
}

/// Where the cosigner's side of a lifecycle session stands.
#[derive(Clone)]
enum RunState {
    Running,
    Done(Arc<Outcome>),
    Failed(Arc<CosignerError>),
}

/// The cosigner's result of a lifecycle session: its new core share of every account
/// (epoch `e + 1`), their public-data digests (hex) and, for a replacement, its aux
/// info for the new group.
struct Outcome {
    shares: BTreeMap<String, IncompleteKeyShare>,
    digests: BTreeMap<String, String>,
    aux: Option<Box<AuxInfo>>,
}

/// A lifecycle session started and not committed yet.
pub(crate) struct Pending {
    /// Its id (ConfirmLifecycle names it).
    pub(crate) lifecycle_id: String,
    wallet_id: String,
    kind: Kind,
    /// The epoch the sessions work on.
    epoch: u64,
    expires_at_ms: u64,
    state: watch::Receiver<RunState>,
    /// The user parties whose digests matched ours (0, 2).
    confirmed: Mutex<BTreeSet<u16>>,
    /// The new epoch once committed (wakes a confirmation waiting for the other party).
    committed: watch::Sender<Option<u64>>,
}

impl Pending {
    /// The identity that signs for `party` in this session: for a replacement, party 0
    /// is the NEW device; otherwise the wallet's registered identities.
    pub(crate) fn identity_of(&self, wallet: &WalletRecord, party: u16) -> Option<PublicIdentity> {
        match (party, self.kind) {
            (0, Kind::Replace(new)) => Some(new),
            _ => wallet.identity_of(party).copied(),
        }
    }

    /// Whether this is a replacement (party 0 is the new device: its index is revoked
    /// until the commit, its identity is not).
    pub(crate) fn replaces_device(&self) -> bool {
        matches!(self.kind, Kind::Replace(_))
    }

    fn lock_confirmed(&self) -> MutexGuard<'_, BTreeSet<u16>> {
        self.confirmed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The pending lifecycle sessions, by wallet id (at most one per wallet).
#[derive(Default)]
pub(crate) struct Lifecycles {
    by_wallet: Mutex<HashMap<String, Arc<Pending>>>,
}

impl Lifecycles {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Pending>>> {
        self.by_wallet
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The unexpired pending session of `wallet_id` named `lifecycle_id`, if any.
    pub(crate) fn get(
        &self,
        wallet_id: &str,
        lifecycle_id: &str,
        now: u64,
    ) -> Option<Arc<Pending>> {
        self.lock()
            .get(wallet_id)
            .filter(|p| p.lifecycle_id == lifecycle_id && p.expires_at_ms > now)
            .cloned()
    }

    /// Registers `p` unless its wallet has an unexpired pending session (`busy`).
    fn insert(&self, p: Arc<Pending>, now: u64) -> Result<(), CosignerError> {
        let mut m = self.lock();
        if m.get(&p.wallet_id).is_some_and(|q| q.expires_at_ms > now) {
            return Err(CosignerError::LifecycleBusy(p.wallet_id.clone()));
        }
        m.insert(p.wallet_id.clone(), p);
        Ok(())
    }

    /// Drops `p` (if it is still the wallet's pending session).
    fn remove(&self, p: &Arc<Pending>) {
        let mut m = self.lock();
        if m.get(&p.wallet_id).is_some_and(|q| Arc::ptr_eq(q, p)) {
            m.remove(&p.wallet_id);
        }
    }

    /// Drops the sessions expired at `now` (nothing of theirs was committed); returns
    /// how many.
    pub(crate) fn expire(&self, now: u64) -> usize {
        let mut m = self.lock();
        let before = m.len();
        m.retain(|_, p| p.expires_at_ms > now);
        before - m.len()
    }
}

/// One account's rooms.
#[derive(Clone)]
struct AccountRooms {
    account_id: String,
    repair: Option<pb::SessionRoom>,
    refresh: pb::SessionRoom,
}

/// A lifecycle session registered (and, for a replacement, the old device revoked by
/// the caller meanwhile) but not started yet: [`Opened::start`] starts the cosigner's
/// side; dropping it unregisters the session.
pub(crate) struct Opened {
    st: Arc<State>,
    pending: Arc<Pending>,
    plan: Option<(run::Plan, watch::Sender<RunState>)>,
    response: pb::LifecycleResponse,
}

impl Drop for Opened {
    fn drop(&mut self) {
        if self.plan.is_some() {
            self.st.lifecycles.remove(&self.pending);
        }
    }
}

impl Opened {
    /// Starts the cosigner's sessions in the background and answers with the rooms;
    /// `controls` are the wallet's controls after the request.
    pub(crate) fn start(mut self, controls: pb::WalletControls) -> pb::LifecycleResponse {
        if let Some((plan, tx)) = self.plan.take() {
            tokio::spawn(run::run(Arc::clone(&self.st), plan, tx));
        }
        let mut response = std::mem::take(&mut self.response);
        response.controls = Some(controls);
        response
    }
}

/// Opens a lifecycle session of `wallet` requested by `party` (authenticated, the
/// controls checked by the caller): registers it (`busy` if the wallet has one),
/// mints its rooms and audits the start. Nothing runs until [`Opened::start`].
pub(crate) fn open(
    st: &Arc<State>,
    wallet: &WalletRecord,
    party: u16,
    kind: Kind,
    reason: Option<String>,
    now: u64,
) -> Result<Opened, CosignerError> {
    let device = match kind {
        Kind::Refresh => wallet.device_identity,
        Kind::Replace(new) => new,
    };
    let roster = Roster::new([
        (0, device),
        (PARTY_COSIGNER, st.identity.public()),
        (2, wallet.recovery_identity),
    ])
    .map_err(|e| CosignerError::invalid(e.to_string()))?;
    let lifecycle_id = random_id()?.to_string();
    let deadline_ms = now.saturating_add(st.cfg.lifecycle_timeout_secs.saturating_mul(1000));
    let expiry_unix = deadline_ms / 1000 + 1;
    let aux_room = match kind {
        Kind::Refresh => None,
        Kind::Replace(_) => Some(st.room(&random_id()?, expiry_unix)),
    };
    let mut rooms = Vec::with_capacity(wallet.accounts.len());
    for account_id in wallet.accounts.keys() {
        let repair = match kind {
            Kind::Refresh => None,
            Kind::Replace(_) => Some(st.room(&random_id()?, expiry_unix)),
        };
        rooms.push(AccountRooms {
            account_id: account_id.clone(),
            repair,
            refresh: st.room(&random_id()?, expiry_unix),
        });
    }
    let (tx, rx) = watch::channel(RunState::Running);
    let pending = Arc::new(Pending {
        lifecycle_id: lifecycle_id.clone(),
        wallet_id: wallet.wallet_id.clone(),
        kind,
        epoch: wallet.share_epoch,
        expires_at_ms: deadline_ms,
        state: rx,
        confirmed: Mutex::new(BTreeSet::new()),
        committed: watch::channel(None).0,
    });
    st.lifecycles.insert(Arc::clone(&pending), now)?;
    let request_id = random_id()?.to_string();
    let response = pb::LifecycleResponse {
        lifecycle_id: lifecycle_id.clone(),
        epoch: wallet.share_epoch,
        aux_info: aux_room.clone(),
        accounts: rooms
            .iter()
            .map(|r| pb::LifecycleAccount {
                account_id: r.account_id.clone(),
                repair: r.repair.clone(),
                refresh: Some(r.refresh.clone()),
                public_key: wallet
                    .accounts
                    .get(&r.account_id)
                    .map(|a| a.public_key.clone())
                    .unwrap_or_default(),
            })
            .collect(),
        expires_at_ms: deadline_ms,
        request_id: request_id.clone(),
        controls: None,
    };
    let opened = Opened {
        st: Arc::clone(st),
        pending,
        plan: Some((
            run::Plan {
                lifecycle_id: lifecycle_id.clone(),
                wallet: wallet.clone(),
                kind,
                roster,
                aux_room,
                accounts: rooms,
                deadline_ms,
            },
            tx,
        )),
        response,
    };
    let new_device = match kind {
        Kind::Replace(new) => format!(", new device identity {new}"),
        Kind::Refresh => String::new(),
    };
    st.audit(AuditRecord {
        timestamp_ms: now,
        event: "lifecycle_started",
        wallet_id: wallet.wallet_id.clone(),
        party: Some(party),
        reason,
        request_id: Some(request_id),
        session_id: Some(lifecycle_id.clone()),
        outcome: Some(format!(
            "{} started at share epoch {}: {} accounts{new_device}",
            kind.as_str(),
            wallet.share_epoch,
            wallet.accounts.len()
        )),
        ..Default::default()
    })?;
    tracing::info!(wallet_id = %wallet.wallet_id, lifecycle_id = %lifecycle_id, kind = kind.as_str(), epoch = wallet.share_epoch, "lifecycle session opened");
    Ok(opened)
}
