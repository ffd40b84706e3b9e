//! What is signed and how: account kinds, digest kinds, payload kinds.
//!
//! The text forms (`serde`, [`DigestKind::parse`]) are the same in the key-share files,
//! the CLI, the bindings and JSON everywhere.

use serde::{Deserialize, Serialize};

/// How an account's key is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// An HD master key: children at non-hardened paths; presignature pools per
    /// BIP-44 path (the path is fixed before each presignature is generated).
    #[default]
    Hd,
    /// An independent key signed at its root only; its presignature pool is at the root.
    Independent,
}

impl AccountKind {
    /// `hd` or `independent`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AccountKind::Hd => "hd",
            AccountKind::Independent => "independent",
        }
    }
}

/// How a preimage is hashed before signing. Signing APIs take the preimage and its
/// digest kind, never a bare hash (`mpc-core` computes the digests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(rename_all = "snake_case")]
pub enum DigestKind {
    /// keccak-256: Ethereum transactions and EIP-191 personal messages.
    Keccak256,
    /// SHA-256 applied twice: Bitcoin signature hashes.
    DoubleSha256,
    /// A single SHA-256 (generic use).
    Sha256,
}

impl DigestKind {
    /// `keccak256`, `double_sha256` or `sha256`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DigestKind::Keccak256 => "keccak256",
            DigestKind::DoubleSha256 => "double_sha256",
            DigestKind::Sha256 => "sha256",
        }
    }

    /// Parses `keccak256`, `double_sha256` / `sha256d`, `sha256` (case-insensitive, `-`
    /// for `_`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "keccak256" | "keccak_256" | "keccak" => Some(DigestKind::Keccak256),
            "double_sha256" | "sha256d" | "dsha256" => Some(DigestKind::DoubleSha256),
            "sha256" | "sha_256" => Some(DigestKind::Sha256),
            _ => None,
        }
    }
}

/// What is being signed (the cosigner's policy decodes it; its audit log names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    /// Opaque bytes.
    Raw,
    /// An unsigned Ethereum transaction's signing payload (legacy RLP or typed).
    EthereumTransaction,
    /// An EIP-191 personal-message preimage.
    EthereumMessage,
    /// EIP-712 typed data: the payload sent to the cosigner is the typed data's JSON
    /// (`eth_signTypedData_v4`); the signed preimage, `0x1901 || domainSeparator ||
    /// hashStruct(message)`, is derived from it by each party.
    EthereumTypedData,
    /// An EIP-7702 authorization's signing payload `0x05 || rlp([chain_id, address,
    /// nonce])`.
    EthereumAuthorization,
    /// One input of a Bitcoin PSBT: the payload sent to the cosigner is the whole PSBT
    /// (binary BIP-174, version 0 or 2) with the input's index and the network; each
    /// party derives that input's BIP-143 preimage from it (wallet-btc).
    BitcoinPsbtInput,
}

impl PayloadKind {
    /// `raw`, `ethereum_transaction`, `ethereum_message`, `ethereum_typed_data`,
    /// `ethereum_authorization` or `bitcoin_psbt_input`.
    pub const fn as_str(self) -> &'static str {
        match self {
            PayloadKind::Raw => "raw",
            PayloadKind::EthereumTransaction => "ethereum_transaction",
            PayloadKind::EthereumMessage => "ethereum_message",
            PayloadKind::EthereumTypedData => "ethereum_typed_data",
            PayloadKind::EthereumAuthorization => "ethereum_authorization",
            PayloadKind::BitcoinPsbtInput => "bitcoin_psbt_input",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_agree_with_serde() {
        for k in [AccountKind::Hd, AccountKind::Independent] {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        for k in [
            DigestKind::Keccak256,
            DigestKind::DoubleSha256,
            DigestKind::Sha256,
        ] {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
            assert_eq!(DigestKind::parse(k.as_str()), Some(k));
        }
        for k in [
            PayloadKind::Raw,
            PayloadKind::EthereumTransaction,
            PayloadKind::EthereumMessage,
            PayloadKind::EthereumTypedData,
            PayloadKind::EthereumAuthorization,
            PayloadKind::BitcoinPsbtInput,
        ] {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        assert_eq!(DigestKind::parse("SHA256D"), Some(DigestKind::DoubleSha256));
        assert_eq!(DigestKind::parse("md5"), None);
        assert_eq!(AccountKind::default(), AccountKind::Hd);
    }
}
