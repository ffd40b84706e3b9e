//! Trusted-dealer import of an existing private key (**a single point of failure**).
//!
//! The dealer sees the whole key while splitting it. Use only to migrate an existing
//! key into the threshold wallet, on an offline machine, and prefer a fresh DKG.

use generic_ec::{NonZero, SecretScalar};

use crate::error::CoreError;
use crate::{Curve, IncompleteKeyShare, SecurityLevel, PARTIES, THRESHOLD};

/// Splits `secret` (32 bytes, big-endian) into 2-of-3 HD-capable key shares.
pub fn import_private_key(secret: &[u8]) -> Result<Vec<IncompleteKeyShare>, CoreError> {
    let scalar = generic_ec::Scalar::<Curve>::from_be_bytes(secret)
        .map_err(|_| CoreError::invalid("private key", "must be 32 bytes below the curve order"))?;
    let mut scalar = scalar;
    let sk = NonZero::from_secret_scalar(SecretScalar::new(&mut scalar))
        .ok_or_else(|| CoreError::invalid("private key", "must not be zero"))?;
    cggmp24::trusted_dealer::builder::<Curve, SecurityLevel>(PARTIES)
        .set_threshold(Some(THRESHOLD))
        .set_shared_secret_key(sk)
        .hd_wallet(true)
        .generate_core_shares(&mut rand_core::OsRng)
        .map_err(|e| CoreError::invalid("imported key", e))
}
