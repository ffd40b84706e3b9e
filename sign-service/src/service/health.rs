//! `Health`: version, backend, the 2-of-3 parameters and the cosigner's identity.

use cosigner_api::pb;

use crate::state::State;

pub(super) fn health(st: &State) -> pb::HealthResponse {
    pb::HealthResponse {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        backend: mpc_core::BACKEND.into(),
        party_index: u32::from(st.cfg.party_index),
        threshold: u32::from(st.cfg.threshold),
        parties: u32::from(st.cfg.total_participants),
        identity: st.public_identity().to_string(),
    }
}
