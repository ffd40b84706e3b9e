//! Plain, owned result types of the flows (FFI-friendly: no generics, no borrows).

use serde::{Deserialize, Serialize};
use wallet_types::AccountKind;

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
    /// Session id of the signing session (the presignature id on the fast path).
    pub session_id: String,
    /// Cosigner's audit reference (empty for offline signing).
    pub request_id: String,
    /// Wall time of the whole operation, in milliseconds (set by the driver, which owns
    /// the clock).
    pub elapsed_ms: u64,
    /// Whether the signature came from the presignature pool (the fast path: one
    /// request to the cosigner, no protocol session).
    #[serde(default)]
    pub presigned: bool,
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

impl From<&mpc_core::Account> for AccountInfo {
    fn from(a: &mpc_core::Account) -> Self {
        AccountInfo {
            account_id: a.id.clone(),
            kind: a.kind,
            public_key: a.public_key.clone(),
            ethereum_address: mpc_core::address::ethereum_address(&a.master_public_key()),
            created_at: a.created_at,
        }
    }
}

/// The presignature pool of one account at one derivation path for a party's signer
/// pair with the cosigner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignPoolStatus {
    /// Account id.
    pub account_id: String,
    /// The pool's derivation path (`m` for the root).
    #[serde(default = "root_path")]
    pub path: String,
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
    /// Wall time of this call, in milliseconds (set by the driver).
    pub elapsed_ms: u64,
}

fn root_path() -> String {
    "m".into()
}

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

impl From<cosigner_api::pb::HealthResponse> for CosignerHealth {
    fn from(r: cosigner_api::pb::HealthResponse) -> Self {
        CosignerHealth {
            status: r.status,
            version: r.version,
            backend: r.backend,
            identity: r.identity,
        }
    }
}
