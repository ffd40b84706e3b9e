//! `StartRefresh`, `ReplaceDevice` and `ConfirmLifecycle`: authentication and the
//! request's checks here, the sessions and the commit in `crate::lifecycle`.
//!
//! ReplaceDevice refusals: signed by anyone but the recovery identity →
//! `unauthorized` (PERMISSION_DENIED, as UnfreezeWallet); `new_device_identity` that
//! does not parse, or equals the current device, the recovery, the cosigner or a
//! retired device identity → `invalid_input`; a `new_device_signature` that does not
//! verify → `unauthorized` (UNAUTHENTICATED, `BadSignature` of party 0).

use std::sync::Arc;

use cosigner_api::auth::{self, now_ms, AuthError};
use cosigner_api::pb;
use mpc_wire::PublicIdentity;

use crate::error::CosignerError;
use crate::lifecycle::{self, Kind};
use crate::state::State;
use crate::store::ControlAction;

use super::controls::{apply, controls_pb, reason_of, DEVICE, RECOVERY};

pub(super) async fn start_refresh(
    st: &Arc<State>,
    req: pb::StartRefreshRequest,
) -> Result<pb::LifecycleResponse, CosignerError> {
    st.check_serving()?;
    let (wallet, party, controls) = st.authenticate_with_controls(&req).await?;
    let now = now_ms();
    if controls.is_frozen(now) {
        return Err(CosignerError::WalletFrozen {
            wallet_id: wallet.wallet_id,
            unfreeze_at_ms: controls.unfreeze_at_ms,
        });
    }
    if controls.is_revoked(DEVICE) {
        // The device must take part: a revoked one is replaced (ReplaceDevice) instead.
        return Err(CosignerError::IdentityRevoked {
            wallet_id: wallet.wallet_id,
            party: DEVICE,
        });
    }
    let opened = lifecycle::open(st, &wallet, party, Kind::Refresh, None, now)?;
    Ok(opened.start(controls_pb(&st.cfg, &wallet, &controls)))
}

pub(super) async fn replace_device(
    st: &Arc<State>,
    req: pb::ReplaceDeviceRequest,
) -> Result<pb::LifecycleResponse, CosignerError> {
    st.check_serving()?;
    let reason = reason_of(&req.reason)?;
    let (wallet, party) = st.authenticate(&req).await?;
    if party != RECOVERY {
        return Err(CosignerError::RecoveryIdentityOnly {
            method: "ReplaceDevice",
            party,
        });
    }
    let new: PublicIdentity = req
        .new_device_identity
        .parse()
        .map_err(|e| CosignerError::invalid(format!("new_device_identity: {e}")))?;
    if new == wallet.device_identity
        || new == wallet.recovery_identity
        || new == st.public_identity()
        || wallet
            .retired_device_identities
            .iter()
            .any(|r| r.identity == new)
    {
        return Err(CosignerError::invalid(
            "new_device_identity must differ from the wallet's device, recovery and cosigner \
             identities and from every retired device identity",
        ));
    }
    let (a, _) = auth::auth_of(&req)?;
    let message = auth::replace_device_possession_message(
        &a.audience,
        &a.wallet_id,
        &req.new_device_identity,
        a.timestamp_ms,
        &a.nonce,
    );
    if !auth::verify_bytes(&new, &message, &req.new_device_signature) {
        return Err(AuthError::BadSignature {
            party: u32::from(DEVICE),
        }
        .into());
    }
    let now = now_ms();
    // Registered first (busy if another lifecycle session is pending), then the old
    // device is revoked at once, durably and audited, before any session starts.
    let opened = lifecycle::open(st, &wallet, party, Kind::Replace(new), reason.clone(), now)?;
    let revoked = apply(
        st,
        &wallet,
        party,
        ControlAction::Revoke(DEVICE),
        "device_revoked",
        Some(match &reason {
            Some(r) => format!("device replaced: {r}"),
            None => "device replaced".to_string(),
        }),
    )
    .await?;
    let controls = revoked
        .controls
        .ok_or_else(|| CosignerError::internal("no controls after the revocation"))?;
    Ok(opened.start(controls))
}

pub(super) async fn confirm_lifecycle(
    st: &Arc<State>,
    req: pb::ConfirmLifecycleRequest,
) -> Result<pb::ConfirmLifecycleResponse, CosignerError> {
    let (a, party) = auth::auth_of(&req)?;
    let wallet_id = a.wallet_id.clone();
    let Some(p) = st.lifecycles.get(&wallet_id, &req.lifecycle_id, now_ms()) else {
        // Committed already (a retry), or unknown: the wallet's current identities.
        let (wallet, _) = st.authenticate(&req).await?;
        return lifecycle::reconfirm(&wallet, &req.lifecycle_id, &req.share_digests);
    };
    let (wallet, controls) = st
        .load_wallet(&wallet_id, now_ms())
        .await?
        .ok_or_else(|| CosignerError::UnknownWallet(wallet_id.clone()))?;
    let identity = p
        .identity_of(&wallet, party)
        .ok_or(AuthError::BadParty(u32::from(party)))?;
    st.verify_as(&req, &identity).await?;
    // The new device of a replacement is not revoked (its index is, until the commit).
    if controls.is_revoked(party) && !(party == DEVICE && p.replaces_device()) {
        return Err(CosignerError::IdentityRevoked { wallet_id, party });
    }
    lifecycle::confirm(st, party, &p, &req.share_digests).await
}
