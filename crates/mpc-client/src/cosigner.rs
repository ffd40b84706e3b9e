//! gRPC client of the cosigner (`wallet.cosigner.v1`), with requests signed by the
//! calling party's identity key and gRPC statuses mapped to [`MpcError`].

use std::collections::BTreeMap;
use std::time::Duration;

use cosigner_api::auth;
use cosigner_api::pb;
use cosigner_api::pb::cosigner_client::CosignerClient as Grpc;
use mpc_wire::{IdentityKey, PublicIdentity};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use crate::error::MpcError;
use crate::types::{AccountKind, CosignerHealth, DigestKind, PayloadKind};

/// Where one protocol session runs (from the cosigner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// Session id bound into every envelope.
    pub session_id: String,
    /// Room on the gateway.
    pub room: String,
    /// Room token (empty: open gateway).
    pub room_token: String,
    /// Gateway URL announced by the cosigner.
    pub gateway_url: String,
}

impl RoomInfo {
    fn from_pb(r: Option<pb::SessionRoom>, what: &str) -> Result<Self, MpcError> {
        let r = r.ok_or_else(|| invalid_response(format!("no {what} room in the response")))?;
        if r.session_id.is_empty() || r.room.is_empty() {
            return Err(invalid_response(format!(
                "the {what} room has no session id or room"
            )));
        }
        Ok(RoomInfo {
            session_id: r.session_id,
            room: r.room,
            room_token: r.room_token,
            gateway_url: r.gateway_url,
        })
    }
}

pub(crate) struct CreatedAccount {
    pub account_id: String,
    pub keygen: RoomInfo,
}

pub(crate) struct Created {
    pub wallet_id: String,
    pub cosigner_identity: String,
    pub aux_info: RoomInfo,
    pub accounts: Vec<CreatedAccount>,
}

pub(crate) struct SignStarted {
    pub session: RoomInfo,
    pub signers: Vec<u16>,
    pub digest: String,
    pub request_id: String,
}

pub(crate) struct PresignStarted {
    /// (presignature id, room), one per granted session.
    pub sessions: Vec<(String, RoomInfo)>,
    pub signers: Vec<u16>,
}

pub(crate) struct CosignerPool {
    pub presignature_ids: Vec<String>,
    pub running: u32,
    pub cap: u32,
}

pub(crate) struct PartialFromCosigner {
    pub partial: Vec<u8>,
    pub signers: Vec<u16>,
    pub digest: String,
    pub request_id: String,
}

/// The cosigner does not have (or already used) the presignature.
pub(crate) struct PresignatureUnavailable {
    pub used: bool,
    pub reason: String,
}

fn signer_list(v: &[u32]) -> Result<Vec<u16>, MpcError> {
    v.iter()
        .map(|&s| u16::try_from(s).map_err(|_| invalid_response(format!("signer index {s}"))))
        .collect()
}

fn invalid_response(reason: impl Into<String>) -> MpcError {
    MpcError::CosignerRejected {
        code: "invalid_response".into(),
        reason: reason.into(),
    }
}

fn auth_err(e: auth::AuthError) -> MpcError {
    MpcError::internal(format!("cannot sign the request: {e}"))
}

/// Maps a gRPC status of the cosigner to the client's error categories.
pub(crate) fn map_status(s: tonic::Status) -> MpcError {
    let mut msg = s.message().to_string();
    // Transport failures carry their cause (e.g. "connection refused") as the source.
    if let Some(src) = std::error::Error::source(&s) {
        let cause = error_chain(src);
        if !msg.contains(&cause) {
            msg = format!("{msg}: {cause}");
        }
    }
    match s.code() {
        Code::Unavailable => MpcError::CosignerUnavailable { reason: msg },
        Code::Unauthenticated => MpcError::Unauthorized { reason: msg },
        Code::PermissionDenied => {
            let rule = s
                .metadata()
                .get("x-policy-rule")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .or_else(|| policy_rule(&msg));
            match rule {
                Some(rule) => MpcError::PolicyRefused { rule, reason: msg },
                None => MpcError::Unauthorized { reason: msg },
            }
        }
        Code::DeadlineExceeded => MpcError::Timeout {
            stage: "cosigner request".into(),
            after_secs: 0,
            reason: msg,
        },
        Code::InvalidArgument => MpcError::InvalidInput {
            reason: format!("the cosigner refused the input: {msg}"),
        },
        Code::Cancelled | Code::Unknown if msg.contains("transport") || msg.contains("connect") => {
            MpcError::CosignerUnavailable { reason: msg }
        }
        code => MpcError::CosignerRejected {
            code: format!("{code:?}"),
            reason: msg,
        },
    }
}

/// Extracts `rule` from "policy rule `rule` refused ...".
fn policy_rule(msg: &str) -> Option<String> {
    let rest = msg.split("policy rule `").nth(1)?;
    let rule = rest.split('`').next()?;
    (!rule.is_empty()).then(|| rule.to_string())
}

/// A connection to the cosigner.
#[derive(Clone, Debug)]
pub struct CosignerClient {
    url: String,
    grpc: Grpc<Channel>,
}

impl CosignerClient {
    /// Connects to the cosigner at `url` (`http://host:port`); `timeout` applies to
    /// connecting and to every request.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, MpcError> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| MpcError::config(format!("invalid cosigner URL {url:?}: {e}")))?
            .connect_timeout(timeout)
            .timeout(timeout);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| MpcError::CosignerUnavailable {
                reason: format!("cannot connect to {url}: {}", error_chain(&e)),
            })?;
        Ok(CosignerClient {
            url: url.to_string(),
            grpc: Grpc::new(channel),
        })
    }

    /// The cosigner's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Maps a status, naming the cosigner when it cannot be reached.
    fn status(&self, s: tonic::Status) -> MpcError {
        match map_status(s) {
            MpcError::CosignerUnavailable { reason } => MpcError::CosignerUnavailable {
                reason: format!("{}: {reason}", self.url),
            },
            other => other,
        }
    }

    /// The cosigner's health report.
    pub async fn health(&self) -> Result<CosignerHealth, MpcError> {
        let r = self
            .grpc
            .clone()
            .health(pb::HealthRequest {})
            .await
            .map_err(|e| self.status(e))?
            .into_inner();
        Ok(CosignerHealth {
            status: r.status,
            version: r.version,
            backend: r.backend,
            identity: r.identity,
        })
    }

    /// Polls health every `every`; returns (with the last error) after `failures`
    /// consecutive failures. Never returns while the cosigner is healthy.
    pub(crate) async fn watch(&self, every: Duration, failures: u32) -> MpcError {
        let mut failed = 0;
        loop {
            tokio::time::sleep(every).await;
            match tokio::time::timeout(every * 2, self.health()).await {
                Ok(Ok(_)) => failed = 0,
                Ok(Err(e)) => {
                    failed += 1;
                    if failed >= failures {
                        return e;
                    }
                }
                Err(_) => {
                    failed += 1;
                    if failed >= failures {
                        return MpcError::CosignerUnavailable {
                            reason: "health checks time out".into(),
                        };
                    }
                }
            }
        }
    }

    pub(crate) async fn create_wallet(
        &self,
        device: &IdentityKey,
        recovery: &PublicIdentity,
        accounts: u32,
        kind: AccountKind,
        label: &str,
    ) -> Result<Created, MpcError> {
        let mut req = pb::CreateWalletRequest {
            device_identity: device.public().to_string(),
            recovery_identity: recovery.to_string(),
            accounts,
            kind: cosigner_api::convert::account_kind_to_proto(kind.into()) as i32,
            label: label.to_string(),
            ..Default::default()
        };
        auth::sign_create_wallet(&mut req, device).map_err(auth_err)?;
        let r = self
            .grpc
            .clone()
            .create_wallet(req)
            .await
            .map_err(|e| self.status(e))?
            .into_inner();
        if r.wallet_id.is_empty() {
            return Err(invalid_response("no wallet id"));
        }
        let aux_info = RoomInfo::from_pb(r.aux_info, "aux-info")?;
        let accounts = r
            .accounts
            .into_iter()
            .map(|a| {
                Ok(CreatedAccount {
                    keygen: RoomInfo::from_pb(a.keygen, "keygen")?,
                    account_id: a.account_id,
                })
            })
            .collect::<Result<Vec<_>, MpcError>>()?;
        Ok(Created {
            wallet_id: r.wallet_id,
            cosigner_identity: r.cosigner_identity,
            aux_info,
            accounts,
        })
    }

    /// Confirms the wallet; retries while the cosigner says its DKG is still running.
    pub(crate) async fn confirm_wallet(
        &self,
        key: &IdentityKey,
        wallet_id: &str,
        party: u16,
        public_keys: BTreeMap<String, String>,
    ) -> Result<bool, MpcError> {
        let mut attempt = 0;
        loop {
            let mut req = pb::ConfirmWalletRequest {
                auth: None,
                public_keys: public_keys.clone().into_iter().collect(),
            };
            auth::sign_request(&mut req, key, wallet_id, party).map_err(auth_err)?;
            match self.grpc.clone().confirm_wallet(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    if !r.committed {
                        return Err(MpcError::CosignerRejected {
                            code: "not_committed".into(),
                            reason: "the cosigner did not commit the wallet".into(),
                        });
                    }
                    return Ok(true);
                }
                Err(s)
                    if s.code() == Code::Unavailable
                        && s.message().contains("still running")
                        && attempt < 30 =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(s) => return Err(self.status(s)),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn start_sign(
        &self,
        key: &IdentityKey,
        wallet_id: &str,
        party: u16,
        account_id: &str,
        path: &str,
        preimage: &[u8],
        digest: DigestKind,
        payload: PayloadKind,
    ) -> Result<SignStarted, MpcError> {
        let payload_kind = match payload {
            PayloadKind::Raw => pb::PayloadKind::Raw,
            PayloadKind::EthereumTransaction => pb::PayloadKind::EthereumTransaction,
            PayloadKind::EthereumMessage => pb::PayloadKind::EthereumMessage,
        };
        let mut req = pb::StartSignRequest {
            auth: None,
            account_id: account_id.to_string(),
            derivation_path: path.to_string(),
            preimage: preimage.to_vec(),
            digest: cosigner_api::convert::digest_kind_to_proto(digest.into()) as i32,
            payload_kind: payload_kind as i32,
        };
        auth::sign_request(&mut req, key, wallet_id, party).map_err(auth_err)?;
        let r = self
            .grpc
            .clone()
            .start_sign(req)
            .await
            .map_err(|e| self.status(e))?
            .into_inner();
        let session = RoomInfo::from_pb(r.session, "signing")?;
        let signers = r
            .signers
            .iter()
            .map(|&s| u16::try_from(s).map_err(|_| invalid_response(format!("signer index {s}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SignStarted {
            session,
            signers,
            digest: r.digest,
            request_id: r.request_id,
        })
    }
}

impl CosignerClient {
    /// Opens up to `count` presignature sessions; `Ok(None)` when the cosigner's pool
    /// for this account is full.
    pub(crate) async fn start_presign(
        &self,
        key: &IdentityKey,
        wallet_id: &str,
        party: u16,
        account_id: &str,
        count: u32,
        release_ids: Vec<String>,
    ) -> Result<Option<PresignStarted>, MpcError> {
        let mut req = pb::StartPresignRequest {
            auth: None,
            account_id: account_id.to_string(),
            count,
            release_ids,
        };
        auth::sign_request(&mut req, key, wallet_id, party).map_err(auth_err)?;
        let r = match self.grpc.clone().start_presign(req).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::ResourceExhausted && s.message().contains("pool") => {
                return Ok(None)
            }
            Err(s) => return Err(self.status(s)),
        };
        let signers = signer_list(&r.signers)?;
        let sessions = r
            .sessions
            .into_iter()
            .map(|s| {
                let room = RoomInfo::from_pb(s.session, "presign")?;
                if s.presignature_id != room.session_id {
                    return Err(invalid_response(
                        "presignature id differs from its session id",
                    ));
                }
                Ok((s.presignature_id, room))
            })
            .collect::<Result<Vec<_>, MpcError>>()?;
        Ok(Some(PresignStarted { sessions, signers }))
    }

    /// The cosigner's pool for the caller's signer pair and `account_id`.
    pub(crate) async fn presign_pool(
        &self,
        key: &IdentityKey,
        wallet_id: &str,
        party: u16,
        account_id: &str,
    ) -> Result<CosignerPool, MpcError> {
        let mut req = pb::PresignPoolStatusRequest {
            auth: None,
            account_id: account_id.to_string(),
        };
        auth::sign_request(&mut req, key, wallet_id, party).map_err(auth_err)?;
        let r = self
            .grpc
            .clone()
            .presign_pool_status(req)
            .await
            .map_err(|e| self.status(e))?
            .into_inner();
        let p = r
            .pools
            .into_iter()
            .find(|p| p.account_id == account_id)
            .ok_or_else(|| invalid_response(format!("no pool for account {account_id}")))?;
        Ok(CosignerPool {
            presignature_ids: p.presignature_ids,
            running: p.running,
            cap: p.cap,
        })
    }

    /// Asks for the cosigner's partial signature with presignature `id`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn sign_with_presignature(
        &self,
        key: &IdentityKey,
        wallet_id: &str,
        party: u16,
        account_id: &str,
        id: &str,
        preimage: &[u8],
        digest: DigestKind,
        payload: PayloadKind,
    ) -> Result<Result<PartialFromCosigner, PresignatureUnavailable>, MpcError> {
        let mut req = pb::SignWithPresignatureRequest {
            auth: None,
            account_id: account_id.to_string(),
            presignature_id: id.to_string(),
            preimage: preimage.to_vec(),
            digest: cosigner_api::convert::digest_kind_to_proto(digest.into()) as i32,
            payload_kind: payload_kind_to_proto(payload) as i32,
        };
        auth::sign_request(&mut req, key, wallet_id, party).map_err(auth_err)?;
        let r = match self.grpc.clone().sign_with_presignature(req).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::FailedPrecondition => {
                // The cosigner's google.rpc.ErrorInfo says unknown or used.
                let remote = cosigner_api::RemoteError::from(&s);
                return match remote.presignature {
                    Some(state) => Ok(Err(PresignatureUnavailable {
                        used: state == cosigner_api::PresignatureState::Used,
                        reason: s.message().to_string(),
                    })),
                    None => Err(self.status(s)),
                };
            }
            Err(s) => return Err(self.status(s)),
        };
        Ok(Ok(PartialFromCosigner {
            partial: r.partial_signature,
            signers: signer_list(&r.signers)?,
            digest: r.digest,
            request_id: r.request_id,
        }))
    }
}

fn payload_kind_to_proto(payload: PayloadKind) -> pb::PayloadKind {
    match payload {
        PayloadKind::Raw => pb::PayloadKind::Raw,
        PayloadKind::EthereumTransaction => pb::PayloadKind::EthereumTransaction,
        PayloadKind::EthereumMessage => pb::PayloadKind::EthereumMessage,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        // Transport errors repeat their cause in their own text; keep each part once.
        let part = c.to_string();
        if !s.contains(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_categories() {
        let e = map_status(tonic::Status::permission_denied(
            "policy rule `max_value_per_tx` refused the request: value 2 ETH exceeds 1 ETH",
        ));
        assert!(
            matches!(&e, MpcError::PolicyRefused { rule, .. } if rule == "max_value_per_tx"),
            "{e}"
        );
        assert!(matches!(
            map_status(tonic::Status::permission_denied("nope")),
            MpcError::Unauthorized { .. }
        ));
        assert!(matches!(
            map_status(tonic::Status::unauthenticated("bad sig")),
            MpcError::Unauthorized { .. }
        ));
        assert!(matches!(
            map_status(tonic::Status::unavailable("down")),
            MpcError::CosignerUnavailable { .. }
        ));
        assert!(matches!(
            map_status(tonic::Status::not_found("x")),
            MpcError::CosignerRejected { .. }
        ));
    }

    #[tokio::test]
    async fn unreachable_cosigner_is_unavailable() {
        // A port nobody listens on.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e =
            CosignerClient::connect(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2))
                .await
                .unwrap_err();
        assert!(matches!(e, MpcError::CosignerUnavailable { .. }), "{e}");
        let e = CosignerClient::connect("not a url", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(e, MpcError::Config { .. }), "{e}");
    }
}
