//! The cosigner's shared state: configuration, key store, identity, gateway client,
//! audit log, the session limit and the domain registries (pending wallets, the
//! presignature scheduler). Handlers and jobs get it as `Arc<State>`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cosigner_api::auth::now_ms;
use cosigner_api::{pb, ReplayCache, PARTY_COSIGNER};
use gateway_client::GatewayClient;
use mpc_party::PartyContext;
use mpc_wire::{IdentityKey, PublicIdentity, Roster, SessionId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::admission::Admission;
use crate::audit::{AuditLog, AuditRecord};
use crate::config::Config;
use crate::creation::Creations;
use crate::enrollment::Enrollments;
use crate::error::CosignerError;
use crate::metrics::Metrics;
use crate::primes::PrimePool;
use crate::rollback::RollbackGuard;
use crate::scheduler::Scheduler;
use crate::store::{Store, StoreError};

/// Shared state of the service.
pub struct State {
    /// Configuration.
    pub cfg: Config,
    pub(crate) store: Arc<Store>,
    pub(crate) identity: IdentityKey,
    pub(crate) primes: Arc<PrimePool>,
    pub(crate) gateway: GatewayClient,
    pub(crate) replay: ReplayCache,
    audit: AuditLog,
    /// Presignature rollback detection (the anchor outside the store).
    pub(crate) rollback: RollbackGuard,
    /// Wallets created and not confirmed yet.
    pub(crate) creations: Creations,
    /// Enrollments whose aux info still runs.
    pub(crate) enrollments: Enrollments,
    /// Refreshes and device replacements not committed yet (at most one per wallet).
    pub(crate) lifecycles: crate::lifecycle::Lifecycles,
    /// The presignature scheduler (worker slots, running counts).
    pub(crate) scheduler: Scheduler,
    sessions: Arc<Semaphore>,
    /// Wallet creations computing (a budget apart from `sessions`).
    creation_slots: Arc<Semaphore>,
    /// Registration and rate limits.
    pub(crate) admission: Admission,
    /// The Prometheus metrics (`crate::admin` serves them).
    pub(crate) metrics: Metrics,
    draining: AtomicBool,
    /// The last readiness result (`crate::health`); false until the first check.
    ready: AtomicBool,
    /// Ends the running protocol sessions at the drain deadline ([`State::stop_sessions`]).
    stop_sessions: (mpc_party::StopSender, mpc_party::StopSignal),
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
        let gateway = GatewayClient::with_options(
            &cfg.gateway_url,
            gateway_client::ClientOptions {
                ca_file: cfg.gateway_ca_file.clone(),
                ..Default::default()
            },
        )
        .context("gateway_url")?;
        let audit = AuditLog::open(&cfg.audit_log)?;
        let (rollback, problem) = RollbackGuard::open(&cfg.rollback_anchor_path(), &store)
            .context("cannot check the key store against its rollback anchor")?;
        if let Some(why) = problem {
            tracing::error!(
                rollback_detected = true,
                anchor = %rollback.path().display(),
                "{why}. Presignature signing and refills are REFUSED until an operator runs \
                 `sign-service store purge-presignatures` (see docs/cosigner.md, restoring a backup)"
            );
        }
        let primes = PrimePool::new(
            Arc::clone(&store),
            cfg.prime_pool_size,
            cfg.insecure_dev_primes,
        );
        let window_ms = cfg.clock_skew_secs * 1000;
        let admission = Admission::new(&cfg)?;
        if admission.open() {
            tracing::warn!(
                dev_open_registration = true,
                "OPEN REGISTRATION (development only): anyone who reaches this cosigner may \
                 create wallets without a registration credential, within the rate limits"
            );
        } else if !admission.registration_possible() {
            tracing::warn!(
                "no registration_issuers configured: CreateWallet is refused \
                 (registration_required); imported wallets sign as usual"
            );
        }
        Ok(Arc::new(Self {
            replay: crate::authz::open_replay_cache(
                &store,
                window_ms,
                cfg.replay_nonces_per_identity,
            )
            .context("cannot load the replay cache from the key store")?,
            sessions: Arc::new(Semaphore::new(cfg.max_concurrent_sessions)),
            creation_slots: Arc::new(Semaphore::new(cfg.max_concurrent_creations)),
            admission,
            scheduler: Scheduler::new(cfg.presign_workers),
            creations: Creations::default(),
            enrollments: Enrollments::default(),
            lifecycles: crate::lifecycle::Lifecycles::default(),
            metrics: Metrics::new(),
            draining: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            stop_sessions: mpc_party::stop_signal(),
            cfg,
            store,
            identity,
            primes,
            gateway,
            audit,
            rollback,
        }))
    }

    /// The cosigner's public identity.
    pub fn public_identity(&self) -> PublicIdentity {
        self.identity.public()
    }

    /// Where the key store is (a redb file, a PostgreSQL database; never a password).
    pub fn store_description(&self) -> String {
        self.store.describe()
    }

    /// Starts the background tasks (prime generation, expiry of pending wallets and of
    /// enrollments, running or stored).
    pub fn spawn_background(self: &Arc<Self>) {
        self.primes.spawn_generator();
        let st = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                st.admission.sweep();
                let expired = st.creations.expire(now_ms());
                if expired > 0 {
                    tracing::info!(expired, "dropped expired pending wallets");
                }
                let now = now_ms();
                let expired = st.lifecycles.expire(now);
                if expired > 0 {
                    tracing::info!(
                        expired,
                        "dropped expired lifecycle sessions (nothing committed)"
                    );
                }
                let expired = st.enrollments.expire(now);
                if expired > 0 {
                    tracing::info!(expired, "dropped running enrollments past their deadline");
                }
                match st.blocking(move |s| s.purge_enrollments(now)).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "purged expired enrollments"),
                    Err(e) => tracing::warn!(error = %e, "cannot purge expired enrollments"),
                }
            }
        });
    }

    /// `busy` when the pending wallets and the running enrollments together reached
    /// `max_pending_creations`.
    pub(crate) fn check_pending_capacity(&self) -> Result<(), CosignerError> {
        if self.creations.len() + self.enrollments.len() >= self.cfg.max_pending_creations {
            return Err(CosignerError::Busy);
        }
        Ok(())
    }

    /// Number of protocol sessions running now.
    pub fn active_sessions(&self) -> usize {
        self.cfg.max_concurrent_sessions - self.sessions.available_permits()
    }

    /// Wallet creations and enrollments not finished.
    pub fn pending_creations(&self) -> usize {
        self.creations.len() + self.enrollments.len()
    }

    /// The last readiness result (`crate::health`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether the audit log can take records (readiness).
    pub(crate) fn audit_check(&self) -> Result<(), crate::audit::AuditError> {
        self.audit.check()
    }

    /// From now on, requests that would start work are refused (`cosigner_unavailable`)
    /// while the in-flight ones finish.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// The drain deadline passed: every running protocol session ends now, telling its
    /// peers `cosigner_unavailable` (retryable) in a signed stop notice, so they fail at
    /// once instead of at their own deadline. Sessions started later stop at once.
    pub fn stop_sessions(&self) {
        match mpc_wire::StopNotice::new(
            wallet_types::ErrorCode::CosignerUnavailable.as_str(),
            "the cosigner is shutting down (drain deadline reached): retry with a new session",
        ) {
            Ok(notice) => self.stop_sessions.0.stop(notice),
            Err(e) => tracing::error!(error = %e, "cannot build the stop notice"),
        }
    }

    /// Whether work is still running that a drain waits for: protocol sessions holding
    /// a slot, presignature sessions, wallet creations and enrollments computing.
    pub fn busy(&self) -> bool {
        self.active_sessions() > 0
            || self.creation_slots.available_permits() < self.cfg.max_concurrent_creations
            || self.scheduler.running_total() > 0
    }

    /// The drain after [`State::begin_drain`]: waits until no work runs or
    /// `drain_deadline_secs` passed, then stops the sessions left
    /// ([`State::stop_sessions`]) and gives them a moment to post their stop notices.
    pub async fn drain(&self) {
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.cfg.drain_deadline_secs);
        if self.busy() {
            tracing::info!(
                active_sessions = self.active_sessions(),
                presign_sessions = self.scheduler.running_total(),
                deadline_secs = self.cfg.drain_deadline_secs,
                "draining: waiting for the running sessions"
            );
        }
        while self.busy() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !self.busy() {
            tracing::info!("drained: no session running");
            return;
        }
        tracing::warn!(
            active_sessions = self.active_sessions(),
            presign_sessions = self.scheduler.running_total(),
            "drain deadline reached: stopping the sessions left (their peers get cosigner_unavailable)"
        );
        self.stop_sessions();
        // Each stopped session posts its notice within a few seconds (mpc-party's grace).
        let grace = tokio::time::Instant::now() + Duration::from_secs(6);
        while self.busy() && tokio::time::Instant::now() < grace {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `Err(ShuttingDown)` once draining has begun.
    pub(crate) fn check_serving(&self) -> Result<(), CosignerError> {
        if self.draining.load(Ordering::SeqCst) {
            Err(CosignerError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    /// Allowed clock skew of authenticated requests, ms.
    pub(crate) fn window_ms(&self) -> u64 {
        self.cfg.clock_skew_secs * 1000
    }

    /// The room of a session, with its token when the gateway needs one.
    pub(crate) fn room(&self, session: &SessionId, expiry_unix: u64) -> pb::SessionRoom {
        pb::SessionRoom {
            session_id: session.to_string(),
            room: session.to_string(),
            room_token: self
                .cfg
                .gateway_access_secret
                .as_ref()
                .map(|s| {
                    gateway_core::issue_room_token(s.as_bytes(), session.as_str(), expiry_unix)
                })
                .unwrap_or_default(),
            gateway_url: self.cfg.public_gateway_url().to_string(),
        }
    }

    /// Where and as whom the cosigner runs a session in `room`.
    pub(crate) fn party_ctx(
        &self,
        room: &pb::SessionRoom,
        session: SessionId,
        roster: Roster,
        timeout: Duration,
    ) -> PartyContext {
        PartyContext {
            gateway: self.gateway.clone(),
            room: room.room.clone(),
            token: (!room.room_token.is_empty()).then(|| room.room_token.clone()),
            session_id: session,
            me: PARTY_COSIGNER,
            identity: self.identity.clone(),
            roster,
            timeout,
            stop: Some(self.stop_sessions.1.clone()),
        }
    }

    /// Appends an audit record; a request whose record cannot be written is refused.
    /// A failure is logged loudly, with the record (so that it is not lost).
    pub(crate) fn audit(&self, rec: AuditRecord) -> Result<(), CosignerError> {
        self.audit.append(&rec).map_err(|e| {
            tracing::error!(
                error = %e,
                audit_write_failed = true,
                record = %serde_json::to_string(&rec).unwrap_or_default(),
                "AUDIT LOG WRITE FAILED: the request that needed this record fails"
            );
            CosignerError::Audit(e)
        })
    }

    /// A wallet-creation slot (waits for one; the caller bounds the wait).
    pub(crate) async fn creation_slot(&self) -> Result<OwnedSemaphorePermit, CosignerError> {
        Arc::clone(&self.creation_slots)
            .acquire_owned()
            .await
            .map_err(|_| CosignerError::ShuttingDown)
    }

    /// A protocol-session slot, or `busy`.
    pub(crate) fn permit(&self) -> Result<OwnedSemaphorePermit, CosignerError> {
        Arc::clone(&self.sessions)
            .try_acquire_owned()
            .map_err(|_| CosignerError::Busy)
    }

    /// Runs a store operation on a blocking thread.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, CosignerError> {
        let store = Arc::clone(&self.store);
        Ok(tokio::task::spawn_blocking(move || f(&store)).await??)
    }
}

impl State {
    /// Runs `f` with the rollback guard and the store on a blocking thread.
    pub(crate) async fn guarded<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&RollbackGuard, &Store) -> Result<T, CosignerError> + Send + 'static,
    ) -> Result<T, CosignerError> {
        let st = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&st.rollback, &st.store)).await?
    }
}

/// A fresh random id (session, wallet or request id).
pub(crate) fn random_id() -> Result<SessionId, CosignerError> {
    SessionId::random().map_err(CosignerError::internal)
}

/// The signer set of the caller `party` with the cosigner, sorted.
pub(crate) fn signers_with(party: u16) -> Vec<u16> {
    let mut signers = vec![party, PARTY_COSIGNER];
    signers.sort_unstable();
    signers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeySource;

    pub(crate) fn test_state(name: &str) -> Arc<State> {
        let d =
            std::env::temp_dir().join(format!("sign-service-state-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let store = Arc::new(Store::open(&d.join("s.redb"), &KeySource::InsecureDev).unwrap());
        let cfg = Config {
            audit_log: d.join("audit.jsonl"),
            insecure_dev_primes: true,
            ..Config::default()
        };
        State::new(cfg, store).unwrap()
    }

    #[test]
    fn draining_refuses_new_work() {
        let st = test_state("drain");
        st.check_serving().unwrap();
        st.begin_drain();
        let e = st.check_serving().unwrap_err();
        assert_eq!(e.code(), wallet_types::ErrorCode::CosignerUnavailable);
        assert!(e.retryable());
    }

    #[test]
    fn session_slots_run_out_as_busy() {
        let d =
            std::env::temp_dir().join(format!("sign-service-state-{}-busy", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let store = Arc::new(Store::open(&d.join("s.redb"), &KeySource::InsecureDev).unwrap());
        let cfg = Config {
            audit_log: d.join("audit.jsonl"),
            max_concurrent_sessions: 1,
            ..Config::default()
        };
        let st = State::new(cfg, store).unwrap();
        let held = st.permit().unwrap();
        assert_eq!(st.active_sessions(), 1);
        assert!(matches!(st.permit(), Err(CosignerError::Busy)));
        drop(held);
        let _again = st.permit().unwrap();
    }

    /// A session whose deadline passes while it is inside a protocol step (held here by
    /// the test, as an hours-long exponentiation would hold it) gives its session slot
    /// back at the deadline, not when the step ends. Deterministic: the deadline has
    /// passed when the session starts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_past_its_deadline_frees_its_slot_while_a_step_computes() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let d = std::env::temp_dir().join(format!(
            "sign-service-state-{}-deadline",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        let store = Arc::new(Store::open(&d.join("s.redb"), &KeySource::InsecureDev).unwrap());
        let cfg = Config {
            audit_log: d.join("audit.jsonl"),
            gateway_url: format!("http://{}", silent.local_addr().unwrap()),
            max_concurrent_sessions: 1,
            ..Config::default()
        };
        let st = State::new(cfg, store).unwrap();
        let permit = st.permit().unwrap();
        let sid = random_id().unwrap();
        let room = st.room(&sid, now_ms() / 1000 + 60);
        let device = IdentityKey::generate().unwrap().public();
        let roster = Roster::new([(0, device), (PARTY_COSIGNER, st.identity.public())]).unwrap();
        let ctx = st.party_ctx(&room, sid, roster, Duration::ZERO);
        let (release, held) = std::sync::mpsc::channel::<()>();
        let run = tokio::spawn(async move {
            let _permit = permit;
            mpc_party::run_session(
                ctx,
                move || {
                    let _ = held.recv();
                    Err(mpc_core::SessionError::Internal("the step ended".into()))
                },
                |_| {},
            )
            .await
        });
        let out = tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("the session did not end at its deadline")
            .unwrap();
        assert!(
            matches!(out, Err(mpc_party::PartyError::Timeout { .. })),
            "{out:?}"
        );
        assert_eq!(st.active_sessions(), 0);
        let _slot = st
            .permit()
            .expect("the slot is free while the step computes");
        drop(release);
    }
}
