//! Plain, owned types of the public API (FFI-friendly: no generics, no borrowed data).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::MpcError;

/// Which of the user's two parties this client acts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PartyRole {
    /// Party 0, the device share (`key_share_path`). The normal case.
    #[default]
    Device,
    /// Party 2, the recovery share (`recovery_path`): signs with the cosigner when the
    /// device is lost.
    Recovery,
}

impl PartyRole {
    /// The keygen index of this role.
    pub fn index(self) -> u16 {
        match self {
            PartyRole::Device => 0,
            PartyRole::Recovery => 2,
        }
    }
}

/// Configuration of an [`MpcClient`](crate::MpcClient).
#[derive(Clone, Serialize, Deserialize)]
pub struct MpcConfig {
    /// Cosigner (sign-service) gRPC URL, e.g. `http://127.0.0.1:50051`.
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
        if self.role == PartyRole::Recovery && self.recovery_path.is_none() {
            return Err(MpcError::config("recovery mode needs recovery_path"));
        }
        Ok(())
    }
}

/// How the preimage is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestKind {
    /// keccak-256 (Ethereum).
    Keccak256,
    /// SHA-256 twice (Bitcoin).
    DoubleSha256,
    /// SHA-256.
    Sha256,
}

impl From<DigestKind> for mpc_core::DigestKind {
    fn from(d: DigestKind) -> Self {
        match d {
            DigestKind::Keccak256 => mpc_core::DigestKind::Keccak256,
            DigestKind::DoubleSha256 => mpc_core::DigestKind::DoubleSha256,
            DigestKind::Sha256 => mpc_core::DigestKind::Sha256,
        }
    }
}

/// What is being signed (the cosigner's policy and audit log use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    /// Opaque bytes.
    Raw,
    /// An unsigned Ethereum transaction's signing payload (legacy RLP or typed).
    EthereumTransaction,
    /// An EIP-191 personal-message preimage.
    EthereumMessage,
}

/// How the Ethereum `v` value is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainStyle {
    /// `v = 27 + y_parity` (personal messages, pre-EIP-155 transactions).
    Legacy,
    /// `v = chain_id * 2 + 35 + y_parity` (EIP-155 legacy transactions).
    Eip155 {
        /// The chain id.
        chain_id: u64,
    },
    /// `v = y_parity` (typed transactions: EIP-2930, EIP-1559...).
    Typed,
}

impl From<ChainStyle> for mpc_core::signature::EthereumVStyle {
    fn from(c: ChainStyle) -> Self {
        match c {
            ChainStyle::Legacy => mpc_core::signature::EthereumVStyle::Legacy,
            ChainStyle::Eip155 { chain_id } => {
                mpc_core::signature::EthereumVStyle::Eip155(chain_id)
            }
            ChainStyle::Typed => mpc_core::signature::EthereumVStyle::Typed,
        }
    }
}

/// How an account's key is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// HD master key (non-hardened children).
    #[default]
    Hd,
    /// Independent key, root only.
    Independent,
}

impl From<AccountKind> for mpc_core::AccountKind {
    fn from(k: AccountKind) -> Self {
        match k {
            AccountKind::Hd => mpc_core::AccountKind::Hd,
            AccountKind::Independent => mpc_core::AccountKind::Independent,
        }
    }
}

impl From<mpc_core::AccountKind> for AccountKind {
    fn from(k: mpc_core::AccountKind) -> Self {
        match k {
            mpc_core::AccountKind::Hd => AccountKind::Hd,
            mpc_core::AccountKind::Independent => AccountKind::Independent,
        }
    }
}

/// A verified signature in every encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedResult {
    /// Account that signed.
    pub account_id: String,
    /// Derivation path used (`m` for the root).
    pub derivation_path: String,
    /// r, 32 bytes, hex (no prefix).
    pub r: String,
    /// s (low-s), 32 bytes, hex.
    pub s: String,
    /// Recovery id / y parity (0 or 1).
    pub y_parity: u8,
    /// Ethereum `v` in the requested [`ChainStyle`].
    pub v: u64,
    /// 65-byte `r || s || v` (v as one byte), hex — the `personal_sign` format.
    pub rsv: String,
    /// Bitcoin strict DER (low s), hex, without the sighash byte.
    pub der: String,
    /// The signed digest, hex.
    pub digest: String,
    /// Compressed public key of the signing key (at the path), hex.
    pub public_key: String,
    /// EIP-55 address of the signing key.
    pub ethereum_address: String,
    /// Keygen indices of the signers.
    pub signers: Vec<u16>,
    /// Session id of the signing session.
    pub session_id: String,
    /// Cosigner's audit reference (empty for offline signing).
    pub request_id: String,
    /// Wall time of the whole operation, in milliseconds.
    pub elapsed_ms: u64,
    /// Whether the signature came from the presignature pool (the fast path: one
    /// request to the cosigner, no protocol session). `session_id` is then the
    /// presignature id.
    #[serde(default)]
    pub presigned: bool,
}

/// When signing uses the presignature pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PresignMode {
    /// Independent accounts at the root path sign from the pool when it has a
    /// presignature, with full signing otherwise (and as the fallback).
    #[default]
    Auto,
    /// Always full signing.
    Off,
    /// Only the fast path: an error instead of full signing (HD account, derivation
    /// path, empty pool, or the cosigner lacks the presignature).
    Require,
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

/// The presignature pool of one account for the active party's signer pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignPoolStatus {
    /// Account id.
    pub account_id: String,
    /// The signer pair (e.g. `[0, 1]`).
    pub signers: Vec<u16>,
    /// Presignatures in the local pool.
    pub local: u32,
    /// Presignatures the cosigner holds for this pair (`None` when not asked).
    pub cosigner: Option<u32>,
    /// Presignature sessions still running at the cosigner.
    pub cosigner_running: u32,
    /// The cosigner's cap per account and signer pair.
    pub cosigner_cap: u32,
    /// Usable: held on both sides (`None` when the cosigner was not asked).
    pub usable: Option<u32>,
    /// Presignatures generated by this call (refills).
    pub generated: u32,
    /// Presignature sessions that failed in this call (refills).
    pub failed: u32,
    /// Local presignatures the cosigner no longer had, discarded by this call, plus
    /// cosigner presignatures this party no longer had, released.
    pub discarded: u32,
    /// Wall time of this call, in milliseconds.
    pub elapsed_ms: u64,
}

/// A public key and its addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyInfo {
    /// Account id.
    pub account_id: String,
    /// Derivation path (`m` for the root).
    pub derivation_path: String,
    /// Compressed SEC1 public key, hex.
    pub public_key: String,
    /// EIP-55 Ethereum address.
    pub ethereum_address: String,
    /// Bitcoin P2WPKH mainnet address.
    pub bitcoin_address: String,
    /// Bitcoin P2WPKH testnet address.
    pub bitcoin_testnet_address: String,
}

/// An account of the wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// Account id (shared by all parties).
    pub account_id: String,
    /// HD or independent.
    pub kind: AccountKind,
    /// Master public key, compressed, hex.
    pub public_key: String,
    /// Ethereum address of the master key.
    pub ethereum_address: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
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

/// The cosigner's health report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CosignerHealth {
    /// `ok` when healthy.
    pub status: String,
    /// Version.
    pub version: String,
    /// Big-integer backend.
    pub backend: String,
    /// Cosigner's public identity.
    pub identity: String,
}
