//! The one client error: what went wrong, as an [`ErrorCode`] with the facts a caller
//! acts on (the policy rule, the presignature state, the blamed parties).
//!
//! Built from the cosigner's decoded errors ([`RemoteError`], by code, never by message
//! text), from session failures ([`PartyError`]) and from the drivers' storage effects.
//! Every variant has owned, plain fields so that FFI bindings can mirror it.

use std::fmt;

use mpc_party::PartyError;
use wallet_types::ErrorCode;

/// A failed cosigner call as the drivers decode it (code, rule, presignature state;
/// `cosigner_api`'s decoder of `google.rpc.ErrorInfo`): the reply a flow gets instead
/// of a response.
pub use cosigner_api::error::{PresignatureState, RemoteError, WalletRefusal};

/// Why a client operation failed.
///
/// Variants are stable categories (what the app should do next), each with a readable
/// message; [`ClientError::code`] is the machine-readable code to switch on. `path`
/// fields name the local storage concerned (a file natively, a wallet name in the
/// browser).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration is incomplete or inconsistent.
    #[error("configuration error: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// Local storage could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file (or storage) concerned.
        path: String,
        /// The OS or storage error.
        reason: String,
    },
    /// The passphrase does not open the key shares (or they were modified).
    #[error("wrong passphrase for {path} (or the file was modified)")]
    WrongPassphrase {
        /// The key-share file (or storage).
        path: String,
    },
    /// Stored data exists but is not what it should be (damaged, another wallet's...).
    #[error("{path}: {reason}")]
    CorruptFile {
        /// The file (or storage) concerned.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Creating a wallet would overwrite existing key shares.
    #[error("{path} already exists; refusing to overwrite key shares")]
    WalletExists {
        /// The existing file (or storage).
        path: String,
    },
    /// No wallet has been created here yet.
    #[error("no wallet at {path}: create one first (create-wallet)")]
    NoWallet {
        /// The missing file (or storage).
        path: String,
    },
    /// The account id is not in this wallet.
    #[error("unknown account {account_id:?} (this wallet has: {})", available.join(", "))]
    UnknownAccount {
        /// The requested id.
        account_id: String,
        /// The ids that exist.
        available: Vec<String>,
    },
    /// An argument is invalid (path, hex, digest kind, size...).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },
    /// The cosigner cannot be reached (down, wrong URL, network), or went away during an
    /// operation. Retrying later may succeed.
    #[error("cosigner unavailable: {reason}")]
    CosignerUnavailable {
        /// Details.
        reason: String,
    },
    /// A TLS connection to the cosigner, the gateway or the agent failed: the server's
    /// certificate is not trusted (signed by a CA this client does not trust: give the
    /// CA file; issued for another name; expired) or the handshake failed. Retrying does
    /// not help until the configuration or the certificate changes.
    #[error("TLS failed (the server's certificate or the TLS handshake): {reason}")]
    Tls {
        /// The server and the TLS library's reason (e.g. `invalid peer certificate:
        /// UnknownIssuer`).
        reason: String,
    },
    /// The cosigner refused the caller's credentials (unknown wallet identity, bad or
    /// replayed request signature).
    #[error("unauthorized: {reason}")]
    Unauthorized {
        /// The cosigner's explanation.
        reason: String,
    },
    /// This party's identity is revoked for the wallet (RevokeDevice): the cosigner
    /// refuses everything it signs. A new device needs a share repair from the recovery
    /// party (`docs/lifecycle.md`). Code `unauthorized`.
    #[error("this device is revoked for the wallet: {reason}")]
    IdentityRevoked {
        /// The cosigner's explanation.
        reason: String,
    },
    /// The wallet is frozen (FreezeWallet): the cosigner signs nothing until an
    /// unfreeze, asked by the recovery party, takes effect. Code `wallet_not_ready`.
    #[error("the wallet is frozen{}: {reason}", match .unfreeze_at_ms {
        Some(t) => format!(" until {t} ms since the epoch (unfreeze requested)"),
        None => String::new(),
    })]
    WalletFrozen {
        /// When a requested unfreeze takes effect (ms since the Unix epoch), if any.
        unfreeze_at_ms: Option<u64>,
        /// The cosigner's explanation.
        reason: String,
    },
    /// The cosigner's policy refused to co-sign.
    #[error("refused by the cosigner's policy{}: {reason}", rule_suffix(.rule))]
    PolicyDenied {
        /// The rule that refused (e.g. `max_value_per_tx`), when the cosigner names it.
        rule: Option<String>,
        /// The cosigner's explanation.
        reason: String,
    },
    /// The cosigner refused for another reason, named by `code` (`not_found`,
    /// `wallet_not_ready`, `pool_full`, `busy`, `rate_limited`, `cosigner_rejected`...).
    #[error("the cosigner refused the request ({code}): {reason}")]
    Cosigner {
        /// The cosigner's code.
        code: ErrorCode,
        /// The cosigner's message.
        reason: String,
    },
    /// The cosigner cannot create a wallet from this enrollment: `not_found` (unknown,
    /// expired or already used: enroll again) or `unauthorized` (another device's).
    #[error(
        "enrollment {enrollment_id} cannot be used ({code}): {reason}; enroll the device again"
    )]
    EnrollmentUnusable {
        /// The enrollment.
        enrollment_id: String,
        /// `not_found` or `unauthorized`.
        code: ErrorCode,
        /// The cosigner's message.
        reason: String,
    },
    /// The presignature taken cannot be used (the cosigner does not hold it or used it),
    /// or none is left in `require` mode. Nothing was signed with it.
    #[error("presignature unavailable: {reason}")]
    PresignatureUnavailable {
        /// What happened.
        reason: String,
        /// The presignature concerned, if one was taken.
        presignature_id: Option<String>,
        /// The cosigner's view of it, when it answered.
        state: Option<PresignatureState>,
    },
    /// The message gateway could not be reached or refused us.
    #[error("gateway error: {reason}")]
    GatewayUnavailable {
        /// Details.
        reason: String,
    },
    /// A protocol session failed (a peer misbehaved, aborted, or sent garbage).
    #[error("{stage} session {session_id} failed: {reason}{}", blame_suffix(.blamed))]
    SessionFailed {
        /// `aux-info`, `keygen`, `sign`, `presign`, `offline-sign`.
        stage: String,
        /// The session id.
        session_id: String,
        /// What happened.
        reason: String,
        /// Keygen indices of parties the protocol blames (may be empty).
        blamed: Vec<u16>,
    },
    /// An operation did not finish in time.
    #[error("{stage} timed out after {after_secs} s: {reason}")]
    Timeout {
        /// What timed out.
        stage: String,
        /// The limit.
        after_secs: u64,
        /// Details (e.g. which parties were silent).
        reason: String,
    },
    /// The cosigner announced another digest than the one computed locally: it is not
    /// signing what was asked. Nothing was signed.
    #[error("digest mismatch: local {local}, cosigner {cosigner}; refusing to sign")]
    DigestMismatch {
        /// Hex digest computed here.
        local: String,
        /// Hex digest announced by the cosigner.
        cosigner: String,
    },
    /// A signature (produced, combined, or given to verify) does not verify.
    #[error("verification failed: {reason}")]
    VerificationFailed {
        /// Details.
        reason: String,
    },
    /// A service answered with something malformed (wrong signer set, bad encoding).
    #[error("invalid response: {reason}")]
    InvalidResponse {
        /// Details.
        reason: String,
    },
    /// An internal error (a bug).
    #[error("internal error: {reason}")]
    Internal {
        /// Details.
        reason: String,
    },
}

fn blame_suffix(blamed: &[u16]) -> String {
    if blamed.is_empty() {
        String::new()
    } else {
        format!(" (blamed parties {blamed:?})")
    }
}

fn rule_suffix(rule: &Option<String>) -> String {
    match rule {
        Some(r) => format!(" (rule {r})"),
        None => String::new(),
    }
}

impl ClientError {
    /// The machine-readable code of this error (see `docs/errors.md`).
    pub fn code(&self) -> ErrorCode {
        match self {
            ClientError::Config { .. } => ErrorCode::Config,
            ClientError::Io { .. } | ClientError::CorruptFile { .. } => ErrorCode::Storage,
            ClientError::WrongPassphrase { .. } => ErrorCode::WrongPassphrase,
            ClientError::WalletExists { .. } => ErrorCode::WalletExists,
            ClientError::NoWallet { .. } => ErrorCode::NoWallet,
            ClientError::UnknownAccount { .. } => ErrorCode::UnknownAccount,
            ClientError::InvalidInput { .. } => ErrorCode::InvalidInput,
            ClientError::CosignerUnavailable { .. } => ErrorCode::CosignerUnavailable,
            ClientError::Tls { .. } => ErrorCode::TlsFailed,
            ClientError::Unauthorized { .. } | ClientError::IdentityRevoked { .. } => {
                ErrorCode::Unauthorized
            }
            ClientError::WalletFrozen { .. } => ErrorCode::WalletNotReady,
            ClientError::PolicyDenied { .. } => ErrorCode::PolicyDenied,
            ClientError::Cosigner { code, .. } => *code,
            ClientError::EnrollmentUnusable { code, .. } => *code,
            ClientError::PresignatureUnavailable { .. } => ErrorCode::PresignatureUnavailable,
            ClientError::GatewayUnavailable { .. } => ErrorCode::GatewayUnavailable,
            ClientError::SessionFailed { .. } => ErrorCode::SessionFailed,
            ClientError::Timeout { .. } => ErrorCode::Timeout,
            ClientError::DigestMismatch { .. } => ErrorCode::DigestMismatch,
            ClientError::VerificationFailed { .. } => ErrorCode::VerificationFailed,
            ClientError::InvalidResponse { .. } => ErrorCode::InvalidResponse,
            ClientError::Internal { .. } => ErrorCode::Internal,
        }
    }

    /// The policy rule that refused, for `policy_denied` (when the cosigner names it).
    pub fn rule(&self) -> Option<&str> {
        match self {
            ClientError::PolicyDenied { rule, .. } => rule.as_deref(),
            _ => None,
        }
    }

    /// Whether the same operation may succeed later without any change by the caller.
    pub fn retryable(&self) -> bool {
        self.code().retryable()
    }

    /// A configuration error.
    pub fn config(reason: impl Into<String>) -> Self {
        ClientError::Config {
            reason: reason.into(),
        }
    }

    /// An invalid argument.
    pub fn input(reason: impl Into<String>) -> Self {
        ClientError::InvalidInput {
            reason: reason.into(),
        }
    }

    /// A bug.
    pub fn internal(reason: impl Into<String>) -> Self {
        ClientError::Internal {
            reason: reason.into(),
        }
    }

    /// A malformed answer of a service.
    pub fn invalid_response(reason: impl Into<String>) -> Self {
        ClientError::InvalidResponse {
            reason: reason.into(),
        }
    }

    /// A storage failure at `path` (a file, or the browser's storage).
    pub fn io(path: impl fmt::Display, reason: impl fmt::Display) -> Self {
        ClientError::Io {
            path: path.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Damaged or foreign stored data at `path`.
    pub fn corrupt(path: impl fmt::Display, reason: impl fmt::Display) -> Self {
        ClientError::CorruptFile {
            path: path.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The error of a failed cosigner call, by its code (never its message text).
    pub fn from_remote(e: RemoteError) -> Self {
        let reason = e.message;
        match (e.code, e.wallet_refusal) {
            (ErrorCode::Unauthorized, Some(WalletRefusal::IdentityRevoked)) => {
                return ClientError::IdentityRevoked { reason }
            }
            (ErrorCode::WalletNotReady, Some(WalletRefusal::Frozen { unfreeze_at_ms })) => {
                return ClientError::WalletFrozen {
                    unfreeze_at_ms,
                    reason,
                }
            }
            _ => {}
        }
        match e.code {
            ErrorCode::CosignerUnavailable => ClientError::CosignerUnavailable { reason },
            ErrorCode::TlsFailed => ClientError::Tls { reason },
            ErrorCode::Unauthorized => ClientError::Unauthorized { reason },
            ErrorCode::PolicyDenied => ClientError::PolicyDenied {
                rule: e.rule,
                reason,
            },
            ErrorCode::PresignatureUnavailable => ClientError::PresignatureUnavailable {
                reason,
                presignature_id: None,
                state: e.presignature,
            },
            ErrorCode::InvalidInput => ClientError::InvalidInput {
                reason: format!("the cosigner refused the input: {reason}"),
            },
            ErrorCode::Timeout => ClientError::Timeout {
                stage: "cosigner request".into(),
                after_secs: 0,
                reason,
            },
            ErrorCode::GatewayUnavailable => ClientError::GatewayUnavailable { reason },
            ErrorCode::SessionFailed => ClientError::SessionFailed {
                stage: "cosigner".into(),
                session_id: String::new(),
                reason,
                blamed: e.party.into_iter().collect(),
            },
            code => ClientError::Cosigner { code, reason },
        }
    }

    /// The failure of this party's `stage` session `session_id`.
    pub fn session(stage: &str, session_id: &str, e: PartyError) -> Self {
        let (stage, session_id) = (stage.to_string(), session_id.to_string());
        match e {
            PartyError::Gateway(g) => ClientError::GatewayUnavailable {
                reason: format!("{stage} session {session_id}: {g}"),
            },
            PartyError::Tls(t) => ClientError::Tls {
                reason: format!("{stage} session {session_id}: {t}"),
            },
            PartyError::StreamEnded(room) => ClientError::GatewayUnavailable {
                reason: format!(
                    "{stage} session {session_id}: the stream of room {room} ended early"
                ),
            },
            PartyError::Timeout {
                after,
                round,
                waiting_for,
                rejected,
                ..
            } => ClientError::Timeout {
                stage: format!("{stage} session {session_id}"),
                after_secs: after.as_secs(),
                reason: format!(
                    "stuck in round {round}, no message from parties {waiting_for:?}{}",
                    if rejected.is_empty() {
                        String::new()
                    } else {
                        format!("; rejected envelopes: {}", rejected.join("; "))
                    }
                ),
            },
            PartyError::PeerStopped {
                party,
                code,
                reason,
            } => {
                let reason = format!(
                    "{stage} session {session_id}: party {party} stopped it ({code}): {reason}"
                );
                match ErrorCode::from_wire(&code) {
                    ErrorCode::CosignerUnavailable => ClientError::CosignerUnavailable { reason },
                    _ => ClientError::SessionFailed {
                        stage,
                        session_id,
                        reason,
                        blamed: Vec::new(),
                    },
                }
            }
            PartyError::Session(mpc_core::SessionError::Aborted { blamed, reason }) => {
                ClientError::SessionFailed {
                    stage,
                    session_id,
                    reason,
                    blamed,
                }
            }
            PartyError::Session(mpc_core::SessionError::MalformedMessage { from, reason }) => {
                ClientError::SessionFailed {
                    stage,
                    session_id,
                    reason: format!("malformed message: {reason}"),
                    blamed: vec![from],
                }
            }
            other => ClientError::SessionFailed {
                stage,
                session_id,
                reason: other.to_string(),
                blamed: Vec::new(),
            },
        }
    }
}

impl From<RemoteError> for ClientError {
    fn from(e: RemoteError) -> Self {
        ClientError::from_remote(e)
    }
}

impl From<mpc_core::CoreError> for ClientError {
    fn from(e: mpc_core::CoreError) -> Self {
        match e {
            mpc_core::CoreError::InvalidSignature => ClientError::VerificationFailed {
                reason: e.to_string(),
            },
            other => ClientError::InvalidInput {
                reason: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_errors_map_by_code_not_text() {
        // The same text under different codes gives different errors.
        let text = "policy rule `max_value_per_tx` refused the request: still running";
        let mut e = RemoteError::new(ErrorCode::PolicyDenied, text);
        e.rule = Some("max_value_per_tx".into());
        let c = ClientError::from(e);
        assert_eq!(c.code(), ErrorCode::PolicyDenied);
        assert_eq!(c.rule(), Some("max_value_per_tx"));
        let c = ClientError::from(RemoteError::new(ErrorCode::Unauthorized, text));
        assert_eq!(c.code(), ErrorCode::Unauthorized);
        assert_eq!(c.rule(), None);
        let c = ClientError::from(RemoteError::new(ErrorCode::WalletNotReady, text));
        assert_eq!(c.code(), ErrorCode::WalletNotReady);
        let mut p = RemoteError::new(ErrorCode::PresignatureUnavailable, "");
        p.presignature = Some(PresignatureState::Used);
        assert!(matches!(
            ClientError::from(p),
            ClientError::PresignatureUnavailable {
                state: Some(PresignatureState::Used),
                ..
            }
        ));
        for &code in ErrorCode::ALL {
            assert_eq!(ClientError::from(RemoteError::new(code, "x")).code(), code);
        }
    }

    #[test]
    fn session_failures_keep_blame_and_codes() {
        let e = ClientError::session(
            "sign",
            "s1",
            PartyError::Session(mpc_core::SessionError::MalformedMessage {
                from: 1,
                reason: "garbage".into(),
            }),
        );
        assert_eq!(e.code(), ErrorCode::SessionFailed);
        assert!(matches!(e, ClientError::SessionFailed { ref blamed, .. } if blamed == &[1]));
        // A cosigner draining for a restart stopped the session: retryable.
        let e = ClientError::session(
            "sign",
            "s1",
            PartyError::PeerStopped {
                party: 1,
                code: "cosigner_unavailable".into(),
                reason: "shutting down".into(),
            },
        );
        assert_eq!(e.code(), ErrorCode::CosignerUnavailable);
        assert!(e.code().retryable());
        assert!(e.to_string().contains("party 1 stopped it"), "{e}");
        let e = ClientError::session("sign", "s1", PartyError::Gateway("refused".into()));
        assert_eq!(e.code(), ErrorCode::GatewayUnavailable);
        let e = ClientError::session(
            "sign",
            "s1",
            PartyError::Timeout {
                session: "s1".into(),
                after: std::time::Duration::from_secs(3),
                round: 2,
                waiting_for: vec![1],
                rejected: vec![],
            },
        );
        assert_eq!(e.code(), ErrorCode::Timeout);
        assert!(e.retryable());
    }
}
