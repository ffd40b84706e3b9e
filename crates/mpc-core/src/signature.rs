//! Signature encodings (Ethereum r, s, v; Bitcoin DER low-s) and verification.

use k256::ecdsa::{self, signature::hazmat::PrehashVerifier, RecoveryId, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::{Point, Signature};

/// The raw (r, s) of a signature, big-endian, with s normalised to the lower half.
pub fn to_k256(sig: &Signature) -> Result<ecdsa::Signature, CoreError> {
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(&sig.r.to_be_bytes());
    bytes[32..].copy_from_slice(&sig.s.to_be_bytes());
    let s = ecdsa::Signature::from_slice(&bytes).map_err(|e| CoreError::invalid("signature", e))?;
    Ok(s.normalize_s().unwrap_or(s))
}

/// A k256 verifying key for a point.
pub fn verifying_key(public_key: &Point) -> Result<VerifyingKey, CoreError> {
    VerifyingKey::from_sec1_bytes(&public_key.to_bytes(true))
        .map_err(|e| CoreError::invalid("public key", e))
}

/// Verifies a signature over a 32-byte digest (independently of the protocol library).
pub fn verify_digest(
    public_key: &Point,
    digest: &[u8; 32],
    sig: &Signature,
) -> Result<(), CoreError> {
    let vk = verifying_key(public_key)?;
    let sig = to_k256(sig)?;
    vk.verify_prehash(digest, &sig)
        .map_err(|_| CoreError::InvalidSignature)
}

/// Bitcoin encoding: strict DER with low s (BIP-62/BIP-146), without the sighash byte.
pub fn bitcoin_der(sig: &Signature) -> Result<Vec<u8>, CoreError> {
    Ok(to_k256(sig)?.to_der().as_bytes().to_vec())
}

/// How the Ethereum `v` is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "chain_id")]
pub enum EthereumVStyle {
    /// `v = 27 + y_parity` (pre-EIP-155 transactions, `personal_sign` messages).
    Legacy,
    /// EIP-155 replay protection: `v = chain_id * 2 + 35 + y_parity`.
    Eip155(u64),
    /// Typed transactions (EIP-2930, EIP-1559, …): `v = y_parity`.
    Typed,
}

/// An Ethereum signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EthereumSignature {
    /// r, 32 bytes big-endian.
    #[serde(with = "hex::serde")]
    pub r: [u8; 32],
    /// s, 32 bytes big-endian, low-s.
    #[serde(with = "hex::serde")]
    pub s: [u8; 32],
    /// Recovery id / y parity (0 or 1).
    pub y_parity: u8,
    /// `v` in the requested style.
    pub v: u64,
}

impl EthereumSignature {
    /// 65-byte `r || s || v` (v as one byte; for Legacy/Typed styles), as used by
    /// `personal_sign` and `eth_sign`.
    pub fn to_rsv_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(65);
        out.extend_from_slice(&self.r);
        out.extend_from_slice(&self.s);
        out.push(self.v.min(255) as u8);
        out
    }
}

/// Encodes a signature for Ethereum, computing the recovery id against `public_key`.
pub fn ethereum_signature(
    public_key: &Point,
    digest: &[u8; 32],
    sig: &Signature,
    style: EthereumVStyle,
) -> Result<EthereumSignature, CoreError> {
    let vk = verifying_key(public_key)?;
    let ksig = to_k256(sig)?;
    let rec = RecoveryId::trial_recovery_from_prehash(&vk, digest, &ksig)
        .map_err(|_| CoreError::InvalidSignature)?;
    let y = u8::from(rec.is_y_odd());
    let v = match style {
        EthereumVStyle::Legacy => 27 + u64::from(y),
        EthereumVStyle::Eip155(chain_id) => chain_id
            .checked_mul(2)
            .and_then(|c| c.checked_add(35 + u64::from(y)))
            .ok_or_else(|| CoreError::invalid("chain id", "too large for EIP-155"))?,
        EthereumVStyle::Typed => u64::from(y),
    };
    let (r, s) = ksig.split_bytes();
    Ok(EthereumSignature {
        r: r.into(),
        s: s.into(),
        y_parity: y,
        v,
    })
}

/// Recovers the signer's Ethereum address from a digest and (r, s, y_parity).
pub fn recover_ethereum_address(
    digest: &[u8; 32],
    sig: &EthereumSignature,
) -> Result<String, CoreError> {
    let mut rs = [0u8; 64];
    rs[..32].copy_from_slice(&sig.r);
    rs[32..].copy_from_slice(&sig.s);
    let ksig = ecdsa::Signature::from_slice(&rs).map_err(|e| CoreError::invalid("signature", e))?;
    let rec = RecoveryId::from_byte(sig.y_parity)
        .ok_or_else(|| CoreError::invalid("y parity", sig.y_parity))?;
    let vk = VerifyingKey::recover_from_prehash(digest, &ksig, rec)
        .map_err(|_| CoreError::InvalidSignature)?;
    let point = generic_ec::Point::from_bytes(vk.to_encoded_point(true).as_bytes())
        .map_err(|e| CoreError::invalid("recovered key", e))?;
    Ok(crate::address::ethereum_address(&point))
}

/// All encodings of one signature, as returned to callers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedSignature {
    /// r, hex.
    pub r: String,
    /// s (low-s), hex.
    pub s: String,
    /// The signed digest, hex.
    pub digest: String,
    /// Ethereum recovery id / y parity.
    pub y_parity: u8,
    /// Bitcoin DER, hex.
    pub der: String,
}

/// Encodes a signature in every format (after verifying it).
pub fn encode_all(
    public_key: &Point,
    digest: &[u8; 32],
    sig: &Signature,
) -> Result<EncodedSignature, CoreError> {
    verify_digest(public_key, digest, sig)?;
    let eth = ethereum_signature(public_key, digest, sig, EthereumVStyle::Typed)?;
    Ok(EncodedSignature {
        r: hex::encode(eth.r),
        s: hex::encode(eth.s),
        digest: hex::encode(digest),
        y_parity: eth.y_parity,
        der: hex::encode(bitcoin_der(sig)?),
    })
}
