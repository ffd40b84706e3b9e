//! Opening a lifecycle session: StartRefresh (device or recovery) or ReplaceDevice
//! (recovery, with the new device's proof of possession).

use cosigner_api::pb;
use mpc_core::keystore::KeyShareBundle;
use mpc_wire::{IdentityKey, PublicIdentity};
use wallet_types::RECOVERY;

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
        let public = new_device.public();
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
