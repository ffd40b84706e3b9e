//! `ConfirmWallet`: a pending wallet is confirmed by one of its registered parties
//! (`creation::confirm`); a wallet already committed answers idempotently.

use std::sync::Arc;

use cosigner_api::auth;
use cosigner_api::pb;

use crate::creation;
use crate::error::CosignerError;
use crate::state::State;

use super::account_info;

pub(super) async fn confirm_wallet(
    st: &Arc<State>,
    req: pb::ConfirmWalletRequest,
) -> Result<pb::ConfirmWalletResponse, CosignerError> {
    let (auth, party) = auth::auth_of(&req)?;
    let wallet_id = auth.wallet_id.clone();
    let wallet = match st.creations.get(&wallet_id) {
        Some(pending) => {
            st.verify_as(&req, &pending.identity_of(party)).await?;
            creation::confirm(st, &wallet_id, party, &pending, &req.public_keys).await?
        }
        None => {
            // Already committed (a retried confirmation).
            let (wallet, _) = st.authenticate(&req).await?;
            creation::reconfirm(&wallet, &req.public_keys)?;
            wallet
        }
    };
    Ok(pb::ConfirmWalletResponse {
        committed: true,
        accounts: wallet
            .accounts
            .values()
            .map(|a| account_info(a, wallet.share_epoch))
            .collect(),
    })
}
