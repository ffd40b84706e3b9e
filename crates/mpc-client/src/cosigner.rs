//! The cosigner over tonic: sends the core's signed requests unchanged and hands back
//! the responses, or the decoded error of a failed call ([`remote_error`]).

use std::collections::HashMap;
use std::time::Duration;

use client_core::{CosignerHealth, CosignerMethod, CosignerRequest, CosignerResponse};
use client_core::{PresignatureState, RemoteError};
use cosigner_api::pb::cosigner_client::CosignerClient as Grpc;
use prost::Message;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;
use wallet_types::{ErrorCode, ERROR_DOMAIN};

use crate::error::MpcError;

/// A connection to the cosigner (cheap to clone; it reconnects by itself).
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

    /// Sends one request of a flow and returns the cosigner's answer.
    pub async fn call(&self, req: CosignerRequest) -> Result<CosignerResponse, RemoteError> {
        let method = req.method();
        let mut g = self.grpc.clone();
        let r = match req {
            CosignerRequest::Health(r) => g
                .health(r)
                .await
                .map(|r| CosignerResponse::Health(r.into_inner())),
            CosignerRequest::CreateWallet(r) => g
                .create_wallet(r)
                .await
                .map(|r| CosignerResponse::CreateWallet(r.into_inner())),
            CosignerRequest::ConfirmWallet(r) => g
                .confirm_wallet(r)
                .await
                .map(|r| CosignerResponse::ConfirmWallet(r.into_inner())),
            CosignerRequest::StartSign(r) => g
                .start_sign(r)
                .await
                .map(|r| CosignerResponse::StartSign(r.into_inner())),
            CosignerRequest::StartPresign(r) => g
                .start_presign(r)
                .await
                .map(|r| CosignerResponse::StartPresign(r.into_inner())),
            CosignerRequest::PresignPoolStatus(r) => g
                .presign_pool_status(r)
                .await
                .map(|r| CosignerResponse::PresignPoolStatus(r.into_inner())),
            CosignerRequest::SignWithPresignature(r) => g
                .sign_with_presignature(r)
                .await
                .map(|r| CosignerResponse::SignWithPresignature(r.into_inner())),
        };
        r.map_err(|s| {
            let mut e = remote_error(method, &s);
            if e.code == ErrorCode::CosignerUnavailable {
                e.message = format!("{}: {}", self.url, e.message);
            }
            e
        })
    }

    /// The cosigner's health report.
    pub async fn health(&self) -> Result<CosignerHealth, MpcError> {
        match self.call(CosignerRequest::Health(Default::default())).await {
            Ok(CosignerResponse::Health(h)) => Ok(h.into()),
            Ok(_) => Err(MpcError::internal(
                "a Health call answered with another response",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Polls health every `every`; returns (with the last error) after `failures`
    /// consecutive failures. Never returns while the cosigner is healthy.
    pub(crate) async fn watch(&self, every: Duration, failures: u32) -> MpcError {
        let mut failed = 0;
        loop {
            tokio::time::sleep(every).await;
            let last = match tokio::time::timeout(every * 2, self.health()).await {
                Ok(Ok(_)) => {
                    failed = 0;
                    continue;
                }
                Ok(Err(e)) => e,
                Err(_) => MpcError::CosignerUnavailable {
                    reason: "health checks time out".into(),
                },
            };
            failed += 1;
            if failed >= failures {
                return last;
            }
        }
    }
}

/// The decoded error of a failed cosigner call: the ONE place a `tonic::Status`
/// becomes a [`RemoteError`].
///
/// The cosigner's `google.rpc.ErrorInfo` (in `grpc-status-details-bin`, domain
/// [`ERROR_DOMAIN`]) names the code, the rule, the presignature state. Without it (a
/// cosigner older than its ErrorInfo, a proxy, a transport failure) the gRPC code
/// decides, with the `x-presignature-error` trailer of those cosigners; never the
/// message text.
///
/// When `cosigner_api::error::RemoteError` is on main, this body becomes
/// `RemoteError::from(status)` (and `client_core::RemoteError` its re-export).
pub(crate) fn remote_error(method: CosignerMethod, status: &tonic::Status) -> RemoteError {
    let mut message = status.message().to_string();
    // Transport failures carry their cause (e.g. "connection refused") as the source.
    let transport = std::error::Error::source(status).is_some();
    if let Some(src) = std::error::Error::source(status) {
        message = format!("{message}: {}", error_chain(src));
    }
    if let Some(info) = error_info(status.details()) {
        let code = ErrorCode::from_wire(&info.reason);
        let meta = |k: &str| info.metadata.get(k).map(|v| v.trim());
        return RemoteError {
            code,
            grpc_code: status.code() as i32,
            message,
            rule: meta("rule")
                .filter(|r| !r.is_empty() && r.len() <= 128)
                .map(str::to_string),
            presignature: meta("presignature").and_then(PresignatureState::from_wire),
            party: meta("party").and_then(|p| p.parse().ok()),
            retryable: match meta("retryable") {
                Some("true") => true,
                Some("false") => false,
                _ => code.retryable(),
            },
        };
    }
    let presignature = status
        .metadata()
        .get("x-presignature-error")
        .and_then(|v| v.to_str().ok())
        .and_then(PresignatureState::from_wire);
    let code = match status.code() {
        Code::Unavailable => ErrorCode::CosignerUnavailable,
        Code::Unauthenticated => ErrorCode::Unauthorized,
        // Such cosigners refuse with PERMISSION_DENIED only in their policy check.
        Code::PermissionDenied => ErrorCode::PolicyDenied,
        Code::DeadlineExceeded => ErrorCode::Timeout,
        Code::InvalidArgument => ErrorCode::InvalidInput,
        Code::NotFound => ErrorCode::NotFound,
        Code::ResourceExhausted if method == CosignerMethod::StartPresign => ErrorCode::PoolFull,
        Code::ResourceExhausted => ErrorCode::Busy,
        Code::FailedPrecondition if presignature.is_some() => ErrorCode::PresignatureUnavailable,
        Code::Cancelled | Code::Unknown if transport => ErrorCode::CosignerUnavailable,
        _ => ErrorCode::CosignerRejected,
    };
    RemoteError {
        code,
        grpc_code: status.code() as i32,
        message,
        rule: None,
        presignature,
        party: None,
        retryable: code.retryable(),
    }
}

/// `google.rpc.Status` (the part read here).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(message, repeated, tag = "3")]
    details: Vec<RpcAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.ErrorInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct ErrorInfo {
    #[prost(string, tag = "1")]
    reason: String,
    #[prost(string, tag = "2")]
    domain: String,
    #[prost(map = "string, string", tag = "3")]
    metadata: HashMap<String, String>,
}

/// The cosigner's ErrorInfo in `grpc-status-details-bin`, if any.
fn error_info(details: &[u8]) -> Option<ErrorInfo> {
    if details.is_empty() || details.len() > 16 * 1024 {
        return None;
    }
    RpcStatus::decode(details)
        .ok()?
        .details
        .iter()
        .filter(|any| any.type_url.rsplit('/').next() == Some("google.rpc.ErrorInfo"))
        .filter_map(|any| ErrorInfo::decode(any.value.as_slice()).ok())
        .find(|info| info.domain == ERROR_DOMAIN)
}

/// An error and its sources, joined (a part equal to the previous one is left out).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let part = c.to_string();
        if parts.last() != Some(&part) {
            parts.push(part);
        }
        cur = c.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_info(code: Code, reason: &str, meta: &[(&str, &str)]) -> tonic::Status {
        let info = ErrorInfo {
            reason: reason.into(),
            domain: ERROR_DOMAIN.into(),
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let status = RpcStatus {
            details: vec![RpcAny {
                type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
                value: info.encode_to_vec(),
            }],
        };
        tonic::Status::with_details(
            code,
            "a message nobody reads",
            status.encode_to_vec().into(),
        )
    }

    #[test]
    fn the_error_info_decides() {
        let e = remote_error(
            CosignerMethod::StartSign,
            &with_info(
                Code::PermissionDenied,
                "policy_denied",
                &[("rule", "allowed_destinations")],
            ),
        );
        assert_eq!(e.code, ErrorCode::PolicyDenied);
        assert_eq!(e.rule.as_deref(), Some("allowed_destinations"));
        let e = remote_error(
            CosignerMethod::ConfirmWallet,
            &with_info(
                Code::Unavailable,
                "wallet_not_ready",
                &[("retryable", "true")],
            ),
        );
        assert_eq!(e.code, ErrorCode::WalletNotReady);
        assert!(e.retryable);
        let e = remote_error(
            CosignerMethod::SignWithPresignature,
            &with_info(
                Code::FailedPrecondition,
                "presignature_unavailable",
                &[("presignature", "used")],
            ),
        );
        assert_eq!(e.presignature, Some(PresignatureState::Used));
        let e = remote_error(
            CosignerMethod::StartSign,
            &with_info(Code::PermissionDenied, "something_new", &[]),
        );
        assert_eq!(e.code, ErrorCode::CosignerRejected);
    }

    #[test]
    fn without_it_the_grpc_code_decides_never_the_text() {
        let text = "policy rule `x` refused: still running pool";
        for (code, method, want) in [
            (
                Code::PermissionDenied,
                CosignerMethod::StartSign,
                ErrorCode::PolicyDenied,
            ),
            (
                Code::Unauthenticated,
                CosignerMethod::StartSign,
                ErrorCode::Unauthorized,
            ),
            (
                Code::Unavailable,
                CosignerMethod::ConfirmWallet,
                ErrorCode::CosignerUnavailable,
            ),
            (
                Code::ResourceExhausted,
                CosignerMethod::StartPresign,
                ErrorCode::PoolFull,
            ),
            (
                Code::ResourceExhausted,
                CosignerMethod::StartSign,
                ErrorCode::Busy,
            ),
            (
                Code::NotFound,
                CosignerMethod::StartSign,
                ErrorCode::NotFound,
            ),
            (
                Code::FailedPrecondition,
                CosignerMethod::SignWithPresignature,
                ErrorCode::CosignerRejected,
            ),
            (
                Code::Internal,
                CosignerMethod::StartSign,
                ErrorCode::CosignerRejected,
            ),
        ] {
            let e = remote_error(method, &tonic::Status::new(code, text));
            assert_eq!(e.code, want, "{code:?} {method:?}");
            assert_eq!(e.rule, None);
        }
        let mut s = tonic::Status::failed_precondition(text);
        s.metadata_mut().insert(
            "x-presignature-error",
            tonic::metadata::MetadataValue::from_static("unknown"),
        );
        let e = remote_error(CosignerMethod::SignWithPresignature, &s);
        assert_eq!(e.code, ErrorCode::PresignatureUnavailable);
        assert_eq!(e.presignature, Some(PresignatureState::Unknown));
        // Garbage details: ignored.
        let s = tonic::Status::with_details(Code::Unavailable, "x", vec![0xff, 0x01, 0x02].into());
        assert_eq!(
            remote_error(CosignerMethod::Health, &s).code,
            ErrorCode::CosignerUnavailable
        );
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
        assert_eq!(e.code(), ErrorCode::CosignerUnavailable, "{e}");
        let e = CosignerClient::connect("not a url", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Config, "{e}");
    }
}
