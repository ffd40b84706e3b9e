//! Wallet creation: the device's flow ([`Create`]) and one party joining the rooms the
//! cosigner opened ([`Join`]).
//!
//! ```text
//! Create::start ─► CallCosigner(Health) ─► RecoveryIdentity ─► Primes (the device's)
//!   ─► CallCosigner(CreateWallet, signed by the new device identity)
//!   ─► StartRecovery (the driver starts party 2 in the same rooms: natively a Join of
//!      its own, in the browser the recovery agent's job)
//!   ─► RunSession(aux-info) ─► RunSession(keygen) per account   (the device, party 0)
//!   ─► AwaitRecovery (party 2's public keys) ─► both parties agree?
//!   ─► Persist (the driver stores the device's bundle)
//!   ─► CallCosigner(ConfirmWallet) ─► wallet_not_ready / cosigner_unavailable:
//!        Wait(500 ms) and again (at most 30 times) ─► Done
//! Create::from_enrollment (the device's Enrollment: its identity and aux info)
//!   ─► CallCosigner(Health: the enrollment's cosigner?)
//!   ─► CallCosigner(CreateWallet with enrollment_id) ─► wallet_not_ready:
//!        Wait(1 s) and again (at most 60 times); not_found / unauthorized:
//!        ClientError::EnrollmentUnusable; an aux-info room: refused
//!   ─► StartRecovery (party 2 joins with its own enrollment)
//!   ─► RunSession(keygen) per account ─► AwaitRecovery ─► Persist ─► ConfirmWallet ─► Done
//! Join::start ─► RunSession(aux-info, unless JoinAux::Ready) ─► RunSession(keygen) per
//!   account ─► Done(bundle)
//! ```

use std::collections::{BTreeMap, BTreeSet};

use cosigner_api::{auth, pb};
use mpc_core::keystore::KeyShareBundle;
use mpc_core::primes::PrimeSet;
use mpc_core::{Account, AuxInfo, SessionOutput};
use mpc_party::PartyError;
use mpc_wire::{IdentityKey, PublicIdentity, Roster};
use wallet_types::{
    AccountKind, ErrorCode, COSIGNER, DEVICE, MAX_ACCOUNTS, MAX_ACCOUNT_ID_LEN, PARTIES, RECOVERY,
};

use crate::cosigner::{CosignerMethod, CosignerRequest, CosignerResponse, Signer, Unsigned};
use crate::enrollment::Enrollment;
use crate::error::{ClientError, RemoteError};
use crate::register::{sealed::Registers, Registration};
pub use crate::register::{DevicePrimes, RecoveryIdentity};
use crate::session::{AccountRoom, Build, Room, SessionSpec};
use crate::step::{sealed::Flow, Call, RunSession, Wait};
use crate::types::AccountInfo;

/// Pause between two ConfirmWallet calls while the cosigner's DKG finishes.
pub const CONFIRM_RETRY_MS: u64 = 500;
/// Most ConfirmWallet retries.
pub const CONFIRM_ATTEMPTS: u32 = 30;
/// Pause between two CreateWallet calls while the cosigner still stores the
/// enrollment's aux info (`wallet_not_ready`).
pub const ENROLLED_CREATE_RETRY_MS: u64 = 1000;
/// Most CreateWallet retries for a wallet created from an enrollment.
pub const ENROLLED_CREATE_ATTEMPTS: u32 = 60;

// ------------------------------------------------------------------------------ join

/// Where a joining party's aux info comes from.
#[derive(Clone)]
pub enum JoinAux {
    /// Run the aux-info session in this room with these four safe primes.
    Run {
        /// The aux-info room.
        room: Room,
        /// This party's primes.
        primes: PrimeSet,
    },
    /// This party's aux info from its enrollment (only the keygens run).
    Ready(Box<AuxInfo>),
}

impl std::fmt::Debug for JoinAux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinAux::Run { room, .. } => f
                .debug_struct("Run")
                .field("room", room)
                .finish_non_exhaustive(),
            JoinAux::Ready(_) => f.write_str("Ready"),
        }
    }
}

/// What one party needs to join a wallet creation (or, with no accounts and
/// [`JoinAux::Run`], an enrollment's aux-info room alone).
#[derive(Clone)]
pub struct JoinParams {
    /// This party's keygen index (0 device, 2 recovery).
    pub me: u16,
    /// This party's identity key (its secret ends up in the resulting bundle).
    pub identity: IdentityKey,
    /// The public identities of the two other parties, by keygen index.
    pub peers: BTreeMap<u16, PublicIdentity>,
    /// The aux info: run now, or from an enrollment.
    pub aux: JoinAux,
    /// Kind of every account.
    pub kind: AccountKind,
    /// The keygen rooms, in order (none: an enrollment's aux info alone).
    pub accounts: Vec<AccountRoom>,
    /// Creation time of the accounts, seconds since the Unix epoch.
    pub created_at: u64,
}

impl std::fmt::Debug for JoinParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinParams")
            .field("me", &self.me)
            .field("kind", &self.kind)
            .field("aux", &self.aux)
            .field("accounts", &self.accounts)
            .finish_non_exhaustive()
    }
}

impl JoinParams {
    /// Checks indices, identities, rooms and primes before any network traffic.
    pub fn validate(&self) -> Result<(), ClientError> {
        if self.me >= PARTIES || self.me == COSIGNER {
            return Err(ClientError::input(format!(
                "party index {} cannot join as a user party (0 or 2)",
                self.me
            )));
        }
        let expected: BTreeSet<u16> = (0..PARTIES).filter(|&i| i != self.me).collect();
        let got: BTreeSet<u16> = self.peers.keys().copied().collect();
        if got != expected {
            return Err(ClientError::input(format!(
                "need the identities of parties {expected:?}, got {got:?}"
            )));
        }
        let mut ids = BTreeSet::from([self.identity.public().to_bytes()]);
        for id in self.peers.values() {
            if !ids.insert(id.to_bytes()) {
                return Err(ClientError::input(
                    "the three parties' identities must differ",
                ));
            }
        }
        // No accounts only for an enrollment's aux info alone.
        let min = usize::from(matches!(self.aux, JoinAux::Ready(_)));
        if self.accounts.len() < min || self.accounts.len() > MAX_ACCOUNTS as usize {
            return Err(ClientError::input(format!(
                "need {min}..={MAX_ACCOUNTS} accounts, got {}",
                self.accounts.len()
            )));
        }
        let mut sessions = BTreeSet::new();
        let mut accounts = BTreeSet::new();
        let aux_room = match &self.aux {
            JoinAux::Run { room, .. } => Some(("aux_info", room)),
            JoinAux::Ready(_) => None,
        };
        for (what, room) in aux_room.into_iter().chain(
            self.accounts
                .iter()
                .map(|a| (a.account_id.as_str(), &a.keygen)),
        ) {
            room.check(what).map_err(ClientError::input)?;
            if !sessions.insert(room.session_id.as_str()) {
                return Err(ClientError::input(format!(
                    "session id {} is used twice",
                    room.session_id
                )));
            }
        }
        for a in &self.accounts {
            if a.account_id.is_empty() || a.account_id.len() > MAX_ACCOUNT_ID_LEN {
                return Err(ClientError::input(format!(
                    "account ids must have 1..={MAX_ACCOUNT_ID_LEN} characters"
                )));
            }
            if !accounts.insert(a.account_id.as_str()) {
                return Err(ClientError::input(format!(
                    "account id {} is used twice",
                    a.account_id
                )));
            }
        }
        if let JoinAux::Run { primes, .. } = &self.aux {
            primes
                .to_pregenerated()
                .map_err(|e| ClientError::config(format!("primes: {e}")))?;
        }
        Ok(())
    }

    fn roster(&self) -> Result<Roster, ClientError> {
        let mut all: Vec<(u16, PublicIdentity)> =
            self.peers.iter().map(|(&i, id)| (i, *id)).collect();
        all.push((self.me, self.identity.public()));
        all.sort_by_key(|(i, _)| *i);
        Roster::new(all).map_err(|e| ClientError::input(format!("roster: {e}")))
    }
}

/// One party's aux info and DKGs, shared by [`Join`] and [`Create`].
pub(crate) struct Joining {
    params: JoinParams,
    roster: Roster,
    /// The aux-info room and primes, until the aux-info session takes them.
    aux_run: Option<(Room, PrimeSet)>,
    aux: Option<AuxInfo>,
    /// Keygens done.
    done: usize,
    bundle: KeyShareBundle,
}

impl Joining {
    pub(crate) fn new(params: JoinParams) -> Result<Self, ClientError> {
        params.validate()?;
        let roster = params.roster()?;
        let (aux_run, aux) = match &params.aux {
            JoinAux::Run { room, primes } => (Some((room.clone(), primes.clone())), None),
            JoinAux::Ready(a) => (None, Some((**a).clone())),
        };
        Ok(Joining {
            aux_run,
            bundle: KeyShareBundle::new(params.me),
            roster,
            params,
            aux,
            done: 0,
        })
    }

    /// The aux-info session id (empty when the aux info came from an enrollment).
    fn aux_session_id(&self) -> &str {
        match &self.params.aux {
            JoinAux::Run { room, .. } => &room.session_id,
            JoinAux::Ready(_) => "",
        }
    }

    /// The next session, `None` when every one has run.
    pub(crate) fn next_session(&mut self) -> Option<SessionSpec> {
        let p = &self.params;
        let (room, account, build) = match self.aux_run.take() {
            Some((room, primes)) => (room, None, Build::AuxInfo(primes)),
            None => {
                let a = p.accounts.get(self.done)?;
                (a.keygen.clone(), Some(a.account_id.clone()), Build::Keygen)
            }
        };
        Some(SessionSpec::new(
            room,
            p.me,
            account,
            p.identity.clone(),
            self.roster.clone(),
            build,
        ))
    }

    /// The result of the session [`Joining::next_session`] handed out last.
    pub(crate) fn finished(
        &mut self,
        out: Result<SessionOutput, PartyError>,
    ) -> Result<(), ClientError> {
        let p = &self.params;
        let Some(aux) = &self.aux else {
            let sid = self.aux_session_id().to_string();
            match out.map_err(|e| ClientError::session("aux-info", &sid, e))? {
                SessionOutput::AuxInfo(a) => self.aux = Some(*a),
                _ => return Err(unexpected("aux-info", &sid)),
            }
            return Ok(());
        };
        let room = p
            .accounts
            .get(self.done)
            .ok_or_else(|| ClientError::internal("a keygen nobody asked for"))?;
        let sid = &room.keygen.session_id;
        let share = match out.map_err(|e| ClientError::session("keygen", sid, e))? {
            SessionOutput::Keygen(s) => *s,
            _ => return Err(unexpected("keygen", sid)),
        };
        let a = Account::new(room.account_id.clone(), p.kind, share, p.created_at);
        a.complete(aux).map_err(|e| ClientError::SessionFailed {
            stage: "keygen".into(),
            session_id: sid.clone(),
            reason: format!("the new share does not fit the aux info: {e}"),
            blamed: Vec::new(),
        })?;
        self.bundle.accounts.insert(a.id.clone(), a);
        self.done += 1;
        Ok(())
    }

    /// The complete bundle (aux info, accounts, identity secret, peer identities).
    pub(crate) fn into_bundle(self) -> KeyShareBundle {
        let mut bundle = self.bundle;
        bundle.aux_info = self.aux;
        bundle.identity_secret = Some(self.params.identity.to_seed_hex().to_string());
        bundle.peers = self
            .params
            .peers
            .iter()
            .map(|(&i, id)| (i, id.to_string()))
            .collect();
        bundle
    }
}

fn unexpected(stage: &str, sid: &str) -> ClientError {
    ClientError::SessionFailed {
        stage: stage.into(),
        session_id: sid.into(),
        reason: "the session produced another kind of output".into(),
        blamed: Vec::new(),
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

/// A party's part of a wallet creation is done.
#[derive(Debug)]
pub struct Joined {
    /// The party's complete bundle (store it encrypted).
    pub bundle: KeyShareBundle,
    /// The accounts' public keys, by account id.
    pub public_keys: BTreeMap<String, String>,
}

/// What the driver does next when one party joins a wallet creation.
// `Done` is the bundle itself, moved out once: boxing it would change the drivers' API.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum JoinStep {
    /// Run this party's next session (aux info, then one keygen per account).
    RunSession(RunSession<Join>),
    /// Done: store the bundle.
    Done(Joined),
}

/// One party joining a wallet creation (the state behind every [`JoinStep`]).
pub struct Join {
    joining: Joining,
}

impl Join {
    /// Starts joining; checks the parameters first.
    pub fn start(params: JoinParams) -> Result<JoinStep, ClientError> {
        let flow = Box::new(Join {
            joining: Joining::new(params)?,
        });
        Ok(flow.next())
    }

    fn next(mut self: Box<Self>) -> JoinStep {
        match self.joining.next_session() {
            Some(spec) => JoinStep::RunSession(RunSession::new(self, spec)),
            None => {
                let bundle = self.joining.into_bundle();
                JoinStep::Done(Joined {
                    public_keys: bundle_public_keys(&bundle),
                    bundle,
                })
            }
        }
    }
}

impl Flow for Join {
    type Step = JoinStep;

    fn on_reply(
        self: Box<Self>,
        _: CosignerMethod,
        _: u64,
        _: Result<CosignerResponse, RemoteError>,
    ) -> Result<JoinStep, ClientError> {
        Err(ClientError::internal("joining calls no cosigner"))
    }

    fn on_session(
        mut self: Box<Self>,
        out: Result<SessionOutput, PartyError>,
    ) -> Result<JoinStep, ClientError> {
        self.joining.finished(out)?;
        Ok(self.next())
    }
}

// ---------------------------------------------------------------------------- create

/// The wallet to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateParams {
    /// Number of accounts (1..=100).
    pub accounts: u32,
    /// Kind of every account.
    pub kind: AccountKind,
    /// A label for the cosigner's records.
    pub label: String,
    /// The registration credential the cosigner's operator issued for this wallet
    /// (`wmreg1.…`); `None` only for a cosigner in dev mode (open registration). Not
    /// needed (not sent) for a wallet created from an enrollment.
    pub registration_credential: Option<String>,
}

/// What the recovery party (party 2) needs to join the creation: the driver starts it
/// with this (natively a [`Join`] with its own identity and primes, see
/// [`RecoveryJob::join_params`], or with its enrollment, see
/// [`RecoveryJob::join_params_enrolled`]; in the browser the recovery agent's job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryJob {
    /// The cosigner's wallet id.
    pub wallet_id: String,
    /// Party 1.
    pub cosigner_identity: PublicIdentity,
    /// Party 0.
    pub device_identity: PublicIdentity,
    /// Party 2 (the identity the driver gave).
    pub recovery_identity: PublicIdentity,
    /// Kind of every account.
    pub kind: AccountKind,
    /// The aux-info room. EMPTY (every field) for a wallet created from an enrollment
    /// ([`RecoveryJob::enrollment_id`] set): the recovery party then uses its own
    /// enrollment's aux info and runs the keygens only.
    pub aux_info: Room,
    /// The keygen rooms, in order.
    pub accounts: Vec<AccountRoom>,
    /// The enrollment the wallet is created from, if any.
    pub enrollment_id: Option<String>,
}

impl RecoveryJob {
    /// The [`JoinParams`] of the recovery party, given its identity key (whose public
    /// identity must be [`RecoveryJob::recovery_identity`]) and primes. Not for a wallet
    /// created from an enrollment ([`RecoveryJob::join_params_enrolled`]).
    pub fn join_params(
        &self,
        identity: IdentityKey,
        primes: PrimeSet,
        created_at: u64,
    ) -> Result<JoinParams, ClientError> {
        if self.enrollment_id.is_some() {
            return Err(ClientError::internal(
                "a wallet created from an enrollment: join with the recovery party's enrollment",
            ));
        }
        self.params(
            identity,
            JoinAux::Run {
                room: self.aux_info.clone(),
                primes,
            },
            created_at,
        )
    }

    /// The [`JoinParams`] of the recovery party from its enrollment (the same
    /// enrollment id, device and cosigner identities): the keygens only.
    pub fn join_params_enrolled(
        &self,
        enrollment: &Enrollment,
        created_at: u64,
    ) -> Result<JoinParams, ClientError> {
        check_enrollment_fits(
            enrollment,
            self.enrollment_id.as_deref(),
            RECOVERY,
            [
                (DEVICE, self.device_identity),
                (COSIGNER, self.cosigner_identity),
            ],
        )?;
        self.params(
            enrollment.identity.clone(),
            JoinAux::Ready(Box::new(enrollment.aux_info.clone())),
            created_at,
        )
    }

    fn params(
        &self,
        identity: IdentityKey,
        aux: JoinAux,
        created_at: u64,
    ) -> Result<JoinParams, ClientError> {
        if identity.public() != self.recovery_identity {
            return Err(ClientError::internal(
                "the recovery identity differs from the one registered",
            ));
        }
        Ok(JoinParams {
            me: RECOVERY,
            identity,
            peers: BTreeMap::from([
                (DEVICE, self.device_identity),
                (COSIGNER, self.cosigner_identity),
            ]),
            aux,
            kind: self.kind,
            accounts: self.accounts.clone(),
            created_at,
        })
    }
}

/// Checks that `enrollment` is the one `expected_id` names, of party `me`, with these
/// peers: [`ClientError::InvalidInput`] otherwise.
pub(crate) fn check_enrollment_fits(
    enrollment: &Enrollment,
    expected_id: Option<&str>,
    me: u16,
    peers: [(u16, PublicIdentity); 2],
) -> Result<(), ClientError> {
    enrollment.validate()?;
    if expected_id != Some(enrollment.enrollment_id.as_str()) {
        return Err(ClientError::input(format!(
            "enrollment {} is not the one of this wallet ({})",
            enrollment.enrollment_id,
            expected_id.unwrap_or("none")
        )));
    }
    if enrollment.party_index != me {
        return Err(ClientError::input(format!(
            "an enrollment of party {}, expected party {me}",
            enrollment.party_index
        )));
    }
    for (i, id) in peers {
        if enrollment.peers.get(&i) != Some(&id) {
            return Err(ClientError::input(format!(
                "enrollment {} was made with another identity of party {i}",
                enrollment.enrollment_id
            )));
        }
    }
    Ok(())
}

/// The wallet, created and confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedWallet {
    /// The cosigner's wallet id.
    pub wallet_id: String,
    /// The cosigner's public identity.
    pub cosigner_identity: String,
    /// The accounts.
    pub accounts: Vec<AccountInfo>,
    /// Whether the cosigner committed its shares.
    pub committed: bool,
}

/// What the driver does next in a wallet creation.
#[derive(Debug)]
pub enum CreateStep {
    /// Call the cosigner (`Health`, `CreateWallet`, `ConfirmWallet`).
    CallCosigner(Call<Create>),
    /// Give the recovery party's public identity (natively: generate the recovery
    /// party's identity key; in the browser: ask the recovery agent). Not asked for a
    /// wallet created from an enrollment.
    RecoveryIdentity(RecoveryIdentity),
    /// Give the device's four safe primes (loaded, prepared or generated: minutes). Not
    /// asked for a wallet created from an enrollment.
    Primes(DevicePrimes),
    /// Start the recovery party on [`StartRecovery::job`] (it runs alongside the
    /// device's sessions), then [`StartRecovery::started`].
    StartRecovery(StartRecovery),
    /// Run the device's next session.
    RunSession(RunSession<Create>),
    /// Wait for the recovery party to finish and give its public keys.
    AwaitRecovery(AwaitRecovery),
    /// Store the device's bundle (encrypted), then [`Persist::persisted`].
    Persist(Persist),
    /// Wait before calling CreateWallet (its enrollment's aux info is still being
    /// stored at the cosigner) or ConfirmWallet again.
    Wait(Wait<Create>),
    /// Created and confirmed.
    Done(CreatedWallet),
}

/// See [`CreateStep::StartRecovery`].
pub struct StartRecovery {
    flow: Box<Create>,
    job: Box<RecoveryJob>,
}

impl std::fmt::Debug for StartRecovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartRecovery")
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl StartRecovery {
    /// What the recovery party joins.
    pub fn job(&self) -> &RecoveryJob {
        &self.job
    }

    /// The recovery party runs (or is about to): go on with the device's sessions.
    pub fn started(self) -> Result<CreateStep, ClientError> {
        Ok(self.flow.next_session())
    }
}

/// See [`CreateStep::AwaitRecovery`].
pub struct AwaitRecovery {
    flow: Box<Create>,
}

impl std::fmt::Debug for AwaitRecovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AwaitRecovery")
    }
}

impl AwaitRecovery {
    /// The recovery party's public keys, by account id. They must equal the device's.
    pub fn finished(
        self,
        public_keys: BTreeMap<String, String>,
    ) -> Result<CreateStep, ClientError> {
        let mut flow = self.flow;
        let joining = flow
            .joining
            .take()
            .ok_or_else(|| ClientError::internal("no device bundle"))?;
        let bundle = joining.into_bundle();
        let mine = bundle_public_keys(&bundle);
        if mine != public_keys {
            return Err(ClientError::SessionFailed {
                stage: "keygen".into(),
                session_id: flow
                    .job
                    .as_ref()
                    .map(|j| match &j.enrollment_id {
                        Some(e) => e.clone(),
                        None => j.aux_info.session_id.clone(),
                    })
                    .unwrap_or_default(),
                reason: "the device and recovery parties obtained different public keys".into(),
                blamed: Vec::new(),
            });
        }
        flow.public_keys = mine;
        Ok(CreateStep::Persist(Persist { flow, bundle }))
    }
}

/// See [`CreateStep::Persist`].
pub struct Persist {
    flow: Box<Create>,
    bundle: KeyShareBundle,
}

impl std::fmt::Debug for Persist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persist")
            .field("wallet_id", &self.flow.wallet_id)
            .finish_non_exhaustive()
    }
}

impl Persist {
    /// The wallet id.
    pub fn wallet_id(&self) -> &str {
        &self.flow.wallet_id
    }

    /// The label given at creation.
    pub fn label(&self) -> &str {
        &self.flow.params.label
    }

    /// The enrollment the wallet was created from, if any (the driver deletes it once
    /// the bundle is stored).
    pub fn enrollment_id(&self) -> Option<&str> {
        self.flow
            .enrollment
            .as_ref()
            .map(|e| e.enrollment_id.as_str())
    }

    /// The device's complete bundle (holds the identity secret: encrypt it).
    pub fn bundle(&self) -> &KeyShareBundle {
        &self.bundle
    }

    /// The accounts.
    pub fn accounts(&self) -> Vec<AccountInfo> {
        self.bundle
            .accounts
            .values()
            .map(AccountInfo::from)
            .collect()
    }

    /// Stored durably: confirm with the cosigner.
    pub fn persisted(self) -> Result<CreateStep, ClientError> {
        let mut flow = self.flow;
        flow.accounts = self
            .bundle
            .accounts
            .values()
            .map(AccountInfo::from)
            .collect();
        Ok(flow.confirm())
    }
}

/// A wallet creation in progress (the state behind every [`CreateStep`]).
pub struct Create {
    params: CreateParams,
    reg: Registration,
    /// The device's enrollment the wallet is created from.
    enrollment: Option<Enrollment>,
    wallet_id: String,
    cosigner_identity: String,
    job: Option<RecoveryJob>,
    joining: Option<Joining>,
    public_keys: BTreeMap<String, String>,
    accounts: Vec<AccountInfo>,
    /// ConfirmWallet retries.
    attempts: u32,
    /// CreateWallet retries (an enrollment's aux info not stored yet).
    create_attempts: u32,
}

impl Create {
    /// Starts creating a wallet as the device: generates the device identity, checks
    /// the parameters.
    pub fn start(params: CreateParams) -> Result<CreateStep, ClientError> {
        let device = IdentityKey::generate().map_err(|e| ClientError::internal(e.to_string()))?;
        Self::begin(params, device, None)
    }

    /// Starts creating a wallet from the device's enrollment ([`crate::Enroll`]): its
    /// identity and aux info are reused, so no recovery identity or primes are asked
    /// for, `CreateWallet` names the enrollment (and carries no registration
    /// credential), and only the keygens run. The bundle has the same shape as
    /// [`Create::start`]'s (aux info and accounts).
    pub fn from_enrollment(
        params: CreateParams,
        enrollment: Enrollment,
    ) -> Result<CreateStep, ClientError> {
        enrollment.validate()?;
        if enrollment.party_index != DEVICE {
            return Err(ClientError::input(format!(
                "a wallet is created from the device's enrollment, not party {}'s",
                enrollment.party_index
            )));
        }
        Self::begin(params, enrollment.identity.clone(), Some(enrollment))
    }

    fn begin(
        params: CreateParams,
        device: IdentityKey,
        enrollment: Option<Enrollment>,
    ) -> Result<CreateStep, ClientError> {
        if !(1..=MAX_ACCOUNTS).contains(&params.accounts) {
            return Err(ClientError::input(format!(
                "accounts must be between 1 and {MAX_ACCOUNTS}, got {}",
                params.accounts
            )));
        }
        let mut reg = Registration::new(device);
        reg.recovery = enrollment.as_ref().and_then(Enrollment::recovery_identity);
        let flow = Box::new(Create {
            params,
            reg,
            enrollment,
            wallet_id: String::new(),
            cosigner_identity: String::new(),
            job: None,
            joining: None,
            public_keys: BTreeMap::new(),
            accounts: Vec::new(),
            attempts: 0,
            create_attempts: 0,
        });
        let call = Unsigned::new(CosignerRequest::Health(pb::HealthRequest {}), Signer::None);
        Ok(CreateStep::CallCosigner(Call::new(flow, call)))
    }

    fn on_health(mut self: Box<Self>, h: pb::HealthResponse) -> Result<CreateStep, ClientError> {
        self.reg.on_health(h);
        let Some(e) = &self.enrollment else {
            return Ok(CreateStep::RecoveryIdentity(RecoveryIdentity {
                flow: self,
            }));
        };
        if Some(self.reg.audience()?) != e.cosigner_identity() {
            return Err(ClientError::input(format!(
                "enrollment {} was made with another cosigner (its identity differs from this cosigner's)",
                e.enrollment_id
            )));
        }
        self.create_wallet_call()
    }

    /// The signed CreateWallet call (with the enrollment id, if any).
    fn create_wallet_call(self: Box<Self>) -> Result<CreateStep, ClientError> {
        let p = &self.params;
        let recovery = self.reg.recovery()?;
        let req = pb::CreateWalletRequest {
            recovery_identity: recovery.to_string(),
            accounts: p.accounts,
            kind: crate::convert::account_kind_to_proto(p.kind) as i32,
            label: p.label.clone(),
            registration_credential: match &self.enrollment {
                Some(_) => String::new(),
                None => p.registration_credential.clone().unwrap_or_default(),
            },
            enrollment_id: self
                .enrollment
                .as_ref()
                .map(|e| e.enrollment_id.clone())
                .unwrap_or_default(),
            ..Default::default()
        };
        let signer = Signer::Device {
            key: self.reg.device.clone(),
            audience: self.reg.audience()?,
        };
        let call = Unsigned::new(CosignerRequest::CreateWallet(req), signer);
        Ok(CreateStep::CallCosigner(Call::new(self, call)))
    }

    fn next_session(mut self: Box<Self>) -> CreateStep {
        match self.joining.as_mut().and_then(Joining::next_session) {
            Some(spec) => CreateStep::RunSession(RunSession::new(self, spec)),
            None => CreateStep::AwaitRecovery(AwaitRecovery { flow: self }),
        }
    }

    fn confirm(self: Box<Self>) -> CreateStep {
        let req = pb::ConfirmWalletRequest {
            auth: None,
            public_keys: self.public_keys.clone().into_iter().collect(),
        };
        let signer = Signer::Party {
            key: self.reg.device.clone(),
            wallet_id: self.wallet_id.clone(),
            party: DEVICE,
            audience: self.cosigner_identity.parse().ok(),
        };
        let call = Unsigned::new(CosignerRequest::ConfirmWallet(req), signer);
        CreateStep::CallCosigner(Call::new(self, call))
    }

    fn on_created(
        mut self: Box<Self>,
        sent_at_ms: u64,
        r: pb::CreateWalletResponse,
    ) -> Result<CreateStep, ClientError> {
        auth::validate_wallet_id(&r.wallet_id)
            .map_err(|e| ClientError::invalid_response(format!("wallet id: {e}")))?;
        let cosigner = self
            .reg
            .check_cosigner(&r.cosigner_identity, "CreateWallet")?;
        if r.accounts.len() != self.params.accounts as usize {
            return Err(ClientError::invalid_response(format!(
                "asked for {} accounts, the cosigner opened {}",
                self.params.accounts,
                r.accounts.len()
            )));
        }
        let (aux, aux_room) = match (&self.enrollment, r.aux_info) {
            (None, room) => {
                let room = Room::from_pb(room, "aux-info")?;
                let primes = self.reg.take_primes()?;
                (
                    JoinAux::Run {
                        room: room.clone(),
                        primes,
                    },
                    room,
                )
            }
            (Some(e), None) => (
                JoinAux::Ready(Box::new(e.aux_info.clone())),
                Room {
                    session_id: String::new(),
                    room: String::new(),
                    room_token: String::new(),
                    gateway_url: String::new(),
                },
            ),
            (Some(e), Some(_)) => {
                return Err(ClientError::invalid_response(format!(
                    "the cosigner opened an aux-info room for a wallet created from enrollment {}: \
                     the enrollment's aux info must be reused (protocol violation)",
                    e.enrollment_id
                )))
            }
        };
        let accounts = r
            .accounts
            .into_iter()
            .map(|a| {
                Ok(AccountRoom {
                    keygen: Room::from_pb(a.keygen, "keygen")?,
                    account_id: a.account_id,
                })
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        let recovery = self.reg.recovery()?;
        let params = JoinParams {
            me: DEVICE,
            identity: self.reg.device.clone(),
            peers: BTreeMap::from([(COSIGNER, cosigner), (RECOVERY, recovery)]),
            aux,
            kind: self.params.kind,
            accounts: accounts.clone(),
            created_at: sent_at_ms / 1000,
        };
        // Rooms the cosigner got wrong are its fault, not the caller's.
        params.validate().map_err(|e| match e {
            ClientError::InvalidInput { reason } => ClientError::invalid_response(reason),
            other => other,
        })?;
        if let Some(e) = &self.enrollment {
            check_enrollment_fits(
                e,
                Some(e.enrollment_id.as_str()),
                DEVICE,
                [(COSIGNER, cosigner), (RECOVERY, recovery)],
            )?;
        }
        self.joining = Some(Joining::new(params)?);
        self.wallet_id = r.wallet_id.clone();
        self.cosigner_identity = cosigner.to_string();
        let job = RecoveryJob {
            wallet_id: r.wallet_id,
            cosigner_identity: cosigner,
            device_identity: self.reg.device.public(),
            recovery_identity: recovery,
            kind: self.params.kind,
            aux_info: aux_room,
            accounts,
            enrollment_id: self.enrollment.as_ref().map(|e| e.enrollment_id.clone()),
        };
        self.job = Some(job.clone());
        Ok(CreateStep::StartRecovery(StartRecovery {
            flow: self,
            job: Box::new(job),
        }))
    }

    /// CreateWallet refused: for an enrollment, wait while its aux info is still being
    /// stored at the cosigner; name the enrollment when it cannot be used.
    fn on_create_refused(mut self: Box<Self>, e: RemoteError) -> Result<CreateStep, ClientError> {
        let Some(enrollment) = &self.enrollment else {
            return Err(e.into());
        };
        match e.code {
            ErrorCode::WalletNotReady if self.create_attempts < ENROLLED_CREATE_ATTEMPTS => {
                self.create_attempts += 1;
                Ok(CreateStep::Wait(Wait::new(self, ENROLLED_CREATE_RETRY_MS)))
            }
            ErrorCode::NotFound | ErrorCode::Unauthorized => Err(ClientError::EnrollmentUnusable {
                enrollment_id: enrollment.enrollment_id.clone(),
                code: e.code,
                reason: e.message,
            }),
            _ => Err(e.into()),
        }
    }

    fn on_confirmed(
        mut self: Box<Self>,
        reply: Result<pb::ConfirmWalletResponse, RemoteError>,
    ) -> Result<CreateStep, ClientError> {
        match reply {
            Ok(r) if r.committed => Ok(CreateStep::Done(CreatedWallet {
                wallet_id: self.wallet_id.clone(),
                cosigner_identity: self.cosigner_identity.clone(),
                accounts: std::mem::take(&mut self.accounts),
                committed: true,
            })),
            Ok(_) => Err(ClientError::Cosigner {
                code: ErrorCode::CosignerRejected,
                reason: "the cosigner did not commit the wallet".into(),
            }),
            // The cosigner's side of the DKG is still running (or it is briefly
            // unreachable): the shares are saved, so ask again.
            Err(e)
                if matches!(
                    e.code,
                    ErrorCode::WalletNotReady | ErrorCode::CosignerUnavailable
                ) && self.attempts < CONFIRM_ATTEMPTS =>
            {
                self.attempts += 1;
                Ok(CreateStep::Wait(Wait::new(self, CONFIRM_RETRY_MS)))
            }
            Err(e) if e.code == ErrorCode::CosignerUnavailable => {
                Err(ClientError::CosignerUnavailable {
                    reason: format!(
                        "{}; the shares were saved but the wallet is not confirmed: create a new wallet",
                        e.message
                    ),
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Registers for Create {
    fn registration(&mut self) -> &mut Registration {
        &mut self.reg
    }

    fn primes_step(self: Box<Self>) -> CreateStep {
        CreateStep::Primes(DevicePrimes { flow: self })
    }

    fn after_primes(self: Box<Self>) -> Result<CreateStep, ClientError> {
        self.create_wallet_call()
    }
}

impl Flow for Create {
    type Step = CreateStep;

    fn on_reply(
        self: Box<Self>,
        method: CosignerMethod,
        sent_at_ms: u64,
        reply: Result<CosignerResponse, RemoteError>,
    ) -> Result<CreateStep, ClientError> {
        match (method, reply) {
            (CosignerMethod::Health, Ok(CosignerResponse::Health(h))) => self.on_health(h),
            (CosignerMethod::CreateWallet, Ok(CosignerResponse::CreateWallet(r))) => {
                self.on_created(sent_at_ms, r)
            }
            (CosignerMethod::CreateWallet, Err(e)) => self.on_create_refused(e),
            (CosignerMethod::ConfirmWallet, Ok(CosignerResponse::ConfirmWallet(r))) => {
                self.on_confirmed(Ok(r))
            }
            (CosignerMethod::ConfirmWallet, Err(e)) => self.on_confirmed(Err(e)),
            (_, Err(e)) => Err(e.into()),
            _ => Err(ClientError::internal(
                "a reply the creation did not ask for",
            )),
        }
    }

    fn on_session(
        mut self: Box<Self>,
        out: Result<SessionOutput, PartyError>,
    ) -> Result<CreateStep, ClientError> {
        self.joining
            .as_mut()
            .ok_or_else(|| ClientError::internal("a session the creation did not ask for"))?
            .finished(out)?;
        Ok(self.next_session())
    }

    fn on_wait(self: Box<Self>) -> Result<CreateStep, ClientError> {
        if self.wallet_id.is_empty() {
            self.create_wallet_call()
        } else {
            Ok(self.confirm())
        }
    }
}
