//! The presignature RPCs: `StartPresign` and `PresignPoolStatus` (the scheduler) and
//! `SignWithPresignature` (the fast path of `signing`).

use std::sync::Arc;

use cosigner_api::convert::digest_kind_from_proto;
use cosigner_api::pb;

use crate::error::CosignerError;
use crate::metrics::SignPath;
use crate::scheduler;
use crate::signing::{self, BitcoinFields, SignRequest};
use crate::state::{signers_with, State};

use super::signers_pb;

pub(super) async fn start_presign(
    st: &Arc<State>,
    req: pb::StartPresignRequest,
) -> Result<pb::StartPresignResponse, CosignerError> {
    st.check_serving()?;
    let (wallet, party) = st.authenticate_to_sign(&req).await?;
    let path = super::parse_path(&req.derivation_path)?;
    let g = scheduler::start_presign(
        st,
        wallet,
        party,
        &req.account_id,
        path,
        req.count,
        req.release_ids,
    )
    .await?;
    Ok(pb::StartPresignResponse {
        derivation_path: g.path,
        sessions: g.sessions,
        signers: signers_pb(&g.signers),
        available: g.available as u32,
        running: g.running as u32,
        cap: g.cap as u32,
        request_id: g.request_id,
    })
}

pub(super) async fn pool_status(
    st: &Arc<State>,
    req: pb::PresignPoolStatusRequest,
) -> Result<pb::PresignPoolStatusResponse, CosignerError> {
    let (wallet, party) = st.authenticate(&req).await?;
    let pools = scheduler::pool_status(st, &wallet, party, &req.account_id).await?;
    let signers = signers_pb(&signers_with(party));
    Ok(pb::PresignPoolStatusResponse {
        pools: pools
            .into_iter()
            .map(|p| pb::PresignPool {
                account_id: p.account_id,
                derivation_path: p.path,
                signers: signers.clone(),
                presignature_ids: p.presignature_ids,
                running: p.running as u32,
                cap: st.cfg.presign_pool_cap,
            })
            .collect(),
    })
}

pub(super) async fn sign_with_presignature(
    st: &Arc<State>,
    req: pb::SignWithPresignatureRequest,
) -> Result<pb::SignWithPresignatureResponse, CosignerError> {
    st.check_serving()?;
    let started = std::time::Instant::now();
    let (wallet, party) = st.authenticate_to_sign(&req).await?;
    let request = SignRequest::audited(
        st,
        &wallet,
        party,
        req.account_id,
        super::parse_path(&req.derivation_path)?,
        digest_kind_from_proto(req.digest)?,
        req.payload_kind,
        req.preimage,
        BitcoinFields {
            input_index: req.input_index,
            network: &req.bitcoin_network,
        },
    )?;
    let p =
        signing::sign_with_presignature(st, &wallet, party, req.presignature_id, request).await?;
    st.metrics.signed(SignPath::Pool, started.elapsed());
    Ok(pb::SignWithPresignatureResponse {
        partial_signature: p.bytes,
        signers: signers_pb(&p.signers),
        digest: p.authorized.digest,
        request_id: p.authorized.request_id,
    })
}
