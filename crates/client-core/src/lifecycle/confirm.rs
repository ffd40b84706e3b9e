//! ConfirmLifecycle (after the pending shares are stored) and the epoch check a driver
//! uses to settle a pending file left by a crash.

use std::collections::BTreeMap;

use cosigner_api::pb;
use mpc_core::keystore::KeyShareBundle;
use mpc_wire::IdentityKey;
use wallet_types::{ErrorCode, COSIGNER};

use super::run::PendingShares;
use super::share_digest;
use super::{CONFIRM_ATTEMPTS, CONFIRM_RETRY_MS};
use crate::cosigner::{CosignerMethod, CosignerRequest, CosignerResponse, Signer, Unsigned};
use crate::error::{ClientError, RemoteError};
use crate::party::Party;
use crate::step::{sealed::Flow, Call, Wait};

/// What a confirmation needs: the pending bundle (it signs with the identity inside:
/// for a new device, the NEW identity) and the session.
#[derive(Debug, Clone)]
pub struct ConfirmParams {
    /// The wallet.
    pub wallet_id: String,
    /// The lifecycle session.
    pub lifecycle_id: String,
    /// When it expires (ms since the Unix epoch); the flow stops asking then.
    pub expires_at_ms: u64,
}

impl From<&PendingShares> for ConfirmParams {
    fn from(p: &PendingShares) -> Self {
        ConfirmParams {
            wallet_id: p.wallet_id.clone(),
            lifecycle_id: p.lifecycle_id.clone(),
            expires_at_ms: p.expires_at_ms,
        }
    }
}

/// The cosigner committed the new epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The epoch now in effect.
    pub epoch: u64,
    /// The user parties that confirmed.
    pub confirmed_parties: Vec<u16>,
}

/// What the driver does next.
#[derive(Debug)]
pub enum ConfirmStep {
    /// Call the cosigner.
    CallCosigner(Call<ConfirmLifecycle>),
    /// Wait, then call again (the other parties have not finished yet).
    Wait(Wait<ConfirmLifecycle>),
    /// Committed: promote the pending shares.
    Done(Committed),
}

/// Confirming a party's pending shares until the cosigner commits.
pub struct ConfirmLifecycle {
    request: Unsigned,
    epoch: u64,
    expires_at_ms: u64,
    attempts: u32,
}

impl std::fmt::Debug for ConfirmLifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfirmLifecycle")
            .field("epoch", &self.epoch)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl ConfirmLifecycle {
    /// Confirms `bundle` (the pending shares, at their new epoch) for `params`' session.
    pub fn start(
        bundle: &KeyShareBundle,
        params: ConfirmParams,
    ) -> Result<ConfirmStep, ClientError> {
        let source = "the pending shares";
        let corrupt = |r: String| ClientError::corrupt(source, r);
        let key = bundle
            .identity_secret
            .as_deref()
            .ok_or_else(|| corrupt("no identity key".into()))
            .and_then(|s| {
                IdentityKey::from_seed_hex(s).map_err(|e| corrupt(format!("identity key: {e}")))
            })?;
        let audience = bundle.peers.get(&COSIGNER).and_then(|h| h.parse().ok());
        let epoch = bundle.share_epoch;
        let share_digests: BTreeMap<String, String> = bundle
            .accounts
            .iter()
            .map(|(id, a)| Ok((id.clone(), share_digest(&a.share, epoch)?)))
            .collect::<Result<_, ClientError>>()?;
        if share_digests.is_empty() {
            return Err(corrupt("no accounts".into()));
        }
        let req = CosignerRequest::ConfirmLifecycle(pb::ConfirmLifecycleRequest {
            auth: None,
            lifecycle_id: params.lifecycle_id,
            share_digests: share_digests.into_iter().collect(),
        });
        let signer = Signer::Party {
            key,
            wallet_id: params.wallet_id,
            party: bundle.party_index,
            audience,
        };
        let flow = ConfirmLifecycle {
            request: Unsigned::new(req, signer),
            epoch,
            expires_at_ms: params.expires_at_ms,
            attempts: 0,
        };
        Ok(flow.call())
    }

    fn call(self) -> ConfirmStep {
        let req = self.request.clone();
        ConfirmStep::CallCosigner(Call::new(Box::new(self), req))
    }
}

impl Flow for ConfirmLifecycle {
    type Step = ConfirmStep;

    fn on_reply(
        mut self: Box<Self>,
        method: CosignerMethod,
        sent_at_ms: u64,
        reply: Result<CosignerResponse, RemoteError>,
    ) -> Result<ConfirmStep, ClientError> {
        let again = match reply {
            Ok(CosignerResponse::ConfirmLifecycle(r)) if r.committed => {
                if r.epoch != self.epoch {
                    return Err(ClientError::invalid_response(format!(
                        "the cosigner committed epoch {}, the pending shares are at epoch {}",
                        r.epoch, self.epoch
                    )));
                }
                let confirmed_parties = crate::cosigner::signer_list(&r.confirmed_parties)?;
                return Ok(ConfirmStep::Done(Committed {
                    epoch: r.epoch,
                    confirmed_parties,
                }));
            }
            Ok(CosignerResponse::ConfirmLifecycle(_)) => None,
            Ok(other) => {
                return Err(ClientError::internal(format!(
                    "a {} answer to {}",
                    other.method().name(),
                    method.name()
                )))
            }
            Err(e)
                if matches!(
                    e.code,
                    ErrorCode::WalletNotReady | ErrorCode::CosignerUnavailable
                ) =>
            {
                Some(e)
            }
            Err(e) => return Err(ClientError::from_remote(e)),
        };
        let expired = self.expires_at_ms != 0 && sent_at_ms > self.expires_at_ms;
        if expired || self.attempts >= CONFIRM_ATTEMPTS {
            let why = again.map(|e| e.message).unwrap_or_default();
            return Err(ClientError::Timeout {
                stage: "confirm lifecycle".into(),
                after_secs: u64::from(self.attempts) * CONFIRM_RETRY_MS / 1000,
                reason: format!(
                    "the cosigner did not commit the new shares ({why}); the current shares \
                     stay in use"
                ),
            });
        }
        self.attempts += 1;
        Ok(ConfirmStep::Wait(Wait::new(self, CONFIRM_RETRY_MS)))
    }

    fn on_wait(self: Box<Self>) -> Result<ConfirmStep, ClientError> {
        Ok(self.call())
    }
}

/// What the driver does next when it asks for the wallet's share epoch.
#[derive(Debug)]
pub enum EpochStep {
    /// Call the cosigner (ListAccounts).
    CallCosigner(Call<EpochCheck>),
    /// The epoch the cosigner's accounts are at.
    Done(u64),
}

/// Asking the cosigner which share epoch the wallet is at (to promote or drop a
/// pending file).
#[derive(Debug)]
pub struct EpochCheck;

impl EpochCheck {
    /// Asks as `party` (a current or a pending bundle of the wallet).
    pub fn start(party: &Party) -> EpochStep {
        let req = CosignerRequest::ListAccounts(pb::ListAccountsRequest { auth: None });
        EpochStep::CallCosigner(Call::new(
            Box::new(EpochCheck),
            Unsigned::new(req, party.signer()),
        ))
    }
}

impl Flow for EpochCheck {
    type Step = EpochStep;

    fn on_reply(
        self: Box<Self>,
        _: CosignerMethod,
        _: u64,
        reply: Result<CosignerResponse, RemoteError>,
    ) -> Result<EpochStep, ClientError> {
        let r = match reply {
            Ok(CosignerResponse::ListAccounts(r)) => r,
            Ok(other) => {
                return Err(ClientError::internal(format!(
                    "a {} answer to ListAccounts",
                    other.method().name()
                )))
            }
            Err(e) => return Err(ClientError::from_remote(e)),
        };
        let mut epochs = r.accounts.iter().map(|a| a.share_epoch);
        let first = epochs
            .next()
            .ok_or_else(|| ClientError::invalid_response("the wallet has no accounts"))?;
        if epochs.any(|e| e != first) {
            return Err(ClientError::invalid_response(
                "the cosigner's accounts are at different share epochs",
            ));
        }
        Ok(EpochStep::Done(first))
    }
}
