//! Conversions between the proto enums and `mpc-core` types.

use mpc_core::{AccountKind, DigestKind};

use crate::pb;

/// A proto value that has no `mpc-core` counterpart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The digest kind is unspecified or unknown.
    #[error("digest kind {0} is not supported (use KECCAK256, DOUBLE_SHA256 or SHA256)")]
    DigestKind(i32),
    /// The account kind is unknown.
    #[error("account kind {0} is not supported (use HD or INDEPENDENT)")]
    AccountKind(i32),
    /// The payload kind is unknown.
    #[error("payload kind {0} is not supported")]
    PayloadKind(i32),
}

/// `pb::DigestKind` (as its wire `i32`) → [`DigestKind`]. `UNSPECIFIED` is refused.
pub fn digest_kind_from_proto(v: i32) -> Result<DigestKind, ConvertError> {
    match pb::DigestKind::try_from(v) {
        Ok(pb::DigestKind::Keccak256) => Ok(DigestKind::Keccak256),
        Ok(pb::DigestKind::DoubleSha256) => Ok(DigestKind::DoubleSha256),
        Ok(pb::DigestKind::Sha256) => Ok(DigestKind::Sha256),
        Ok(pb::DigestKind::Unspecified) | Err(_) => Err(ConvertError::DigestKind(v)),
    }
}

/// [`DigestKind`] → `pb::DigestKind`.
pub fn digest_kind_to_proto(k: DigestKind) -> pb::DigestKind {
    match k {
        DigestKind::Keccak256 => pb::DigestKind::Keccak256,
        DigestKind::DoubleSha256 => pb::DigestKind::DoubleSha256,
        DigestKind::Sha256 => pb::DigestKind::Sha256,
    }
}

/// `pb::AccountKind` (as its wire `i32`) → [`AccountKind`]. `UNSPECIFIED` means HD.
pub fn account_kind_from_proto(v: i32) -> Result<AccountKind, ConvertError> {
    match pb::AccountKind::try_from(v) {
        Ok(pb::AccountKind::Unspecified) | Ok(pb::AccountKind::Hd) => Ok(AccountKind::Hd),
        Ok(pb::AccountKind::Independent) => Ok(AccountKind::Independent),
        Err(_) => Err(ConvertError::AccountKind(v)),
    }
}

/// [`AccountKind`] → `pb::AccountKind`.
pub fn account_kind_to_proto(k: AccountKind) -> pb::AccountKind {
    match k {
        AccountKind::Hd => pb::AccountKind::Hd,
        AccountKind::Independent => pb::AccountKind::Independent,
    }
}

/// `pb::PayloadKind` (as its wire `i32`) → `pb::PayloadKind`; `UNSPECIFIED` means RAW.
pub fn payload_kind_from_proto(v: i32) -> Result<pb::PayloadKind, ConvertError> {
    match pb::PayloadKind::try_from(v) {
        Ok(pb::PayloadKind::Unspecified) => Ok(pb::PayloadKind::Raw),
        Ok(k) => Ok(k),
        Err(_) => Err(ConvertError::PayloadKind(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for k in [
            DigestKind::Keccak256,
            DigestKind::DoubleSha256,
            DigestKind::Sha256,
        ] {
            assert_eq!(
                digest_kind_from_proto(digest_kind_to_proto(k) as i32),
                Ok(k)
            );
        }
        for k in [AccountKind::Hd, AccountKind::Independent] {
            assert_eq!(
                account_kind_from_proto(account_kind_to_proto(k) as i32),
                Ok(k)
            );
        }
        assert!(digest_kind_from_proto(0).is_err());
        assert!(digest_kind_from_proto(99).is_err());
        assert_eq!(account_kind_from_proto(0), Ok(AccountKind::Hd));
        assert!(account_kind_from_proto(7).is_err());
        assert_eq!(payload_kind_from_proto(0), Ok(pb::PayloadKind::Raw));
        assert!(payload_kind_from_proto(42).is_err());
    }
}
