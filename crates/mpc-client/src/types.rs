//! Plain, owned types of the public API (FFI-friendly: no generics, no borrowed data).
//! The flows' result types come from `client-core`, the shared vocabulary from
//! `wallet-types`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use client_core::{
    AccountInfo, ChainStyle, CosignerHealth, PresignMode, PresignPoolStatus, PublicKeyInfo,
    SignedResult,
};
pub use wallet_types::{AccountKind, DigestKind, PartyRole, PayloadKind};

use crate::error::MpcError;

/// Configuration of an [`MpcClient`](crate::MpcClient).
#[derive(Clone, Serialize, Deserialize)]
pub struct MpcConfig {
    /// Cosigner (sign-service) gRPC URL, e.g. `http://127.0.0.1:50051`, or `https://…`
    /// for a cosigner that serves TLS (trusted through the web PKI roots and
    /// [`ca_file`](Self::ca_file)).
    pub cosigner_url: String,
    /// Gateway base URL to use instead of the one the cosigner announces (when this
    /// device reaches the gateway under another address). `None`: use the announced one.
    pub gateway_url: Option<String>,
    /// The device's encrypted key-share file.
    pub key_share_path: String,
    /// Passphrase of the device's key-share file.
    pub passphrase: String,
    /// The recovery party's encrypted key-share file (written by `create_wallet`, used in
    /// recovery mode and for offline signing).
    pub recovery_path: Option<String>,
    /// Passphrase of the recovery file (must differ from the device passphrase in
    /// production; not enforced).
    pub recovery_passphrase: Option<String>,
    /// Which party signs with the cosigner.
    pub role: PartyRole,
    /// Timeout of each gRPC call, in seconds.
    pub request_timeout_secs: u64,
    /// Timeout of one signing session, in seconds.
    pub sign_timeout_secs: u64,
    /// Timeout of each wallet-creation session (aux info, DKG), in seconds.
    pub setup_timeout_secs: u64,
    /// Use the repository's PUBLIC test primes for aux info (development only: keys made
    /// this way are not secret-safe).
    pub insecure_dev_primes: bool,
    /// A primes file (`key-gen --save-primes` format) with the device's and recovery
    /// party's safe primes (3 sets by keygen index, or 2 sets: device, recovery).
    pub primes_path: Option<String>,
    /// Fast, weak passphrase hashing for the key files (tests only).
    pub insecure_fast_kdf: bool,
    /// Accept passphrases for new key files that fail the strength check
    /// (`mpc_core::keystore::check_passphrase`: at least 12 characters, 6 different).
    /// The explicit override; `insecure_fast_kdf` implies it.
    pub allow_weak_passphrase: bool,
    /// The registration credential (`wmreg1.…`) the cosigner's operator issued for the
    /// next wallet creation; a cosigner outside dev mode refuses to create wallets
    /// without one (`registration_required`). Single use.
    pub registration_credential: Option<String>,
    /// A PEM file of extra CA certificates to trust for `https://` cosigner and gateway
    /// URLs, beside the web PKI roots (Mozilla's, compiled in): for servers whose
    /// certificates a private CA issued. `None`: the web PKI roots only.
    #[serde(default)]
    pub ca_file: Option<String>,
}

impl std::fmt::Debug for MpcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpcConfig")
            .field("cosigner_url", &self.cosigner_url)
            .field("gateway_url", &self.gateway_url)
            .field("key_share_path", &self.key_share_path)
            .field("recovery_path", &self.recovery_path)
            .field("role", &self.role)
            .field("insecure_dev_primes", &self.insecure_dev_primes)
            .field("primes_path", &self.primes_path)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl MpcConfig {
    /// A configuration with defaults: cosigner on `http://127.0.0.1:50051`, gRPC
    /// timeout 30 s, signing 120 s, wallet-creation sessions 900 s.
    pub fn new(key_share_path: impl Into<String>, passphrase: impl Into<String>) -> Self {
        MpcConfig {
            cosigner_url: "http://127.0.0.1:50051".into(),
            gateway_url: None,
            key_share_path: key_share_path.into(),
            passphrase: passphrase.into(),
            recovery_path: None,
            recovery_passphrase: None,
            role: PartyRole::Device,
            request_timeout_secs: 30,
            sign_timeout_secs: 120,
            setup_timeout_secs: 900,
            insecure_dev_primes: false,
            primes_path: None,
            insecure_fast_kdf: false,
            allow_weak_passphrase: false,
            registration_credential: None,
            ca_file: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), MpcError> {
        if self.key_share_path.trim().is_empty() {
            return Err(MpcError::config("key_share_path is empty"));
        }
        if self.cosigner_url.trim().is_empty() {
            return Err(MpcError::config("cosigner_url is empty"));
        }
        for (name, v) in [
            ("request_timeout_secs", self.request_timeout_secs),
            ("sign_timeout_secs", self.sign_timeout_secs),
            ("setup_timeout_secs", self.setup_timeout_secs),
        ] {
            if v == 0 || v > 24 * 3600 {
                return Err(MpcError::config(format!(
                    "{name} must be between 1 and 86400, got {v}"
                )));
            }
        }
        if self.ca_file.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(MpcError::config("ca_file is empty"));
        }
        if self.role == PartyRole::Recovery && self.recovery_path.is_none() {
            return Err(MpcError::config("recovery mode needs recovery_path"));
        }
        Ok(())
    }
}

/// Presignature pool settings of a client (see `MpcClient::set_presign_config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignConfig {
    /// When signing uses the pool.
    pub mode: PresignMode,
    /// Presignatures a refill aims for, per independent account (on each side; the
    /// cosigner also enforces its own cap).
    pub pool_target: u32,
    /// A background refill starts after a signature when fewer than this many remain.
    pub low_water: u32,
    /// Whether signing starts background refills (tokio tasks that never block a sign).
    pub auto_refill: bool,
    /// Presignature sessions this client runs at once during a refill.
    pub concurrency: u32,
}

impl Default for PresignConfig {
    fn default() -> Self {
        PresignConfig {
            mode: PresignMode::Auto,
            pool_target: 8,
            low_water: 4,
            auto_refill: true,
            concurrency: 2,
        }
    }
}

impl PresignConfig {
    pub(crate) fn validate(&self) -> Result<(), MpcError> {
        if self.pool_target > 1000 {
            return Err(MpcError::config("pool_target must be at most 1000"));
        }
        if self.concurrency == 0 || self.concurrency > 64 {
            return Err(MpcError::config("concurrency must be between 1 and 64"));
        }
        Ok(())
    }
}

/// The wallet as created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletInfo {
    /// The cosigner's wallet id.
    pub wallet_id: String,
    /// Accounts.
    pub accounts: Vec<AccountInfo>,
    /// Device key-share file.
    pub key_share_path: String,
    /// Recovery key-share file.
    pub recovery_path: String,
    /// Whether the cosigner committed its shares.
    pub committed: bool,
    /// Wall time of wallet creation, in milliseconds.
    pub elapsed_ms: u64,
}

/// A progress report of a long operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressEvent {
    /// `primes`, `aux-info`, `keygen`, `confirm`, `sign`.
    pub stage: String,
    /// Keygen index of the party reporting, if any.
    pub party: Option<u16>,
    /// Account id, if the stage concerns one.
    pub account_id: Option<String>,
    /// Steps done.
    pub done: u32,
    /// Steps in total.
    pub total: u32,
    /// Whether the stage is complete for this party.
    pub finished: bool,
}

/// Receives progress reports (called from background threads).
pub trait ProgressListener: Send + Sync {
    /// One progress report.
    fn on_progress(&self, event: ProgressEvent);
}

/// A listener that ignores everything.
pub(crate) struct NoProgress;

impl ProgressListener for NoProgress {
    fn on_progress(&self, _event: ProgressEvent) {}
}

/// Shared listener handle.
pub type Progress = Arc<dyn ProgressListener>;
