//! The error type of every export: a stable `code`, a message, and the party at fault
//! when known. In JS it becomes an `Error` with `code` / `party` / `status` properties.

use mpc_core::keystore::KeystoreError;
use mpc_core::{CoreError, SessionError};
use mpc_wire::WireError;

/// Stable error codes (see API.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Bad argument.
    InvalidInput,
    /// Envelope layer refused to seal or is misconfigured.
    Wire,
    /// Gateway unreachable or answered an error status.
    Gateway,
    /// The gateway subscription ended before the session finished.
    StreamEnded,
    /// The session did not finish in time.
    Timeout,
    /// An authenticated peer sent an undecodable or duplicate message.
    MalformedMessage,
    /// The protocol detected misbehaviour.
    ProtocolAborted,
    /// Other session failure.
    Session,
    /// Passphrase decryption failed.
    WrongPassphrase,
    /// Corrupt or unsupported key-share data.
    Keystore,
    /// Request-signature error.
    Auth,
    /// A produced signature did not verify.
    InvalidSignature,
    /// A presignature was already consumed.
    PresignatureUsed,
    /// A safe-prime search checkpoint could not be resumed (garbage, altered, wrong size).
    InvalidCheckpoint,
    /// A bug.
    Internal,
}

impl Code {
    /// The code as exposed to JS.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidInput => "invalid_input",
            Code::Wire => "wire",
            Code::Gateway => "gateway",
            Code::StreamEnded => "stream_ended",
            Code::Timeout => "timeout",
            Code::MalformedMessage => "malformed_message",
            Code::ProtocolAborted => "protocol_aborted",
            Code::Session => "session",
            Code::WrongPassphrase => "wrong_passphrase",
            Code::Keystore => "keystore",
            Code::Auth => "auth",
            Code::InvalidSignature => "invalid_signature",
            Code::PresignatureUsed => "presignature_used",
            Code::InvalidCheckpoint => "invalid_checkpoint",
            Code::Internal => "internal",
        }
    }
}

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
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            party: None,
            status: None,
        }
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
                ApiError::new(Code::MalformedMessage, msg).with_party(from)
            }
            SessionError::UnknownSender { from, .. } => {
                ApiError::new(Code::MalformedMessage, msg).with_party(from)
            }
            SessionError::Aborted { blamed, .. } => {
                let err = ApiError::new(Code::ProtocolAborted, msg);
                match blamed.first() {
                    Some(&p) => err.with_party(p),
                    None => err,
                }
            }
            SessionError::InvalidParams(_) => ApiError::new(Code::InvalidInput, msg),
            SessionError::Finished => ApiError::new(Code::Session, msg),
            SessionError::Internal(_) => ApiError::new(Code::Internal, msg),
        }
    }
}

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        let party = e.sender();
        let mut err = ApiError::new(Code::Wire, e.to_string());
        err.party = party;
        err
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let code = match e {
            CoreError::InvalidSignature => Code::InvalidSignature,
            CoreError::PresignatureReused(_) => Code::PresignatureUsed,
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
            _ => Code::Keystore,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<cosigner_api::AuthError> for ApiError {
    fn from(e: cosigner_api::AuthError) -> Self {
        ApiError::new(Code::Auth, e.to_string())
    }
}

/// Result alias.
pub type ApiResult<T> = Result<T, ApiError>;
