//! EIP-7702 authorizations (`alloy-eips`): the signing payload
//! `0x05 ‖ rlp([chain_id, address, nonce])`, decoded strictly, and the signed
//! authorization assembled from a signature.

use alloy_eips::eip7702::{Authorization, SignedAuthorization};
use alloy_primitives::{Address, Signature, U256};
use alloy_rlp::{Decodable, Encodable};

/// The EIP-7702 signing-payload prefix (`MAGIC`).
pub const MAGIC: u8 = 0x05;

/// Why an authorization payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    /// It does not start with `0x05`.
    #[error("an EIP-7702 authorization payload starts with 0x05")]
    Magic,
    /// The RLP is not `[chain_id, address, nonce]`.
    #[error("malformed EIP-7702 authorization: {0}")]
    Malformed(String),
    /// Decodes, but does not re-encode to the same bytes (or has bytes after it).
    #[error("not a canonical EIP-7702 authorization payload")]
    NonCanonical,
}

/// The fields of an authorization (for policy and audit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationFields {
    /// Chain id (`0`: valid on every chain).
    pub chain_id: U256,
    /// The contract whose code the account delegates to.
    pub delegate: Address,
    /// The authority's account nonce it is valid for.
    pub nonce: u64,
}

impl AuthorizationFields {
    pub(crate) fn from_alloy(a: &Authorization) -> Self {
        AuthorizationFields {
            chain_id: a.chain_id,
            delegate: a.address,
            nonce: a.nonce,
        }
    }

    /// The alloy authorization.
    pub fn to_alloy(&self) -> Authorization {
        Authorization {
            chain_id: self.chain_id,
            address: self.delegate,
            nonce: self.nonce,
        }
    }

    /// The signing payload `0x05 ‖ rlp([chain_id, address, nonce])`.
    pub fn signing_payload(&self) -> Vec<u8> {
        let auth = self.to_alloy();
        let mut out = Vec::with_capacity(1 + auth.length());
        out.push(MAGIC);
        auth.encode(&mut out);
        out
    }

    /// Decodes a signing payload strictly.
    pub fn decode(payload: &[u8]) -> Result<Self, AuthorizationError> {
        let body = match payload.split_first() {
            Some((&MAGIC, body)) => body,
            _ => return Err(AuthorizationError::Magic),
        };
        let mut buf = body;
        let auth = Authorization::decode(&mut buf)
            .map_err(|e| AuthorizationError::Malformed(e.to_string()))?;
        let fields = AuthorizationFields::from_alloy(&auth);
        if !buf.is_empty() || fields.signing_payload() != payload {
            return Err(AuthorizationError::NonCanonical);
        }
        Ok(fields)
    }

    /// The signed authorization (what a type-4 transaction's `authorization_list`
    /// carries).
    pub fn into_signed(self, signature: Signature) -> SignedAuthorization {
        self.to_alloy().into_signed(signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{address, keccak256};

    #[test]
    fn payload_hashes_like_alloy_and_round_trips() {
        let f = AuthorizationFields {
            chain_id: U256::from(31337),
            delegate: address!("00000000000000000000000000000000000000d1"),
            nonce: 3,
        };
        let p = f.signing_payload();
        assert_eq!(keccak256(&p), f.to_alloy().signature_hash());
        assert_eq!(AuthorizationFields::decode(&p).unwrap(), f);
    }

    #[test]
    fn refuses_bad_payloads() {
        let f = AuthorizationFields {
            chain_id: U256::from(1),
            delegate: Address::repeat_byte(7),
            nonce: 0,
        };
        let p = f.signing_payload();
        assert_eq!(
            AuthorizationFields::decode(&p[1..]),
            Err(AuthorizationError::Magic)
        );
        assert_eq!(
            AuthorizationFields::decode(&[]),
            Err(AuthorizationError::Magic)
        );
        let mut long = p.clone();
        long.push(0);
        assert_eq!(
            AuthorizationFields::decode(&long),
            Err(AuthorizationError::NonCanonical)
        );
        assert!(matches!(
            AuthorizationFields::decode(&p[..p.len() - 1]),
            Err(AuthorizationError::Malformed(_))
        ));
    }
}
