//! Opening a lifecycle session: StartRefresh (device or recovery) or ReplaceDevice
//! (recovery, with the new device's proof of possession).

use cosigner_api::{auth, pb};
use mpc_core::keystore::KeyShareBundle;
use mpc_wire::{IdentityKey, PublicIdentity};
use wallet_types::{COSIGNER, RECOVERY};

use super::plan::{LifecycleKind, LifecyclePlan};
use crate::cosigner::{CosignerMethod, CosignerRequest, CosignerResponse, Signer, Unsigned};
use crate::error::{ClientError, RemoteError};
use crate::party::Party;
use crate::step::{sealed::Flow, Call};

/// Longest reason accepted (the cosigner's audit log limit).
const MAX_REASON_LEN: usize = 200;

/// What the driver does next.
#[derive(Debug)]
pub enum StartStep {
    /// Call the cosigner.
    CallCosigner(Call<StartLifecycle>),
    /// The session is open: run it (every user party, with [`super::LifecycleRun`]).
    Done(Box<LifecyclePlan>),
}

/// Asking the cosigner to open a lifecycle session.
pub struct StartLifecycle {
    kind: LifecycleKind,
    bundle: KeyShareBundle,
    new_device: Option<PublicIdentity>,
}

impl std::fmt::Debug for StartLifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartLifecycle")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl StartLifecycle {
    /// A proactive refresh, asked by `party` (the device or the recovery party).
    pub fn refresh(party: &Party) -> Result<StartStep, ClientError> {
        let flow = StartLifecycle {
            kind: LifecycleKind::Refresh,
            bundle: party.bundle().clone(),
            new_device: None,
        };
        let req = CosignerRequest::StartRefresh(pb::StartRefreshRequest { auth: None });
        Ok(StartStep::CallCosigner(Call::new(
            Box::new(flow),
            Unsigned::new(req, party.signer()),
        )))
    }

    /// A device replacement, asked by the recovery party for the holder of
    /// `new_device` (a fresh identity key: it signs its proof of possession here and
    /// never leaves).
    pub fn replace_device(
        recovery: &Party,
        new_device: &IdentityKey,
        reason: &str,
    ) -> Result<StartStep, ClientError> {
        let public = new_device.public();
        check_replacement(recovery, public, reason)?;
        let flow = StartLifecycle {
            kind: LifecycleKind::ReplaceDevice,
            bundle: recovery.bundle().clone(),
            new_device: Some(public),
        };
        let req = CosignerRequest::ReplaceDevice(pb::ReplaceDeviceRequest {
            auth: None,
            new_device_identity: public.to_string(),
            new_device_signature: Vec::new(),
            reason: reason.to_string(),
        });
        let signer = Signer::Replacing {
            party: Box::new(recovery.signer()),
            new_device: new_device.clone(),
        };
        Ok(StartStep::CallCosigner(Call::new(
            Box::new(flow),
            Unsigned::new(req, signer),
        )))
    }
}

impl StartLifecycle {
    /// What the new device `new_device` signs to prove it holds its identity key when
    /// `recovery` asks for the replacement with auth at `timestamp_ms` and `nonce`
    /// (`cosigner_api::auth::replace_device_possession_message`, for the wallet's
    /// cosigner).
    pub fn possession_message(
        recovery: &Party,
        new_device: PublicIdentity,
        timestamp_ms: u64,
        nonce: &[u8; auth::NONCE_LEN],
    ) -> Result<Vec<u8>, ClientError> {
        let audience = cosigner_of(recovery)?;
        Ok(auth::replace_device_possession_message(
            &audience.to_string(),
            recovery.wallet_id(),
            &new_device.to_string(),
            timestamp_ms,
            nonce,
        ))
    }

    /// A device replacement asked by the recovery party, with the new device's proof of
    /// possession made elsewhere (the browser page, over
    /// [`StartLifecycle::possession_message`]): the request is signed at `timestamp_ms`
    /// with `nonce`, exactly what the proof covers. A proof that does not verify is
    /// refused here (`invalid_input`), before any call.
    pub fn replace_device_with_possession(
        recovery: &Party,
        new_device: PublicIdentity,
        timestamp_ms: u64,
        nonce: [u8; 16],
        signature: [u8; 64],
        reason: &str,
    ) -> Result<StartStep, ClientError> {
        check_replacement(recovery, new_device, reason)?;
        let msg = StartLifecycle::possession_message(recovery, new_device, timestamp_ms, &nonce)?;
        if !auth::verify_bytes(&new_device, &msg, &signature) {
            return Err(ClientError::input(
                "the new device's proof of possession does not verify",
            ));
        }
        let flow = StartLifecycle {
            kind: LifecycleKind::ReplaceDevice,
            bundle: recovery.bundle().clone(),
            new_device: Some(new_device),
        };
        let req = CosignerRequest::ReplaceDevice(pb::ReplaceDeviceRequest {
            auth: None,
            new_device_identity: new_device.to_string(),
            new_device_signature: Vec::new(),
            reason: reason.to_string(),
        });
        let signer = Signer::WithPossession {
            party: Box::new(recovery.signer()),
            timestamp_ms,
            nonce,
            signature,
        };
        Ok(StartStep::CallCosigner(Call::new(
            Box::new(flow),
            Unsigned::new(req, signer),
        )))
    }
}

/// The wallet's cosigner identity, from `party`'s bundle.
fn cosigner_of(party: &Party) -> Result<PublicIdentity, ClientError> {
    party
        .bundle()
        .peers
        .get(&COSIGNER)
        .and_then(|h| h.parse().ok())
        .ok_or_else(|| ClientError::corrupt(party.wallet_id(), "no valid cosigner identity"))
}

/// A replacement asked by the recovery party, for a fresh identity, with a short reason.
fn check_replacement(
    recovery: &Party,
    public: PublicIdentity,
    reason: &str,
) -> Result<(), ClientError> {
    if recovery.index() != RECOVERY {
        return Err(ClientError::config(
            "only the recovery party can replace the device: run this with the recovery \
             share",
        ));
    }
    if reason.len() > MAX_REASON_LEN {
        return Err(ClientError::input(format!(
            "the reason must have at most {MAX_REASON_LEN} characters"
        )));
    }
    let hex = public.to_string();
    let taken = public == recovery.public_identity()
        || recovery
            .bundle()
            .peers
            .values()
            .any(|p| p.eq_ignore_ascii_case(&hex));
    if taken {
        return Err(ClientError::input(
            "the new device needs a fresh identity key, not one of the wallet's",
        ));
    }
    Ok(())
}

impl Flow for StartLifecycle {
    type Step = StartStep;

    fn on_reply(
        self: Box<Self>,
        method: CosignerMethod,
        _sent_at_ms: u64,
        reply: Result<CosignerResponse, RemoteError>,
    ) -> Result<StartStep, ClientError> {
        match reply {
            Err(e) => Err(ClientError::from_remote(e)),
            Ok(CosignerResponse::Lifecycle(m, r)) if m == method => {
                let plan = LifecyclePlan::from_pb(self.kind, r, &self.bundle, self.new_device)?;
                Ok(StartStep::Done(Box::new(plan)))
            }
            Ok(other) => Err(ClientError::internal(format!(
                "a {} answer to {}",
                other.method().name(),
                method.name()
            ))),
        }
    }
}
