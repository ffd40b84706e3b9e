//! The gRPC adapter of `wallet.cosigner.v1.Cosigner`: one small module per RPC group.
//! Each handler authenticates and extracts, calls the domain (`creation`, `signing`,
//! `scheduler`, `authz`) and maps the result; every error is a
//! [`CosignerError`](crate::error::CosignerError), turned into a `tonic::Status` in one
//! place (`From<CosignerError> for Status`).

mod accounts;
mod admit;
mod confirm;
mod controls;
mod create;
mod enroll;
mod health;
mod lifecycle;
mod presign;
mod sign;

use std::sync::Arc;

use cosigner_api::convert::account_kind_to_proto;
use cosigner_api::pb;
use mpc_core::address::ethereum_address;
use mpc_core::hd::DerivationPath;
use mpc_core::Account;
use tonic::{Request, Response, Status};

use crate::error::CosignerError;
use crate::state::State;

/// The gRPC service.
#[derive(Clone, Debug)]
pub struct CosignerService {
    st: Arc<State>,
}

impl CosignerService {
    /// Wraps the shared state.
    pub fn new(st: Arc<State>) -> Self {
        Self { st }
    }
}

impl CosignerService {
    /// A handler's result: the response, or the error (counted by its code in the
    /// metrics) converted to a status.
    fn reply<T>(&self, r: Result<T, CosignerError>) -> Result<Response<T>, Status> {
        r.map(Response::new).map_err(|e| {
            self.st.metrics.error(e.code());
            Status::from(e)
        })
    }
}

#[tonic::async_trait]
impl pb::cosigner_server::Cosigner for CosignerService {
    async fn health(
        &self,
        _: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        self.reply(Ok(health::health(&self.st)))
    }

    async fn enroll_device(
        &self,
        r: Request<pb::EnrollDeviceRequest>,
    ) -> Result<Response<pb::EnrollDeviceResponse>, Status> {
        self.reply(enroll::enroll_device(&self.st, r.into_inner()).await)
    }

    async fn create_wallet(
        &self,
        r: Request<pb::CreateWalletRequest>,
    ) -> Result<Response<pb::CreateWalletResponse>, Status> {
        self.reply(create::create_wallet(&self.st, r.into_inner()).await)
    }

    async fn confirm_wallet(
        &self,
        r: Request<pb::ConfirmWalletRequest>,
    ) -> Result<Response<pb::ConfirmWalletResponse>, Status> {
        self.reply(confirm::confirm_wallet(&self.st, r.into_inner()).await)
    }

    async fn start_sign(
        &self,
        r: Request<pb::StartSignRequest>,
    ) -> Result<Response<pb::StartSignResponse>, Status> {
        self.reply(sign::start_sign(&self.st, r.into_inner()).await)
    }

    async fn start_presign(
        &self,
        r: Request<pb::StartPresignRequest>,
    ) -> Result<Response<pb::StartPresignResponse>, Status> {
        self.reply(presign::start_presign(&self.st, r.into_inner()).await)
    }

    async fn presign_pool_status(
        &self,
        r: Request<pb::PresignPoolStatusRequest>,
    ) -> Result<Response<pb::PresignPoolStatusResponse>, Status> {
        self.reply(presign::pool_status(&self.st, r.into_inner()).await)
    }

    async fn sign_with_presignature(
        &self,
        r: Request<pb::SignWithPresignatureRequest>,
    ) -> Result<Response<pb::SignWithPresignatureResponse>, Status> {
        self.reply(presign::sign_with_presignature(&self.st, r.into_inner()).await)
    }

    async fn get_public_key(
        &self,
        r: Request<pb::GetPublicKeyRequest>,
    ) -> Result<Response<pb::GetPublicKeyResponse>, Status> {
        self.reply(accounts::get_public_key(&self.st, r.into_inner()).await)
    }

    async fn list_accounts(
        &self,
        r: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        self.reply(accounts::list_accounts(&self.st, r.into_inner()).await)
    }

    async fn revoke_device(
        &self,
        r: Request<pb::RevokeDeviceRequest>,
    ) -> Result<Response<pb::WalletControlsResponse>, Status> {
        self.reply(controls::revoke_device(&self.st, r.into_inner()).await)
    }

    async fn freeze_wallet(
        &self,
        r: Request<pb::FreezeWalletRequest>,
    ) -> Result<Response<pb::WalletControlsResponse>, Status> {
        self.reply(controls::freeze_wallet(&self.st, r.into_inner()).await)
    }

    async fn unfreeze_wallet(
        &self,
        r: Request<pb::UnfreezeWalletRequest>,
    ) -> Result<Response<pb::WalletControlsResponse>, Status> {
        self.reply(controls::unfreeze_wallet(&self.st, r.into_inner()).await)
    }

    async fn start_refresh(
        &self,
        r: Request<pb::StartRefreshRequest>,
    ) -> Result<Response<pb::LifecycleResponse>, Status> {
        self.reply(lifecycle::start_refresh(&self.st, r.into_inner()).await)
    }

    async fn replace_device(
        &self,
        r: Request<pb::ReplaceDeviceRequest>,
    ) -> Result<Response<pb::LifecycleResponse>, Status> {
        self.reply(lifecycle::replace_device(&self.st, r.into_inner()).await)
    }

    async fn confirm_lifecycle(
        &self,
        r: Request<pb::ConfirmLifecycleRequest>,
    ) -> Result<Response<pb::ConfirmLifecycleResponse>, Status> {
        self.reply(lifecycle::confirm_lifecycle(&self.st, r.into_inner()).await)
    }
}

/// A derivation path field (empty: the root).
fn parse_path(s: &str) -> Result<DerivationPath, CosignerError> {
    if s.trim().is_empty() {
        return Ok(DerivationPath::root());
    }
    DerivationPath::parse(s).map_err(|e| CosignerError::invalid(format!("derivation_path: {e}")))
}

/// An account as the API describes it (`share_epoch`: its wallet's).
fn account_info(a: &Account, share_epoch: u64) -> pb::AccountInfo {
    let pk = a.master_public_key();
    pb::AccountInfo {
        account_id: a.id.clone(),
        kind: account_kind_to_proto(a.kind) as i32,
        public_key: a.public_key.clone(),
        chain_code: a.chain_code.clone().unwrap_or_default(),
        ethereum_address: ethereum_address(&pk),
        created_at: a.created_at,
        share_epoch,
    }
}

/// Signer indices on the wire.
fn signers_pb(signers: &[u16]) -> Vec<u32> {
    signers.iter().copied().map(u32::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(parse_path("").unwrap().is_root());
        assert_eq!(
            parse_path("m/44/60/0/0/1").unwrap().indices(),
            &[44, 60, 0, 0, 1]
        );
        for bad in ["m/44'/0", "nonsense"] {
            let e = parse_path(bad).unwrap_err();
            assert_eq!(e.code(), wallet_types::ErrorCode::InvalidInput);
            assert_eq!(Status::from(e).code(), tonic::Code::InvalidArgument);
        }
    }
}
