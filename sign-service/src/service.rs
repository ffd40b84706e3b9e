//! The `wallet.cosigner.v1.Cosigner` gRPC service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cosigner_api::auth::{self, now_ms, AuthError, AuthenticatedRequest};
use cosigner_api::convert::{
    account_kind_from_proto, account_kind_to_proto, digest_kind_from_proto, payload_kind_from_proto,
};
use cosigner_api::pb;
use cosigner_api::{ReplayCache, MAX_ACCOUNTS, PARTY_COSIGNER};
use gateway_client::GatewayClient;
use mpc_core::address::{bitcoin_p2wpkh_address, ethereum_address, BitcoinNetwork};
use mpc_core::hd::DerivationPath;
use mpc_core::{
    Account, AccountKind, AuxInfo, IncompleteKeyShare, Session, SessionError, SessionOutput,
};
use mpc_party::{run_session, PartyContext};
use mpc_wire::{IdentityKey, PublicIdentity, Roster, SessionId};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status};

use crate::audit::{AuditLog, AuditRecord};
use crate::config::Config;
use crate::policy::{self, Verdict};
use crate::primes::PrimePool;
use crate::store::{PresigSlot, PresigTake, Store, StoreError, WalletRecord};

/// Largest preimage accepted for signing.
pub const MAX_PREIMAGE: usize = 1 << 20;
/// Longest wallet label.
pub const MAX_LABEL: usize = 256;

#[derive(Clone)]
enum DkgState {
    Running,
    Done(Arc<DkgResult>),
    Failed(String),
}

struct DkgResult {
    aux: AuxInfo,
    shares: Vec<(String, IncompleteKeyShare)>,
}

struct Pending {
    device: PublicIdentity,
    recovery: PublicIdentity,
    kind: AccountKind,
    label: String,
    created_at_ms: u64,
    expires_at_ms: u64,
    state: watch::Receiver<DkgState>,
}

/// Shared state of the service.
pub struct State {
    /// Configuration.
    pub cfg: Config,
    store: Arc<Store>,
    identity: IdentityKey,
    primes: Arc<PrimePool>,
    gateway: GatewayClient,
    replay: ReplayCache,
    audit: AuditLog,
    pending: Mutex<HashMap<String, Arc<Pending>>>,
    sessions: Arc<Semaphore>,
    /// The bounded pool of presignature sessions.
    presign_workers: Arc<Semaphore>,
    /// Presignature sessions granted and not finished yet, per slot.
    presign_running: Mutex<HashMap<PresigSlot, usize>>,
    /// Serializes the cap computation of StartPresign.
    presign_grant: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("identity", &self.identity.public())
            .finish_non_exhaustive()
    }
}

impl State {
    /// Builds the state: opens the audit log and the gateway client.
    pub fn new(cfg: Config, store: Arc<Store>) -> anyhow::Result<Arc<Self>> {
        use anyhow::Context;
        let identity = store
            .load_or_create_identity()
            .context("cannot load the cosigner identity")?;
        let gateway = GatewayClient::new(&cfg.gateway_url).context("gateway_url")?;
        let audit = AuditLog::open(&cfg.audit_log)?;
        let primes = PrimePool::new(
            Arc::clone(&store),
            cfg.prime_pool_size,
            cfg.insecure_dev_primes,
        );
        let window_ms = cfg.clock_skew_secs * 1000;
        Ok(Arc::new(Self {
            replay: ReplayCache::new(window_ms, 1_000_000),
            sessions: Arc::new(Semaphore::new(cfg.max_concurrent_sessions)),
            presign_workers: Arc::new(Semaphore::new(cfg.presign_workers)),
            presign_running: Mutex::new(HashMap::new()),
            presign_grant: tokio::sync::Mutex::new(()),
            cfg,
            store,
            identity,
            primes,
            gateway,
            audit,
            pending: Mutex::new(HashMap::new()),
        }))
    }

    /// The cosigner's public identity.
    pub fn public_identity(&self) -> PublicIdentity {
        self.identity.public()
    }

    /// Starts the background tasks (prime generation, expiry of pending wallets).
    pub fn spawn_background(self: &Arc<Self>) {
        self.primes.spawn_generator();
        let st = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                let now = now_ms();
                let mut p = st.pending_lock();
                let before = p.len();
                p.retain(|_, w| w.expires_at_ms > now);
                if p.len() != before {
                    tracing::info!(
                        expired = before - p.len(),
                        "dropped expired pending wallets"
                    );
                }
            }
        });
    }

    /// Number of protocol sessions running now.
    pub fn active_sessions(&self) -> usize {
        self.cfg.max_concurrent_sessions - self.sessions.available_permits()
    }

    fn pending_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Pending>>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn window_ms(&self) -> u64 {
        self.cfg.clock_skew_secs * 1000
    }

    fn room(&self, session: &SessionId, expiry_unix: u64) -> pb::SessionRoom {
        pb::SessionRoom {
            session_id: session.to_string(),
            room: session.to_string(),
            room_token: self
                .token(session.as_str(), expiry_unix)
                .unwrap_or_default(),
            gateway_url: self.cfg.public_gateway_url().to_string(),
        }
    }

    fn token(&self, room: &str, expiry_unix: u64) -> Option<String> {
        self.cfg
            .gateway_access_secret
            .as_ref()
            .map(|s| gateway_core::issue_room_token(s.as_bytes(), room, expiry_unix))
    }

    fn audit(&self, rec: AuditRecord) -> Result<(), Status> {
        self.audit.append(&rec).map_err(|e| {
            tracing::error!(error = %e, "cannot write the audit log");
            Status::internal("the audit log cannot be written; request refused")
        })
    }

    fn permit(&self) -> Result<OwnedSemaphorePermit, Status> {
        Arc::clone(&self.sessions).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("too many protocol sessions running; retry later")
        })
    }

    async fn load_wallet(&self, wallet_id: &str) -> Result<Option<WalletRecord>, Status> {
        let store = Arc::clone(&self.store);
        let id = wallet_id.to_string();
        tokio::task::spawn_blocking(move || store.get_wallet(&id))
            .await
            .map_err(|e| Status::internal(format!("store task failed: {e}")))?
            .map_err(store_status)
    }

    fn check_replay(
        &self,
        scope: &str,
        nonce: &[u8],
        timestamp_ms: u64,
        now: u64,
    ) -> Result<(), Status> {
        self.replay
            .check_and_insert(scope, nonce, timestamp_ms, now)
            .map_err(unauth)
    }

    /// Verifies an authenticated request against a committed wallet.
    async fn authenticate<R: AuthenticatedRequest>(
        &self,
        req: &R,
    ) -> Result<(WalletRecord, u16), Status> {
        let (auth, party) = auth::auth_of(req).map_err(unauth)?;
        let wallet = self.load_wallet(&auth.wallet_id).await?.ok_or_else(|| {
            Status::not_found(format!(
                "unknown wallet {} (or not confirmed yet)",
                auth.wallet_id
            ))
        })?;
        let identity = *wallet
            .identity_of(party)
            .ok_or_else(|| unauth(AuthError::BadParty(u32::from(party))))?;
        let now = now_ms();
        let auth = auth::verify_request(req, &identity, now, self.window_ms()).map_err(unauth)?;
        self.check_replay(
            &format!("{}/{party}", auth.wallet_id),
            &auth.nonce,
            auth.timestamp_ms,
            now,
        )?;
        Ok((wallet, party))
    }
}

/// What a sign request (StartSign or SignWithPresignature) asks for.
struct SignAuthorization<'a> {
    wallet: &'a WalletRecord,
    party: u16,
    account_id: &'a str,
    path: &'a DerivationPath,
    digest_kind: mpc_core::DigestKind,
    payload_kind: i32,
    preimage: &'a [u8],
    session_id: Option<String>,
    presignature_id: Option<String>,
}

impl State {
    /// Policy check (with the daily spend) and the `sign_request` audit record, shared
    /// by StartSign and SignWithPresignature. Returns (request id, hex digest), or
    /// PERMISSION_DENIED naming the rule.
    async fn authorize_sign(&self, a: SignAuthorization<'_>) -> Result<(String, String), Status> {
        let payload_kind = payload_kind_from_proto(a.payload_kind)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let digest = hex::encode(a.digest_kind.digest(a.preimage));
        let now = now_ms();
        let request_id = SessionId::random()
            .map_err(|e| Status::internal(e.to_string()))?
            .to_string();
        let mut verdict =
            policy::evaluate(&self.cfg.policy, payload_kind, a.digest_kind, a.preimage);
        if let Verdict::Allow {
            daily: Some((amount, limit)),
            ..
        } = &verdict
        {
            let (amount, limit) = (*amount, *limit);
            let store = Arc::clone(&self.store);
            let wid = a.wallet.wallet_id.clone();
            let day = policy::utc_day(now);
            let res = tokio::task::spawn_blocking(move || {
                store.add_daily_spend(&wid, day, amount, limit)
            })
            .await
            .map_err(|e| Status::internal(format!("store task failed: {e}")))?
            .map_err(store_status)?;
            if let Err(spent) = res {
                verdict = Verdict::Deny {
                    rule: "daily_value_limit_wei",
                    reason: format!(
                        "value {amount} wei would exceed the daily limit {limit} wei (already {spent} wei today)"
                    ),
                };
            }
        }
        let (decision, reason, tx) = match &verdict {
            Verdict::Allow { tx, .. } => ("allow", None, tx.clone()),
            Verdict::Deny { rule, reason } => ("deny", Some(format!("{rule}: {reason}")), None),
        };
        self.audit(AuditRecord {
            timestamp_ms: now,
            event: "sign_request",
            wallet_id: a.wallet.wallet_id.clone(),
            party: Some(a.party),
            account_id: Some(a.account_id.to_string()),
            path: Some(a.path.to_string()),
            digest: Some(digest.clone()),
            payload_kind: Some(
                pb::PayloadKind::try_from(a.payload_kind)
                    .map(|k| k.as_str_name().to_string())
                    .unwrap_or_default(),
            ),
            decision: Some(decision),
            reason: reason.clone(),
            request_id: Some(request_id.clone()),
            session_id: a.session_id.filter(|_| decision == "allow"),
            presignature_id: a.presignature_id,
            outcome: None,
            transaction: tx.map(|t| {
                serde_json::json!({
                    "type": t.tx_type,
                    "chain_id": t.chain_id,
                    "nonce": t.nonce,
                    "to": t.to.map(|a| format!("0x{}", hex::encode(a))),
                    "value_wei": t.value.to_string(),
                    "data_len": t.data_len,
                })
            }),
        })?;
        if let Verdict::Deny { rule, reason } = verdict {
            tracing::warn!(wallet_id = %a.wallet.wallet_id, request_id = %request_id, rule, %reason, "policy refused a sign request");
            return Err(Status::permission_denied(format!(
                "policy rule `{rule}` refused the request: {reason}"
            )));
        }
        Ok((request_id, digest))
    }

    fn running_of(&self, slot: &PresigSlot) -> usize {
        self.presign_running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(slot)
            .copied()
            .unwrap_or(0)
    }

    fn add_running(&self, slot: &PresigSlot, n: usize) {
        let mut m = self
            .presign_running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *m.entry(slot.clone()).or_insert(0) += n;
    }

    fn finish_running(&self, slot: &PresigSlot) {
        let mut m = self
            .presign_running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = m.get_mut(slot) {
            *v = v.saturating_sub(1);
            if *v == 0 {
                m.remove(slot);
            }
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Status> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Status::internal(format!("store task failed: {e}")))?
            .map_err(store_status)
    }
}

/// FAILED_PRECONDITION for an unknown or used presignature id, with the
/// `x-presignature-error` trailer (`unknown` | `used`).
fn presignature_unavailable(id: &str, used: bool) -> Status {
    let (kind, what) = if used {
        ("used", "was already used")
    } else {
        ("unknown", "is unknown to the cosigner")
    };
    let mut s = Status::failed_precondition(format!(
        "presignature_unavailable: presignature {id} {what}; discard it and sign with StartSign"
    ));
    s.metadata_mut().insert(
        "x-presignature-error",
        tonic::metadata::MetadataValue::from_static(kind),
    );
    s
}

/// An INDEPENDENT account of the wallet, or the error the presignature RPCs give.
fn independent_account<'w>(wallet: &'w WalletRecord, id: &str) -> Result<&'w Account, Status> {
    let account = wallet
        .accounts
        .get(id)
        .ok_or_else(|| Status::not_found(format!("unknown account {id:?}")))?;
    if account.kind != AccountKind::Independent {
        return Err(Status::failed_precondition(format!(
            "account {id} is an HD account: presignatures exist only for INDEPENDENT accounts \
             (the protocol forbids presignatures with HD derivation); use StartSign"
        )));
    }
    Ok(account)
}

/// Takes a worker slot for each item IN ORDER (the semaphore is fair, so an earlier
/// item never waits behind a later one of the same call) and hands the item with its
/// slot to `start`. Items still waiting when `queue_timeout` has passed get the error.
async fn start_in_order<T>(
    workers: Arc<Semaphore>,
    items: Vec<T>,
    queue_timeout: Duration,
    mut start: impl FnMut(T, Result<OwnedSemaphorePermit, String>),
) {
    let deadline = tokio::time::Instant::now() + queue_timeout;
    for item in items {
        let worker = tokio::time::timeout_at(deadline, Arc::clone(&workers).acquire_owned())
            .await
            .map_err(|_| format!("no presignature worker free within {queue_timeout:?}"))
            .and_then(|r| r.map_err(|e| e.to_string()));
        start(item, worker);
    }
}

/// Runs the cosigner's side of one presignature session (in the bounded pool) and
/// stores the result.
#[allow(clippy::too_many_arguments)]
async fn run_presign(
    st: Arc<State>,
    wallet: Arc<WalletRecord>,
    slot: PresigSlot,
    room: pb::SessionRoom,
    signers: Vec<u16>,
    request_id: String,
    worker: Result<OwnedSemaphorePermit, String>,
) {
    let started = std::time::Instant::now();
    let id = room.session_id.clone();
    let timeout = Duration::from_secs(st.cfg.session_timeout_secs);
    let outcome: Result<(), String> = async {
        let _worker = worker?;
        let account = wallet
            .accounts
            .get(&slot.account_id)
            .cloned()
            .ok_or_else(|| "account vanished".to_string())?;
        let caller = *wallet
            .identity_of(slot.party)
            .ok_or_else(|| format!("party {} cannot presign", slot.party))?;
        let roster = Roster::new([(slot.party, caller), (PARTY_COSIGNER, st.identity.public())])
            .map_err(|e| e.to_string())?;
        let sid = SessionId::new(id.clone()).map_err(|e| e.to_string())?;
        let sid_bytes = sid.as_str().as_bytes().to_vec();
        let ctx = party_ctx(&st, &room, sid, roster, timeout);
        let aux = wallet.aux_info.clone();
        let signers2 = signers.clone();
        let out = run_session(
            ctx,
            move || {
                let share = account
                    .complete(&aux)
                    .map_err(|e| SessionError::InvalidParams(e.to_string()))?;
                Session::presign(&sid_bytes, signers2, share)
            },
            |_| {},
        )
        .await
        .map_err(|e| e.to_string())?;
        let SessionOutput::Presignature(p, public) = out else {
            return Err("presignature session produced another output".into());
        };
        let stored = mpc_core::presign::StoredPresignature {
            id: id.clone(),
            account_id: slot.account_id.clone(),
            signers,
            presignature: *p,
            public: public.as_ref().into(),
        };
        let (slot2, id2) = (slot.clone(), id.clone());
        st.blocking(move |s| s.put_presignature(&slot2, &id2, &stored))
            .await
            .map_err(|e| e.message().to_string())?;
        Ok(())
    }
    .await;
    st.finish_running(&slot);
    let ms = started.elapsed().as_millis() as u64;
    let text = match &outcome {
        Ok(()) => {
            tracing::info!(wallet_id = %slot.wallet_id, account_id = %slot.account_id, presignature_id = %id, ms, "presignature stored");
            "stored".to_string()
        }
        Err(e) => {
            tracing::warn!(wallet_id = %slot.wallet_id, account_id = %slot.account_id, presignature_id = %id, ms, error = %e, "presignature session failed");
            format!("failed: {e}")
        }
    };
    let _ = st.audit(AuditRecord {
        timestamp_ms: now_ms(),
        event: "presign_outcome",
        wallet_id: slot.wallet_id.clone(),
        party: Some(slot.party),
        account_id: Some(slot.account_id.clone()),
        request_id: Some(request_id),
        presignature_id: Some(id),
        outcome: Some(text),
        ..Default::default()
    });
}

fn unauth(e: AuthError) -> Status {
    Status::unauthenticated(e.to_string())
}

fn store_status(e: StoreError) -> Status {
    tracing::error!(error = %e, "key store error");
    Status::internal(format!("key store error: {e}"))
}

fn account_info(a: &Account) -> pb::AccountInfo {
    let pk = a.master_public_key();
    pb::AccountInfo {
        account_id: a.id.clone(),
        kind: account_kind_to_proto(a.kind) as i32,
        public_key: a.public_key.clone(),
        chain_code: a.chain_code.clone().unwrap_or_default(),
        ethereum_address: ethereum_address(&pk),
        created_at: a.created_at,
    }
}

fn norm_hex(s: &str) -> String {
    s.trim().trim_start_matches("0x").to_ascii_lowercase()
}

/// Compares the caller's public keys with ours: same account set, same keys.
fn keys_match(ours: &[(String, String)], theirs: &HashMap<String, String>) -> Result<(), String> {
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

fn parse_path(s: &str) -> Result<DerivationPath, Status> {
    if s.trim().is_empty() {
        return Ok(DerivationPath::root());
    }
    DerivationPath::parse(s).map_err(|e| Status::invalid_argument(format!("derivation_path: {e}")))
}

fn party_ctx(
    st: &State,
    room: &pb::SessionRoom,
    session: SessionId,
    roster: Roster,
    timeout: Duration,
) -> PartyContext {
    PartyContext {
        gateway: st.gateway.clone(),
        room: room.room.clone(),
        token: (!room.room_token.is_empty()).then(|| room.room_token.clone()),
        session_id: session,
        me: PARTY_COSIGNER,
        identity: st.identity.clone(),
        roster,
        timeout,
    }
}

/// The gRPC service.
#[derive(Clone, Debug)]
pub struct CosignerService {
    st: Arc<State>,
}

impl CosignerService {
    /// Wraps the shared state.
    pub fn new(st: Arc<State>) -> Self {
        Self { st }
    }
}

/// Waits until an authenticated envelope from another party of `roster` appears in
/// the room (the other parties broadcast their first round without waiting for us).
async fn wait_for_peer(
    st: &State,
    room: &pb::SessionRoom,
    roster: &Roster,
    timeout: Duration,
) -> Result<(), String> {
    use futures_util::StreamExt;
    let sid = SessionId::new(room.session_id.clone()).map_err(|e| e.to_string())?;
    let mut channel =
        mpc_wire::Channel::new(sid, PARTY_COSIGNER, st.identity.clone(), roster.clone())
            .map_err(|e| e.to_string())?;
    let token = (!room.room_token.is_empty()).then_some(room.room_token.as_str());
    let mut stream = Box::pin(st.gateway.subscribe(&room.room, token, None));
    let wait = async {
        while let Some(item) = stream.next().await {
            let (_, body) = item.map_err(|e| format!("gateway: {e}"))?;
            match channel.open(&body) {
                Ok(mpc_wire::Opened::Message(_)) | Ok(mpc_wire::Opened::NotForMe { .. }) => {
                    return Ok(())
                }
                Ok(mpc_wire::Opened::OwnEcho { .. }) => {}
                Err(e) => {
                    tracing::warn!(room = %room.room, error = %e, "rejected envelope while waiting for peers")
                }
            }
        }
        Err(format!("the gateway stream of room {} ended", room.room))
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| format!("no party joined the aux-info session within {timeout:?}"))?
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
    _permit: OwnedSemaphorePermit,
) {
    let remaining = || Duration::from_millis(deadline_ms.saturating_sub(now_ms()).max(1));
    let result: Result<DkgResult, String> = async {
        if !st.cfg.insecure_dev_primes {
            // Fresh primes are expensive: spend a set only once a registered party has
            // actually joined the aux-info session.
            wait_for_peer(&st, &aux_room, &roster, remaining()).await?;
        }
        let primes = st
            .primes
            .take(remaining())
            .await
            .map_err(|e| e.to_string())?;
        let sid = SessionId::new(aux_room.session_id.clone()).map_err(|e| e.to_string())?;
        let sid_bytes = sid.as_str().as_bytes().to_vec();
        let ctx = party_ctx(&st, &aux_room, sid, roster.clone(), remaining());
        let wid = wallet_id.clone();
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
        .map_err(|e| format!("aux info: {e}"))?;
        let SessionOutput::AuxInfo(aux) = out else {
            return Err("aux info session produced another output".into());
        };
        tracing::info!(wallet_id = %wallet_id, "aux info done");
        let mut shares = Vec::with_capacity(keygens.len());
        for (account_id, room) in keygens {
            let sid = SessionId::new(room.session_id.clone()).map_err(|e| e.to_string())?;
            let sid_bytes = sid.as_str().as_bytes().to_vec();
            let ctx = party_ctx(&st, &room, sid, roster.clone(), remaining());
            let out = run_session(
                ctx,
                move || Session::keygen(&sid_bytes, PARTY_COSIGNER, 3, 2),
                |_| {},
            )
            .await
            .map_err(|e| format!("keygen of {account_id}: {e}"))?;
            let SessionOutput::Keygen(share) = out else {
                return Err(format!("keygen of {account_id} produced another output"));
            };
            tracing::info!(wallet_id = %wallet_id, account_id = %account_id, "keygen done");
            shares.push((account_id, *share));
        }
        Ok(DkgResult { aux: *aux, shares })
    }
    .await;
    let (state, outcome) = match result {
        Ok(r) => (
            DkgState::Done(Arc::new(r)),
            "dkg complete, awaiting ConfirmWallet".to_string(),
        ),
        Err(e) => {
            tracing::error!(wallet_id = %wallet_id, error = %e, "wallet creation failed");
            (DkgState::Failed(e.clone()), format!("failed: {e}"))
        }
    };
    let _ = st.audit(AuditRecord {
        timestamp_ms: now_ms(),
        event: "wallet_dkg",
        wallet_id,
        outcome: Some(outcome),
        ..Default::default()
    });
    let _ = tx.send(state);
}

#[allow(clippy::too_many_arguments)]
async fn run_sign(
    st: Arc<State>,
    wallet: WalletRecord,
    account_id: String,
    path: DerivationPath,
    digest_kind: mpc_core::DigestKind,
    preimage: Vec<u8>,
    room: pb::SessionRoom,
    signers: Vec<u16>,
    request_id: String,
    party: u16,
    _permit: OwnedSemaphorePermit,
) {
    let started = std::time::Instant::now();
    let outcome: Result<(), String> = async {
        let account = wallet
            .accounts
            .get(&account_id)
            .cloned()
            .ok_or_else(|| "account vanished".to_string())?;
        let expected_pk = account.public_key_at(&path).map_err(|e| e.to_string())?;
        let digest = digest_kind.digest(&preimage);
        let caller = *wallet
            .identity_of(party)
            .ok_or_else(|| format!("party {party} cannot sign"))?;
        let roster = Roster::new([(party, caller), (PARTY_COSIGNER, st.identity.public())])
            .map_err(|e| e.to_string())?;
        let sid = SessionId::new(room.session_id.clone()).map_err(|e| e.to_string())?;
        let sid_bytes = sid.as_str().as_bytes().to_vec();
        let ctx = party_ctx(
            &st,
            &room,
            sid,
            roster,
            Duration::from_secs(st.cfg.session_timeout_secs),
        );
        let aux = wallet.aux_info.clone();
        let indices = (!path.is_root()).then(|| path.indices().to_vec());
        let out = run_session(
            ctx,
            move || {
                let share = account
                    .complete(&aux)
                    .map_err(|e| SessionError::InvalidParams(e.to_string()))?;
                Session::sign(
                    &sid_bytes,
                    signers,
                    share,
                    indices,
                    digest_kind.data_to_sign(&preimage),
                )
            },
            |_| {},
        )
        .await
        .map_err(|e| e.to_string())?;
        let SessionOutput::Signature(sig) = out else {
            return Err("signing session produced another output".into());
        };
        mpc_core::signature::verify_digest(&expected_pk, &digest, &sig)
            .map_err(|e| format!("the joint signature does not verify: {e}"))?;
        Ok(())
    }
    .await;
    let ms = started.elapsed().as_millis() as u64;
    let outcome_text = match &outcome {
        Ok(()) => {
            tracing::info!(wallet_id = %wallet.wallet_id, account_id = %account_id, request_id = %request_id, ms, "signed");
            "signed".to_string()
        }
        Err(e) => {
            tracing::error!(wallet_id = %wallet.wallet_id, account_id = %account_id, request_id = %request_id, ms, error = %e, "signing failed");
            format!("failed: {e}")
        }
    };
    let _ = st.audit(AuditRecord {
        timestamp_ms: now_ms(),
        event: "sign_outcome",
        wallet_id: wallet.wallet_id.clone(),
        party: Some(party),
        account_id: Some(account_id),
        request_id: Some(request_id),
        session_id: Some(room.session_id),
        outcome: Some(outcome_text),
        ..Default::default()
    });
}

#[tonic::async_trait]
impl pb::cosigner_server::Cosigner for CosignerService {
    async fn health(
        &self,
        _: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        Ok(Response::new(pb::HealthResponse {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            backend: mpc_core::BACKEND.into(),
            party_index: u32::from(self.st.cfg.party_index),
            threshold: u32::from(self.st.cfg.threshold),
            parties: u32::from(self.st.cfg.total_participants),
            identity: self.st.identity.public().to_string(),
        }))
    }

    async fn create_wallet(
        &self,
        request: Request<pb::CreateWalletRequest>,
    ) -> Result<Response<pb::CreateWalletResponse>, Status> {
        let st = &self.st;
        let req = request.into_inner();
        let now = now_ms();
        let (device, recovery) =
            auth::verify_create_wallet(&req, now, st.window_ms()).map_err(unauth)?;
        st.check_replay(
            &format!("create/{}", req.device_identity),
            &req.nonce,
            req.timestamp_ms,
            now,
        )?;
        if req.accounts == 0 || req.accounts > MAX_ACCOUNTS {
            return Err(Status::invalid_argument(format!(
                "accounts must be 1..={MAX_ACCOUNTS}"
            )));
        }
        let kind = account_kind_from_proto(req.kind)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if req.label.len() > MAX_LABEL {
            return Err(Status::invalid_argument(format!(
                "label longer than {MAX_LABEL} bytes"
            )));
        }
        let me = st.identity.public();
        if device == recovery || device == me || recovery == me {
            return Err(Status::invalid_argument(
                "device, recovery and cosigner identities must be distinct",
            ));
        }
        let roster = Roster::new([(0, device), (PARTY_COSIGNER, me), (2, recovery)])
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let permit = st.permit()?;
        let rand = || SessionId::random().map_err(|e| Status::internal(e.to_string()));
        let wallet_id = rand()?.to_string();
        let deadline_ms = now + st.cfg.wallet_creation_timeout_secs * 1000;
        let expiry_unix = deadline_ms / 1000 + 1;
        let aux_room = st.room(&rand()?, expiry_unix);
        let mut keygens = Vec::with_capacity(req.accounts as usize);
        for k in 0..req.accounts {
            keygens.push((format!("account-{k}"), st.room(&rand()?, expiry_unix)));
        }
        let expires_at_ms = deadline_ms + st.cfg.pending_wallet_ttl_secs * 1000;
        let (tx, rx) = watch::channel(DkgState::Running);
        st.pending_lock().insert(
            wallet_id.clone(),
            Arc::new(Pending {
                device,
                recovery,
                kind,
                label: req.label.clone(),
                created_at_ms: now,
                expires_at_ms,
                state: rx,
            }),
        );
        st.audit(AuditRecord {
            timestamp_ms: now,
            event: "create_wallet",
            wallet_id: wallet_id.clone(),
            party: Some(0),
            outcome: Some(format!("started: {} accounts", req.accounts)),
            ..Default::default()
        })?;
        tracing::info!(wallet_id = %wallet_id, accounts = req.accounts, "wallet creation started");
        tokio::spawn(run_dkg(
            Arc::clone(st),
            wallet_id.clone(),
            aux_room.clone(),
            keygens.clone(),
            roster,
            deadline_ms,
            tx,
            permit,
        ));
        Ok(Response::new(pb::CreateWalletResponse {
            wallet_id,
            cosigner_identity: me.to_string(),
            aux_info: Some(aux_room),
            accounts: keygens
                .into_iter()
                .map(|(account_id, room)| pb::AccountSession {
                    account_id,
                    keygen: Some(room),
                })
                .collect(),
            expires_at_ms,
        }))
    }

    async fn confirm_wallet(
        &self,
        request: Request<pb::ConfirmWalletRequest>,
    ) -> Result<Response<pb::ConfirmWalletResponse>, Status> {
        let st = &self.st;
        let req = request.into_inner();
        let (auth, party) = auth::auth_of(&req).map_err(unauth)?;
        let wallet_id = auth.wallet_id.clone();
        let pending = st.pending_lock().get(&wallet_id).cloned();
        let Some(p) = pending else {
            // Already committed (a retried confirmation): answer idempotently.
            let (wallet, _) = st.authenticate(&req).await?;
            let ours: Vec<(String, String)> = wallet
                .accounts
                .values()
                .map(|a| (a.id.clone(), a.public_key.clone()))
                .collect();
            keys_match(&ours, &req.public_keys).map_err(Status::failed_precondition)?;
            return Ok(Response::new(pb::ConfirmWalletResponse {
                committed: true,
                accounts: wallet.accounts.values().map(account_info).collect(),
            }));
        };
        let identity = if party == 0 { p.device } else { p.recovery };
        let now = now_ms();
        let auth = auth::verify_request(&req, &identity, now, st.window_ms()).map_err(unauth)?;
        st.check_replay(
            &format!("{wallet_id}/{party}"),
            &auth.nonce,
            auth.timestamp_ms,
            now,
        )?;
        let mut rx = p.state.clone();
        let wait = Duration::from_secs(st.cfg.confirm_wait_secs);
        let state = tokio::time::timeout(wait, async {
            rx.wait_for(|s| !matches!(s, DkgState::Running))
                .await
                .map(|r| (*r).clone())
        })
        .await;
        let state = match state {
            Err(_) => {
                return Err(Status::unavailable(
                    "the cosigner's side of the DKG is still running; call ConfirmWallet again",
                ))
            }
            Ok(Err(_)) => return Err(Status::internal("the wallet creation task vanished")),
            Ok(Ok(s)) => s,
        };
        let result = match state {
            DkgState::Running => return Err(Status::unavailable("DKG still running")),
            DkgState::Failed(reason) => {
                st.pending_lock().remove(&wallet_id);
                st.audit(AuditRecord {
                    timestamp_ms: now,
                    event: "confirm_wallet",
                    wallet_id: wallet_id.clone(),
                    party: Some(party),
                    decision: Some("deny"),
                    reason: Some(reason.clone()),
                    outcome: Some("discarded".into()),
                    ..Default::default()
                })?;
                return Err(Status::aborted(format!(
                    "wallet creation failed on the cosigner: {reason}"
                )));
            }
            DkgState::Done(r) => r,
        };
        let ours: Vec<(String, String)> = result
            .shares
            .iter()
            .map(|(id, s)| (id.clone(), hex::encode(s.shared_public_key.to_bytes(true))))
            .collect();
        if let Err(why) = keys_match(&ours, &req.public_keys) {
            st.pending_lock().remove(&wallet_id);
            st.audit(AuditRecord {
                timestamp_ms: now,
                event: "confirm_wallet",
                wallet_id: wallet_id.clone(),
                party: Some(party),
                decision: Some("deny"),
                reason: Some(why.clone()),
                outcome: Some("discarded".into()),
                ..Default::default()
            })?;
            return Err(Status::failed_precondition(format!(
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
            wallet_id: wallet_id.clone(),
            label: p.label.clone(),
            kind: p.kind,
            device_identity: p.device,
            recovery_identity: p.recovery,
            created_at_ms: p.created_at_ms,
            aux_info: result.aux.clone(),
            accounts,
        };
        let store = Arc::clone(&st.store);
        let rec2 = rec.clone();
        let inserted = tokio::task::spawn_blocking(move || store.insert_wallet(&rec2))
            .await
            .map_err(|e| Status::internal(format!("store task failed: {e}")))?;
        match inserted {
            Ok(()) | Err(StoreError::Exists(_)) => {}
            Err(e) => return Err(store_status(e)),
        }
        st.pending_lock().remove(&wallet_id);
        st.audit(AuditRecord {
            timestamp_ms: now,
            event: "confirm_wallet",
            wallet_id: wallet_id.clone(),
            party: Some(party),
            decision: Some("allow"),
            outcome: Some("committed".into()),
            ..Default::default()
        })?;
        tracing::info!(wallet_id = %wallet_id, accounts = rec.accounts.len(), "wallet committed");
        Ok(Response::new(pb::ConfirmWalletResponse {
            committed: true,
            accounts: rec.accounts.values().map(account_info).collect(),
        }))
    }

    async fn start_sign(
        &self,
        request: Request<pb::StartSignRequest>,
    ) -> Result<Response<pb::StartSignResponse>, Status> {
        let st = &self.st;
        let req = request.into_inner();
        let (wallet, party) = st.authenticate(&req).await?;
        let account = wallet
            .accounts
            .get(&req.account_id)
            .ok_or_else(|| Status::not_found(format!("unknown account {:?}", req.account_id)))?;
        let path = parse_path(&req.derivation_path)?;
        if account.kind == AccountKind::Independent && !path.is_root() {
            return Err(Status::invalid_argument(
                "independent accounts sign at the root path only",
            ));
        }
        let digest_kind = digest_kind_from_proto(req.digest)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        payload_kind_from_proto(req.payload_kind)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if req.preimage.is_empty() || req.preimage.len() > MAX_PREIMAGE {
            return Err(Status::invalid_argument(format!(
                "preimage must be 1..={MAX_PREIMAGE} bytes"
            )));
        }
        let permit = st.permit()?;
        let now = now_ms();
        let session = SessionId::random().map_err(|e| Status::internal(e.to_string()))?;
        let (request_id, digest) = st
            .authorize_sign(SignAuthorization {
                wallet: &wallet,
                party,
                account_id: &req.account_id,
                path: &path,
                digest_kind,
                payload_kind: req.payload_kind,
                preimage: &req.preimage,
                session_id: Some(session.to_string()),
                presignature_id: None,
            })
            .await?;
        let expiry_unix = now / 1000 + st.cfg.session_timeout_secs + 1;
        let room = st.room(&session, expiry_unix);
        let mut signers = vec![party, PARTY_COSIGNER];
        signers.sort_unstable();
        tracing::info!(wallet_id = %wallet.wallet_id, account_id = %req.account_id, request_id = %request_id, session = %session, party, "signing session started");
        tokio::spawn(run_sign(
            Arc::clone(st),
            wallet,
            req.account_id.clone(),
            path,
            digest_kind,
            req.preimage,
            room.clone(),
            signers.clone(),
            request_id.clone(),
            party,
            permit,
        ));
        Ok(Response::new(pb::StartSignResponse {
            session: Some(room),
            signers: signers.into_iter().map(u32::from).collect(),
            digest,
            request_id,
        }))
    }

    async fn start_presign(
        &self,
        request: Request<pb::StartPresignRequest>,
    ) -> Result<Response<pb::StartPresignResponse>, Status> {
        let st = &self.st;
        let req = request.into_inner();
        let (wallet, party) = st.authenticate(&req).await?;
        independent_account(&wallet, &req.account_id)?;
        let cap = st.cfg.presign_pool_cap as usize;
        if cap == 0 {
            return Err(Status::failed_precondition(
                "presignatures are disabled on this cosigner (presign_pool_cap: 0); use StartSign",
            ));
        }
        if req.count == 0 {
            return Err(Status::invalid_argument("count must be at least 1"));
        }
        // More than the per-request maximum is granted in part, like the cap.
        let count = req.count.min(st.cfg.presign_max_per_request);
        if req.release_ids.len() > cap.max(1) * 4 {
            return Err(Status::invalid_argument("too many release_ids"));
        }
        let slot = PresigSlot {
            wallet_id: wallet.wallet_id.clone(),
            account_id: req.account_id.clone(),
            party,
        };
        let now = now_ms();
        let request_id = SessionId::random()
            .map_err(|e| Status::internal(e.to_string()))?
            .to_string();
        if !req.release_ids.is_empty() {
            let (slot2, ids) = (slot.clone(), req.release_ids.clone());
            let n = st
                .blocking(move |s| s.release_presignatures(&slot2, &ids, now))
                .await?;
            st.audit(AuditRecord {
                timestamp_ms: now,
                event: "presign_release",
                wallet_id: slot.wallet_id.clone(),
                party: Some(party),
                account_id: Some(slot.account_id.clone()),
                request_id: Some(request_id.clone()),
                outcome: Some(format!(
                    "released {n} of {} presignatures the caller no longer holds",
                    req.release_ids.len()
                )),
                ..Default::default()
            })?;
        }
        // Grant under the lock: running first, then the store, so a session finishing
        // meanwhile is counted twice (conservative), never missed.
        let grant_lock = st.presign_grant.lock().await;
        let running = st.running_of(&slot);
        let slot2 = slot.clone();
        let available = st
            .blocking(move |s| s.presignature_ids(&slot2))
            .await?
            .len();
        let room_left = cap.saturating_sub(running + available);
        let granted = room_left.min(count as usize);
        if granted == 0 {
            drop(grant_lock);
            return Err(Status::resource_exhausted(format!(
                "the presignature pool of account {} is full ({available} ready + {running} running, cap {cap})",
                req.account_id
            )));
        }
        st.add_running(&slot, granted);
        drop(grant_lock);
        // Sessions queue for the bounded worker pool: the rooms live long enough for the
        // last one to start and run.
        let waves = (granted as u64).div_ceil(st.cfg.presign_workers as u64) + 1;
        let expiry_unix = now / 1000 + st.cfg.session_timeout_secs * waves + 1;
        let mut signers = vec![party, PARTY_COSIGNER];
        signers.sort_unstable();
        let wallet = Arc::new(wallet);
        let mut sessions = Vec::with_capacity(granted);
        for _ in 0..granted {
            let sid = match SessionId::random() {
                Ok(s) => s,
                Err(e) => {
                    for _ in sessions.len()..granted {
                        st.finish_running(&slot);
                    }
                    return Err(Status::internal(e.to_string()));
                }
            };
            let room = st.room(&sid, expiry_unix);
            sessions.push(pb::PresignSession {
                presignature_id: sid.to_string(),
                session: Some(room),
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
                "granted {granted} of {} (ready {available}, running {running}, cap {cap})",
                req.count
            )),
            ..Default::default()
        })
        .inspect_err(|_| {
            for _ in 0..granted {
                st.finish_running(&slot);
            }
        })?;
        // Workers are taken in the order of the returned sessions (the semaphore is
        // fair), and callers run them in that order too: with any concurrency on either
        // side, the first unfinished session always runs on both, so a caller with
        // fewer (or more) lanes than `presign_workers` never waits on a session the
        // cosigner has not started while the cosigner waits on one the caller has not.
        let rooms: Vec<pb::SessionRoom> =
            sessions.iter().filter_map(|s| s.session.clone()).collect();
        let queue_timeout = Duration::from_secs(st.cfg.session_timeout_secs * (waves - 1));
        let (st2, wallet2, slot2, signers2, request_id2) = (
            Arc::clone(st),
            Arc::clone(&wallet),
            slot.clone(),
            signers.clone(),
            request_id.clone(),
        );
        tokio::spawn(start_in_order(
            Arc::clone(&st.presign_workers),
            rooms,
            queue_timeout,
            move |room, worker| {
                tokio::spawn(run_presign(
                    Arc::clone(&st2),
                    Arc::clone(&wallet2),
                    slot2.clone(),
                    room,
                    signers2.clone(),
                    request_id2.clone(),
                    worker,
                ));
            },
        ));
        tracing::info!(wallet_id = %slot.wallet_id, account_id = %slot.account_id, party, granted, "presignature sessions started");
        Ok(Response::new(pb::StartPresignResponse {
            sessions,
            signers: signers.into_iter().map(u32::from).collect(),
            available: available as u32,
            running: (running + granted) as u32,
            cap: cap as u32,
            request_id,
        }))
    }

    async fn presign_pool_status(
        &self,
        request: Request<pb::PresignPoolStatusRequest>,
    ) -> Result<Response<pb::PresignPoolStatusResponse>, Status> {
        let st = &self.st;
        let req = request.into_inner();
        let (wallet, party) = st.authenticate(&req).await?;
        let ids: Vec<String> = if req.account_id.is_empty() {
            wallet
                .accounts
                .values()
                .filter(|a| a.kind == AccountKind::Independent)
                .map(|a| a.id.clone())
                .collect()
        } else {
            independent_account(&wallet, &req.account_id)?;
            vec![req.account_id.clone()]
        };
        let mut signers = vec![u32::from(party), u32::from(PARTY_COSIGNER)];
        signers.sort_unstable();
        let mut pools = Vec::with_capacity(ids.len());
        for account_id in ids {
            let slot = PresigSlot {
                wallet_id: wallet.wallet_id.clone(),
                account_id: account_id.clone(),
                party,
            };
            let running = st.running_of(&slot);
            let slot2 = slot.clone();
            let presignature_ids = st.blocking(move |s| s.presignature_ids(&slot2)).await?;
            pools.push(pb::PresignPool {
                account_id,
                signers: signers.clone(),
                presignature_ids,
                running: running as u32,
                cap: st.cfg.presign_pool_cap,
            });
        }
        Ok(Response::new(pb::PresignPoolStatusResponse { pools }))
    }

    async fn sign_with_presignature(
        &self,
        request: Request<pb::SignWithPresignatureRequest>,
    ) -> Result<Response<pb::SignWithPresignatureResponse>, Status> {
        let st = &self.st;
        let req = request.into_inner();
        let (wallet, party) = st.authenticate(&req).await?;
        independent_account(&wallet, &req.account_id)?;
        let digest_kind = digest_kind_from_proto(req.digest)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        payload_kind_from_proto(req.payload_kind)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if req.preimage.is_empty() || req.preimage.len() > MAX_PREIMAGE {
            return Err(Status::invalid_argument(format!(
                "preimage must be 1..={MAX_PREIMAGE} bytes"
            )));
        }
        let id = req.presignature_id.clone();
        if SessionId::new(id.clone()).is_err() {
            return Err(Status::invalid_argument(format!(
                "presignature_id {id:?} is not a valid id"
            )));
        }
        let slot = PresigSlot {
            wallet_id: wallet.wallet_id.clone(),
            account_id: req.account_id.clone(),
            party,
        };
        // Unknown or used ids are refused before the policy (and its daily spend).
        let (slot2, id2) = (slot.clone(), id.clone());
        if !st
            .blocking(move |s| s.has_presignature(&slot2, &id2))
            .await?
        {
            let (slot2, id2) = (slot.clone(), id.clone());
            let used = matches!(
                st.blocking(move |s| s.take_presignature::<serde_json::Value>(&slot2, &id2, 0))
                    .await?,
                PresigTake::Used
            );
            return Err(presignature_unavailable(&id, used));
        }
        let root = DerivationPath::root();
        let (request_id, digest) = st
            .authorize_sign(SignAuthorization {
                wallet: &wallet,
                party,
                account_id: &req.account_id,
                path: &root,
                digest_kind,
                payload_kind: req.payload_kind,
                preimage: &req.preimage,
                session_id: None,
                presignature_id: Some(id.clone()),
            })
            .await?;
        // Consume first (committed), compute after.
        let (slot2, id2) = (slot.clone(), id.clone());
        let now = now_ms();
        let taken = st
            .blocking(move |s| {
                s.take_presignature::<mpc_core::presign::StoredPresignature>(&slot2, &id2, now)
            })
            .await;
        let outcome = |text: String| AuditRecord {
            timestamp_ms: now_ms(),
            event: "sign_outcome",
            wallet_id: wallet.wallet_id.clone(),
            party: Some(party),
            account_id: Some(req.account_id.clone()),
            request_id: Some(request_id.clone()),
            presignature_id: Some(id.clone()),
            outcome: Some(text),
            ..Default::default()
        };
        let stored = match taken {
            Ok(PresigTake::Taken(p)) => p,
            Ok(other) => {
                let used = matches!(other, PresigTake::Used);
                st.audit(outcome("refused: presignature unavailable".into()))?;
                return Err(presignature_unavailable(&id, used));
            }
            Err(e) => {
                st.audit(outcome(format!("failed: {}", e.message())))?;
                return Err(e);
            }
        };
        tracing::info!(wallet_id = %wallet.wallet_id, account_id = %req.account_id, presignature_id = %id, request_id = %request_id, "presignature consumed");
        let pause = st.cfg.testing_pause_after_presign_take_ms;
        if pause > 0 {
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        let mut signers = vec![party, PARTY_COSIGNER];
        signers.sort_unstable();
        if stored.signers != signers || stored.account_id != req.account_id {
            st.audit(outcome("failed: presignature record mismatch".into()))?;
            return Err(Status::internal(format!(
                "presignature {id} does not belong to this account and signer pair"
            )));
        }
        let request = mpc_core::SignRequest {
            preimage: req.preimage,
            digest: digest_kind,
        };
        let partial = stored.issue_partial(&request);
        let bytes = mpc_core::presign::partial_to_bytes(&partial);
        st.audit(outcome("partial signature issued".into()))?;
        Ok(Response::new(pb::SignWithPresignatureResponse {
            partial_signature: bytes.to_vec(),
            signers: signers.into_iter().map(u32::from).collect(),
            digest,
            request_id,
        }))
    }

    async fn get_public_key(
        &self,
        request: Request<pb::GetPublicKeyRequest>,
    ) -> Result<Response<pb::GetPublicKeyResponse>, Status> {
        let req = request.into_inner();
        let (wallet, _) = self.st.authenticate(&req).await?;
        let account = wallet
            .accounts
            .get(&req.account_id)
            .ok_or_else(|| Status::not_found(format!("unknown account {:?}", req.account_id)))?;
        let path = parse_path(&req.derivation_path)?;
        let pk = account
            .public_key_at(&path)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(pb::GetPublicKeyResponse {
            public_key: hex::encode(pk.to_bytes(true)),
            ethereum_address: ethereum_address(&pk),
            bitcoin_address: bitcoin_p2wpkh_address(&pk, BitcoinNetwork::Mainnet)
                .unwrap_or_default(),
            derivation_path: path.to_string(),
        }))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let req = request.into_inner();
        let (wallet, _) = self.st.authenticate(&req).await?;
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: wallet.accounts.values().map(account_info).collect(),
        }))
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
            errors.push((i, w.err().unwrap_or_default()))
        })
        .await;
        assert_eq!(errors.len(), 2);
        assert!(errors
            .iter()
            .all(|(_, e)| e.contains("no presignature worker free")));
    }

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
    fn paths() {
        assert!(parse_path("").unwrap().is_root());
        assert_eq!(
            parse_path("m/44/60/0/0/1").unwrap().indices(),
            &[44, 60, 0, 0, 1]
        );
        assert_eq!(
            parse_path("m/44'/0").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            parse_path("nonsense").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }
}
