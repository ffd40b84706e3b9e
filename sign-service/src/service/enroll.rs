//! `EnrollDevice`: checks the device's signature and the fields, then the shared
//! admission sequence (`admit`: registration credential, rate limits, nonce) starts the
//! cosigner's side of the enrollment's aux info (`enrollment`).

use std::sync::Arc;

use cosigner_api::auth::{self, now_ms};
use cosigner_api::pb;

use crate::authz::enroll_scope;
use crate::enrollment;
use crate::error::CosignerError;
use crate::state::State;

use super::admit::{admit, Signed, Ticket};

pub(super) async fn enroll_device(
    st: &Arc<State>,
    req: pb::EnrollDeviceRequest,
) -> Result<pb::EnrollDeviceResponse, CosignerError> {
    st.check_serving()?;
    let now = now_ms();
    let me = st.public_identity();
    let (device, recovery) = auth::verify_device_request(&req, &me, now, st.window_ms())?;
    if device == recovery || device == me || recovery == me {
        return Err(CosignerError::invalid(
            "device, recovery and cosigner identities must be distinct",
        ));
    }
    let signed = Signed {
        scope: enroll_scope(&req.device_identity),
        nonce: &req.nonce,
        timestamp_ms: req.timestamp_ms,
    };
    let ticket = Ticket::Credential(&req.registration_credential);
    let started = admit(st, &device, signed, ticket, |named| {
        enrollment::start(st, device, recovery, now, named)
    })
    .await?;
    Ok(pb::EnrollDeviceResponse {
        enrollment_id: started.enrollment_id,
        cosigner_identity: me.to_string(),
        aux_info: Some(started.aux_room),
        expires_at_ms: started.expires_at_ms,
        enrollment_expires_at_ms: started.enrollment_expires_at_ms,
    })
}
