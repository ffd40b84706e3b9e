//! Presignatures: the stored form, partial signatures and their combination.
//!
//! Signing with the same presignature twice leaks the private key, so a presignature is
//! used at most once — enforced by the store that holds it, not by convention: the
//! client's pools (files natively, IndexedDB in the browser) and the cosigner's store
//! commit the removal *before* the partial signature leaves the party; a crash may then
//! lose a presignature, never reuse one.
//!
//! A presignature belongs to one derivation path, chosen before it was generated
//! ([`crate::Session::presign`]): it signs for the key of that path only. The path is
//! bound into the record ([`PresignaturePublicDataRepr::path`]); issuing a partial
//! signature or combining for any other path is a
//! [`CoreError::PresignaturePathMismatch`], never a signature.

use serde::{Deserialize, Serialize};

use crate::digest::SignRequest;
use crate::error::CoreError;
use crate::hd::DerivationPath;
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
    /// Public data (commitments of every signer) and the derivation path.
    pub public: PresignaturePublicDataRepr,
}

/// Serializable form of [`PresignaturePublicData`].
#[derive(Clone, Serialize, Deserialize)]
pub struct PresignaturePublicDataRepr {
    /// Γ.
    pub gamma: generic_ec::NonZero<crate::Point>,
    /// (Δ̃_j, S̃_j) per signer.
    pub commitments: Vec<(crate::Point, crate::Point)>,
    /// The derivation path the presignature was generated for (the root, `m`, for
    /// records written before paths were bound: those were all root presignatures).
    #[serde(default)]
    pub path: DerivationPath,
}

impl PresignaturePublicDataRepr {
    /// The serializable public data of a presignature generated for `path` (the same
    /// path given to [`crate::Session::presign`]; [`DerivationPath::root`] for none).
    pub fn new(p: &PresignaturePublicData, path: DerivationPath) -> Self {
        PresignaturePublicDataRepr {
            gamma: p.Gamma,
            commitments: p
                .commitments
                .iter()
                .map(|c| (c.tilde_Delta, c.tilde_S))
                .collect(),
            path,
        }
    }

    /// Checks that `requested` is the path this presignature was generated for.
    pub fn check_path(&self, id: &str, requested: &DerivationPath) -> Result<(), CoreError> {
        if self.path.indices() != requested.indices() {
            return Err(CoreError::PresignaturePathMismatch {
                id: id.to_string(),
                bound: self.path.to_string(),
                requested: requested.to_string(),
            });
        }
        Ok(())
    }

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
    /// The derivation path this presignature signs at.
    pub fn path(&self) -> &DerivationPath {
        &self.public.path
    }

    /// Checks that `requested` is this presignature's path (see
    /// [`PresignaturePublicDataRepr::check_path`]).
    pub fn check_path(&self, requested: &DerivationPath) -> Result<(), CoreError> {
        self.public.check_path(&self.id, requested)
    }

    /// Issues this party's partial signature for `request` at `path`, consuming the
    /// presignature. A `path` other than the presignature's own is
    /// [`CoreError::PresignaturePathMismatch`] and issues nothing (the record is
    /// consumed all the same: check with [`Self::check_path`] before taking it from its
    /// store to keep it).
    pub fn issue_partial(
        self,
        request: &SignRequest,
        path: &DerivationPath,
    ) -> Result<PartialSignature, CoreError> {
        self.check_path(path)?;
        Ok(self
            .presignature
            .issue_partial_signature(request.data_to_sign()))
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
/// `path` is the path signed at and `public_key` the key AT that path (the derived
/// child key, [`crate::hd::derive_public_key`]; the master key for the root): a path
/// other than the presignature's is [`CoreError::PresignaturePathMismatch`].
/// Fails with [`CoreError::InvalidSignature`] when a partial does not match its
/// commitment (a cheating or confused peer) or the signature does not verify.
#[allow(clippy::too_many_arguments)]
pub fn combine_pair(
    stored_public: &PresignaturePublicDataRepr,
    signers: &[PartyIndex],
    me: PartyIndex,
    mine: PartialSignature,
    theirs: PartialSignature,
    request: &SignRequest,
    path: &DerivationPath,
    public_key: &crate::Point,
) -> Result<Signature, CoreError> {
    stored_public.check_path("(combining)", path)?;
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
