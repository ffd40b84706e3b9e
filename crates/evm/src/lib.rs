//! The wallet's one Ethereum codec, on alloy.
//!
//! Every party (the device, the recovery agent, the cosigner) reads an Ethereum payload
//! through this crate, so they agree on what is signed:
//!
//! | payload kind | wire bytes | signed preimage (keccak-256) | module |
//! |---|---|---|---|
//! | `ethereum_transaction` | the unsigned signing payload, types 0-4 | the same bytes | [`tx`] |
//! | `ethereum_message` | `"\x19Ethereum Signed Message:\n" ‖ len ‖ message` | the same bytes | [`message`] |
//! | `ethereum_typed_data` | the JSON of `eth_signTypedData_v4` | `0x1901 ‖ domainSeparator ‖ hashStruct` | [`typed_data`] |
//! | `ethereum_authorization` | `0x05 ‖ rlp([chain_id, address, nonce])` | the same bytes | [`authorization`] |
//!
//! Decoding is strict everywhere (what is accepted re-encodes to the bytes given), and
//! nothing here panics on hostile input.

pub mod authorization;
pub mod erc20;
pub mod message;
pub mod tx;
pub mod typed_data;

use std::borrow::Cow;

pub use alloy_primitives::{Address, Signature, B256, U256};
use wallet_types::{DigestKind, PayloadKind};

pub use authorization::{AuthorizationError, AuthorizationFields};
pub use erc20::{decode_erc20, Erc20Call, Erc20Error};
pub use message::MessageError;
pub use tx::{decode_eth_signing_payload, DecodeError, EthTx, SignedTx, UnsignedTx};
pub use typed_data::{Permit, PermitStandard, TypedDataError, TypedDataPayload};

/// Why a payload is not what its kind says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// An Ethereum payload with another digest than keccak-256.
    #[error("{kind} payloads are signed with keccak-256, not {digest}")]
    Digest {
        /// The payload kind.
        kind: &'static str,
        /// The digest asked for.
        digest: &'static str,
    },
    /// An unsigned transaction that does not decode.
    #[error(transparent)]
    Transaction(#[from] DecodeError),
    /// Not an EIP-191 preimage.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// Typed data that does not decode.
    #[error(transparent)]
    TypedData(#[from] TypedDataError),
    /// Not an EIP-7702 authorization payload.
    #[error(transparent)]
    Authorization(#[from] AuthorizationError),
    /// A payload kind of another chain (Bitcoin PSBT inputs: wallet-btc decodes those).
    #[error("{kind} is not an Ethereum payload")]
    NotEthereum {
        /// The payload kind.
        kind: &'static str,
    },
}

/// A payload decoded by its kind.
#[derive(Debug, Clone)]
pub enum Decoded<'a> {
    /// Opaque bytes (signed only where a wallet allows raw signing).
    Raw,
    /// An unsigned transaction.
    Transaction(Box<UnsignedTx>),
    /// An EIP-191 message.
    Message(&'a [u8]),
    /// EIP-712 typed data.
    TypedData(Box<TypedDataPayload>),
    /// An EIP-7702 authorization.
    Authorization(AuthorizationFields),
}

impl Decoded<'_> {
    /// The preimage every party signs, given the wire `payload` this was decoded from.
    pub fn preimage<'p>(&self, payload: &'p [u8]) -> Cow<'p, [u8]> {
        match self {
            Decoded::TypedData(t) => Cow::Owned(t.preimage().to_vec()),
            _ => Cow::Borrowed(payload),
        }
    }
}

/// Decodes the wire `payload` of `kind` (Ethereum kinds need keccak-256).
pub fn decode(
    kind: PayloadKind,
    digest: DigestKind,
    payload: &[u8],
) -> Result<Decoded<'_>, PayloadError> {
    let ethereum = !matches!(kind, PayloadKind::Raw | PayloadKind::BitcoinPsbtInput);
    if ethereum && digest != DigestKind::Keccak256 {
        return Err(PayloadError::Digest {
            kind: kind.as_str(),
            digest: digest.as_str(),
        });
    }
    Ok(match kind {
        PayloadKind::Raw => Decoded::Raw,
        PayloadKind::EthereumTransaction => {
            Decoded::Transaction(Box::new(UnsignedTx::decode(payload)?))
        }
        PayloadKind::EthereumMessage => Decoded::Message(message::decode(payload)?),
        PayloadKind::EthereumTypedData => {
            Decoded::TypedData(Box::new(TypedDataPayload::parse(payload)?))
        }
        PayloadKind::EthereumAuthorization => {
            Decoded::Authorization(AuthorizationFields::decode(payload)?)
        }
        PayloadKind::BitcoinPsbtInput => {
            return Err(PayloadError::NotEthereum {
                kind: kind.as_str(),
            })
        }
    })
}

/// The preimage the parties sign for the wire `payload` of `kind`: the derived EIP-712
/// preimage for typed data (which is decoded for it), the payload itself otherwise
/// (not decoded here).
pub fn signing_preimage(kind: PayloadKind, payload: &[u8]) -> Result<Cow<'_, [u8]>, PayloadError> {
    match kind {
        PayloadKind::EthereumTypedData => Ok(Cow::Owned(
            TypedDataPayload::parse(payload)?.preimage().to_vec(),
        )),
        _ => Ok(Cow::Borrowed(payload)),
    }
}

/// Why a string is not an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not `0x` + 40 hex digits.
    #[error("not an address (0x + 40 hex digits)")]
    Malformed,
    /// Mixed case that is not the EIP-55 checksum.
    #[error("a wrong EIP-55 checksum (mixed case); check the address")]
    Checksum,
}

/// An address (`0x` optional + 40 hex digits). Mixed case must be a valid EIP-55
/// checksum; all lower or all upper case is taken as is. The one rule for addresses
/// users type (CLI, bindings).
pub fn parse_address(s: &str) -> Result<Address, AddressError> {
    let s = s.trim();
    let hex = s.strip_prefix("0x").unwrap_or(s);
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AddressError::Malformed);
    }
    let mixed =
        hex.bytes().any(|b| b.is_ascii_lowercase()) && hex.bytes().any(|b| b.is_ascii_uppercase());
    if mixed {
        Address::parse_checksummed(format!("0x{hex}"), None).map_err(|_| AddressError::Checksum)
    } else {
        hex.parse().map_err(|_| AddressError::Malformed)
    }
}

/// `0x` + lowercase hex of an address (EIP-55 checksums: [`Address::to_checksum`]).
pub fn hex_address(a: &Address) -> String {
    format!("{a:#x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_with_their_checksum() {
        let a = parse_address("0x52908400098527886E0F7030069857D2E4169EE7").unwrap();
        assert_eq!(
            a,
            parse_address("52908400098527886e0f7030069857d2e4169ee7").unwrap()
        );
        assert_eq!(
            parse_address("0x52908400098527886E0F7030069857D2E4169Ee7"),
            Err(AddressError::Checksum)
        );
        for bad in [
            "",
            "0x",
            "0x1234",
            "0xzz908400098527886e0f7030069857d2e4169ee7",
        ] {
            assert_eq!(parse_address(bad), Err(AddressError::Malformed), "{bad}");
        }
    }
}
