//! `CreateWallet`: checks the device's signature and the fields, the enrollment (if the
//! wallet comes from one) or the registration credential, and the rate limits
//! (`admit`), then starts the cosigner's side of the wallet's aux info (unless
//! enrolled) and DKG (`creation`).

use std::sync::Arc;

use cosigner_api::auth::{self, now_ms};
use cosigner_api::convert::account_kind_from_proto;
use cosigner_api::{pb, MAX_ACCOUNTS};

use crate::authz::create_scope;
use crate::creation::{self, NewWallet};
use crate::enrollment;
use crate::error::CosignerError;
use crate::state::State;

use super::admit::{admit, Signed, Ticket};

/// Longest wallet label.
const MAX_LABEL: usize = 256;

/// Checks the request (signature, fields, distinct identities) and, for a wallet from
/// an enrollment, the enrollment (its aux info finished, unexpired, unspent, of these
/// identities); then the shared admission sequence (`admit`) starts the creation. A
/// wallet from an enrollment needs no registration credential (a given one is ignored,
/// not consumed): its EnrollDevice consumed one.
pub(super) async fn create_wallet(
    st: &Arc<State>,
    req: pb::CreateWalletRequest,
) -> Result<pb::CreateWalletResponse, CosignerError> {
    st.check_serving()?;
    let now = now_ms();
    let me = st.public_identity();
    let (device, recovery) = auth::verify_device_request(&req, &me, now, st.window_ms())?;
    if req.accounts == 0 || req.accounts > MAX_ACCOUNTS {
        return Err(CosignerError::invalid(format!(
            "accounts must be 1..={MAX_ACCOUNTS}"
        )));
    }
    let kind = account_kind_from_proto(req.kind)?;
    if req.label.len() > MAX_LABEL {
        return Err(CosignerError::invalid(format!(
            "label longer than {MAX_LABEL} bytes"
        )));
    }
    if device == recovery || device == me || recovery == me {
        return Err(CosignerError::invalid(
            "device, recovery and cosigner identities must be distinct",
        ));
    }
    let (enrollment, ticket) = if req.enrollment_id.is_empty() {
        (None, Ticket::Credential(&req.registration_credential))
    } else {
        let e = enrollment::usable(st, &req.enrollment_id, &device, &recovery, now).await?;
        (Some(e), Ticket::Enrollment(&req.enrollment_id))
    };
    let wallet = NewWallet {
        device,
        recovery,
        accounts: req.accounts,
        kind,
        label: req.label.clone(),
        enrollment,
    };
    let signed = Signed {
        scope: create_scope(&req.device_identity),
        nonce: &req.nonce,
        timestamp_ms: req.timestamp_ms,
    };
    let created = admit(st, &device, signed, ticket, |named| {
        creation::start(st, wallet, now, named)
    })
    .await?;
    Ok(pb::CreateWalletResponse {
        wallet_id: created.wallet_id,
        cosigner_identity: me.to_string(),
        aux_info: created.aux_room,
        accounts: created
            .keygens
            .into_iter()
            .map(|(account_id, room)| pb::AccountSession {
                account_id,
                keygen: Some(room),
            })
            .collect(),
        expires_at_ms: created.expires_at_ms,
    })
}
