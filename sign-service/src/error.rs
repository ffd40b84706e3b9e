//! The cosigner's one error type, and its one conversion to the wire.
//!
//! Every handler, domain function and background job returns [`CosignerError`]. Each
//! variant names one [`ErrorCode`] (the wallet's one vocabulary); `From<CosignerError>
//! for tonic::Status` is the only place a status is built: it picks the gRPC code and
//! attaches a `google.rpc.ErrorInfo` (`reason` = the code's text, `domain` =
//! [`ERROR_DOMAIN`], metadata keys from [`cosigner_api::error`]). Clients decode it with
//! `cosigner_api::error::RemoteError`. The table is in `docs/cosigner.md`.

use std::collections::HashMap;

use cosigner_api::error::{
    META_IDENTITY, META_PARTY, META_PRESIGNATURE, META_RETRYABLE, META_RULE, META_UNFREEZE_AT_MS,
    META_WALLET,
};
use cosigner_api::{AuthError, ConvertError, PresignatureState};
use mpc_party::PartyError;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};
use wallet_types::{ErrorCode, ERROR_DOMAIN};

use crate::audit::AuditError;
use crate::policy::bitcoin::PsbtRefusal;
use crate::store::StoreError;

/// `ErrorInfo.metadata` key of a refused PSBT (rule `bitcoin_psbt`): `wallet-btc`'s
/// error code (`not_our_input`, `unsupported_script`, `invalid_psbt`, …).
pub const META_PSBT_ERROR: &str = "psbt_error";
/// `ErrorInfo.metadata` key of a refused PSBT input request: the input index (decimal)
/// the refusal is about, when it names one.
pub const META_INPUT: &str = "input";

/// Why the cosigner refused or failed a request or a background job.
#[derive(Debug, thiserror::Error)]
pub enum CosignerError {
    /// The request is not authenticated (bad signature, stale, replayed, wrong party).
    #[error("{0}")]
    Unauthorized(AuthError),
    /// The identity that signed the request is revoked for this wallet (RevokeDevice):
    /// it can no longer act for it, whatever it asks.
    #[error("the identity of party {party} is revoked for wallet {wallet_id}: it can no longer act for this wallet")]
    IdentityRevoked {
        /// Wallet id.
        wallet_id: String,
        /// Keygen index of the revoked identity.
        party: u16,
    },
    /// The wallet is frozen (FreezeWallet): no signing or presignature session starts.
    #[error("wallet {wallet_id} is frozen: no signing until it is unfrozen{}", match .unfreeze_at_ms {
        Some(t) => format!(" (an unfreeze takes effect at {t} ms since the epoch)"),
        None => " (the recovery identity asks with UnfreezeWallet)".to_string(),
    })]
    WalletFrozen {
        /// Wallet id.
        wallet_id: String,
        /// When a requested unfreeze takes effect.
        unfreeze_at_ms: Option<u64>,
    },
    /// The request may be signed by the recovery identity only.
    #[error("{method} must be signed by the recovery identity (party 2), not party {party}")]
    RecoveryIdentityOnly {
        /// The RPC.
        method: &'static str,
        /// The party that signed.
        party: u16,
    },
    /// Too many requests by this identity or in total (a rate limit, or the replay
    /// window's bound for one identity).
    #[error("{0}")]
    RateLimited(String),
    /// CreateWallet without a valid, unused registration credential.
    #[error("{0}")]
    RegistrationRequired(#[from] cosigner_api::registration::RegistrationError),
    /// No committed wallet has this id.
    #[error("unknown wallet {0}")]
    UnknownWallet(String),
    /// The wallet has no such account.
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
    /// The wallet's creation finished on the cosigner but is not confirmed yet.
    #[error("wallet {0} is not confirmed yet: call ConfirmWallet first")]
    WalletNotConfirmed(String),
    /// The cosigner's side of the wallet's DKG is still running (a retry will succeed).
    #[error(
        "the cosigner's side of the DKG of wallet {0} is still running; call ConfirmWallet again"
    )]
    DkgRunning(String),
    /// No usable enrollment has this id: unknown, failed, expired or already spent by
    /// a committed wallet.
    #[error("enrollment {0} is unknown, expired or already spent: enroll the device again")]
    UnknownEnrollment(String),
    /// The enrollment belongs to other device or recovery identities than the request's.
    #[error("enrollment {0} belongs to another device or recovery identity")]
    NotYourEnrollment(String),
    /// The cosigner's side of the enrollment's aux info is still running (a retry will
    /// succeed once it finished).
    #[error("the cosigner's side of the aux info of enrollment {0} is still running; retry CreateWallet")]
    EnrollmentRunning(String),
    /// The signing policy refused the request.
    #[error("policy rule `{rule}` refused the request: {reason}")]
    PolicyDenied {
        /// The rule (a config key, e.g. `max_value_per_tx_wei`).
        rule: String,
        /// Why.
        reason: String,
    },
    /// A `BITCOIN_PSBT_INPUT` request refused before any session: a bad network, input
    /// or path (`invalid_input`), or a PSBT the codec refuses / a digest other than
    /// double SHA-256 (`policy_denied`, rules `bitcoin_psbt` / `payload_kind`).
    #[error("{0}")]
    Psbt(#[from] PsbtRefusal),
    /// The presignature asked for is unknown or was used already.
    #[error("presignature_unavailable: presignature {id} {}; discard it and sign with StartSign", match .state {
        PresignatureState::Used => "was already used",
        PresignatureState::Unknown => "is unknown to the cosigner",
    })]
    PresignatureUnavailable {
        /// The presignature id.
        id: String,
        /// Unknown or used.
        state: PresignatureState,
    },
    /// Presignature signing and refills are suspended: the key store is older than its
    /// rollback anchor (restored from a backup?) until an operator purges its
    /// presignatures. Clients read it as an unknown presignature and sign with
    /// StartSign.
    #[error("presignatures are suspended on this cosigner: {0}. An operator must run `sign-service store purge-presignatures` (see docs/cosigner.md); sign with StartSign meanwhile")]
    PresignaturesSuspended(String),
    /// Presignatures are turned off on this cosigner (its pool cap is 0).
    #[error("presignatures are disabled on this cosigner (presign_pool_cap: 0); use StartSign")]
    PresignaturesDisabled,
    /// The account's presignature pool is at its cap.
    #[error("the presignature pool of account {account_id} is full ({available} ready + {running} running, cap {cap})")]
    PoolFull {
        /// Account.
        account_id: String,
        /// Presignatures ready.
        available: usize,
        /// Presignature sessions running.
        running: usize,
        /// The cap.
        cap: usize,
    },
    /// The account cannot have a presignature pool at this path (independent accounts:
    /// the root only; HD accounts: non-hardened BIP-44-style paths).
    #[error("account {account_id} cannot presign at {path}: {reason}")]
    PresignPathNotAllowed {
        /// Account.
        account_id: String,
        /// The path asked for.
        path: String,
        /// Why not.
        reason: String,
    },
    /// The account already has pools at the most paths allowed.
    #[error("account {account_id} already has presignature pools at {paths} paths (presign_max_paths_per_account: {max}); use the existing paths or let a pool empty")]
    PresignPathsFull {
        /// Account.
        account_id: String,
        /// Paths with a pool.
        paths: usize,
        /// The maximum.
        max: usize,
    },
    /// SignWithPresignature named a presignature generated for another path. Refused
    /// before the take: the presignature is NOT consumed, no partial signature exists.
    #[error("presignature {id} was generated for path {bound}, not {requested}: a presignature signs only at its own path (it was not consumed)")]
    PresignaturePathMismatch {
        /// The presignature id.
        id: String,
        /// Its path.
        bound: String,
        /// The path asked for.
        requested: String,
    },
    /// No protocol-session slot is free.
    #[error("too many protocol sessions running; retry later")]
    Busy,
    /// A request field is invalid.
    #[error("{0}")]
    InvalidInput(String),
    /// The caller's public keys differ from the cosigner's (a DKG went wrong).
    #[error("{0}")]
    KeyMismatch(String),
    /// The cosigner is shutting down.
    #[error("the cosigner is shutting down; retry later")]
    ShuttingDown,
    /// A protocol session failed.
    #[error("{reason}")]
    SessionFailed {
        /// The party the protocol blames, if it can tell.
        party: Option<u16>,
        /// What happened.
        reason: String,
    },
    /// The wallet's creation failed on the cosigner (answered by ConfirmWallet; the
    /// pending wallet is discarded, so a retry cannot succeed).
    #[error("wallet creation failed on the cosigner: {0}")]
    CreationFailed(Box<CosignerError>),
    /// A lifecycle session (refresh or device replacement) of the wallet is pending
    /// already: at most one at a time.
    #[error("wallet {0} has a refresh or device replacement pending already; wait until it is committed or expires")]
    LifecycleBusy(String),
    /// The cosigner's side of the lifecycle session is still running, or the other user
    /// party has not confirmed yet (a retry will succeed).
    #[error("lifecycle session {0} is not finished: {1}; call ConfirmLifecycle again")]
    LifecycleNotReady(String, &'static str),
    /// No pending or committed lifecycle session of this wallet has this id (unknown,
    /// expired, failed or superseded).
    #[error("lifecycle session {0} is unknown, expired or failed")]
    UnknownLifecycle(String),
    /// A session or a wait did not finish in time.
    #[error("{0}")]
    Timeout(String),
    /// The gateway cannot be reached or refused the cosigner.
    #[error("gateway: {0}")]
    GatewayUnavailable(String),
    /// The key store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log cannot be written (requests are refused then).
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A bug or an unexpected state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CosignerError {
    /// A refused request field.
    pub fn invalid(reason: impl Into<String>) -> Self {
        CosignerError::InvalidInput(reason.into())
    }

    /// An internal error.
    pub fn internal(reason: impl std::fmt::Display) -> Self {
        CosignerError::Internal(reason.to_string())
    }

    /// The wallet's error code.
    pub fn code(&self) -> ErrorCode {
        use CosignerError as E;
        match self {
            E::Unauthorized(_)
            | E::NotYourEnrollment(_)
            | E::IdentityRevoked { .. }
            | E::RecoveryIdentityOnly { .. } => ErrorCode::Unauthorized,
            E::RateLimited(_) => ErrorCode::RateLimited,
            E::RegistrationRequired(_) => ErrorCode::RegistrationRequired,
            E::UnknownWallet(_)
            | E::UnknownAccount(_)
            | E::UnknownEnrollment(_)
            | E::UnknownLifecycle(_) => ErrorCode::NotFound,
            E::WalletNotConfirmed(_)
            | E::DkgRunning(_)
            | E::EnrollmentRunning(_)
            | E::LifecycleNotReady(..)
            | E::WalletFrozen { .. } => ErrorCode::WalletNotReady,
            E::PolicyDenied { .. }
            | E::Psbt(PsbtRefusal::Psbt(_))
            | E::Psbt(PsbtRefusal::Digest(_)) => ErrorCode::PolicyDenied,
            E::Psbt(_) => ErrorCode::InvalidInput,
            E::PresignatureUnavailable { .. } | E::PresignaturesSuspended(_) => {
                ErrorCode::PresignatureUnavailable
            }
            E::PresignaturesDisabled | E::PoolFull { .. } | E::PresignPathsFull { .. } => {
                ErrorCode::PoolFull
            }
            E::PresignPathNotAllowed { .. }
            | E::PresignaturePathMismatch { .. }
            | E::InvalidInput(_) => ErrorCode::InvalidInput,
            E::Busy | E::LifecycleBusy(_) => ErrorCode::Busy,
            E::ShuttingDown => ErrorCode::CosignerUnavailable,
            E::KeyMismatch(_) | E::SessionFailed { .. } | E::CreationFailed(_) => {
                ErrorCode::SessionFailed
            }
            E::Timeout(_) => ErrorCode::Timeout,
            E::GatewayUnavailable(_) => ErrorCode::GatewayUnavailable,
            E::Store(StoreError::Unavailable(_) | StoreError::Conflict(_)) => {
                ErrorCode::CosignerUnavailable
            }
            E::Store(_) | E::Audit(_) | E::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The gRPC status code. Chosen so that clients that predate `ErrorInfo` keep
    /// working: a DKG still running is UNAVAILABLE (retry), a full pool and a busy
    /// cosigner RESOURCE_EXHAUSTED, a policy refusal PERMISSION_DENIED.
    pub fn grpc_code(&self) -> Code {
        use CosignerError as E;
        match self {
            E::Unauthorized(_) | E::NotYourEnrollment(_) => Code::Unauthenticated,
            E::RateLimited(_) | E::PoolFull { .. } | E::PresignPathsFull { .. } | E::Busy => {
                Code::ResourceExhausted
            }
            E::UnknownWallet(_)
            | E::UnknownAccount(_)
            | E::UnknownEnrollment(_)
            | E::UnknownLifecycle(_) => Code::NotFound,
            E::WalletNotConfirmed(_)
            | E::WalletFrozen { .. }
            | E::PresignatureUnavailable { .. }
            | E::PresignaturesSuspended(_)
            | E::PresignaturesDisabled
            | E::LifecycleBusy(_)
            | E::KeyMismatch(_) => Code::FailedPrecondition,
            E::DkgRunning(_)
            | E::EnrollmentRunning(_)
            | E::LifecycleNotReady(..)
            | E::ShuttingDown
            | E::GatewayUnavailable(_) => Code::Unavailable,
            E::PolicyDenied { .. }
            | E::RegistrationRequired(_)
            | E::IdentityRevoked { .. }
            | E::RecoveryIdentityOnly { .. } => Code::PermissionDenied,
            E::Psbt(_) if self.code() == ErrorCode::PolicyDenied => Code::PermissionDenied,
            E::Psbt(_) => Code::InvalidArgument,
            E::InvalidInput(_)
            | E::PresignPathNotAllowed { .. }
            | E::PresignaturePathMismatch { .. } => Code::InvalidArgument,
            E::SessionFailed { .. } | E::CreationFailed(_) => Code::Aborted,
            E::Timeout(_) => Code::DeadlineExceeded,
            E::Store(StoreError::Unavailable(_) | StoreError::Conflict(_)) => Code::Unavailable,
            E::Store(_) | E::Audit(_) | E::Internal(_) => Code::Internal,
        }
    }

    /// Whether the same call may succeed later without any change by the caller.
    pub fn retryable(&self) -> bool {
        match self {
            CosignerError::DkgRunning(_)
            | CosignerError::EnrollmentRunning(_)
            | CosignerError::LifecycleNotReady(..) => true,
            // The pending wallet is gone: only a new CreateWallet can succeed.
            CosignerError::CreationFailed(_) => false,
            other => other.code().retryable(),
        }
    }

    /// The party the error concerns, if any.
    pub fn party(&self) -> Option<u16> {
        match self {
            CosignerError::Unauthorized(AuthError::BadParty(p))
            | CosignerError::Unauthorized(AuthError::BadSignature { party: p }) => {
                u16::try_from(*p).ok()
            }
            CosignerError::SessionFailed { party, .. } => *party,
            CosignerError::IdentityRevoked { party, .. }
            | CosignerError::RecoveryIdentityOnly { party, .. } => Some(*party),
            CosignerError::CreationFailed(inner) => inner.party(),
            _ => None,
        }
    }

    /// The message sent to the caller: the error's text, except for store and audit
    /// failures, whose details stay in the cosigner's log.
    fn wire_message(&self) -> String {
        match self {
            CosignerError::Store(StoreError::Unavailable(_) | StoreError::Conflict(_)) => {
                "the cosigner's key store is unavailable; retry later".into()
            }
            CosignerError::Store(_) => "internal error in the cosigner's key store".into(),
            CosignerError::Audit(_) => "the audit log cannot be written; request refused".into(),
            other => other.to_string(),
        }
    }

    /// The `ErrorInfo.metadata` of this error.
    pub fn metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert(META_RETRYABLE.to_string(), self.retryable().to_string());
        if let Some(p) = self.party() {
            m.insert(META_PARTY.to_string(), p.to_string());
        }
        match self {
            CosignerError::PolicyDenied { rule, .. } => {
                m.insert(META_RULE.to_string(), rule.clone());
            }
            CosignerError::PresignatureUnavailable { state, .. } => {
                m.insert(META_PRESIGNATURE.to_string(), state.as_str().to_string());
            }
            CosignerError::Psbt(r) => {
                match r {
                    PsbtRefusal::Psbt(e) => {
                        m.insert(
                            META_RULE.to_string(),
                            crate::policy::rule::BITCOIN_PSBT.to_string(),
                        );
                        m.insert(META_PSBT_ERROR.to_string(), e.code().to_string());
                    }
                    PsbtRefusal::Digest(_) => {
                        m.insert(
                            META_RULE.to_string(),
                            crate::policy::rule::PAYLOAD_KIND.to_string(),
                        );
                    }
                    _ => {}
                }
                if let Some(i) = r.input() {
                    m.insert(META_INPUT.to_string(), i.to_string());
                }
            }
            CosignerError::IdentityRevoked { .. } => {
                m.insert(META_IDENTITY.to_string(), "revoked".to_string());
            }
            CosignerError::WalletFrozen { unfreeze_at_ms, .. } => {
                m.insert(META_WALLET.to_string(), "frozen".to_string());
                if let Some(t) = unfreeze_at_ms {
                    m.insert(META_UNFREEZE_AT_MS.to_string(), t.to_string());
                }
            }
            // Clients discard their half and fall back to full signing, as for an
            // unknown presignature.
            CosignerError::PresignaturesSuspended(_) => {
                m.insert(
                    META_PRESIGNATURE.to_string(),
                    PresignatureState::Unknown.as_str().to_string(),
                );
            }
            _ => {}
        }
        m
    }
}

impl From<CosignerError> for tonic::Status {
    fn from(e: CosignerError) -> Self {
        if e.code() == ErrorCode::Internal {
            tracing::error!(error = %e, "internal error");
        }
        tonic::Status::with_error_details(
            e.grpc_code(),
            e.wire_message(),
            ErrorDetails::with_error_info(e.code().as_str(), ERROR_DOMAIN, e.metadata()),
        )
    }
}

impl From<AuthError> for CosignerError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::ReplayCacheFull => CosignerError::RateLimited(e.to_string()),
            AuthError::KeyDerivation | AuthError::Randomness(_) => CosignerError::internal(e),
            other => CosignerError::Unauthorized(other),
        }
    }
}

impl From<ConvertError> for CosignerError {
    fn from(e: ConvertError) -> Self {
        CosignerError::InvalidInput(e.to_string())
    }
}

impl From<PartyError> for CosignerError {
    fn from(e: PartyError) -> Self {
        use mpc_core::SessionError as S;
        let blamed = match &e {
            PartyError::Session(S::Aborted { blamed, .. }) if blamed.len() == 1 => {
                blamed.first().copied()
            }
            PartyError::Session(
                S::MalformedMessage { from, .. }
                | S::UnknownSender { from, .. }
                | S::WrongMessageType { from, .. },
            ) => Some(*from),
            _ => None,
        };
        match e {
            PartyError::Timeout { .. } => CosignerError::Timeout(e.to_string()),
            PartyError::Gateway(_) | PartyError::Tls(_) | PartyError::StreamEnded(_) => {
                CosignerError::GatewayUnavailable(e.to_string())
            }
            PartyError::Wire(_) | PartyError::Internal(_) => CosignerError::internal(e),
            PartyError::Session(_) => CosignerError::SessionFailed {
                party: blamed,
                reason: e.to_string(),
            },
            // A device or recovery party that stopped (not blamed: stopping is allowed).
            PartyError::PeerStopped { .. } => CosignerError::SessionFailed {
                party: None,
                reason: e.to_string(),
            },
            PartyError::Stopped(_) => CosignerError::ShuttingDown,
        }
    }
}

impl From<tokio::task::JoinError> for CosignerError {
    fn from(e: tokio::task::JoinError) -> Self {
        CosignerError::internal(format!("store task failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cosigner_api::RemoteError;

    fn round_trip(e: CosignerError) -> (tonic::Status, RemoteError) {
        let s = tonic::Status::from(e);
        let r = RemoteError::from(&s);
        (s, r)
    }

    #[test]
    fn every_variant_reaches_the_client_with_its_code() {
        let cases: Vec<(CosignerError, ErrorCode, Code, bool)> = vec![
            (
                AuthError::Replayed.into(),
                ErrorCode::Unauthorized,
                Code::Unauthenticated,
                false,
            ),
            (
                AuthError::ReplayCacheFull.into(),
                ErrorCode::RateLimited,
                Code::ResourceExhausted,
                true,
            ),
            (
                cosigner_api::registration::RegistrationError::Used.into(),
                ErrorCode::RegistrationRequired,
                Code::PermissionDenied,
                false,
            ),
            (
                AuthError::WrongAudience {
                    expected: "me".into(),
                    got: "them".into(),
                }
                .into(),
                ErrorCode::Unauthorized,
                Code::Unauthenticated,
                false,
            ),
            (
                CosignerError::UnknownWallet("w".into()),
                ErrorCode::NotFound,
                Code::NotFound,
                false,
            ),
            (
                CosignerError::WalletNotConfirmed("w".into()),
                ErrorCode::WalletNotReady,
                Code::FailedPrecondition,
                false,
            ),
            (
                CosignerError::DkgRunning("w".into()),
                ErrorCode::WalletNotReady,
                Code::Unavailable,
                true,
            ),
            (
                CosignerError::EnrollmentRunning("e".into()),
                ErrorCode::WalletNotReady,
                Code::Unavailable,
                true,
            ),
            (
                CosignerError::UnknownEnrollment("e".into()),
                ErrorCode::NotFound,
                Code::NotFound,
                false,
            ),
            (
                CosignerError::NotYourEnrollment("e".into()),
                ErrorCode::Unauthorized,
                Code::Unauthenticated,
                false,
            ),
            (
                CosignerError::PresignaturesDisabled,
                ErrorCode::PoolFull,
                Code::FailedPrecondition,
                false,
            ),
            (
                CosignerError::Busy,
                ErrorCode::Busy,
                Code::ResourceExhausted,
                true,
            ),
            (
                CosignerError::ShuttingDown,
                ErrorCode::CosignerUnavailable,
                Code::Unavailable,
                true,
            ),
            (
                CosignerError::invalid("bad"),
                ErrorCode::InvalidInput,
                Code::InvalidArgument,
                false,
            ),
            (
                CosignerError::CreationFailed(Box::new(CosignerError::Timeout("slow".into()))),
                ErrorCode::SessionFailed,
                Code::Aborted,
                false,
            ),
            (
                CosignerError::Timeout("slow".into()),
                ErrorCode::Timeout,
                Code::DeadlineExceeded,
                true,
            ),
            (
                CosignerError::Store(StoreError::Db("secret path".into())),
                ErrorCode::Internal,
                Code::Internal,
                false,
            ),
            (
                CosignerError::Store(StoreError::Unavailable("db host".into())),
                ErrorCode::CosignerUnavailable,
                Code::Unavailable,
                true,
            ),
        ];
        for (e, code, grpc, retryable) in cases {
            let text = e.to_string();
            let (s, r) = round_trip(e);
            assert_eq!(s.code(), grpc, "{text}");
            assert_eq!(r.code, code, "{text}");
            assert_eq!(r.retryable, retryable, "{text}");
        }
    }

    #[test]
    fn policy_presignature_and_party_metadata() {
        let (s, r) = round_trip(CosignerError::PolicyDenied {
            rule: "max_value_per_tx_wei".into(),
            reason: "too much".into(),
        });
        assert_eq!(s.code(), Code::PermissionDenied);
        assert!(s.message().contains("policy rule `max_value_per_tx_wei`"));
        assert_eq!(r.code, ErrorCode::PolicyDenied);
        assert_eq!(r.rule.as_deref(), Some("max_value_per_tx_wei"));
        let (_, r) = round_trip(CosignerError::PresignatureUnavailable {
            id: "p1".into(),
            state: PresignatureState::Used,
        });
        assert_eq!(r.presignature, Some(PresignatureState::Used));
        assert!(!r.retryable);
        let (_, r) = round_trip(CosignerError::SessionFailed {
            party: Some(2),
            reason: "bad proof".into(),
        });
        assert_eq!((r.code, r.party), (ErrorCode::SessionFailed, Some(2)));
        let (_, r) = round_trip(AuthError::BadSignature { party: 0 }.into());
        assert_eq!((r.code, r.party), (ErrorCode::Unauthorized, Some(0)));
    }

    #[test]
    fn store_details_stay_in_the_log() {
        let (s, _) = round_trip(CosignerError::Store(StoreError::Tampered {
            table: "wallets".into(),
            key: "w1".into(),
        }));
        assert!(!s.message().contains("wallets"), "{}", s.message());
        assert!(s.metadata().get("x-presignature-error").is_none());
    }
}
