//! The cosigner over tonic: sends the core's signed requests unchanged and hands back
//! the responses, or the decoded error of a failed call ([`remote_error`]).
//!
//! `https://` URLs speak TLS (rustls with ring): the cosigner's certificate must verify
//! against the web PKI roots (Mozilla's, compiled in: the same on every platform) or a
//! CA of the configured CA file. A certificate that does not verify, or any other TLS
//! failure, is `tls_failed` ([`MpcError::Tls`]), not `cosigner_unavailable`: retrying
//! does not help until the configuration or the certificate changes.

use std::path::Path;
use std::time::Duration;

use client_core::RemoteError;
use client_core::{CosignerHealth, CosignerMethod, CosignerRequest, CosignerResponse};
use cosigner_api::pb::cosigner_client::CosignerClient as Grpc;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Code;
use wallet_types::ErrorCode;

use gateway_client::tls_cause;

use crate::error::MpcError;

/// A connection to the cosigner (cheap to clone; it reconnects by itself).
#[derive(Clone, Debug)]
pub struct CosignerClient {
    url: String,
    grpc: Grpc<Channel>,
}

impl CosignerClient {
    /// Connects to the cosigner at `url` (`http://host:port`, or `https://…` trusting
    /// the web PKI roots); `timeout` applies to connecting and to every request.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, MpcError> {
        Self::connect_with(url, timeout, None).await
    }

    /// [`connect`](Self::connect), trusting for an `https://` URL the CA certificates of
    /// the PEM file `ca_file` as well as the web PKI roots.
    ///
    /// A CA file that cannot be read or holds no certificate is a `config` error; a
    /// certificate of the cosigner that does not verify is `tls_failed`.
    pub async fn connect_with(
        url: &str,
        timeout: Duration,
        ca_file: Option<&Path>,
    ) -> Result<Self, MpcError> {
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| MpcError::config(format!("invalid cosigner URL {url:?}: {e}")))?
            .connect_timeout(timeout)
            .timeout(timeout);
        if endpoint.uri().scheme_str() == Some("https") {
            let mut tls = ClientTlsConfig::new().with_webpki_roots();
            if let Some(path) = ca_file {
                tls = tls.ca_certificate(read_ca_file(path)?);
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| MpcError::config(format!("TLS for {url}: {}", error_chain(&e))))?;
        }
        let channel = endpoint.connect().await.map_err(|e| match tls_cause(&e) {
            Some(t) => MpcError::Tls {
                reason: format!("{url}: {t}"),
            },
            None => MpcError::CosignerUnavailable {
                reason: format!("cannot connect to {url}: {}", error_chain(&e)),
            },
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
        let mut g = self.grpc.clone();
        let r = match req {
            CosignerRequest::Health(r) => g
                .health(r)
                .await
                .map(|r| CosignerResponse::Health(r.into_inner())),
            CosignerRequest::EnrollDevice(r) => g
                .enroll_device(r)
                .await
                .map(|r| CosignerResponse::EnrollDevice(r.into_inner())),
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
            CosignerRequest::ListAccounts(r) => g
                .list_accounts(r)
                .await
                .map(|r| CosignerResponse::ListAccounts(r.into_inner())),
            CosignerRequest::RevokeDevice(r) => g.revoke_device(r).await.map(|r| {
                CosignerResponse::WalletControls(CosignerMethod::RevokeDevice, r.into_inner())
            }),
            CosignerRequest::FreezeWallet(r) => g.freeze_wallet(r).await.map(|r| {
                CosignerResponse::WalletControls(CosignerMethod::FreezeWallet, r.into_inner())
            }),
            CosignerRequest::UnfreezeWallet(r) => g.unfreeze_wallet(r).await.map(|r| {
                CosignerResponse::WalletControls(CosignerMethod::UnfreezeWallet, r.into_inner())
            }),
            CosignerRequest::StartRefresh(r) => g
                .start_refresh(r)
                .await
                .map(|r| CosignerResponse::Lifecycle(CosignerMethod::StartRefresh, r.into_inner())),
            CosignerRequest::ReplaceDevice(r) => g.replace_device(r).await.map(|r| {
                CosignerResponse::Lifecycle(CosignerMethod::ReplaceDevice, r.into_inner())
            }),
            CosignerRequest::ConfirmLifecycle(r) => g
                .confirm_lifecycle(r)
                .await
                .map(|r| CosignerResponse::ConfirmLifecycle(r.into_inner())),
        };
        r.map_err(|s| {
            let mut e = remote_error(&s);
            if matches!(
                e.code,
                ErrorCode::CosignerUnavailable | ErrorCode::TlsFailed
            ) {
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

/// The certificates of the PEM file `path`, for tonic (at least one).
fn read_ca_file(path: &Path) -> Result<Certificate, MpcError> {
    let pem = std::fs::read(path)
        .map_err(|e| MpcError::config(format!("CA file {}: {e}", path.display())))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(MpcError::config(format!(
            "CA file {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
            path.display()
        )));
    }
    Ok(Certificate::from_pem(pem))
}

/// The decoded error of a failed cosigner call: the ONE place a `tonic::Status`
/// becomes a [`RemoteError`].
///
/// The cosigner's `google.rpc.ErrorInfo` names the code, the rule and the presignature
/// state (`cosigner_api`'s decoder); without it the gRPC code decides; never the message
/// text. A transport failure (the status has a source: connection refused, reset) is
/// `cosigner_unavailable` with its cause in the message; a TLS failure among its causes
/// (a reconnection to a cosigner whose certificate no longer verifies) is `tls_failed`.
pub(crate) fn remote_error(status: &tonic::Status) -> RemoteError {
    let mut e = RemoteError::from(status);
    if let Some(src) = std::error::Error::source(status) {
        e.message = format!("{}: {}", e.message, error_chain(src));
        if let Some(t) = tls_cause(src) {
            e.code = ErrorCode::TlsFailed;
            e.message = t.to_string();
            e.retryable = e.code.retryable();
        } else if matches!(status.code(), Code::Cancelled | Code::Unknown) {
            e.code = ErrorCode::CosignerUnavailable;
            e.retryable = e.code.retryable();
        }
    }
    e
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
    use client_core::PresignatureState;

    fn with_info(code: Code, reason: ErrorCode, meta: &[(&str, &str)]) -> tonic::Status {
        let details = cosigner_api::error::encode_details(code as i32, "", reason, meta);
        tonic::Status::with_details(code, "a message nobody reads", details.into())
    }

    #[test]
    fn the_error_info_decides() {
        let e = remote_error(&with_info(
            Code::PermissionDenied,
            ErrorCode::PolicyDenied,
            &[("rule", "allowed_destinations")],
        ));
        assert_eq!(e.code, ErrorCode::PolicyDenied);
        assert_eq!(e.rule.as_deref(), Some("allowed_destinations"));
        let e = remote_error(&with_info(
            Code::Unavailable,
            ErrorCode::WalletNotReady,
            &[("retryable", "true")],
        ));
        assert_eq!(e.code, ErrorCode::WalletNotReady);
        assert!(e.retryable);
        let e = remote_error(&with_info(
            Code::FailedPrecondition,
            ErrorCode::PresignatureUnavailable,
            &[("presignature", "used")],
        ));
        assert_eq!(e.presignature, Some(PresignatureState::Used));
    }

    #[test]
    fn without_it_the_grpc_code_decides_never_the_text() {
        let text = "policy rule `x` refused: presignature used, still running, pool full";
        for (code, want) in [
            (Code::PermissionDenied, ErrorCode::Unauthorized),
            (Code::Unauthenticated, ErrorCode::Unauthorized),
            (Code::Unavailable, ErrorCode::CosignerUnavailable),
            (Code::ResourceExhausted, ErrorCode::Busy),
            (Code::NotFound, ErrorCode::NotFound),
            (Code::FailedPrecondition, ErrorCode::CosignerRejected),
            (Code::Internal, ErrorCode::CosignerRejected),
        ] {
            let e = remote_error(&tonic::Status::new(code, text));
            assert_eq!(e.code, want, "{code:?}");
            assert_eq!((e.rule, e.presignature), (None, None));
        }
        // Garbage details: ignored.
        let s = tonic::Status::with_details(Code::Unavailable, "x", vec![0xff, 0x01, 0x02].into());
        assert_eq!(remote_error(&s).code, ErrorCode::CosignerUnavailable);
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
