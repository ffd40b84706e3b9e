//! Wallet controls for a lost or stolen device: revoke the device identity, freeze the
//! wallet, ask to unfreeze it (recovery identity only, effective after the cosigner's
//! delay), and read them.
//!
//! ```text
//! Control::start ─► CallCosigner(RevokeDevice | FreezeWallet | UnfreezeWallet
//!                                | ListAccounts) ─► Done(WalletControls)
//! ```
//!
//! The party whose share file the caller holds signs: the device (party 0) may revoke
//! itself and freeze; the recovery party (2) may revoke the device, freeze and
//! unfreeze.

use cosigner_api::pb;
use serde::{Deserialize, Serialize};

use crate::cosigner::{CosignerMethod, CosignerRequest, CosignerResponse, Unsigned};
use crate::error::{ClientError, RemoteError};
use crate::party::Party;
use crate::step::{sealed::Flow, Call};

/// What to ask the cosigner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlAction {
    /// Revoke the device identity (party 0) at once; `reason` goes to the audit log.
    RevokeDevice {
        /// Why (at most 200 characters).
        reason: String,
    },
    /// Freeze the wallet: no signing until an unfreeze takes effect.
    Freeze {
        /// Why (at most 200 characters).
        reason: String,
    },
    /// Ask to unfreeze (recovery identity only): effective after the cosigner's delay.
    Unfreeze,
    /// Read the controls (no change).
    Status,
}

/// A wallet's controls as the cosigner reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletControls {
    /// Whether signing is refused now.
    pub frozen: bool,
    /// When the freeze began (ms since the Unix epoch), if frozen.
    pub frozen_at_ms: Option<u64>,
    /// When a requested unfreeze takes effect (ms since the Unix epoch), if any.
    pub unfreeze_at_ms: Option<u64>,
    /// Keygen indices whose identities are revoked (0: the device).
    pub revoked_parties: Vec<u16>,
    /// When the operator's schedule asks for the next proactive refresh (ms since the
    /// Unix epoch), if a schedule is configured.
    #[serde(default)]
    pub refresh_due_at_ms: Option<u64>,
}

impl WalletControls {
    pub(crate) fn from_pb(c: Option<pb::WalletControls>) -> Result<Self, ClientError> {
        let c = c.ok_or_else(|| ClientError::invalid_response("no wallet controls"))?;
        let revoked_parties = c
            .revoked_parties
            .iter()
            .map(|&p| {
                u16::try_from(p)
                    .map_err(|_| ClientError::invalid_response(format!("revoked party {p}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let nonzero = |v: u64| (v != 0).then_some(v);
        Ok(WalletControls {
            frozen: c.frozen,
            frozen_at_ms: nonzero(c.frozen_at_ms),
            unfreeze_at_ms: nonzero(c.unfreeze_at_ms),
            revoked_parties,
            refresh_due_at_ms: nonzero(c.refresh_due_at_ms),
        })
    }
}

/// What the driver does next.
#[derive(Debug)]
pub enum ControlStep {
    /// Call the cosigner.
    CallCosigner(Call<Control>),
    /// The controls after the request.
    Done(WalletControls),
}

/// A control request in progress.
#[derive(Debug)]
pub struct Control {
    method: CosignerMethod,
}

impl Control {
    /// Starts `action`, signed by `party`'s identity (the device or the recovery party).
    pub fn start(party: &Party, action: ControlAction) -> Result<ControlStep, ClientError> {
        let request = match action {
            ControlAction::RevokeDevice { reason } => {
                CosignerRequest::RevokeDevice(pb::RevokeDeviceRequest { auth: None, reason })
            }
            ControlAction::Freeze { reason } => {
                CosignerRequest::FreezeWallet(pb::FreezeWalletRequest { auth: None, reason })
            }
            ControlAction::Unfreeze => {
                if party.index() != wallet_types::RECOVERY {
                    return Err(ClientError::config(
                        "only the recovery party can ask to unfreeze a wallet: run this with \
                         the recovery share (the device may freeze, not unfreeze)",
                    ));
                }
                CosignerRequest::UnfreezeWallet(pb::UnfreezeWalletRequest { auth: None })
            }
            ControlAction::Status => {
                CosignerRequest::ListAccounts(pb::ListAccountsRequest { auth: None })
            }
        };
        let method = request.method();
        Ok(ControlStep::CallCosigner(Call::new(
            Box::new(Control { method }),
            Unsigned::new(request, party.signer()),
        )))
    }
}

impl Flow for Control {
    type Step = ControlStep;

    fn on_reply(
        self: Box<Self>,
        method: CosignerMethod,
        _sent_at_ms: u64,
        reply: Result<CosignerResponse, RemoteError>,
    ) -> Result<ControlStep, ClientError> {
        let controls = match (method, reply) {
            (_, Err(e)) => return Err(ClientError::from_remote(e)),
            (CosignerMethod::ListAccounts, Ok(CosignerResponse::ListAccounts(r))) => r.controls,
            (m, Ok(CosignerResponse::WalletControls(rm, r))) if m == rm && m == self.method => {
                r.controls
            }
            (m, Ok(other)) => {
                return Err(ClientError::internal(format!(
                    "a {} answer to {}",
                    other.method().name(),
                    m.name()
                )))
            }
        };
        Ok(ControlStep::Done(WalletControls::from_pb(controls)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_from_the_wire() {
        let c = WalletControls::from_pb(Some(pb::WalletControls {
            frozen: true,
            frozen_at_ms: 5,
            unfreeze_at_ms: 0,
            revoked_parties: vec![0],
            refresh_due_at_ms: 7,
        }))
        .unwrap();
        assert_eq!(
            c,
            WalletControls {
                frozen: true,
                frozen_at_ms: Some(5),
                unfreeze_at_ms: None,
                revoked_parties: vec![0],
                refresh_due_at_ms: Some(7),
            }
        );
        assert!(WalletControls::from_pb(None).is_err());
        assert!(WalletControls::from_pb(Some(pb::WalletControls {
            revoked_parties: vec![70_000],
            ..Default::default()
        }))
        .is_err());
    }
}
