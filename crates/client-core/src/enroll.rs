//! Device enrollment: the aux info (the minutes of Paillier work) ahead of wallet
//! creation, so that creating a wallet later runs only the DKGs
//! ([`crate::Create::from_enrollment`]).
//!
//! ```text
//! Enroll::start ─► CallCosigner(Health) ─► RecoveryIdentity ─► Primes (the device's)
//!   ─► CallCosigner(EnrollDevice, signed by the new device identity)
//!   ─► StartRecovery (party 2 joins the aux-info room: natively a Join of its own with
//!      EnrollRecoveryJob::join_params, in the browser the agent's enrollment job)
//!   ─► RunSession(aux-info) (the device) ─► AwaitRecovery (party 2 stored its enrollment)
//!   ─► Persist (the driver stores the device's Enrollment, encrypted)
//!   ─► Done(Enrollment)
//! ```
//!
//! The first three steps are [`crate::Create`]'s ([`RecoveryIdentity`],
//! [`DevicePrimes`]), shared.

use std::collections::BTreeMap;

use cosigner_api::pb;
use mpc_core::primes::PrimeSet;
use mpc_core::SessionOutput;
use mpc_party::PartyError;
use mpc_wire::{IdentityKey, PublicIdentity};
use wallet_types::{AccountKind, COSIGNER, DEVICE, RECOVERY};

use crate::cosigner::{CosignerMethod, CosignerRequest, CosignerResponse, Signer, Unsigned};
use crate::create::{JoinAux, JoinParams, Joined, Joining};
use crate::enrollment::{validate_enrollment_id, Enrollment};
use crate::error::{ClientError, RemoteError};
use crate::register::{sealed::Registers, DevicePrimes, RecoveryIdentity, Registration};
use crate::session::Room;
use crate::step::{sealed::Flow, Call, RunSession};

/// The enrollment to make.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnrollParams {
    /// The registration credential the cosigner's operator issued (`wmreg1.…`),
    /// consumed by the enrollment; `None` only for a cosigner in dev mode.
    pub registration_credential: Option<String>,
}

/// What the recovery party (party 2) needs to enroll alongside the device: it joins
/// the aux-info room (natively a [`crate::Join`] with
/// [`EnrollRecoveryJob::join_params`]; in the browser the recovery agent's enrollment
/// job) and keeps its [`Enrollment`] ([`EnrollRecoveryJob::enrollment`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollRecoveryJob {
    /// The cosigner's enrollment id.
    pub enrollment_id: String,
    /// Party 1.
    pub cosigner_identity: PublicIdentity,
    /// Party 0.
    pub device_identity: PublicIdentity,
    /// Party 2 (the identity the driver gave).
    pub recovery_identity: PublicIdentity,
    /// The aux-info room.
    pub aux_info: Room,
    /// The cosigner forgets the enrollment then (ms since the Unix epoch).
    pub expires_at_ms: u64,
}

impl EnrollRecoveryJob {
    /// The [`JoinParams`] of the recovery party (the aux-info room alone), given its
    /// identity key (whose public identity must be
    /// [`EnrollRecoveryJob::recovery_identity`]) and primes.
    pub fn join_params(
        &self,
        identity: IdentityKey,
        primes: PrimeSet,
    ) -> Result<JoinParams, ClientError> {
        if identity.public() != self.recovery_identity {
            return Err(ClientError::internal(
                "the recovery identity differs from the one registered",
            ));
        }
        Ok(aux_only(
            RECOVERY,
            identity,
            [
                (DEVICE, self.device_identity),
                (COSIGNER, self.cosigner_identity),
            ],
            self.aux_info.clone(),
            primes,
        ))
    }

    /// The recovery party's enrollment from what its join gave.
    pub fn enrollment(&self, joined: &Joined) -> Result<Enrollment, ClientError> {
        Enrollment::from_bundle(
            self.enrollment_id.clone(),
            self.expires_at_ms,
            &joined.bundle,
        )
    }
}

/// The parameters of a party joining the aux-info room alone.
fn aux_only(
    me: u16,
    identity: IdentityKey,
    peers: [(u16, PublicIdentity); 2],
    room: Room,
    primes: PrimeSet,
) -> JoinParams {
    JoinParams {
        me,
        identity,
        peers: BTreeMap::from(peers),
        aux: JoinAux::Run { room, primes },
        // No account: the kind does not matter.
        kind: AccountKind::Hd,
        accounts: Vec::new(),
        created_at: 0,
    }
}

/// What the driver does next in a device enrollment.
#[derive(Debug)]
pub enum EnrollStep {
    /// Call the cosigner (`Health`, `EnrollDevice`).
    CallCosigner(Call<Enroll>),
    /// Give the recovery party's public identity.
    RecoveryIdentity(RecoveryIdentity<Enroll>),
    /// Give the device's four safe primes.
    Primes(DevicePrimes<Enroll>),
    /// Start the recovery party on [`StartEnrollRecovery::job`] (it runs alongside the
    /// device's session), then [`StartEnrollRecovery::started`].
    StartRecovery(StartEnrollRecovery),
    /// Run the device's aux-info session.
    RunSession(RunSession<Enroll>),
    /// Wait for the recovery party to finish (and store its enrollment).
    AwaitRecovery(AwaitEnrollRecovery),
    /// Store the device's enrollment (encrypted), then [`PersistEnrollment::persisted`].
    Persist(PersistEnrollment),
    /// Enrolled: the device's enrollment (as stored).
    Done(Enrollment),
}

/// See [`EnrollStep::StartRecovery`].
pub struct StartEnrollRecovery {
    flow: Box<Enroll>,
    job: Box<EnrollRecoveryJob>,
}

impl std::fmt::Debug for StartEnrollRecovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartEnrollRecovery")
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl StartEnrollRecovery {
    /// What the recovery party joins.
    pub fn job(&self) -> &EnrollRecoveryJob {
        &self.job
    }

    /// The recovery party runs (or is about to): go on with the device's session.
    pub fn started(self) -> Result<EnrollStep, ClientError> {
        Ok(self.flow.next_session())
    }
}

/// See [`EnrollStep::AwaitRecovery`].
pub struct AwaitEnrollRecovery {
    flow: Box<Enroll>,
}

impl std::fmt::Debug for AwaitEnrollRecovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AwaitEnrollRecovery")
    }
}

impl AwaitEnrollRecovery {
    /// The recovery party finished its aux info and stored its enrollment.
    pub fn finished(self) -> Result<EnrollStep, ClientError> {
        let mut flow = self.flow;
        let joining = flow
            .joining
            .take()
            .ok_or_else(|| ClientError::internal("no device aux info"))?;
        let enrollment = Enrollment::from_bundle(
            flow.enrollment_id.clone(),
            flow.expires_at_ms,
            &joining.into_bundle(),
        )?;
        Ok(EnrollStep::Persist(PersistEnrollment { enrollment }))
    }
}

/// See [`EnrollStep::Persist`].
pub struct PersistEnrollment {
    enrollment: Enrollment,
}

impl std::fmt::Debug for PersistEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistEnrollment")
            .field("enrollment", &self.enrollment)
            .finish()
    }
}

impl PersistEnrollment {
    /// The device's enrollment (holds the identity secret: store it encrypted, e.g.
    /// [`Enrollment::encrypt`]).
    pub fn enrollment(&self) -> &Enrollment {
        &self.enrollment
    }

    /// Stored durably: done.
    pub fn persisted(self) -> Result<EnrollStep, ClientError> {
        Ok(EnrollStep::Done(self.enrollment))
    }
}

/// A device enrollment in progress (the state behind every [`EnrollStep`]).
pub struct Enroll {
    params: EnrollParams,
    reg: Registration,
    enrollment_id: String,
    expires_at_ms: u64,
    joining: Option<Joining>,
}

impl Enroll {
    /// Starts enrolling the device: generates the device identity.
    pub fn start(params: EnrollParams) -> Result<EnrollStep, ClientError> {
        let device = IdentityKey::generate().map_err(|e| ClientError::internal(e.to_string()))?;
        let flow = Box::new(Enroll {
            params,
            reg: Registration::new(device),
            enrollment_id: String::new(),
            expires_at_ms: 0,
            joining: None,
        });
        let call = Unsigned::new(CosignerRequest::Health(pb::HealthRequest {}), Signer::None);
        Ok(EnrollStep::CallCosigner(Call::new(flow, call)))
    }

    fn next_session(mut self: Box<Self>) -> EnrollStep {
        match self.joining.as_mut().and_then(Joining::next_session) {
            Some(spec) => EnrollStep::RunSession(RunSession::new(self, spec)),
            None => EnrollStep::AwaitRecovery(AwaitEnrollRecovery { flow: self }),
        }
    }

    fn on_enrolled(
        mut self: Box<Self>,
        r: pb::EnrollDeviceResponse,
    ) -> Result<EnrollStep, ClientError> {
        validate_enrollment_id(&r.enrollment_id).map_err(|e| match e {
            ClientError::InvalidInput { reason } => ClientError::invalid_response(reason),
            other => other,
        })?;
        let cosigner = self
            .reg
            .check_cosigner(&r.cosigner_identity, "EnrollDevice")?;
        let room = Room::from_pb(r.aux_info, "aux-info")?;
        let recovery = self.reg.recovery()?;
        let primes = self.reg.take_primes()?;
        let params = aux_only(
            DEVICE,
            self.reg.device.clone(),
            [(COSIGNER, cosigner), (RECOVERY, recovery)],
            room.clone(),
            primes,
        );
        params.validate().map_err(|e| match e {
            ClientError::InvalidInput { reason } => ClientError::invalid_response(reason),
            other => other,
        })?;
        self.joining = Some(Joining::new(params)?);
        self.enrollment_id = r.enrollment_id.clone();
        self.expires_at_ms = r.enrollment_expires_at_ms;
        let job = EnrollRecoveryJob {
            enrollment_id: r.enrollment_id,
            cosigner_identity: cosigner,
            device_identity: self.reg.device.public(),
            recovery_identity: recovery,
            aux_info: room,
            expires_at_ms: r.enrollment_expires_at_ms,
        };
        Ok(EnrollStep::StartRecovery(StartEnrollRecovery {
            flow: self,
            job: Box::new(job),
        }))
    }
}

impl Registers for Enroll {
    fn registration(&mut self) -> &mut Registration {
        &mut self.reg
    }

    fn primes_step(self: Box<Self>) -> EnrollStep {
        EnrollStep::Primes(DevicePrimes { flow: self })
    }

    fn after_primes(self: Box<Self>) -> Result<EnrollStep, ClientError> {
        let req = pb::EnrollDeviceRequest {
            recovery_identity: self.reg.recovery()?.to_string(),
            registration_credential: self
                .params
                .registration_credential
                .clone()
                .unwrap_or_default(),
            ..Default::default()
        };
        let signer = Signer::Device {
            key: self.reg.device.clone(),
            audience: self.reg.audience()?,
        };
        let call = Unsigned::new(CosignerRequest::EnrollDevice(req), signer);
        Ok(EnrollStep::CallCosigner(Call::new(self, call)))
    }
}

impl Flow for Enroll {
    type Step = EnrollStep;

    fn on_reply(
        mut self: Box<Self>,
        method: CosignerMethod,
        _sent_at_ms: u64,
        reply: Result<CosignerResponse, RemoteError>,
    ) -> Result<EnrollStep, ClientError> {
        match (method, reply) {
            (CosignerMethod::Health, Ok(CosignerResponse::Health(h))) => {
                self.reg.on_health(h);
                Ok(EnrollStep::RecoveryIdentity(RecoveryIdentity {
                    flow: self,
                }))
            }
            (CosignerMethod::EnrollDevice, Ok(CosignerResponse::EnrollDevice(r))) => {
                self.on_enrolled(r)
            }
            (_, Err(e)) => Err(e.into()),
            _ => Err(ClientError::internal(
                "a reply the enrollment did not ask for",
            )),
        }
    }

    fn on_session(
        mut self: Box<Self>,
        out: Result<SessionOutput, PartyError>,
    ) -> Result<EnrollStep, ClientError> {
        self.joining
            .as_mut()
            .ok_or_else(|| ClientError::internal("a session the enrollment did not ask for"))?
            .finished(out)?;
        Ok(self.next_session())
    }
}
