//! `CreateWallet`: checks the device's signature and the fields, the registration
//! credential and the rate limits (`admission`), then starts the cosigner's side of
//! the wallet's aux info and DKG (`creation`).

use std::sync::Arc;

use cosigner_api::auth::{self, now_ms};
use cosigner_api::convert::account_kind_from_proto;
use cosigner_api::{pb, MAX_ACCOUNTS};

use crate::admission::{Admission, Registration};
use crate::authz::create_scope;
use crate::creation::{self, NewWallet};
use crate::error::CosignerError;
use crate::state::State;

/// Longest wallet label.
const MAX_LABEL: usize = 256;

/// The nonce is recorded only once the request is valid (audience, signature, every
/// field, the registration credential, the rate limits) and is forgotten again if no
/// creation starts (no capacity): a refused request takes no space in the replay
/// cache. The credential is consumed last and given back if no creation starts.
pub(super) async fn create_wallet(
    st: &Arc<State>,
    req: pb::CreateWalletRequest,
) -> Result<pb::CreateWalletResponse, CosignerError> {
    st.check_serving()?;
    let now = now_ms();
    let me = st.public_identity();
    let (device, recovery) = auth::verify_create_wallet(&req, &me, now, st.window_ms())?;
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
    let credential = st
        .admission
        .verify_credential(&req.registration_credential, &me, now)?;
    if let Some(c) = &credential {
        let c = c.clone();
        let store = Arc::clone(&st.store);
        tokio::task::spawn_blocking(move || Admission::is_used(&store, &c))
            .await
            .map_err(CosignerError::internal)??;
    }
    st.admission.check_create_rate(&device)?;
    let wallet = NewWallet {
        device,
        recovery,
        accounts: req.accounts,
        kind,
        label: req.label,
    };
    let scope = create_scope(&req.device_identity);
    st.record_nonce(scope.clone(), &req.nonce, req.timestamp_ms, now)
        .await?;
    let store = Arc::clone(&st.store);
    let consumed =
        tokio::task::spawn_blocking(move || Admission::consume(&store, credential, now)).await;
    let registration = match consumed {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            st.forget_nonce(scope, &req.nonce).await;
            return Err(e);
        }
        Err(e) => {
            st.forget_nonce(scope, &req.nonce).await;
            return Err(CosignerError::internal(e));
        }
    };
    let named = match &registration {
        Registration::Credential(c) => format!("credential {}", c.id_hex()),
        Registration::Open => "open (dev mode)".to_string(),
    };
    let created = match creation::start(st, wallet, now, &named) {
        Ok(c) => c,
        Err(e) => {
            st.forget_nonce(scope, &req.nonce).await;
            let store = Arc::clone(&st.store);
            let _ = tokio::task::spawn_blocking(move || Admission::release(&store, &registration))
                .await;
            return Err(e);
        }
    };
    Ok(pb::CreateWalletResponse {
        wallet_id: created.wallet_id,
        cosigner_identity: me.to_string(),
        aux_info: Some(created.aux_room),
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
