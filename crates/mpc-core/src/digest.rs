//! Message digests computed from the preimage.
//!
//! Signing APIs take the message *preimage* and a [`DigestKind`], never a bare hash:
//! signing a hash whose preimage is unknown with a presignature enables forgeries, and
//! the protocol library forbids it. The digest is computed here.

use digest::{FixedOutput, HashMarker, Output, OutputSizeUser, Reset, Update};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sha3::Keccak256;

use crate::Curve;

/// The digest of `preimage` under `kind` (32 bytes).
pub fn digest(kind: wallet_types::DigestKind, preimage: &[u8]) -> [u8; 32] {
    use wallet_types::DigestKind as K;
    match kind {
        K::Keccak256 => Keccak256::digest(preimage).into(),
        K::DoubleSha256 => Sha256::digest(Sha256::digest(preimage)).into(),
        K::Sha256 => Sha256::digest(preimage).into(),
    }
}

/// The protocol's "data to sign" for `preimage` under `kind` (hashing done by the
/// library's preimage-checked constructor).
pub fn data_to_sign(kind: wallet_types::DigestKind, preimage: &[u8]) -> cggmp24::DataToSign<Curve> {
    use wallet_types::DigestKind as K;
    match kind {
        K::Keccak256 => cggmp24::DataToSign::digest::<Keccak256>(preimage),
        K::DoubleSha256 => cggmp24::DataToSign::digest::<DoubleSha256>(preimage),
        K::Sha256 => cggmp24::DataToSign::digest::<Sha256>(preimage),
    }
}

/// How a preimage is hashed before signing, with the digest computations as methods.
///
/// The vocabulary is [`wallet_types::DigestKind`] (what clients, the bindings and the
/// wire use, convertible both ways); this twin keeps the methods that the cosigner's
/// code calls ([`DigestKind::digest`], [`DigestKind::data_to_sign`]). New code uses
/// [`digest()`] and [`data_to_sign()`] over the vocabulary type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestKind {
    /// keccak-256: Ethereum transactions (the RLP/typed-tx signing payload) and EIP-191
    /// personal messages (after [`eip191_preimage`]).
    Keccak256,
    /// SHA-256 applied twice: Bitcoin signature hashes (the sighash preimage).
    DoubleSha256,
    /// A single SHA-256 (generic use).
    Sha256,
}

impl From<wallet_types::DigestKind> for DigestKind {
    fn from(k: wallet_types::DigestKind) -> Self {
        match k {
            wallet_types::DigestKind::Keccak256 => DigestKind::Keccak256,
            wallet_types::DigestKind::DoubleSha256 => DigestKind::DoubleSha256,
            wallet_types::DigestKind::Sha256 => DigestKind::Sha256,
        }
    }
}

impl From<DigestKind> for wallet_types::DigestKind {
    fn from(k: DigestKind) -> Self {
        match k {
            DigestKind::Keccak256 => wallet_types::DigestKind::Keccak256,
            DigestKind::DoubleSha256 => wallet_types::DigestKind::DoubleSha256,
            DigestKind::Sha256 => wallet_types::DigestKind::Sha256,
        }
    }
}

impl DigestKind {
    /// Parses `keccak256`, `double_sha256` / `sha256d`, `sha256`
    /// ([`wallet_types::DigestKind::parse`]).
    pub fn parse(s: &str) -> Option<Self> {
        wallet_types::DigestKind::parse(s).map(Into::into)
    }

    /// The 32-byte digest of `preimage` ([`digest()`]).
    pub fn digest(self, preimage: &[u8]) -> [u8; 32] {
        digest(self.into(), preimage)
    }

    /// The protocol's "data to sign" for `preimage` ([`data_to_sign()`]).
    pub fn data_to_sign(self, preimage: &[u8]) -> cggmp24::DataToSign<Curve> {
        data_to_sign(self.into(), preimage)
    }
}

/// A signing request: the message preimage and how to hash it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignRequest {
    /// The bytes whose digest is signed (e.g. an unsigned Ethereum transaction's signing
    /// payload, or an EIP-191-wrapped message).
    #[serde(with = "hex::serde")]
    pub preimage: Vec<u8>,
    /// How to hash it.
    pub digest: DigestKind,
}

impl SignRequest {
    /// The 32-byte digest that the signature covers.
    pub fn digest_bytes(&self) -> [u8; 32] {
        self.digest.digest(&self.preimage)
    }
    /// The protocol's data to sign.
    pub fn data_to_sign(&self) -> cggmp24::DataToSign<Curve> {
        self.digest.data_to_sign(&self.preimage)
    }
}

/// The EIP-191 "personal_sign" preimage of `message`:
/// `"\x19Ethereum Signed Message:\n" || len(message) || message`.
pub fn eip191_preimage(message: &[u8]) -> Vec<u8> {
    let mut out = format!("\x19Ethereum Signed Message:\n{}", message.len()).into_bytes();
    out.extend_from_slice(message);
    out
}

/// SHA-256 applied twice, as a [`digest::Digest`] so the library can hash preimages with it.
#[derive(Clone, Default)]
pub struct DoubleSha256(Sha256);

impl HashMarker for DoubleSha256 {}

impl OutputSizeUser for DoubleSha256 {
    type OutputSize = <Sha256 as OutputSizeUser>::OutputSize;
}

impl Update for DoubleSha256 {
    fn update(&mut self, data: &[u8]) {
        Update::update(&mut self.0, data);
    }
}

impl FixedOutput for DoubleSha256 {
    fn finalize_into(self, out: &mut Output<Self>) {
        let first = self.0.finalize();
        let second = Sha256::digest(first);
        out.copy_from_slice(&second);
    }
}

impl Reset for DoubleSha256 {
    fn reset(&mut self) {
        self.0 = Sha256::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_sha256_matches_manual() {
        let want = Sha256::digest(Sha256::digest(b"abc"));
        let got = DoubleSha256::digest(b"abc");
        assert_eq!(want.as_slice(), got.as_slice());
        assert_eq!(
            DigestKind::DoubleSha256.digest(b"abc").as_slice(),
            want.as_slice()
        );
    }

    #[test]
    fn keccak_known_vector() {
        // keccak256("") = c5d2...a470
        assert_eq!(
            hex::encode(DigestKind::Keccak256.digest(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn eip191_prefix() {
        assert_eq!(
            eip191_preimage(b"hi"),
            b"\x19Ethereum Signed Message:\n2hi".to_vec()
        );
    }

    #[test]
    fn parse_names() {
        assert_eq!(DigestKind::parse("keccak256"), Some(DigestKind::Keccak256));
        assert_eq!(DigestKind::parse("sha256d"), Some(DigestKind::DoubleSha256));
        assert_eq!(DigestKind::parse("md5"), None);
    }
}
