//! The presignature pool of an account at one derivation path (an independent account
//! at the root, an HD account at a child path): refill with reconciliation, and the
//! pool's status. Drivers keep each pool under [`pool_key`] (the account id for the
//! root, so root pools stored before paths existed stay where they were).
//!
//! ```text
//! Refill::start ─► CallCosigner(PresignPoolStatus) ─► ListPresignatures (local ids)
//!   ─► reconcile: when the cosigner runs no session for this pool (running == 0),
//!        DiscardPresignatures: local ids the cosigner lacks (useless alone), and
//!        the cosigner's ids this party lacks are released with the next StartPresign
//!        (except ids a signature may still be using: the driver's in-flight ids)
//!   ─► while local < target:
//!        CallCosigner(StartPresign, at most 16, the ids to release)
//!          (pool_full: stop) ─► RunPresigns (the driver runs the sessions, any number
//!          at once, in the order given, and stores each result) ─► a failure stops
//!   ─► settle: CallCosigner(PresignPoolStatus) until the cosigner runs nothing for the
//!        pool, Wait(50 ms) between, at most 5 s ─► ListPresignatures ─► Done(status)
//! Refill::status ─► CallCosigner(PresignPoolStatus) ─► ListPresignatures ─► Done
//! ```

use cosigner_api::pb;
use mpc_core::hd::DerivationPath;
use mpc_core::presign::{PresignaturePublicDataRepr, StoredPresignature};
use mpc_core::SessionOutput;
use mpc_party::PartyError;
use wallet_types::{valid_presignature_id, ErrorCode, PRESIGN_CHUNK};
use zeroize::Zeroizing;

use crate::cosigner::{signer_list, CosignerMethod, CosignerRequest, CosignerResponse, Unsigned};
use crate::error::{ClientError, RemoteError};
use crate::party::{parse_path, Party};
use crate::session::{Build, Room, SessionSpec};
use crate::step::{sealed::Flow, Call, Wait};
use crate::types::PresignPoolStatus;

/// How long the refill waits at most for the cosigner to store its halves.
pub const SETTLE_MS: u64 = 5_000;
/// The pause between two status checks while settling.
pub const SETTLE_POLL_MS: u64 = 50;
/// A presignature taken less than this long ago may be in use by a signature in flight
/// (another process or tab): the refill never releases it at the cosigner. Drivers
/// report such ids as in-flight ([`ListPresignatures::listed`]).
pub const IN_FLIGHT_MS: u64 = 60_000;

/// The name of the local pool of `account_id` at `path`: the account id for the root,
/// `account_id@m/44/60/0/0/0` for a child path (drivers store presignatures under it).
pub fn pool_key(account_id: &str, path: &DerivationPath) -> String {
    if path.is_root() {
        account_id.to_string()
    } else {
        format!("{account_id}@{path}")
    }
}

/// A path as the cosigner API carries it: empty for the root.
pub(crate) fn wire_path(path: &DerivationPath) -> String {
    if path.is_root() {
        String::new()
    } else {
        path.to_string()
    }
}

/// What the driver does next in a refill (or a status query).
#[derive(Debug)]
pub enum RefillStep {
    /// Call the cosigner (`PresignPoolStatus`, `StartPresign`).
    CallCosigner(Call<Refill>),
    /// List the local pool: the ids stored, and the ids taken recently enough that a
    /// signature may still be using them (see [`IN_FLIGHT_MS`]).
    ListPresignatures(ListPresignatures),
    /// Take (once) and drop these local presignatures: the cosigner does not hold them.
    DiscardPresignatures(DiscardPresignatures),
    /// Run these presignature sessions and store their results.
    RunPresigns(PresignBatch),
    /// Wait, then check the cosigner's pool again.
    Wait(Wait<Refill>),
    /// The pool's status after the refill (`elapsed_ms` is the driver's to set).
    Done(PresignPoolStatus),
}

/// List the local pool. See [`RefillStep::ListPresignatures`].
pub struct ListPresignatures {
    flow: Box<Refill>,
}

impl std::fmt::Debug for ListPresignatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListPresignatures")
            .field("account_id", &self.flow.account_id)
            .finish_non_exhaustive()
    }
}

impl ListPresignatures {
    /// The account.
    pub fn account_id(&self) -> &str {
        &self.flow.account_id
    }

    /// The local pool's name ([`pool_key`]).
    pub fn pool(&self) -> String {
        pool_key(&self.flow.account_id, &self.flow.path)
    }

    /// The signer pair of the pool.
    pub fn signers(&self) -> &[u16] {
        &self.flow.signers
    }

    /// The local pool: the ids stored (oldest first) and the in-flight ids.
    pub fn listed(
        self,
        ids: Vec<String>,
        in_flight: Vec<String>,
    ) -> Result<RefillStep, ClientError> {
        self.flow.listed(ids, in_flight)
    }
}

/// Drop local presignatures. See [`RefillStep::DiscardPresignatures`].
pub struct DiscardPresignatures {
    flow: Box<Refill>,
    ids: Vec<String>,
}

impl std::fmt::Debug for DiscardPresignatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscardPresignatures")
            .field("ids", &self.ids)
            .finish_non_exhaustive()
    }
}

impl DiscardPresignatures {
    /// The account.
    pub fn account_id(&self) -> &str {
        &self.flow.account_id
    }

    /// The local pool's name ([`pool_key`]).
    pub fn pool(&self) -> String {
        pool_key(&self.flow.account_id, &self.flow.path)
    }

    /// The signer pair of the pool.
    pub fn signers(&self) -> &[u16] {
        &self.flow.signers
    }

    /// The ids to take and drop.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Done: `count` of them were still there and are gone now.
    pub fn discarded(mut self, count: u32) -> Result<RefillStep, ClientError> {
        self.flow.discarded_local = count;
        self.flow.have = self.flow.have.saturating_sub(count);
        self.flow.discarded += count;
        self.flow.next_chunk()
    }
}

/// The sessions one `StartPresign` granted. Take the jobs ([`PresignBatch::jobs`]), run
/// each ([`PresignJob`]), [`report`](PresignBatch::report) each outcome, then
/// [`done`](PresignBatch::done).
pub struct PresignBatch {
    flow: Box<Refill>,
    jobs: Vec<PresignJob>,
    expected: usize,
    outcomes: Vec<PresignOutcome>,
}

impl std::fmt::Debug for PresignBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresignBatch")
            .field("expected", &self.expected)
            .field("reported", &self.outcomes.len())
            .finish_non_exhaustive()
    }
}

impl PresignBatch {
    /// The sessions to run, in the order the cosigner starts them: start them in this
    /// order (any number at once). Taken once: a second call returns nothing.
    pub fn jobs(&mut self) -> Vec<PresignJob> {
        std::mem::take(&mut self.jobs)
    }

    /// Reports how one job ended.
    pub fn report(&mut self, outcome: PresignOutcome) {
        self.outcomes.push(outcome);
    }

    /// Every job reported: the refill goes on (or stops after a failure).
    pub fn done(self) -> Result<RefillStep, ClientError> {
        if self.outcomes.len() != self.expected {
            return Err(ClientError::internal(format!(
                "{} of {} presignature sessions reported",
                self.outcomes.len(),
                self.expected
            )));
        }
        let mut flow = self.flow;
        let mut failed = false;
        for o in self.outcomes {
            match o.0 {
                Ok(()) => {
                    flow.generated += 1;
                    flow.have += 1;
                }
                Err(e) => {
                    flow.failed += 1;
                    failed = true;
                    flow.last_error = Some(e);
                }
            }
        }
        if failed {
            return flow.settle();
        }
        flow.next_chunk()
    }
}

/// One presignature session: [`spec`](PresignJob::spec) to run, then
/// [`finished`](PresignJob::finished) with its result.
pub struct PresignJob {
    spec: SessionSpec,
    end: PresignEnd,
}

impl std::fmt::Debug for PresignJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresignJob")
            .field("id", &self.end.id)
            .finish_non_exhaustive()
    }
}

impl PresignJob {
    /// The presignature id (= the session id).
    pub fn id(&self) -> &str {
        &self.end.id
    }

    /// The session to run, and what takes its result.
    pub fn start(self) -> (SessionSpec, PresignEnd) {
        (self.spec, self.end)
    }
}

/// Takes the result of one presignature session.
#[derive(Debug)]
pub struct PresignEnd {
    id: String,
    account_id: String,
    path: DerivationPath,
    signers: Vec<u16>,
}

impl PresignEnd {
    /// The presignature id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The session's result: the presignature to store, or the outcome to report (a
    /// failed session).
    pub fn finished(
        self,
        out: Result<SessionOutput, PartyError>,
    ) -> Result<StorePresignature, PresignOutcome> {
        let fail = |e: ClientError| PresignOutcome(Err(e));
        let (p, public) =
            match out.map_err(|e| fail(ClientError::session("presign", &self.id, e)))? {
                SessionOutput::Presignature(p, public) => (p, public),
                _ => {
                    return Err(fail(ClientError::SessionFailed {
                        stage: "presign".into(),
                        session_id: self.id,
                        reason: "the session produced another kind of output".into(),
                        blamed: Vec::new(),
                    }))
                }
            };
        let stored = StoredPresignature {
            id: self.id.clone(),
            account_id: self.account_id.clone(),
            signers: self.signers.clone(),
            presignature: *p,
            public: PresignaturePublicDataRepr::new(public.as_ref(), self.path.clone()),
        };
        let plaintext = Zeroizing::new(
            serde_json::to_vec(&stored).map_err(|e| fail(ClientError::internal(e.to_string())))?,
        );
        Ok(StorePresignature {
            id: self.id,
            pool: pool_key(&self.account_id, &self.path),
            account_id: self.account_id,
            signers: self.signers,
            plaintext,
        })
    }
}

/// Store a new presignature (encrypted, under its id; refused if the id was ever
/// stored or taken), then report [`StorePresignature::stored`].
pub struct StorePresignature {
    /// The presignature id.
    pub id: String,
    /// The account.
    pub account_id: String,
    /// The local pool to store it in ([`pool_key`]: the account and the path).
    pub pool: String,
    /// The signer pair.
    pub signers: Vec<u16>,
    /// What to store (secret: encrypt it at rest). Signing hands it back as
    /// [`crate::sign::TakenPresignature::plaintext`].
    pub plaintext: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for StorePresignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorePresignature")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

impl StorePresignature {
    /// Whether storing it worked.
    pub fn stored(self, result: Result<(), ClientError>) -> PresignOutcome {
        PresignOutcome(result)
    }
}

/// How one presignature session ended (report it to its [`PresignBatch`]).
#[derive(Debug)]
pub struct PresignOutcome(Result<(), ClientError>);

impl PresignOutcome {
    /// The failure, if it failed.
    pub fn error(&self) -> Option<&ClientError> {
        self.0.as_ref().err()
    }
}

/// A refill (or status query) in progress (the state behind every [`RefillStep`]).
pub struct Refill {
    party: Party,
    account_id: String,
    path: DerivationPath,
    signers: Vec<u16>,
    /// `None`: a status query.
    target: Option<u32>,
    phase: Phase,
    /// The cosigner's pool, as last reported.
    remote: Option<pb::PresignPool>,
    /// Ids to release with the next StartPresign.
    release: Vec<String>,
    have: u32,
    generated: u32,
    failed: u32,
    discarded: u32,
    discarded_local: u32,
    last_error: Option<ClientError>,
    settle_started_ms: Option<u64>,
    /// Whether a StartPresign was sent.
    asked: bool,
}

/// Where the refill is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The first status check.
    Status,
    /// Asking for sessions.
    Chunk,
    /// Waiting for the cosigner to settle.
    Settle,
}

impl Refill {
    /// Refills the root pool of `account_id` (an independent account) to `target`
    /// presignatures.
    pub fn start(party: &Party, account_id: &str, target: u32) -> Result<RefillStep, ClientError> {
        Self::begin(party, account_id, DerivationPath::root(), Some(target))
    }

    /// Refills the pool of `account_id` at `path` (`m` for an independent account's
    /// root, a child path such as `m/44/60/0/0/0` for an HD account) to `target`.
    pub fn start_at(
        party: &Party,
        account_id: &str,
        path: &str,
        target: u32,
    ) -> Result<RefillStep, ClientError> {
        Self::begin(party, account_id, parse_path(path)?, Some(target))
    }

    /// The status of `account_id`'s root pool: the local count and the cosigner's view.
    pub fn status(party: &Party, account_id: &str) -> Result<RefillStep, ClientError> {
        Self::begin(party, account_id, DerivationPath::root(), None)
    }

    /// The status of `account_id`'s pool at `path`.
    pub fn status_at(
        party: &Party,
        account_id: &str,
        path: &str,
    ) -> Result<RefillStep, ClientError> {
        Self::begin(party, account_id, parse_path(path)?, None)
    }

    fn begin(
        party: &Party,
        account_id: &str,
        path: DerivationPath,
        target: Option<u32>,
    ) -> Result<RefillStep, ClientError> {
        party.presign_account(account_id, &path)?;
        let flow = Box::new(Refill {
            party: party.clone(),
            account_id: account_id.to_string(),
            path,
            signers: party.pair_with_cosigner(),
            target,
            phase: Phase::Status,
            remote: None,
            release: Vec::new(),
            have: 0,
            generated: 0,
            failed: 0,
            discarded: 0,
            discarded_local: 0,
            last_error: None,
            settle_started_ms: None,
            asked: false,
        });
        Ok(flow.pool_status())
    }

    fn pool_status(self: Box<Self>) -> RefillStep {
        let req = pb::PresignPoolStatusRequest {
            auth: None,
            account_id: self.account_id.clone(),
        };
        let call = Unsigned::new(CosignerRequest::PresignPoolStatus(req), self.party.signer());
        RefillStep::CallCosigner(Call::new(self, call))
    }

    fn remote_ids(&self) -> &[String] {
        self.remote
            .as_ref()
            .map(|p| p.presignature_ids.as_slice())
            .unwrap_or_default()
    }

    fn listed(
        mut self: Box<Self>,
        ids: Vec<String>,
        in_flight: Vec<String>,
    ) -> Result<RefillStep, ClientError> {
        let local = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        if self.phase == Phase::Settle || self.target.is_none() {
            // The final listing.
            let usable = ids
                .iter()
                .filter(|id| self.remote_ids().contains(id))
                .count();
            return Ok(RefillStep::Done(self.status_with(local, usable as u32)));
        }
        self.have = local;
        let running = self.remote.as_ref().map_or(0, |p| p.running);
        // Reconcile: a presignature only one side holds is useless. Only while the
        // cosigner runs no session for this pool: otherwise a concurrent refill may be
        // storing its halves on either side.
        if running == 0 {
            let remote = self.remote_ids().to_vec();
            self.release = remote
                .iter()
                .filter(|id| !ids.contains(id) && !in_flight.contains(id))
                .cloned()
                .collect();
            self.discarded += self.release.len() as u32;
            let gone: Vec<String> = ids.into_iter().filter(|id| !remote.contains(id)).collect();
            if !gone.is_empty() {
                return Ok(RefillStep::DiscardPresignatures(DiscardPresignatures {
                    flow: self,
                    ids: gone,
                }));
            }
        }
        self.next_chunk()
    }

    /// Asks for the next chunk of sessions, or settles when the pool is full.
    fn next_chunk(mut self: Box<Self>) -> Result<RefillStep, ClientError> {
        let target = self.target.unwrap_or(0);
        if self.have >= target {
            return self.settle();
        }
        self.phase = Phase::Chunk;
        self.asked = true;
        let req = pb::StartPresignRequest {
            auth: None,
            account_id: self.account_id.clone(),
            count: (target - self.have).min(PRESIGN_CHUNK),
            release_ids: std::mem::take(&mut self.release),
            derivation_path: wire_path(&self.path),
        };
        let call = Unsigned::new(CosignerRequest::StartPresign(req), self.party.signer());
        Ok(RefillStep::CallCosigner(Call::new(self, call)))
    }

    fn settle(mut self: Box<Self>) -> Result<RefillStep, ClientError> {
        if self.generated == 0 {
            if let Some(e) = self.last_error.take() {
                return Err(e);
            }
        }
        self.phase = Phase::Settle;
        let idle = self.remote.as_ref().is_some_and(|p| p.running == 0);
        if !self.asked && idle {
            // Nothing was started and nothing runs: the status in hand is current.
            return Ok(RefillStep::ListPresignatures(ListPresignatures {
                flow: self,
            }));
        }
        Ok(self.pool_status())
    }

    fn on_pool(
        mut self: Box<Self>,
        sent_at_ms: u64,
        r: pb::PresignPoolStatusResponse,
    ) -> Result<RefillStep, ClientError> {
        let wire = wire_path(&self.path);
        let pool = r
            .pools
            .into_iter()
            .find(|p| p.account_id == self.account_id && p.derivation_path == wire)
            // An HD path's pool is reported once it has presignatures or sessions; none
            // yet is an empty pool.
            .or_else(|| {
                (!self.path.is_root()).then(|| pb::PresignPool {
                    account_id: self.account_id.clone(),
                    derivation_path: wire.clone(),
                    ..Default::default()
                })
            })
            .ok_or_else(|| {
                ClientError::invalid_response(format!("no pool for account {}", self.account_id))
            })?;
        if let Some(bad) = pool
            .presignature_ids
            .iter()
            .find(|id| !valid_presignature_id(id))
        {
            return Err(ClientError::invalid_response(format!(
                "presignature id {bad:?} in the pool status"
            )));
        }
        let running = pool.running;
        self.remote = Some(pool);
        if self.phase == Phase::Settle {
            let started = *self.settle_started_ms.get_or_insert(sent_at_ms);
            if running > 0 && sent_at_ms.saturating_sub(started) < SETTLE_MS {
                return Ok(RefillStep::Wait(Wait::new(self, SETTLE_POLL_MS)));
            }
        }
        Ok(RefillStep::ListPresignatures(ListPresignatures {
            flow: self,
        }))
    }

    fn on_started(
        self: Box<Self>,
        r: Result<pb::StartPresignResponse, RemoteError>,
    ) -> Result<RefillStep, ClientError> {
        let batch = match r {
            Ok(b) => b,
            // The cosigner's pool is full: nothing more to ask for.
            Err(e) if e.code == ErrorCode::PoolFull => return self.settle(),
            Err(e) => return Err(e.into()),
        };
        let signers = signer_list(&batch.signers)?;
        if signers != self.signers {
            return Err(ClientError::invalid_response(format!(
                "StartPresign signers {signers:?}, expected {:?}",
                self.signers
            )));
        }
        if batch.derivation_path != wire_path(&self.path) {
            return Err(ClientError::invalid_response(format!(
                "StartPresign granted sessions at path {:?}, asked for {}",
                batch.derivation_path, self.path
            )));
        }
        if batch.sessions.is_empty() {
            return self.settle();
        }
        let path = (!self.path.is_root()).then(|| self.path.indices().to_vec());
        let share = self.party.key_share(&self.account_id)?;
        let roster = self.party.roster(&self.signers)?;
        let mut jobs = Vec::with_capacity(batch.sessions.len());
        for s in batch.sessions {
            let room = Room::from_pb(s.session, "presign")?;
            if s.presignature_id != room.session_id || !valid_presignature_id(&s.presignature_id) {
                return Err(ClientError::invalid_response(format!(
                    "presignature id {:?} is not a valid id equal to its session id",
                    s.presignature_id
                )));
            }
            let spec = SessionSpec::new(
                room,
                self.party.index(),
                Some(self.account_id.clone()),
                self.party.identity().clone(),
                roster.clone(),
                Build::Presign {
                    signers: self.signers.clone(),
                    share: Box::new(share.clone()),
                    path: path.clone(),
                },
            );
            jobs.push(PresignJob {
                spec,
                end: PresignEnd {
                    id: s.presignature_id,
                    account_id: self.account_id.clone(),
                    path: self.path.clone(),
                    signers: self.signers.clone(),
                },
            });
        }
        let expected = jobs.len();
        Ok(RefillStep::RunPresigns(PresignBatch {
            flow: self,
            jobs,
            expected,
            outcomes: Vec::new(),
        }))
    }

    fn status_with(&self, local: u32, usable: u32) -> PresignPoolStatus {
        let remote = self.remote.clone().unwrap_or_default();
        PresignPoolStatus {
            account_id: self.account_id.clone(),
            path: self.path.to_string(),
            signers: self.signers.clone(),
            local,
            cosigner: Some(remote.presignature_ids.len() as u32),
            cosigner_running: remote.running,
            cosigner_cap: remote.cap,
            usable: Some(usable),
            generated: self.generated,
            failed: self.failed,
            discarded: self.discarded,
            elapsed_ms: 0,
        }
    }
}

impl Flow for Refill {
    type Step = RefillStep;

    fn on_reply(
        self: Box<Self>,
        method: CosignerMethod,
        sent_at_ms: u64,
        reply: Result<CosignerResponse, RemoteError>,
    ) -> Result<RefillStep, ClientError> {
        match (method, reply) {
            (CosignerMethod::PresignPoolStatus, Ok(CosignerResponse::PresignPoolStatus(r))) => {
                self.on_pool(sent_at_ms, r)
            }
            (CosignerMethod::StartPresign, Ok(CosignerResponse::StartPresign(r))) => {
                self.on_started(Ok(r))
            }
            (CosignerMethod::StartPresign, Err(e)) => self.on_started(Err(e)),
            (_, Err(e)) => Err(e.into()),
            _ => Err(ClientError::internal("a reply the refill did not ask for")),
        }
    }

    fn on_wait(self: Box<Self>) -> Result<RefillStep, ClientError> {
        Ok(self.pool_status())
    }
}
