//! The steps wallet creation ([`crate::Create`]) and device enrollment
//! ([`crate::Enroll`]) share before the cosigner opens their rooms: the cosigner's
//! identity from `Health`, the recovery party's public identity, the device's primes.

use cosigner_api::pb;
use mpc_core::primes::PrimeSet;
use mpc_wire::{IdentityKey, PublicIdentity};

use crate::create::Create;
use crate::error::ClientError;

/// What a flow registers with the cosigner: the device identity (new, or an
/// enrollment's), the recovery party's identity, the cosigner's identity from `Health`
/// (the audience of the signed request) and the device's primes.
/// What a flow registers (see the module docs).
pub struct Registration {
    pub device: IdentityKey,
    pub recovery: Option<PublicIdentity>,
    pub health_identity: Option<String>,
    pub primes: Option<PrimeSet>,
}

impl Registration {
    pub fn new(device: IdentityKey) -> Self {
        Registration {
            device,
            recovery: None,
            health_identity: None,
            primes: None,
        }
    }

    /// Keeps the identity `Health` announced.
    pub fn on_health(&mut self, h: pb::HealthResponse) {
        self.health_identity = Some(h.identity);
    }

    /// The cosigner's identity as `Health` gave it (every request names the cosigner
    /// it is for).
    pub fn audience(&self) -> Result<PublicIdentity, ClientError> {
        self.health_identity
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| ClientError::invalid_response(format!("Health: cosigner identity: {e}")))
    }

    /// The identity a response names for the cosigner: valid and the one of `Health`.
    pub fn check_cosigner(&self, identity: &str, rpc: &str) -> Result<PublicIdentity, ClientError> {
        let cosigner: PublicIdentity = identity
            .parse()
            .map_err(|e| ClientError::invalid_response(format!("cosigner identity: {e}")))?;
        let health: Option<PublicIdentity> =
            self.health_identity.as_deref().and_then(|h| h.parse().ok());
        if health != Some(cosigner) {
            return Err(ClientError::invalid_response(format!(
                "the cosigner's identity changed between Health and {rpc}"
            )));
        }
        Ok(cosigner)
    }

    /// The recovery party's identity, given before.
    pub fn recovery(&self) -> Result<PublicIdentity, ClientError> {
        self.recovery
            .ok_or_else(|| ClientError::internal("no recovery identity"))
    }

    /// The device's primes, given before (taken once).
    pub fn take_primes(&mut self) -> Result<PrimeSet, ClientError> {
        self.primes
            .take()
            .ok_or_else(|| ClientError::internal("no primes"))
    }
}

pub(crate) mod sealed {
    use super::*;

    /// A flow that registers the device: it hands out [`RecoveryIdentity`] then
    /// [`DevicePrimes`] (implemented by this crate's flows only).
    pub trait Registers: crate::step::sealed::Flow {
        /// The flow's registration.
        fn registration(&mut self) -> &mut Registration;
        /// The step after the recovery identity (the primes).
        fn primes_step(self: Box<Self>) -> Self::Step;
        /// The step after the primes (the call that opens the rooms).
        fn after_primes(self: Box<Self>) -> Result<Self::Step, ClientError>;
    }
}

use sealed::Registers;

/// Give the recovery party's public identity (natively: generate the recovery party's
/// identity key; in the browser: ask the recovery agent).
pub struct RecoveryIdentity<F = Create> {
    pub(crate) flow: Box<F>,
}

impl<F> std::fmt::Debug for RecoveryIdentity<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryIdentity")
    }
}

impl<F: Registers> RecoveryIdentity<F> {
    /// The recovery party's public identity (it must differ from the device's).
    pub fn provide(mut self, identity: PublicIdentity) -> Result<F::Step, ClientError> {
        let reg = self.flow.registration();
        if identity == reg.device.public() {
            return Err(ClientError::input(
                "the recovery identity equals the device identity",
            ));
        }
        reg.recovery = Some(identity);
        Ok(self.flow.primes_step())
    }
}

/// Give the device's four safe primes (loaded, prepared or generated: minutes).
pub struct DevicePrimes<F = Create> {
    pub(crate) flow: Box<F>,
}

impl<F> std::fmt::Debug for DevicePrimes<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevicePrimes")
    }
}

impl<F: Registers> DevicePrimes<F> {
    /// The device's primes (checked here).
    pub fn provide(mut self, primes: PrimeSet) -> Result<F::Step, ClientError> {
        primes
            .to_pregenerated()
            .map_err(|e| ClientError::config(format!("primes: {e}")))?;
        self.flow.registration().primes = Some(primes);
        self.flow.after_primes()
    }
}
