//! `StartSign`: authenticates, checks the fields and starts a signing session
//! (`signing::start_sign`: policy, audit, the cosigner's side in the background).

use std::sync::Arc;

use cosigner_api::convert::digest_kind_from_proto;
use cosigner_api::pb;

use crate::error::CosignerError;
use crate::signing::{self, BitcoinFields, SignRequest};
use crate::state::State;

use super::{parse_path, signers_pb};

pub(super) async fn start_sign(
    st: &Arc<State>,
    req: pb::StartSignRequest,
) -> Result<pb::StartSignResponse, CosignerError> {
    st.check_serving()?;
    let (wallet, party) = st.authenticate_to_sign(&req).await?;
    let request = SignRequest::audited(
        st,
        &wallet,
        party,
        req.account_id,
        parse_path(&req.derivation_path)?,
        digest_kind_from_proto(req.digest)?,
        req.payload_kind,
        req.preimage,
        BitcoinFields {
            input_index: req.input_index,
            network: &req.bitcoin_network,
        },
    )?;
    let started = signing::start_sign(st, wallet, party, request).await?;
    Ok(pb::StartSignResponse {
        session: Some(started.room),
        signers: signers_pb(&started.signers),
        digest: started.authorized.digest,
        request_id: started.authorized.request_id,
    })
}
