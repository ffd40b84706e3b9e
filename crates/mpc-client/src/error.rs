//! The client's error type: one flat enum a mobile app can switch on.

use mpc_core::keystore::KeystoreError;
use mpc_party::PartyError;

/// Why a client operation failed.
///
/// Variants are stable categories (what the app should do next), each with a readable
/// message. All fields are owned, plain types so that FFI bindings can mirror them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MpcError {
    /// The configuration is incomplete or inconsistent.
    #[error("configuration error: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The passphrase does not open the key-share file (or the file was modified).
    #[error("wrong passphrase for {path} (or the file was modified)")]
    WrongPassphrase {
        /// The key-share file.
        path: String,
    },
    /// A file exists but is not what it should be (damaged, another wallet's file...).
    #[error("{path}: {reason}")]
    CorruptFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// `create_wallet` would overwrite an existing key-share file.
    #[error("{path} already exists; refusing to overwrite key shares")]
    WalletExists {
        /// The existing file.
        path: String,
    },
    /// No wallet has been created yet (the key-share file does not exist).
    #[error("no wallet at {path}: create one first (create-wallet)")]
    NoWallet {
        /// The missing file.
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
    /// An argument is invalid (path, hex, digest kind...).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },
    /// The cosigner cannot be reached (down, wrong URL, network), or went away during a
    /// session. Retrying later may succeed.
    #[error("cosigner unavailable: {reason}")]
    CosignerUnavailable {
        /// Details.
        reason: String,
    },
    /// The cosigner refused the caller's credentials (unknown wallet, wrong identity
    /// key, bad or replayed request signature).
    #[error("unauthorized: {reason}")]
    Unauthorized {
        /// The cosigner's explanation.
        reason: String,
    },
    /// The cosigner's policy refused to co-sign.
    #[error("refused by the cosigner's policy (rule {rule}): {reason}")]
    PolicyRefused {
        /// The rule that refused (e.g. `max_value_per_tx`).
        rule: String,
        /// The cosigner's explanation.
        reason: String,
    },
    /// The cosigner rejected the request for another reason.
    #[error("the cosigner rejected the request ({code}): {reason}")]
    CosignerRejected {
        /// gRPC status code name.
        code: String,
        /// The cosigner's message.
        reason: String,
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
        /// `aux-info`, `keygen`, `sign`.
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
    /// The cosigner announced a different digest than the one computed locally: it is
    /// not signing what we asked for. Nothing was signed.
    #[error("digest mismatch: local {local}, cosigner {cosigner}; refusing to sign")]
    DigestMismatch {
        /// Hex digest computed here.
        local: String,
        /// Hex digest announced by the cosigner.
        cosigner: String,
    },
    /// A produced signature (or a signature to verify) does not verify.
    #[error("invalid signature: {reason}")]
    InvalidSignature {
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

impl MpcError {
    pub(crate) fn config(reason: impl Into<String>) -> Self {
        MpcError::Config {
            reason: reason.into(),
        }
    }

    pub(crate) fn input(reason: impl Into<String>) -> Self {
        MpcError::InvalidInput {
            reason: reason.into(),
        }
    }

    pub(crate) fn internal(reason: impl Into<String>) -> Self {
        MpcError::Internal {
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        MpcError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }

    /// Maps a key-store error on `path`.
    pub(crate) fn keystore(path: &std::path::Path, e: KeystoreError) -> Self {
        let p = path.display().to_string();
        match e {
            KeystoreError::WrongPassphrase => MpcError::WrongPassphrase { path: p },
            KeystoreError::EmptyPassphrase => {
                MpcError::config(format!("the passphrase for {p} is empty"))
            }
            KeystoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                MpcError::NoWallet { path: p }
            }
            KeystoreError::Io { source, .. } => MpcError::Io {
                path: p,
                reason: source.to_string(),
            },
            other => MpcError::CorruptFile {
                path: p,
                reason: other.to_string(),
            },
        }
    }

    /// Maps the failure of one party's session over the gateway.
    pub(crate) fn party(stage: &str, session_id: &str, e: PartyError) -> Self {
        match e {
            PartyError::Gateway(g) => MpcError::GatewayUnavailable {
                reason: format!("{stage} session {session_id}: {g}"),
            },
            PartyError::Timeout {
                after,
                round,
                waiting_for,
                rejected,
                ..
            } => MpcError::Timeout {
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
            PartyError::Session(mpc_core::SessionError::Aborted { blamed, reason }) => {
                MpcError::SessionFailed {
                    stage: stage.into(),
                    session_id: session_id.into(),
                    reason,
                    blamed,
                }
            }
            PartyError::Session(mpc_core::SessionError::MalformedMessage { from, reason }) => {
                MpcError::SessionFailed {
                    stage: stage.into(),
                    session_id: session_id.into(),
                    reason: format!("malformed message: {reason}"),
                    blamed: vec![from],
                }
            }
            other => MpcError::SessionFailed {
                stage: stage.into(),
                session_id: session_id.into(),
                reason: other.to_string(),
                blamed: Vec::new(),
            },
        }
    }
}

impl From<mpc_core::CoreError> for MpcError {
    fn from(e: mpc_core::CoreError) -> Self {
        match e {
            mpc_core::CoreError::InvalidSignature => MpcError::InvalidSignature {
                reason: e.to_string(),
            },
            other => MpcError::InvalidInput {
                reason: other.to_string(),
            },
        }
    }
}
