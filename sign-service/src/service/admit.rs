//! The admission sequence shared by the requests that start work (EnrollDevice,
//! CreateWallet), once their signature and fields are verified: the registration
//! credential (verified, checked unused), the creation rate limits, the nonce, the
//! credential consumed, then the work started. The nonce is recorded only once the
//! request is valid and is forgotten again, and the credential given back, if the work
//! does not start (no capacity): a refused request takes no space in the replay cache
//! and spends no credential.

use std::sync::Arc;

use cosigner_api::auth::now_ms;
use mpc_wire::PublicIdentity;

use crate::admission::{Admission, Registration};
use crate::error::CosignerError;
use crate::state::State;

/// What admits the request besides its signature.
#[derive(Clone, Copy)]
pub(super) enum Ticket<'a> {
    /// A registration credential (empty: none; accepted only with open registration).
    Credential(&'a str),
    /// A finished enrollment (its EnrollDevice consumed the credential).
    Enrollment(&'a str),
}

/// A verified request's replay data.
pub(super) struct Signed<'a> {
    /// Its replay scope (`authz::create_scope`, `authz::enroll_scope`).
    pub scope: String,
    pub nonce: &'a [u8],
    pub timestamp_ms: u64,
}

/// Runs the admission sequence for `device`'s request and then `start`, given how the
/// request was admitted (for its audit record). See the module documentation.
pub(super) async fn admit<T>(
    st: &Arc<State>,
    device: &PublicIdentity,
    signed: Signed<'_>,
    ticket: Ticket<'_>,
    start: impl FnOnce(&str) -> Result<T, CosignerError>,
) -> Result<T, CosignerError> {
    let now = now_ms();
    // Cheapest first: the credential's signature, then whether it was used (before the
    // rate limits: a used credential must not spend the creation budget).
    let credential = match ticket {
        Ticket::Credential(c) => {
            let me = st.public_identity();
            let credential = st.admission.verify_credential(c, &me, now)?;
            if let Some(c) = &credential {
                let c = c.clone();
                let store = Arc::clone(&st.store);
                tokio::task::spawn_blocking(move || Admission::is_used(&store, &c))
                    .await
                    .map_err(CosignerError::internal)??;
            }
            Some(credential)
        }
        Ticket::Enrollment(_) => None,
    };
    st.admission.check_create_rate(device)?;
    let Signed {
        scope,
        nonce,
        timestamp_ms,
    } = signed;
    st.record_nonce(scope.clone(), nonce, timestamp_ms, now)
        .await?;
    let registration = match credential {
        Some(credential) => {
            let store = Arc::clone(&st.store);
            let consumed =
                tokio::task::spawn_blocking(move || Admission::consume(&store, credential, now))
                    .await
                    .map_err(CosignerError::internal)
                    .and_then(|r| r);
            match consumed {
                Ok(r) => Some(r),
                Err(e) => {
                    st.forget_nonce(scope, nonce).await;
                    return Err(e);
                }
            }
        }
        None => None,
    };
    let named = match (&registration, &ticket) {
        (Some(Registration::Credential(c)), _) => format!("credential {}", c.id_hex()),
        (Some(Registration::Open), _) => "open (dev mode)".to_string(),
        (None, Ticket::Enrollment(id)) => format!("enrollment {id}"),
        (None, Ticket::Credential(_)) => "none".to_string(),
    };
    match start(&named) {
        Ok(t) => Ok(t),
        Err(e) => {
            st.forget_nonce(scope, nonce).await;
            if let Some(registration) = registration {
                let store = Arc::clone(&st.store);
                let _ =
                    tokio::task::spawn_blocking(move || Admission::release(&store, &registration))
                        .await;
            }
            Err(e)
        }
    }
}
