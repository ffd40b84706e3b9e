//! The cosigner's errors as a client reads them: the one place every client (the Rust
//! client over tonic, the browser over gRPC-web, the bindings) turns a failed call into
//! an [`ErrorCode`] and the facts it can act on.
//!
//! ## The contract (what the cosigner sends)
//! Every error status carries, in `grpc-status-details-bin`, a `google.rpc.Status`
//! whose details hold one `google.rpc.ErrorInfo`:
//! - `reason`: the [`ErrorCode`] in its `snake_case` text form (`policy_denied`, …);
//! - `domain`: [`wallet_types::ERROR_DOMAIN`];
//! - `metadata` (every key optional):
//!   - [`META_RULE`]: the policy rule that refused (`policy_denied`);
//!   - [`META_RETRYABLE`]: `true` / `false`: whether the same call may succeed later
//!     without any change by the caller (always sent by the cosigner);
//!   - [`META_PRESIGNATURE`]: `unknown` / `used` (`presignature_unavailable`);
//!   - [`META_PARTY`]: the keygen index of the party concerned (a blamed peer, the
//!     caller's party).
//!
//! The message text is for people and logs; never match on it.
//!
//! ## Reading it
//! ```
//! use cosigner_api::error::RemoteError;
//! use wallet_types::ErrorCode;
//! // grpc-status, grpc-message and grpc-status-details-bin of a failed call:
//! let e = RemoteError::from_grpc(14, "connection refused", &[]);
//! assert_eq!(e.code, ErrorCode::CosignerUnavailable);
//! assert!(e.retryable);
//! ```
//! On native targets, `RemoteError::from(&status)` does the same for a `tonic::Status`.
//!
//! A status without our `ErrorInfo` (an older cosigner, a proxy, a transport failure)
//! is read from its gRPC code alone (see [`RemoteError::from_grpc`]). Nothing here
//! panics on what a peer sends: undecodable, truncated or oversized details are
//! ignored.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use prost::Message as _;
use wallet_types::{ErrorCode, ERROR_DOMAIN};

/// `ErrorInfo.metadata` key: the policy rule that refused the request.
pub const META_RULE: &str = "rule";
/// `ErrorInfo.metadata` key: `true` / `false`, whether retrying the same call later may
/// succeed without any change by the caller.
pub const META_RETRYABLE: &str = "retryable";
/// `ErrorInfo.metadata` key: `unknown` / `used`, the state of the presignature asked
/// for (see [`PresignatureState`]).
pub const META_PRESIGNATURE: &str = "presignature";
/// `ErrorInfo.metadata` key: keygen index of the party concerned (decimal).
pub const META_PARTY: &str = "party";
/// `ErrorInfo.metadata` key: `revoked` when the identity that signed the request is
/// revoked for the wallet (`unauthorized`, RevokeDevice).
pub const META_IDENTITY: &str = "identity";
/// `ErrorInfo.metadata` key: `frozen` when the wallet is frozen (`wallet_not_ready`,
/// FreezeWallet).
pub const META_WALLET: &str = "wallet";
/// `ErrorInfo.metadata` key: when a requested unfreeze takes effect (ms since the Unix
/// epoch, decimal), with `wallet: frozen`.
pub const META_UNFREEZE_AT_MS: &str = "unfreeze_at_ms";
/// `type_url` of a packed `google.rpc.ErrorInfo`.
pub const ERROR_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.ErrorInfo";

/// Details larger than this are not decoded (the cosigner's are a few hundred bytes).
pub const MAX_DETAILS_LEN: usize = 16 * 1024;
/// Longest rule name kept.
const MAX_RULE_LEN: usize = 128;

/// gRPC status codes used here (`google.rpc.Code`).
mod grpc {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const NOT_FOUND: i32 = 5;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const UNAVAILABLE: i32 = 14;
    pub const UNAUTHENTICATED: i32 = 16;
}

/// Why the cosigner refused a presignature (`presignature_unavailable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PresignatureState {
    /// The cosigner never had it, or it was released: discard the local copy.
    Unknown,
    /// The cosigner consumed it already (perhaps its answer was lost): discard the local
    /// copy; it can never be used again.
    Used,
}

impl PresignatureState {
    /// The wire form (`unknown` | `used`).
    pub const fn as_str(self) -> &'static str {
        match self {
            PresignatureState::Unknown => "unknown",
            PresignatureState::Used => "used",
        }
    }

    /// Reads the wire form; `None` for anything else.
    pub fn from_wire(s: &str) -> Option<Self> {
        match s {
            "unknown" => Some(PresignatureState::Unknown),
            "used" => Some(PresignatureState::Used),
            _ => None,
        }
    }
}

impl fmt::Display for PresignatureState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed cosigner call, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// What went wrong, in the wallet's one vocabulary.
    pub code: ErrorCode,
    /// The gRPC status code (`google.rpc.Code` as a number).
    pub grpc_code: i32,
    /// The status message (for people and logs only).
    pub message: String,
    /// The policy rule that refused (`policy_denied`).
    pub rule: Option<String>,
    /// Which way the presignature was unavailable (`presignature_unavailable`).
    pub presignature: Option<PresignatureState>,
    /// The party the error concerns (a blamed peer, the caller's party), if named.
    pub party: Option<u16>,
    /// Whether the same call may succeed later without any change by the caller.
    pub retryable: bool,
    /// The wallet control behind an `unauthorized` or `wallet_not_ready` refusal
    /// (a revoked identity, a frozen wallet), if any.
    pub wallet_refusal: Option<WalletRefusal>,
}

/// A wallet control that refused a request (`ErrorInfo.metadata` `identity: revoked`,
/// or `wallet: frozen` with `unfreeze_at_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalletRefusal {
    /// The identity that signed the request is revoked for the wallet (RevokeDevice).
    IdentityRevoked,
    /// The wallet is frozen (FreezeWallet).
    Frozen {
        /// When a requested unfreeze takes effect (ms since the Unix epoch), if any.
        unfreeze_at_ms: Option<u64>,
    },
}

impl RemoteError {
    /// An error of `code` with `message` and nothing else (the code's default
    /// retryability): what a client reports for a failure it saw itself, e.g. a
    /// transport error before any status arrived.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RemoteError {
            code,
            grpc_code: 0,
            message: message.into(),
            rule: None,
            presignature: None,
            party: None,
            retryable: code.retryable(),
            wallet_refusal: None,
        }
    }

    /// Decodes a failed call from its raw parts: the `grpc-status` code, the
    /// `grpc-message` text (percent-decoded, as transports hand it out) and the
    /// `grpc-status-details-bin` value, either decoded (as `tonic::Status::details`
    /// gives it) or still in its base64 text form (as a gRPC-web trailer carries it);
    /// empty when absent.
    ///
    /// With the cosigner's `google.rpc.ErrorInfo` (domain [`ERROR_DOMAIN`]) the code is
    /// its `reason` ([`ErrorCode::from_wire`]: an unknown reason reads as
    /// `cosigner_rejected`) with the metadata of the module docs. Without it the gRPC
    /// code decides: `UNAVAILABLE` → `cosigner_unavailable`, `DEADLINE_EXCEEDED` →
    /// `timeout`, `UNAUTHENTICATED` / `PERMISSION_DENIED` → `unauthorized`,
    /// `NOT_FOUND` → `not_found`, `RESOURCE_EXHAUSTED` → `busy`, `INVALID_ARGUMENT` →
    /// `invalid_input`, anything else → `cosigner_rejected`; `retryable` is then the
    /// code's [`ErrorCode::retryable`].
    pub fn from_grpc(grpc_code: i32, message: &str, status_details_bin: &[u8]) -> RemoteError {
        match decode_error_info(status_details_bin) {
            Some(info) => Self::from_info(grpc_code, message, info),
            None => {
                let code = code_of_grpc(grpc_code);
                RemoteError {
                    code,
                    grpc_code,
                    message: message.to_string(),
                    rule: None,
                    presignature: None,
                    party: None,
                    retryable: code.retryable(),
                    wallet_refusal: None,
                }
            }
        }
    }

    fn from_info(grpc_code: i32, message: &str, info: ErrorInfo) -> RemoteError {
        let code = ErrorCode::from_wire(&info.reason);
        let meta = |k: &str| info.metadata.get(k).map(|v| v.trim());
        let retryable = match meta(META_RETRYABLE) {
            Some("true") => true,
            Some("false") => false,
            _ => code.retryable(),
        };
        RemoteError {
            code,
            grpc_code,
            message: message.to_string(),
            rule: meta(META_RULE)
                .filter(|r| !r.is_empty() && r.len() <= MAX_RULE_LEN)
                .map(str::to_string),
            presignature: meta(META_PRESIGNATURE).and_then(PresignatureState::from_wire),
            party: meta(META_PARTY).and_then(|p| p.parse().ok()),
            retryable,
            wallet_refusal: match (meta(META_IDENTITY), meta(META_WALLET)) {
                (Some("revoked"), _) => Some(WalletRefusal::IdentityRevoked),
                (_, Some("frozen")) => Some(WalletRefusal::Frozen {
                    unfreeze_at_ms: meta(META_UNFREEZE_AT_MS).and_then(|t| t.parse().ok()),
                }),
                _ => None,
            },
        }
    }

    /// Decodes a `tonic::Status` (native targets).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_status(status: &tonic::Status) -> RemoteError {
        RemoteError::from_grpc(status.code() as i32, status.message(), status.details())
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl From<&tonic::Status> for RemoteError {
    fn from(status: &tonic::Status) -> Self {
        RemoteError::from_status(status)
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(rule) = &self.rule {
            write!(f, " (rule {rule})")?;
        }
        if let Some(p) = self.presignature {
            write!(f, " (presignature {p})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for RemoteError {}

fn code_of_grpc(grpc_code: i32) -> ErrorCode {
    match grpc_code {
        grpc::UNAVAILABLE => ErrorCode::CosignerUnavailable,
        grpc::DEADLINE_EXCEEDED => ErrorCode::Timeout,
        grpc::UNAUTHENTICATED | grpc::PERMISSION_DENIED => ErrorCode::Unauthorized,
        grpc::NOT_FOUND => ErrorCode::NotFound,
        grpc::RESOURCE_EXHAUSTED => ErrorCode::Busy,
        grpc::INVALID_ARGUMENT => ErrorCode::InvalidInput,
        _ => ErrorCode::CosignerRejected,
    }
}

// The two messages of google/rpc/status.proto and google/rpc/error_details.proto this
// module reads, declared here so that it builds for wasm32 too (no tonic there).

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct Any {
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

/// The cosigner's `ErrorInfo` in the details, if any (raw bytes first, then as base64
/// text). `None` for anything undecodable, oversized or from another domain.
fn decode_error_info(details: &[u8]) -> Option<ErrorInfo> {
    if details.is_empty() || details.len() > MAX_DETAILS_LEN {
        return None;
    }
    error_info_of(details).or_else(|| {
        let text = std::str::from_utf8(details).ok()?.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .ok()?;
        error_info_of(&bytes)
    })
}

fn error_info_of(bytes: &[u8]) -> Option<ErrorInfo> {
    let status = RpcStatus::decode(bytes).ok()?;
    status
        .details
        .iter()
        .filter(|any| any.type_url.rsplit('/').next() == Some("google.rpc.ErrorInfo"))
        .filter_map(|any| ErrorInfo::decode(any.value.as_slice()).ok())
        .find(|info| info.domain == ERROR_DOMAIN)
}

/// Encodes the `grpc-status-details-bin` bytes of an error as the cosigner sends it
/// (a `google.rpc.Status` with one `ErrorInfo`). For tests of clients that have no
/// cosigner at hand, and for the cosigner's own tests.
pub fn encode_details(
    grpc_code: i32,
    message: &str,
    code: ErrorCode,
    metadata: &[(&str, &str)],
) -> Vec<u8> {
    let info = ErrorInfo {
        reason: code.as_str().to_string(),
        domain: ERROR_DOMAIN.to_string(),
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    RpcStatus {
        code: grpc_code,
        message: message.to_string(),
        details: vec![Any {
            type_url: ERROR_INFO_TYPE_URL.to_string(),
            value: info.encode_to_vec(),
        }],
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_details() -> Vec<u8> {
        encode_details(
            grpc::PERMISSION_DENIED,
            "policy rule `max_value_per_tx_wei` refused the request",
            ErrorCode::PolicyDenied,
            &[
                (META_RULE, "max_value_per_tx_wei"),
                (META_RETRYABLE, "false"),
            ],
        )
    }

    #[test]
    fn reads_the_error_info() {
        let e = RemoteError::from_grpc(grpc::PERMISSION_DENIED, "refused", &policy_details());
        assert_eq!(e.code, ErrorCode::PolicyDenied);
        assert_eq!(e.grpc_code, grpc::PERMISSION_DENIED);
        assert_eq!(e.rule.as_deref(), Some("max_value_per_tx_wei"));
        assert_eq!(e.message, "refused");
        assert!(!e.retryable);
        assert_eq!(e.presignature, None);
        assert!(e
            .to_string()
            .starts_with("policy_denied (rule max_value_per_tx_wei)"));

        let d = encode_details(
            9,
            "",
            ErrorCode::PresignatureUnavailable,
            &[(META_PRESIGNATURE, "used"), (META_PARTY, "2")],
        );
        let e = RemoteError::from_grpc(9, "used", &d);
        assert_eq!(e.code, ErrorCode::PresignatureUnavailable);
        assert_eq!(e.presignature, Some(PresignatureState::Used));
        assert_eq!(e.party, Some(2));
    }

    #[test]
    fn metadata_retryable_overrides_the_code_default() {
        let d = encode_details(
            grpc::UNAVAILABLE,
            "",
            ErrorCode::WalletNotReady,
            &[(META_RETRYABLE, "true")],
        );
        let e = RemoteError::from_grpc(grpc::UNAVAILABLE, "dkg running", &d);
        assert_eq!(e.code, ErrorCode::WalletNotReady);
        assert!(e.retryable, "WalletNotReady is not retryable by default");
        let d = encode_details(grpc::UNAVAILABLE, "", ErrorCode::WalletNotReady, &[]);
        assert!(!RemoteError::from_grpc(grpc::UNAVAILABLE, "", &d).retryable);
    }

    #[test]
    fn base64_text_of_the_trailer_is_accepted() {
        let b = base64::engine::general_purpose::STANDARD.encode(policy_details());
        let e = RemoteError::from_grpc(grpc::PERMISSION_DENIED, "", b.as_bytes());
        assert_eq!(e.code, ErrorCode::PolicyDenied);
        let unpadded = b.trim_end_matches('=');
        let e = RemoteError::from_grpc(grpc::PERMISSION_DENIED, "", unpadded.as_bytes());
        assert_eq!(e.rule.as_deref(), Some("max_value_per_tx_wei"));
    }

    #[test]
    fn without_details_the_grpc_code_decides() {
        for (grpc_code, code) in [
            (grpc::UNAVAILABLE, ErrorCode::CosignerUnavailable),
            (grpc::DEADLINE_EXCEEDED, ErrorCode::Timeout),
            (grpc::UNAUTHENTICATED, ErrorCode::Unauthorized),
            (grpc::PERMISSION_DENIED, ErrorCode::Unauthorized),
            (grpc::NOT_FOUND, ErrorCode::NotFound),
            (grpc::RESOURCE_EXHAUSTED, ErrorCode::Busy),
            (grpc::INVALID_ARGUMENT, ErrorCode::InvalidInput),
            (9, ErrorCode::CosignerRejected),
            (13, ErrorCode::CosignerRejected),
            (0, ErrorCode::CosignerRejected),
            (-5, ErrorCode::CosignerRejected),
            (i32::MAX, ErrorCode::CosignerRejected),
        ] {
            let e = RemoteError::from_grpc(grpc_code, "m", &[]);
            assert_eq!(e.code, code, "grpc code {grpc_code}");
            assert_eq!(e.retryable, code.retryable());
            assert_eq!((e.rule, e.presignature, e.party), (None, None, None));
        }
    }

    #[test]
    fn unknown_reasons_and_foreign_domains() {
        let mut d = encode_details(9, "", ErrorCode::PoolFull, &[]);
        // A reason this build does not know: a refusal it cannot interpret.
        let info = ErrorInfo {
            reason: "brand_new_reason".into(),
            domain: ERROR_DOMAIN.into(),
            metadata: HashMap::new(),
        };
        let status = RpcStatus {
            code: 9,
            message: String::new(),
            details: vec![Any {
                type_url: ERROR_INFO_TYPE_URL.into(),
                value: info.encode_to_vec(),
            }],
        };
        let e = RemoteError::from_grpc(9, "", &status.encode_to_vec());
        assert_eq!(e.code, ErrorCode::CosignerRejected);
        // Another domain's ErrorInfo (a proxy's): read from the gRPC code alone.
        let foreign = RpcStatus {
            details: vec![Any {
                type_url: ERROR_INFO_TYPE_URL.into(),
                value: ErrorInfo {
                    reason: "policy_denied".into(),
                    domain: "proxy.example".into(),
                    metadata: HashMap::new(),
                }
                .encode_to_vec(),
            }],
            ..status
        };
        let e = RemoteError::from_grpc(grpc::UNAVAILABLE, "", &foreign.encode_to_vec());
        assert_eq!(e.code, ErrorCode::CosignerUnavailable);
        // Still ours after another detail type in front of it.
        let mut with_other = RpcStatus::decode(d.as_slice()).unwrap();
        with_other.details.insert(
            0,
            Any {
                type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                value: vec![1, 2, 3],
            },
        );
        d = with_other.encode_to_vec();
        assert_eq!(RemoteError::from_grpc(9, "", &d).code, ErrorCode::PoolFull);
    }

    #[test]
    fn garbage_truncated_and_oversized_details_never_panic() {
        let good = policy_details();
        // Every truncation of a valid encoding.
        for n in 0..good.len() {
            let e = RemoteError::from_grpc(grpc::NOT_FOUND, "", &good[..n]);
            assert!(
                e.code == ErrorCode::NotFound || e.code == ErrorCode::PolicyDenied,
                "{n}: {e:?}"
            );
        }
        // Garbage of many shapes (a fixed pseudo-random sequence).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in [1usize, 2, 3, 7, 31, 64, 255, 1000, 4096] {
            for _ in 0..50 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                let e = RemoteError::from_grpc(grpc::INVALID_ARGUMENT, "", &bytes);
                assert!(e.code == ErrorCode::InvalidInput || e.code == ErrorCode::CosignerRejected);
            }
        }
        // Flipped bytes of a valid encoding.
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0xff;
            let _ = RemoteError::from_grpc(grpc::PERMISSION_DENIED, "", &b);
        }
        // Oversized: ignored, even when it would decode.
        let mut big = good.clone();
        let mut status = RpcStatus::decode(big.as_slice()).unwrap();
        status.message = "x".repeat(MAX_DETAILS_LEN);
        big = status.encode_to_vec();
        let e = RemoteError::from_grpc(grpc::PERMISSION_DENIED, "", &big);
        assert_eq!(e.code, ErrorCode::Unauthorized);
        let huge = vec![0xffu8; 10 * MAX_DETAILS_LEN];
        assert_eq!(
            RemoteError::from_grpc(grpc::UNAVAILABLE, "", &huge).code,
            ErrorCode::CosignerUnavailable
        );
        // Base64 of garbage, invalid UTF-8, a lying length prefix.
        for bytes in [
            b"AAAA".to_vec(),
            b"!!!!".to_vec(),
            vec![0xc3, 0x28],
            vec![0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f],
        ] {
            let e = RemoteError::from_grpc(grpc::UNAVAILABLE, "", &bytes);
            assert_eq!(e.code, ErrorCode::CosignerUnavailable);
        }
    }

    #[test]
    fn bad_metadata_values_are_ignored() {
        let d = encode_details(
            9,
            "",
            ErrorCode::PresignatureUnavailable,
            &[
                (META_PRESIGNATURE, "maybe"),
                (META_PARTY, "70000"),
                (META_RETRYABLE, "perhaps"),
                (META_RULE, &"r".repeat(1000)),
            ],
        );
        let e = RemoteError::from_grpc(9, "", &d);
        assert_eq!(e.code, ErrorCode::PresignatureUnavailable);
        assert_eq!((e.presignature, e.party, e.rule), (None, None, None));
        assert!(!e.retryable);
    }

    #[test]
    fn presignature_state_wire_form() {
        for s in [PresignatureState::Unknown, PresignatureState::Used] {
            assert_eq!(PresignatureState::from_wire(s.as_str()), Some(s));
        }
        assert_eq!(PresignatureState::from_wire("USED"), None);
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn tonic_status_round_trip() {
        let s = tonic::Status::with_details(
            tonic::Code::PermissionDenied,
            "refused",
            policy_details().into(),
        );
        let e = RemoteError::from(&s);
        assert_eq!(e.code, ErrorCode::PolicyDenied);
        assert_eq!(e.grpc_code, tonic::Code::PermissionDenied as i32);
        assert_eq!(e.rule.as_deref(), Some("max_value_per_tx_wei"));
        let e = RemoteError::from_status(&tonic::Status::unavailable("down"));
        assert_eq!(e.code, ErrorCode::CosignerUnavailable);
    }
}
