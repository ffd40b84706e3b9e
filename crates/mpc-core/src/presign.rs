//! Presignatures: the stored form, partial signatures and their combination.
//!
//! Signing with the same presignature twice leaks the private key, so a presignature is
//! used at most once — enforced by the store that holds it, not by convention: the
//! client's pools (files natively, IndexedDB in the browser) and the cosigner's store
//! commit the removal *before* the partial signature leaves the party; a crash may then
//! lose a presignature, never reuse one.

use serde::{Deserialize, Serialize};

use crate::digest::SignRequest;
use crate::error::CoreError;
use crate::{PartialSignature, PartyIndex, Presignature, PresignaturePublicData, Signature};

/// A presignature of one party with what is needed to use it.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredPresignature {
    /// Unique id, agreed by the signers (e.g. the presign session id, hex).
    pub id: String,
    /// Account the presignature belongs to.
    pub account_id: String,
    /// Keygen indices of the signers that generated it.
    pub signers: Vec<PartyIndex>,
    /// This party's secret part.
    pub presignature: Presignature,
    /// Public data (commitments of every signer).
    pub public: PresignaturePublicDataRepr,
}

/// Serializable form of [`PresignaturePublicData`].
#[derive(Clone, Serialize, Deserialize)]
pub struct PresignaturePublicDataRepr {
    /// Γ.
    pub gamma: generic_ec::NonZero<crate::Point>,
    /// (Δ̃_j, S̃_j) per signer.
    pub commitments: Vec<(crate::Point, crate::Point)>,
}

impl From<&PresignaturePublicData> for PresignaturePublicDataRepr {
    fn from(p: &PresignaturePublicData) -> Self {
        PresignaturePublicDataRepr {
            gamma: p.Gamma,
            commitments: p
                .commitments
                .iter()
                .map(|c| (c.tilde_Delta, c.tilde_S))
                .collect(),
        }
    }
}

impl PresignaturePublicDataRepr {
    fn to_library(&self) -> PresignaturePublicData {
        PresignaturePublicData {
            Gamma: self.gamma,
            commitments: self
                .commitments
                .iter()
                .map(|&(d, s)| cggmp24::signing::PresignatureCommitment {
                    tilde_Delta: d,
                    tilde_S: s,
                })
                .collect(),
        }
    }
}

impl StoredPresignature {
    /// Issues this party's partial signature for `request`, consuming the presignature.
    pub fn issue_partial(self, request: &SignRequest) -> PartialSignature {
        self.presignature
            .issue_partial_signature(request.data_to_sign())
    }
}

/// Combines the signers' partial signatures (ordered as `public`'s signers) into a
/// signature, verifying each partial signature against its commitment.
pub fn combine(
    public: &PresignaturePublicDataRepr,
    partials: &[PartialSignature],
    request: &SignRequest,
) -> Result<Signature, CoreError> {
    PartialSignature::combine(partials, &public.to_library(), request.data_to_sign())
        .ok_or(CoreError::InvalidSignature)
}

/// Length of an encoded partial signature.
pub const PARTIAL_SIGNATURE_LEN: usize = 32;

/// Encodes a partial signature for the wire: its σ, a secp256k1 scalar, 32 bytes
/// big-endian.
pub fn partial_to_bytes(p: &PartialSignature) -> [u8; PARTIAL_SIGNATURE_LEN] {
    let mut out = [0u8; PARTIAL_SIGNATURE_LEN];
    out.copy_from_slice(p.sigma.to_be_bytes().as_ref());
    out
}

/// Decodes a partial signature received from a peer (32 bytes big-endian, a canonical
/// scalar below the group order).
pub fn partial_from_bytes(b: &[u8]) -> Result<PartialSignature, CoreError> {
    if b.len() != PARTIAL_SIGNATURE_LEN {
        return Err(CoreError::invalid(
            "partial signature",
            format!("{} bytes, expected {PARTIAL_SIGNATURE_LEN}", b.len()),
        ));
    }
    let sigma = generic_ec::Scalar::<crate::Curve>::from_be_bytes(b)
        .map_err(|_| CoreError::invalid("partial signature", "not a canonical scalar"))?;
    Ok(PartialSignature { sigma })
}

/// Combines this party's partial signature with a peer's, in the order of the
/// presignature's signers, and verifies the result against `public_key`.
///
/// `mine` is issued by the signer `me`; `theirs` by the other signer of `stored`.
/// Fails with [`CoreError::InvalidSignature`] when a partial does not match its
/// commitment (a cheating or confused peer) or the signature does not verify.
pub fn combine_pair(
    stored_public: &PresignaturePublicDataRepr,
    signers: &[PartyIndex],
    me: PartyIndex,
    mine: PartialSignature,
    theirs: PartialSignature,
    request: &SignRequest,
    public_key: &crate::Point,
) -> Result<Signature, CoreError> {
    if signers.len() != 2 || !signers.contains(&me) {
        return Err(CoreError::invalid(
            "presignature signers",
            format!("{signers:?} is not a pair containing party {me}"),
        ));
    }
    let partials = if signers[0] == me {
        [mine, theirs]
    } else {
        [theirs, mine]
    };
    let sig = combine(stored_public, &partials, request)?;
    sig.verify(public_key, &request.data_to_sign())
        .map_err(|_| CoreError::InvalidSignature)?;
    Ok(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_signature_encoding() {
        let sigma = generic_ec::Scalar::<crate::Curve>::from(12345u64);
        let p = PartialSignature { sigma };
        let b = partial_to_bytes(&p);
        assert_eq!(b[31], (12345u64 & 0xff) as u8);
        assert_eq!(partial_from_bytes(&b).unwrap().sigma, sigma);
        assert!(partial_from_bytes(&b[..31]).is_err());
        assert!(partial_from_bytes(&[0xff; 32]).is_err(), "above the order");
    }
}
