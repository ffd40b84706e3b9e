//! The presignature scheduler: grants presignature sessions under the per-account cap
//! (finished + running), runs them on the bounded pool of worker slots in grant order,
//! stores each result, and reports the pools.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cosigner_api::auth::now_ms;
use cosigner_api::{pb, PARTY_COSIGNER};
use mpc_core::presign::StoredPresignature;
use mpc_core::{Account, AccountKind, Session, SessionError, SessionOutput};
use mpc_party::run_session;
use mpc_wire::{Roster, SessionId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::audit::AuditRecord;
use crate::error::CosignerError;
use crate::state::{random_id, signers_with, State};
use crate::store::{PresigSlot, WalletRecord};

/// Worker slots and the sessions granted and not finished yet.
pub(crate) struct Scheduler {
    /// The bounded pool of presignature sessions.
    workers: Arc<Semaphore>,
    /// Presignature sessions granted and not finished yet, per slot.
    running: Mutex<HashMap<PresigSlot, usize>>,
    /// Serializes the cap computation of StartPresign.
    grant: tokio::sync::Mutex<()>,
}

impl Scheduler {
    /// A scheduler with `workers` concurrent sessions.
    pub(crate) fn new(workers: usize) -> Self {
        Scheduler {
            workers: Arc::new(Semaphore::new(workers)),
            running: Mutex::new(HashMap::new()),
            grant: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PresigSlot, usize>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn running_of(&self, slot: &PresigSlot) -> usize {
        self.lock().get(slot).copied().unwrap_or(0)
    }

    fn add_running(&self, slot: &PresigSlot, n: usize) {
        *self.lock().entry(slot.clone()).or_insert(0) += n;
    }

    fn finish_running(&self, slot: &PresigSlot, n: usize) {
        let mut m = self.lock();
        if let Some(v) = m.get_mut(slot) {
            *v = v.saturating_sub(n);
            if *v == 0 {
                m.remove(slot);
            }
        }
    }
}

/// An INDEPENDENT account of the wallet, or the error the presignature RPCs give.
pub(crate) fn independent_account<'w>(
    wallet: &'w WalletRecord,
    id: &str,
) -> Result<&'w Account, CosignerError> {
    let account = wallet
        .accounts
        .get(id)
        .ok_or_else(|| CosignerError::UnknownAccount(id.to_string()))?;
    if account.kind != AccountKind::Independent {
        return Err(CosignerError::HdAccount(id.to_string()));
    }
    Ok(account)
}

/// What StartPresign granted.
pub(crate) struct Granted {
    pub sessions: Vec<pb::PresignSession>,
    pub signers: Vec<u16>,
    pub available: usize,
    pub running: usize,
    pub cap: usize,
    pub request_id: String,
}

/// StartPresign: releases the ids the caller no longer holds, grants up to `count`
/// sessions under the cap and starts them in the background (in grant order).
pub(crate) async fn start_presign(
    st: &Arc<State>,
    wallet: WalletRecord,
    party: u16,
    account_id: &str,
    count: u32,
    release_ids: Vec<String>,
) -> Result<Granted, CosignerError> {
    independent_account(&wallet, account_id)?;
    let cap = st.cfg.presign_pool_cap as usize;
    if cap == 0 {
        return Err(CosignerError::PresignaturesDisabled);
    }
    // No refills while the store is older than its rollback anchor.
    st.guarded(|g, s| g.check(s)).await?;
    if count == 0 {
        return Err(CosignerError::invalid("count must be at least 1"));
    }
    // More than the per-request maximum is granted in part, like the cap.
    let count = count.min(st.cfg.presign_max_per_request);
    if release_ids.len() > cap.max(1) * 4 {
        return Err(CosignerError::invalid("too many release_ids"));
    }
    let slot = PresigSlot {
        wallet_id: wallet.wallet_id.clone(),
        account_id: account_id.to_string(),
        party,
    };
    let now = now_ms();
    let request_id = random_id()?.to_string();
    if !release_ids.is_empty() {
        let released = release_ids.len();
        let slot2 = slot.clone();
        let n = st
            .blocking(move |s| s.release_presignatures(&slot2, &release_ids, now))
            .await?;
        st.audit(AuditRecord {
            timestamp_ms: now,
            event: "presign_release",
            wallet_id: slot.wallet_id.clone(),
            party: Some(party),
            account_id: Some(slot.account_id.clone()),
            request_id: Some(request_id.clone()),
            outcome: Some(format!(
                "released {n} of {released} presignatures the caller no longer holds"
            )),
            ..Default::default()
        })?;
    }
    let sched = &st.scheduler;
    // Grant under the lock: running first, then the store, so a session finishing
    // meanwhile is counted twice (conservative), never missed.
    let grant_lock = sched.grant.lock().await;
    let running = sched.running_of(&slot);
    let slot2 = slot.clone();
    let available = st
        .blocking(move |s| s.presignature_ids(&slot2))
        .await?
        .len();
    let granted = cap.saturating_sub(running + available).min(count as usize);
    if granted == 0 {
        return Err(CosignerError::PoolFull {
            account_id: account_id.to_string(),
            available,
            running,
            cap,
        });
    }
    sched.add_running(&slot, granted);
    drop(grant_lock);
    // Whatever fails from here on gives the grant back.
    let undo = |e: CosignerError| {
        sched.finish_running(&slot, granted);
        e
    };
    // Sessions queue for the bounded worker pool: the rooms live long enough for the
    // last one to start and run.
    let waves = (granted as u64).div_ceil(st.cfg.presign_workers as u64) + 1;
    let expiry_unix = now / 1000 + st.cfg.session_timeout_secs * waves + 1;
    let signers = signers_with(party);
    let mut sessions = Vec::with_capacity(granted);
    for _ in 0..granted {
        let sid = random_id().map_err(undo)?;
        sessions.push(pb::PresignSession {
            presignature_id: sid.to_string(),
            session: Some(st.room(&sid, expiry_unix)),
        });
    }
    st.audit(AuditRecord {
        timestamp_ms: now,
        event: "presign_start",
        wallet_id: slot.wallet_id.clone(),
        party: Some(party),
        account_id: Some(slot.account_id.clone()),
        request_id: Some(request_id.clone()),
        outcome: Some(format!(
            "granted {granted} of {count} (ready {available}, running {running}, cap {cap})"
        )),
        ..Default::default()
    })
    .map_err(undo)?;
    // Workers are taken in the order of the returned sessions (the semaphore is fair),
    // and callers run them in that order too: with any concurrency on either side, the
    // first unfinished session always runs on both, so a caller with fewer (or more)
    // lanes than `presign_workers` never waits on a session the cosigner has not
    // started while the cosigner waits on one the caller has not.
    let rooms: Vec<pb::SessionRoom> = sessions.iter().filter_map(|s| s.session.clone()).collect();
    let queue_timeout = Duration::from_secs(st.cfg.session_timeout_secs * (waves - 1));
    let job = PresignJob {
        st: Arc::clone(st),
        wallet: Arc::new(wallet),
        slot: slot.clone(),
        signers: signers.clone(),
        request_id: request_id.clone(),
    };
    tokio::spawn(start_in_order(
        Arc::clone(&sched.workers),
        rooms,
        queue_timeout,
        move |room, worker| {
            tokio::spawn(job.clone().run(room, worker));
        },
    ));
    tracing::info!(wallet_id = %slot.wallet_id, account_id = %slot.account_id, party, granted, "presignature sessions started");
    Ok(Granted {
        sessions,
        signers,
        available,
        running: running + granted,
        cap,
        request_id,
    })
}

/// One account's pool as PresignPoolStatus reports it.
pub(crate) struct PoolStatus {
    pub account_id: String,
    pub presignature_ids: Vec<String>,
    pub running: usize,
}

/// The caller's pools: of `account_id`, or of every independent account when empty.
pub(crate) async fn pool_status(
    st: &Arc<State>,
    wallet: &WalletRecord,
    party: u16,
    account_id: &str,
) -> Result<Vec<PoolStatus>, CosignerError> {
    let ids: Vec<String> = if account_id.is_empty() {
        wallet
            .accounts
            .values()
            .filter(|a| a.kind == AccountKind::Independent)
            .map(|a| a.id.clone())
            .collect()
    } else {
        independent_account(wallet, account_id)?;
        vec![account_id.to_string()]
    };
    let mut pools = Vec::with_capacity(ids.len());
    for account_id in ids {
        let slot = PresigSlot {
            wallet_id: wallet.wallet_id.clone(),
            account_id: account_id.clone(),
            party,
        };
        let running = st.scheduler.running_of(&slot);
        let presignature_ids = st.blocking(move |s| s.presignature_ids(&slot)).await?;
        pools.push(PoolStatus {
            account_id,
            presignature_ids,
            running,
        });
    }
    Ok(pools)
}

/// Takes a worker slot for each item IN ORDER (the semaphore is fair, so an earlier
/// item never waits behind a later one of the same call) and hands the item with its
/// slot to `start`. Items still waiting when `queue_timeout` has passed get the error.
async fn start_in_order<T>(
    workers: Arc<Semaphore>,
    items: Vec<T>,
    queue_timeout: Duration,
    mut start: impl FnMut(T, Result<OwnedSemaphorePermit, CosignerError>),
) {
    let deadline = tokio::time::Instant::now() + queue_timeout;
    for item in items {
        let worker = tokio::time::timeout_at(deadline, Arc::clone(&workers).acquire_owned())
            .await
            .map_err(|_| {
                CosignerError::Timeout(format!(
                    "no presignature worker free within {queue_timeout:?}"
                ))
            })
            .and_then(|r| r.map_err(|_| CosignerError::ShuttingDown));
        start(item, worker);
    }
}

/// The sessions of one StartPresign.
#[derive(Clone)]
struct PresignJob {
    st: Arc<State>,
    wallet: Arc<WalletRecord>,
    slot: PresigSlot,
    signers: Vec<u16>,
    request_id: String,
}

impl PresignJob {
    /// Runs the cosigner's side of one presignature session (holding a worker slot)
    /// and stores the result; audits the outcome either way.
    async fn run(self, room: pb::SessionRoom, worker: Result<OwnedSemaphorePermit, CosignerError>) {
        let started = std::time::Instant::now();
        let id = room.session_id.clone();
        let outcome = match worker {
            Ok(_worker) => self.session(&room).await,
            Err(e) => Err(e),
        };
        let (st, slot) = (&self.st, &self.slot);
        st.scheduler.finish_running(slot, 1);
        let ms = started.elapsed().as_millis() as u64;
        let text = match &outcome {
            Ok(()) => {
                tracing::info!(wallet_id = %slot.wallet_id, account_id = %slot.account_id, presignature_id = %id, ms, "presignature stored");
                "stored".to_string()
            }
            Err(e) => {
                tracing::warn!(wallet_id = %slot.wallet_id, account_id = %slot.account_id, presignature_id = %id, ms, error = %e, code = %e.code(), "presignature session failed");
                format!("failed: {e}")
            }
        };
        let audited = st.audit(AuditRecord {
            timestamp_ms: now_ms(),
            event: "presign_outcome",
            wallet_id: slot.wallet_id.clone(),
            party: Some(slot.party),
            account_id: Some(slot.account_id.clone()),
            request_id: Some(self.request_id.clone()),
            presignature_id: Some(id.clone()),
            outcome: Some(text),
            ..Default::default()
        });
        if audited.is_err() && outcome.is_ok() {
            // Not in the audit log, so not usable: released (marked used) at once.
            let (slot2, ids) = (slot.clone(), vec![id.clone()]);
            let released = st
                .blocking(move |s| s.release_presignatures(&slot2, &ids, now_ms()))
                .await;
            tracing::error!(presignature_id = %id, released = ?released.map_err(|e| e.to_string()), "presignature released: its outcome could not be audited");
        }
    }

    async fn session(&self, room: &pb::SessionRoom) -> Result<(), CosignerError> {
        let (st, slot, wallet) = (&self.st, &self.slot, &self.wallet);
        let id = room.session_id.clone();
        let account = wallet
            .accounts
            .get(&slot.account_id)
            .cloned()
            .ok_or_else(|| CosignerError::UnknownAccount(slot.account_id.clone()))?;
        let caller = *wallet.identity_of(slot.party).ok_or_else(|| {
            CosignerError::internal(format!("party {} cannot presign", slot.party))
        })?;
        let roster = Roster::new([(slot.party, caller), (PARTY_COSIGNER, st.identity.public())])
            .map_err(CosignerError::internal)?;
        let sid = SessionId::new(id.clone()).map_err(CosignerError::internal)?;
        let sid_bytes = sid.as_str().as_bytes().to_vec();
        let timeout = Duration::from_secs(st.cfg.session_timeout_secs);
        let ctx = st.party_ctx(room, sid, roster, timeout);
        let aux = wallet.aux_info.clone();
        let signers = self.signers.clone();
        let out = run_session(
            ctx,
            move || {
                let share = account
                    .complete(&aux)
                    .map_err(|e| SessionError::InvalidParams(e.to_string()))?;
                Session::presign(&sid_bytes, signers, share)
            },
            |_| {},
        )
        .await?;
        let SessionOutput::Presignature(p, public) = out else {
            return Err(CosignerError::internal(
                "presignature session produced another output",
            ));
        };
        let stored = StoredPresignature {
            id: id.clone(),
            account_id: slot.account_id.clone(),
            signers: self.signers.clone(),
            presignature: *p,
            public: public.as_ref().into(),
        };
        let slot2 = slot.clone();
        st.blocking(move |s| s.put_presignature(&slot2, &id, &stored))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With one worker and sessions that each hold it a while, the slots go to the
    /// sessions strictly in the order granted (a caller runs them in that order; any
    /// other order can stall both sides until the session deadline).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn presign_slots_are_taken_in_grant_order() {
        let workers = Arc::new(Semaphore::new(1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = Arc::clone(&order);
        start_in_order(
            Arc::clone(&workers),
            (0..8).collect(),
            Duration::from_secs(10),
            move |i: u32, worker| {
                let o = Arc::clone(&o);
                tokio::spawn(async move {
                    let _worker = worker.expect("a slot");
                    o.lock().unwrap().push(i);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                });
            },
        )
        .await;
        // The last session got its slot; wait until it released it.
        let _all = workers.acquire().await.unwrap();
        assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn presign_slots_time_out_with_an_error() {
        let workers = Arc::new(Semaphore::new(0));
        let mut errors = Vec::new();
        start_in_order(workers, vec![1, 2], Duration::from_millis(20), |i, w| {
            errors.push((i, w.err()))
        })
        .await;
        assert_eq!(errors.len(), 2);
        assert!(errors.iter().all(|(_, e)| matches!(
            e,
            Some(CosignerError::Timeout(t)) if t.contains("no presignature worker free")
        )));
    }

    #[test]
    fn running_counts_per_slot() {
        let s = Scheduler::new(1);
        let slot = PresigSlot {
            wallet_id: "w".into(),
            account_id: "a".into(),
            party: 0,
        };
        s.add_running(&slot, 3);
        s.finish_running(&slot, 1);
        assert_eq!(s.running_of(&slot), 2);
        s.finish_running(&slot, 5);
        assert_eq!(s.running_of(&slot), 0);
        assert!(s.lock().is_empty());
    }
}
