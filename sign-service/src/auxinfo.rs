//! The cosigner's side of an aux-info session, shared by wallet creation and device
//! enrollment: wait until every other party is live, then take a creation slot, a
//! prime set from the pool, run the session, and refuse peers whose Paillier moduli are
//! built from the repository's public test primes (outside dev-primes mode).

use std::time::Duration;

use cosigner_api::{pb, PARTY_COSIGNER};
use mpc_core::{AuxInfo, Session, SessionError, SessionOutput};
use mpc_party::run_session;
use mpc_wire::{Roster, SessionId};
use tokio::sync::OwnedSemaphorePermit;

use crate::error::CosignerError;
use crate::metrics::SessionKind;
use crate::state::State;

/// Waits until an authenticated envelope from EVERY other party of `roster` appears in
/// `room` (the other parties broadcast their first round without waiting for us): the
/// proof that they are live. `what` names the session in the timeout error.
pub(crate) async fn wait_for_peers(
    st: &State,
    room: &pb::SessionRoom,
    roster: &Roster,
    timeout: Duration,
    what: &str,
) -> Result<(), CosignerError> {
    use futures_util::StreamExt;
    let sid = SessionId::new(room.session_id.clone()).map_err(CosignerError::internal)?;
    let mut channel =
        mpc_wire::Channel::new(sid, PARTY_COSIGNER, st.identity.clone(), roster.clone())
            .map_err(CosignerError::internal)?;
    let token = (!room.room_token.is_empty()).then_some(room.room_token.as_str());
    let mut stream = Box::pin(st.gateway.subscribe(&room.room, token, None));
    let mut silent: Vec<u16> = roster
        .iter()
        .map(|(p, _)| p)
        .filter(|&p| p != PARTY_COSIGNER)
        .collect();
    let wait = async {
        while let Some(item) = stream.next().await {
            let (_, body) = item.map_err(|e| CosignerError::GatewayUnavailable(e.to_string()))?;
            let sender = match channel.open(&body) {
                Ok(mpc_wire::Opened::Message(m)) => Some(m.sender),
                Ok(mpc_wire::Opened::NotForMe { sender, .. }) => Some(sender),
                Ok(mpc_wire::Opened::OwnEcho { .. }) => None,
                // A peer gave up before the session started: so does the creation.
                Ok(mpc_wire::Opened::Stop { sender, notice }) => {
                    return Err(CosignerError::SessionFailed {
                        party: None,
                        reason: format!(
                            "party {sender} stopped the session ({}): {}",
                            notice.code, notice.reason
                        ),
                    });
                }
                Err(e) => {
                    tracing::warn!(room = %room.room, error = %e, "rejected envelope while waiting for peers");
                    None
                }
            };
            silent.retain(|&p| Some(p) != sender);
            if silent.is_empty() {
                return Ok(());
            }
        }
        Err(CosignerError::GatewayUnavailable(format!(
            "the gateway stream of room {} ended",
            room.room
        )))
    };
    let result = tokio::time::timeout(timeout, wait).await;
    match result {
        Ok(r) => r,
        Err(_) => Err(CosignerError::Timeout(format!(
            "parties {silent:?} did not join the {what} session within {timeout:?}"
        ))),
    }
}

/// Waits for every peer of `room` ([`wait_for_peers`]), then for a creation slot (a
/// budget apart from the signing sessions'; waiting here never takes a signing slot).
/// Until the peers are live the caller holds no slot and no primes.
pub(crate) async fn admit_to_compute(
    st: &State,
    room: &pb::SessionRoom,
    roster: &Roster,
    deadline_ms: u64,
    what: &str,
) -> Result<OwnedSemaphorePermit, CosignerError> {
    wait_for_peers(st, room, roster, remaining(deadline_ms), what).await?;
    tokio::time::timeout(remaining(deadline_ms), st.creation_slot())
        .await
        .map_err(|_| {
            CosignerError::Timeout("no wallet-creation slot became free before the deadline".into())
        })?
}

/// The time left until `deadline_ms` (at least 1 ms).
pub(crate) fn remaining(deadline_ms: u64) -> Duration {
    Duration::from_millis(
        deadline_ms
            .saturating_sub(cosigner_api::auth::now_ms())
            .max(1),
    )
}

/// The cosigner's side of the aux-info session in `room` (its peers are live and it
/// holds a creation slot: see [`admit_to_compute`]), with a prime set from the pool.
/// `id` (a wallet or an enrollment id) names the job in the logs.
pub(crate) async fn run_aux_info(
    st: &State,
    id: &str,
    room: &pb::SessionRoom,
    roster: &Roster,
    deadline_ms: u64,
) -> Result<AuxInfo, CosignerError> {
    let primes = st
        .primes
        .take(remaining(deadline_ms))
        .await
        .map_err(|e| CosignerError::Timeout(e.to_string()))?;
    let sid = SessionId::new(room.session_id.clone()).map_err(CosignerError::internal)?;
    let sid_bytes = sid.as_str().as_bytes().to_vec();
    let ctx = st.party_ctx(room, sid, roster.clone(), remaining(deadline_ms));
    let job = id.to_string();
    let out = run_session(
        ctx,
        move || {
            let primes = primes
                .to_pregenerated()
                .map_err(|e| SessionError::InvalidParams(e.to_string()))?;
            Session::aux_info(&sid_bytes, PARTY_COSIGNER, 3, primes)
        },
        move |p| tracing::debug!(id = %job, round = p.round, "aux info progress"),
    )
    .await;
    st.metrics.session(SessionKind::AuxInfo, out.is_ok());
    let out = out.map_err(|e| with_context("aux info", e.into()))?;
    let SessionOutput::AuxInfo(aux) = out else {
        return Err(CosignerError::internal(
            "aux info session produced another output",
        ));
    };
    tracing::info!(id = %id, "aux info done");
    refuse_public_primes(st, id, &aux)?;
    Ok(*aux)
}

/// A peer whose Paillier modulus is made of the repository's PUBLIC test primes has no
/// Paillier secret at all: refused outside dev mode, before any key exists.
fn refuse_public_primes(st: &State, id: &str, aux: &AuxInfo) -> Result<(), CosignerError> {
    let public = crate::import::parties_with_public_primes(aux);
    if let Some(&party) = public.iter().find(|&&p| p != PARTY_COSIGNER) {
        if !st.cfg.insecure_dev_primes {
            return Err(CosignerError::SessionFailed {
                party: Some(party),
                reason: format!(
                    "aux info: party {party}'s Paillier modulus is built from the repository's \
                     public test primes (anyone can factor it); such peers are accepted only \
                     with insecure_dev_primes (tests and demos)"
                ),
            });
        }
    }
    if !public.is_empty() {
        tracing::warn!(id = %id, parties = ?public, "INSECURE: aux info uses the PUBLIC test primes (development only); the wallet is flagged");
    }
    Ok(())
}

/// Prefixes a session failure's text with the stage it failed in.
pub(crate) fn with_context(stage: &str, e: CosignerError) -> CosignerError {
    match e {
        CosignerError::SessionFailed { party, reason } => CosignerError::SessionFailed {
            party,
            reason: format!("{stage}: {reason}"),
        },
        CosignerError::Timeout(r) => CosignerError::Timeout(format!("{stage}: {r}")),
        other => other,
    }
}
