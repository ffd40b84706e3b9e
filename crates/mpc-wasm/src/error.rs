//! The error type of the helper exports (the flows report `client_core::ClientError`s,
//! see `flows.rs`): a code of the wallet's one vocabulary, a message, and the party at
//! fault when known. In JS it becomes an `Error` with `code` / `party` / `status`
//! properties.

use mpc_core::keystore::KeystoreError;
use mpc_core::{CoreError, SessionError};
use mpc_wire::WireError;

/// The wallet's one error vocabulary (`docs/errors.md`): the same codes as the native
/// client, the CLI's `--json`, the bindings and the npm package's `WalletError.code`.
pub use wallet_types::ErrorCode as Code;

/// An error of the wasm API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Machine-readable code.
    pub code: Code,
    /// Human-readable message.
    pub message: String,
    /// Keygen index of the party at fault, when known.
    pub party: Option<u16>,
    /// HTTP status (gateway errors).
    pub status: Option<u16>,
    /// A finer, machine-readable reason within the code (backups: `wrong_passphrase`,
    /// `not_a_backup`, `other_wallet`, `different_share`); JS property `reason`.
    pub reason: Option<&'static str>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            party: None,
            status: None,
            reason: None,
        }
    }

    /// Sets the machine-readable [`ApiError::reason`].
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Shorthand for [`Code::InvalidInput`].
    pub fn input(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidInput, message)
    }

    /// Names the party at fault.
    pub fn with_party(mut self, party: u16) -> Self {
        self.party = Some(party);
        self
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        let msg = e.to_string();
        match e {
            SessionError::MalformedMessage { from, .. }
            | SessionError::WrongMessageType { from, .. } => {
                ApiError::new(Code::SessionFailed, msg).with_party(from)
            }
            SessionError::UnknownSender { from, .. } => {
                ApiError::new(Code::SessionFailed, msg).with_party(from)
            }
            SessionError::Aborted { blamed, .. } => {
                let err = ApiError::new(Code::SessionFailed, msg);
                match blamed.first() {
                    Some(&p) => err.with_party(p),
                    None => err,
                }
            }
            SessionError::InvalidParams(_) => ApiError::new(Code::InvalidInput, msg),
            SessionError::Finished => ApiError::new(Code::SessionFailed, msg),
            SessionError::Internal(_) => ApiError::new(Code::Internal, msg),
        }
    }
}

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        let party = e.sender();
        let mut err = ApiError::new(Code::SessionFailed, e.to_string());
        err.party = party;
        err
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let code = match e {
            CoreError::InvalidSignature => Code::VerificationFailed,
            CoreError::PresignatureReused(_) => Code::PresignatureUnavailable,
            _ => Code::InvalidInput,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<KeystoreError> for ApiError {
    fn from(e: KeystoreError) -> Self {
        let code = match e {
            KeystoreError::WrongPassphrase => Code::WrongPassphrase,
            KeystoreError::EmptyPassphrase | KeystoreError::BadKdfParams(_) => Code::InvalidInput,
            _ => Code::Storage,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<cosigner_api::AuthError> for ApiError {
    fn from(e: cosigner_api::AuthError) -> Self {
        ApiError::new(Code::Internal, e.to_string())
    }
}

/// Result alias.
pub type ApiResult<T> = Result<T, ApiError>;
