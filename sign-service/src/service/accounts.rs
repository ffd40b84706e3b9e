//! `GetPublicKey` and `ListAccounts`: read-only views of a committed wallet (and its
//! controls).

use std::sync::Arc;

use cosigner_api::pb;
use mpc_core::address::{bitcoin_p2wpkh_address, ethereum_address, BitcoinNetwork};

use crate::error::CosignerError;
use crate::state::State;

use super::{account_info, parse_path};

pub(super) async fn get_public_key(
    st: &Arc<State>,
    req: pb::GetPublicKeyRequest,
) -> Result<pb::GetPublicKeyResponse, CosignerError> {
    let (wallet, _) = st.authenticate(&req).await?;
    let account = wallet
        .accounts
        .get(&req.account_id)
        .ok_or_else(|| CosignerError::UnknownAccount(req.account_id.clone()))?;
    let path = parse_path(&req.derivation_path)?;
    let pk = account
        .public_key_at(&path)
        .map_err(|e| CosignerError::invalid(e.to_string()))?;
    Ok(pb::GetPublicKeyResponse {
        public_key: hex::encode(pk.to_bytes(true)),
        ethereum_address: ethereum_address(&pk),
        bitcoin_address: bitcoin_p2wpkh_address(&pk, BitcoinNetwork::Mainnet).unwrap_or_default(),
        derivation_path: path.to_string(),
    })
}

pub(super) async fn list_accounts(
    st: &Arc<State>,
    req: pb::ListAccountsRequest,
) -> Result<pb::ListAccountsResponse, CosignerError> {
    let (wallet, _, controls) = st.authenticate_with_controls(&req).await?;
    Ok(pb::ListAccountsResponse {
        accounts: wallet
            .accounts
            .values()
            .map(|a| account_info(a, wallet.share_epoch))
            .collect(),
        controls: Some(super::controls::controls_pb(&st.cfg, &wallet, &controls)),
    })
}
