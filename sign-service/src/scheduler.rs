//! The presignature scheduler: grants presignature sessions under the per-account cap
//! (finished + running), runs them on the bounded pool of worker slots, fairly between
//! wallets (at most `presign_workers_per_wallet` running per wallet, free workers handed
//! round-robin between the wallets with waiting sessions, grant order within a wallet),
//! ends a session whose caller does not join within `presign_join_deadline_secs` (and
//! the sessions of its request still waiting), stores each result, and reports the
//! pools.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cosigner_api::auth::now_ms;
use cosigner_api::{pb, PARTY_COSIGNER};
use mpc_core::hd::DerivationPath;
use mpc_core::presign::{PresignaturePublicDataRepr, StoredPresignature};
use mpc_core::session::Progress;
use mpc_core::{Account, AccountKind, Session, SessionError, SessionOutput};
use mpc_party::run_session;
use mpc_wire::{Roster, SessionId};

use crate::audit::AuditRecord;
use crate::error::CosignerError;
use crate::metrics::SessionKind;
use crate::state::{random_id, signers_with, State};
use crate::store::{PresigSlot, WalletRecord};

/// Worker slots, the sessions waiting for one, and the sessions granted and not
/// finished yet.
pub(crate) struct Scheduler {
    /// The bounded pool of presignature sessions and its waiting line.
    queue: Mutex<Queue<Waiting>>,
    /// Presignature sessions granted and not finished yet, per slot.
    running: Mutex<HashMap<PresigSlot, usize>>,
    /// Serializes the cap computation of StartPresign.
    grant: tokio::sync::Mutex<()>,
    /// Numbers the StartPresign requests (their sessions end together).
    requests: AtomicU64,
}

impl Scheduler {
    /// A scheduler with `workers` concurrent sessions.
    pub(crate) fn new(workers: usize) -> Self {
        Scheduler {
            queue: Mutex::new(Queue::new(workers)),
            running: Mutex::new(HashMap::new()),
            grant: tokio::sync::Mutex::new(()),
            requests: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PresigSlot, usize>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue<Waiting>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn running_of(&self, slot: &PresigSlot) -> usize {
        self.lock().get(slot).copied().unwrap_or(0)
    }

    /// The paths with sessions running for the wallet, account and party of `slot`.
    fn running_paths(&self, slot: &PresigSlot) -> Vec<String> {
        self.lock()
            .keys()
            .filter(|s| {
                s.wallet_id == slot.wallet_id
                    && s.account_id == slot.account_id
                    && s.party == slot.party
            })
            .map(|s| s.path.clone())
            .collect()
    }

    /// Presignature sessions granted and not finished, over every slot (a drain waits
    /// for them).
    pub(crate) fn running_total(&self) -> usize {
        self.lock().values().sum()
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

/// The waiting line of the worker pool, per wallet. Free workers go round-robin to the
/// wallets with waiting sessions, each below its share; within a wallet, sessions start
/// in grant order (callers run them in that order).
struct Queue<T> {
    workers: usize,
    /// Workers taken.
    busy: usize,
    /// Wallets with waiting sessions, in turn order.
    order: VecDeque<String>,
    /// Waiting sessions per wallet, with the request each belongs to.
    waiting: HashMap<String, VecDeque<(u64, T)>>,
    /// Workers taken per wallet.
    running: HashMap<String, usize>,
}

impl<T> Queue<T> {
    fn new(workers: usize) -> Self {
        Queue {
            workers,
            busy: 0,
            order: VecDeque::new(),
            waiting: HashMap::new(),
            running: HashMap::new(),
        }
    }

    /// Queues the sessions of `request` behind the wallet's earlier ones.
    fn push(&mut self, wallet: &str, request: u64, items: impl IntoIterator<Item = T>) {
        let q = self.waiting.entry(wallet.to_string()).or_default();
        let was_empty = q.is_empty();
        q.extend(items.into_iter().map(|t| (request, t)));
        if was_empty && !q.is_empty() {
            self.order.push_back(wallet.to_string());
        } else if q.is_empty() {
            self.waiting.remove(wallet);
        }
    }

    /// Takes a worker for every session that may start now: each to the waiting wallet
    /// with the fewest workers (below `per_wallet`), the first in turn order on a tie;
    /// a wallet served goes to the back of the turn order.
    fn admit(&mut self, per_wallet: usize) -> Vec<(String, T)> {
        let mut started = Vec::new();
        while self.busy < self.workers {
            let running = |w: &String| self.running.get(w).copied().unwrap_or(0);
            let Some(pos) = self
                .order
                .iter()
                .enumerate()
                .filter(|(_, w)| running(w) < per_wallet)
                .min_by_key(|(i, w)| (running(w), *i))
                .map(|(i, _)| i)
            else {
                break;
            };
            let Some(wallet) = self.order.remove(pos) else {
                break;
            };
            let next = self.waiting.get_mut(&wallet).and_then(VecDeque::pop_front);
            if self.waiting.get(&wallet).is_some_and(|q| !q.is_empty()) {
                self.order.push_back(wallet.clone());
            } else {
                self.waiting.remove(&wallet);
            }
            let Some((_, item)) = next else {
                continue;
            };
            self.busy += 1;
            *self.running.entry(wallet.clone()).or_insert(0) += 1;
            started.push((wallet, item));
        }
        started
    }

    /// Gives back a worker of `wallet`.
    fn release(&mut self, wallet: &str) {
        self.busy = self.busy.saturating_sub(1);
        if let Some(n) = self.running.get_mut(wallet) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.running.remove(wallet);
            }
        }
    }

    /// Takes the sessions of `request` that still wait for a worker out of the line.
    fn withdraw(&mut self, request: u64) -> Vec<T> {
        let mut out = Vec::new();
        for q in self.waiting.values_mut() {
            let (mine, others): (VecDeque<_>, VecDeque<_>) =
                q.drain(..).partition(|(r, _)| *r == request);
            *q = others;
            out.extend(mine.into_iter().map(|(_, t)| t));
        }
        self.waiting.retain(|_, q| !q.is_empty());
        let waiting = &self.waiting;
        self.order.retain(|w| waiting.contains_key(w));
        out
    }
}

/// A granted session waiting for a worker.
struct Waiting {
    job: PresignJob,
    room: pb::SessionRoom,
}

/// A worker held by one session: given back, and the next sessions admitted, when
/// dropped.
struct Worker {
    st: Arc<State>,
    wallet: String,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.st.scheduler.queue().release(&self.wallet);
        admit(&self.st);
    }
}

/// Starts every waiting session that may run now.
fn admit(st: &Arc<State>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return; // the runtime is going away
    };
    let per_wallet = st.cfg.presign_wallet_workers();
    let started = st.scheduler.queue().admit(per_wallet);
    for (wallet, w) in started {
        let worker = Worker {
            st: Arc::clone(st),
            wallet,
        };
        rt.spawn(w.job.run(w.room, Ok(worker)));
    }
}

/// Ends the sessions of `request` still waiting for a worker with `error`.
fn withdraw(st: &Arc<State>, request: u64, error: impl Fn() -> CosignerError) -> usize {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return 0;
    };
    let gone = st.scheduler.queue().withdraw(request);
    let n = gone.len();
    for w in gone {
        rt.spawn(w.job.run(w.room, Err(error())));
    }
    n
}

/// Whether `path` is one an HD account may keep a presignature pool at: non-hardened
/// (every [`DerivationPath`] is) and BIP-44 style, `m/44/<coin>/<account>/<change>/<index>`
/// or `m/84/…` (Bitcoin P2WPKH)
/// (what the wallet signs at), or why not.
pub(crate) fn hd_presign_path(path: &DerivationPath) -> Result<(), String> {
    match path.indices() {
        // BIP-44 (Ethereum) and BIP-84 (Bitcoin P2WPKH, as wallet-btc lays it out).
        [44 | 84, _, _, _, _] => Ok(()),
        _ => Err("HD accounts presign at BIP-44-style paths only, m/44/<coin>/<account>/<change>/<index> or m/84/… (non-hardened)".into()),
    }
}

/// The account of a presignature RPC at `path`, or the error those RPCs give: an
/// INDEPENDENT account at the root, an HD account at a BIP-44-style path
/// ([`hd_presign_path`]).
pub(crate) fn presign_account<'w>(
    wallet: &'w WalletRecord,
    id: &str,
    path: &DerivationPath,
) -> Result<&'w Account, CosignerError> {
    let account = wallet
        .accounts
        .get(id)
        .ok_or_else(|| CosignerError::UnknownAccount(id.to_string()))?;
    let refused = |reason: String| CosignerError::PresignPathNotAllowed {
        account_id: id.to_string(),
        path: path.to_string(),
        reason,
    };
    match account.kind {
        AccountKind::Independent if !path.is_root() => Err(refused(
            "an independent account has no HD children: it presigns at the root only".into(),
        )),
        AccountKind::Independent => Ok(account),
        AccountKind::Hd => hd_presign_path(path).map(|()| account).map_err(refused),
    }
}

/// A path as the wire carries it: empty for the root, else `m/…`.
pub(crate) fn wire_path(path: &DerivationPath) -> String {
    if path.is_root() {
        String::new()
    } else {
        path.to_string()
    }
}

/// What StartPresign granted.
pub(crate) struct Granted {
    /// The pool's path, as the wire carries it ([`wire_path`]).
    pub path: String,
    pub sessions: Vec<pb::PresignSession>,
    pub signers: Vec<u16>,
    pub available: usize,
    pub running: usize,
    pub cap: usize,
    pub request_id: String,
}

/// StartPresign: releases the ids the caller no longer holds, grants up to `count`
/// sessions under the cap and starts them in the background (in grant order).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start_presign(
    st: &Arc<State>,
    wallet: WalletRecord,
    party: u16,
    account_id: &str,
    path: DerivationPath,
    count: u32,
    release_ids: Vec<String>,
) -> Result<Granted, CosignerError> {
    let account_kind = presign_account(&wallet, account_id, &path)?.kind;
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
        path: path.to_string(),
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
            path: Some(slot.path.clone()),
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
    let pools = st.blocking(move |s| s.presignature_pools(&slot2)).await?;
    let available = pools.get(&slot.path).map_or(0, Vec::len);
    if account_kind == AccountKind::Hd && available + running == 0 {
        // A new path: within the per-account number of paths (those with presignatures
        // ready or sessions running).
        let max = st.cfg.presign_max_paths_per_account as usize;
        let mut paths: std::collections::BTreeSet<&str> =
            pools.keys().map(String::as_str).collect();
        let running_paths = sched.running_paths(&slot);
        paths.extend(running_paths.iter().map(String::as_str));
        if paths.len() >= max {
            return Err(CosignerError::PresignPathsFull {
                account_id: account_id.to_string(),
                paths: paths.len(),
                max,
            });
        }
    }
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
    // Sessions queue for the bounded worker pool, at most `lanes` of this wallet at
    // once: the rooms live long enough for the last one to start and run.
    let lanes = st
        .cfg
        .presign_wallet_workers()
        .min(st.cfg.presign_workers)
        .max(1);
    let waves = (granted as u64).div_ceil(lanes as u64) + 1;
    let expiry_unix = now / 1000 + st.cfg.session_timeout_secs * waves + 1;
    let signers = signers_with(party);
    let mut sessions = Vec::with_capacity(granted);
    for _ in 0..granted {
        let sid = random_id().map_err(undo)?;
        sessions.push(pb::PresignSession {
            presignature_id: sid.to_string(),
            session: Some(st.room(&sid, expiry_unix)),
            derivation_path: wire_path(&path),
        });
    }
    st.audit(AuditRecord {
        timestamp_ms: now,
        event: "presign_start",
        wallet_id: slot.wallet_id.clone(),
        party: Some(party),
        account_id: Some(slot.account_id.clone()),
        request_id: Some(request_id.clone()),
        path: Some(path.to_string()),
        outcome: Some(format!(
            "granted {granted} of {count} at {path} (ready {available}, running {running}, cap {cap})"
        )),
        ..Default::default()
    })
    .map_err(undo)?;
    // Workers are taken in the order of the returned sessions (within a wallet the line
    // is first come, first served), and callers run them in that order too: with any
    // concurrency on either side, the first unfinished session always runs on both, so
    // a caller with fewer (or more) lanes than the cosigner gives its wallet never
    // waits on a session the cosigner has not started while the cosigner waits on one
    // the caller has not.
    let request = sched.requests.fetch_add(1, Ordering::Relaxed);
    let job = PresignJob {
        st: Arc::clone(st),
        wallet: Arc::new(wallet),
        slot: slot.clone(),
        path: path.clone(),
        signers: signers.clone(),
        request_id: request_id.clone(),
        request,
    };
    let waiting: Vec<Waiting> = sessions
        .iter()
        .filter_map(|s| s.session.clone())
        .map(|room| Waiting {
            job: job.clone(),
            room,
        })
        .collect();
    sched.queue().push(&slot.wallet_id, request, waiting);
    admit(st);
    // Sessions still waiting when their rooms are about to expire end with an error.
    let queue_timeout = Duration::from_secs(st.cfg.session_timeout_secs * (waves - 1));
    let st2 = Arc::clone(st);
    tokio::spawn(async move {
        tokio::time::sleep(queue_timeout).await;
        withdraw(&st2, request, || {
            CosignerError::Timeout(format!(
                "no presignature worker free within {queue_timeout:?}"
            ))
        });
    });
    tracing::info!(wallet_id = %slot.wallet_id, account_id = %slot.account_id, path = %slot.path, party, granted, "presignature sessions started");
    Ok(Granted {
        path: wire_path(&path),
        sessions,
        signers,
        available,
        running: running + granted,
        cap,
        request_id,
    })
}

/// One pool as PresignPoolStatus reports it: (account, path).
pub(crate) struct PoolStatus {
    pub account_id: String,
    /// As the wire carries it ([`wire_path`]).
    pub path: String,
    pub presignature_ids: Vec<String>,
    pub running: usize,
}

/// The caller's pools, one per (account, path) with presignatures ready or sessions
/// running: of `account_id`, or of every account when empty. An independent account
/// always reports its root pool (empty or not).
pub(crate) async fn pool_status(
    st: &Arc<State>,
    wallet: &WalletRecord,
    party: u16,
    account_id: &str,
) -> Result<Vec<PoolStatus>, CosignerError> {
    let accounts: Vec<&Account> = if account_id.is_empty() {
        wallet.accounts.values().collect()
    } else {
        vec![wallet
            .accounts
            .get(account_id)
            .ok_or_else(|| CosignerError::UnknownAccount(account_id.to_string()))?]
    };
    let mut pools = Vec::new();
    for account in accounts {
        let base = PresigSlot {
            wallet_id: wallet.wallet_id.clone(),
            account_id: account.id.clone(),
            party,
            path: crate::store::ROOT_PATH.to_string(),
        };
        let slot2 = base.clone();
        let mut by_path = st.blocking(move |s| s.presignature_pools(&slot2)).await?;
        for p in st.scheduler.running_paths(&base) {
            by_path.entry(p).or_default();
        }
        if account.kind == AccountKind::Independent {
            by_path.entry(base.path.clone()).or_default();
        }
        for (path, presignature_ids) in by_path {
            let slot = PresigSlot {
                path: path.clone(),
                ..base.clone()
            };
            let wire = DerivationPath::parse(&path)
                .map(|p| wire_path(&p))
                .unwrap_or(path);
            pools.push(PoolStatus {
                account_id: account.id.clone(),
                path: wire,
                presignature_ids,
                running: st.scheduler.running_of(&slot),
            });
        }
    }
    Ok(pools)
}

/// The sessions of one StartPresign.
#[derive(Clone)]
struct PresignJob {
    st: Arc<State>,
    wallet: Arc<WalletRecord>,
    slot: PresigSlot,
    /// The path the presignatures are generated for (the slot's, parsed).
    path: DerivationPath,
    signers: Vec<u16>,
    request_id: String,
    /// The StartPresign it belongs to (in the scheduler's numbering).
    request: u64,
}

/// Whether a presignature session's progress shows the caller's messages: the first
/// round's two messages (`Round1a`, `Round1b`: protocol rounds 0 and 1, so progress 2)
/// go out before any input; every later one (the reliable-broadcast echo, round 2 on)
/// needs the caller's first-round messages, received and verified.
fn caller_joined(p: &Progress) -> bool {
    p.finished || p.round > 2
}

impl PresignJob {
    /// Runs the cosigner's side of one presignature session (holding a worker slot)
    /// and stores the result; audits the outcome either way.
    async fn run(self, room: pb::SessionRoom, worker: Result<Worker, CosignerError>) {
        let started = std::time::Instant::now();
        let id = room.session_id.clone();
        let outcome = match worker {
            Ok(_worker) => self.session(&room).await,
            Err(e) => Err(e),
        };
        let (st, slot) = (&self.st, &self.slot);
        st.scheduler.finish_running(slot, 1);
        st.metrics.session(SessionKind::Presign, outcome.is_ok());
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
            path: Some(slot.path.clone()),
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
        let path = (!self.path.is_root()).then(|| self.path.indices().to_vec());
        let (joined_tx, joined) = tokio::sync::watch::channel(false);
        let session = run_session(
            ctx,
            move || {
                let share = account
                    .complete(&aux)
                    .map_err(|e| SessionError::InvalidParams(e.to_string()))?;
                Session::presign(&sid_bytes, signers, share, path)
            },
            move |p| {
                if caller_joined(&p) {
                    joined_tx.send_replace(true);
                }
            },
        );
        let mut session = std::pin::pin!(session);
        let join_deadline = st.cfg.presign_join_deadline();
        let out = tokio::select! {
            out = &mut session => out?,
            () = tokio::time::sleep(join_deadline) => {
                if !*joined.borrow() {
                    // The caller never came: the session (dropped here) frees its
                    // worker, and the caller's later sessions, which it would run after
                    // this one, do not wait for a worker either.
                    let later = withdraw(st, self.request, || {
                        CosignerError::Timeout(format!(
                            "the caller did not join presignature session {id} of the same request"
                        ))
                    });
                    tracing::warn!(wallet_id = %slot.wallet_id, account_id = %slot.account_id, presignature_id = %id, later, "the caller did not join a presignature session: ended with the later sessions of its request");
                    return Err(CosignerError::Timeout(format!(
                        "the caller did not join presignature session {id} within {join_deadline:?}"
                    )));
                }
                session.await?
            }
        };
        let SessionOutput::Presignature(p, public) = out else {
            return Err(CosignerError::internal(
                "presignature session produced another output",
            ));
        };
        let stored = crate::signing::EpochPresignature {
            record: StoredPresignature {
                id: id.clone(),
                account_id: slot.account_id.clone(),
                signers: self.signers.clone(),
                presignature: *p,
                public: PresignaturePublicDataRepr::new(public.as_ref(), self.path.clone()),
            },
            share_epoch: wallet.share_epoch,
        };
        let slot2 = slot.clone();
        st.blocking(move |s| s.put_presignature(&slot2, &id, &stored))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts what may start; returns (wallet, item) in start order.
    fn admit_all(q: &mut Queue<u32>, per_wallet: usize) -> Vec<(String, u32)> {
        q.admit(per_wallet)
    }

    /// Within a wallet, sessions start strictly in grant order (a caller runs them in
    /// that order; any other order can stall both sides until the session deadline).
    #[test]
    fn a_wallet_starts_its_sessions_in_grant_order() {
        let mut q = Queue::new(1);
        q.push("a", 0, 0..4);
        q.push("a", 1, 4..8);
        let mut order = Vec::new();
        for _ in 0..8 {
            let started = admit_all(&mut q, 1);
            assert_eq!(started.len(), 1);
            order.push(started[0].1);
            assert!(admit_all(&mut q, 1).is_empty(), "the only worker is taken");
            q.release("a");
        }
        assert_eq!(order, (0..8).collect::<Vec<_>>());
        assert!(admit_all(&mut q, 1).is_empty());
        assert_eq!(q.busy, 0);
        assert!(q.waiting.is_empty() && q.order.is_empty() && q.running.is_empty());
    }

    /// A wallet with a large request gets at most its share; the other wallets get
    /// the remaining workers, each freed worker going to the waiting wallet with the
    /// fewest.
    #[test]
    fn each_wallet_gets_at_most_its_share_and_the_fewest_go_first() {
        let mut q = Queue::new(3);
        q.push("a", 0, 0..16);
        // A alone: its share (2 of 3), never the third worker.
        assert_eq!(admit_all(&mut q, 2), vec![("a".into(), 0), ("a".into(), 1)]);
        q.push("b", 1, 100..102);
        q.push("c", 2, 200..202);
        // B arrives: the free worker is its at once.
        assert_eq!(admit_all(&mut q, 2), vec![("b".into(), 100)]);
        // A worker of A frees: C has none, so it is C's.
        q.release("a");
        assert_eq!(admit_all(&mut q, 2), vec![("c".into(), 200)]);
        q.release("b");
        assert_eq!(admit_all(&mut q, 2), vec![("b".into(), 101)]);
        q.release("c");
        assert_eq!(admit_all(&mut q, 2), vec![("c".into(), 201)]);
        q.release("b");
        assert_eq!(admit_all(&mut q, 2), vec![("a".into(), 2)]);
        // Only A waits now, with both of its workers busy: the free worker stays free.
        q.release("c");
        assert!(admit_all(&mut q, 2).is_empty());
        assert_eq!(q.busy, 2);
    }

    /// The sessions of an abandoned request leave the line; the others keep their
    /// places.
    #[test]
    fn a_withdrawn_request_leaves_the_line() {
        let mut q = Queue::new(1);
        q.push("a", 0, 0..2);
        q.push("a", 1, 2..4);
        q.push("b", 2, 10..12);
        assert_eq!(admit_all(&mut q, 1), vec![("a".into(), 0)]);
        let mut gone = q.withdraw(0);
        gone.sort_unstable();
        assert_eq!(gone, vec![1]);
        assert_eq!(q.withdraw(0), Vec::<u32>::new());
        q.release("a");
        assert_eq!(admit_all(&mut q, 1), vec![("b".into(), 10)]);
        q.release("b");
        assert_eq!(admit_all(&mut q, 1), vec![("a".into(), 2)]);
        assert_eq!(q.withdraw(2), vec![11]);
        q.release("a");
        assert_eq!(admit_all(&mut q, 1), vec![("a".into(), 3)]);
        assert!(q.waiting.is_empty() && q.order.is_empty());
    }

    #[test]
    fn joining_needs_more_than_the_first_round() {
        let p = |round, finished| Progress {
            kind: mpc_core::SessionKind::Presign,
            round,
            total_rounds: 4,
            finished,
        };
        assert!(!caller_joined(&p(0, false)));
        assert!(!caller_joined(&p(2, false)));
        assert!(caller_joined(&p(3, false)));
        assert!(caller_joined(&p(6, false)));
        assert!(caller_joined(&p(2, true)));
    }

    #[test]
    fn running_counts_per_slot() {
        let s = Scheduler::new(1);
        let slot = PresigSlot {
            wallet_id: "w".into(),
            account_id: "a".into(),
            party: 0,
            path: "m/44/60/0/0/0".into(),
        };
        s.add_running(&slot, 3);
        s.finish_running(&slot, 1);
        assert_eq!(s.running_of(&slot), 2);
        s.finish_running(&slot, 5);
        assert_eq!(s.running_of(&slot), 0);
        assert!(s.lock().is_empty());
    }
}
