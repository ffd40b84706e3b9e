//! Small Ethereum helpers: the `v` style of an unsigned transaction payload, and an
//! EIP-1559 signing-payload builder (minimal RLP), for tools and tests.

use crate::error::MpcError;
use crate::types::ChainStyle;

/// The [`ChainStyle`] of an unsigned transaction signing payload: typed transactions
/// (first byte `0x01..=0x7f`, e.g. `0x02` for EIP-1559) use `v = y_parity`; a legacy
/// RLP list uses EIP-155 when `chain_id` is given, else pre-EIP-155 `v = 27/28`.
pub fn chain_style_for_payload(
    payload: &[u8],
    chain_id: Option<u64>,
) -> Result<ChainStyle, MpcError> {
    match payload.first() {
        None => Err(MpcError::input("the transaction payload is empty")),
        Some(0x01..=0x7f) => Ok(ChainStyle::Typed),
        Some(0xc0..=0xff) => Ok(match chain_id {
            Some(id) => ChainStyle::Eip155 { chain_id: id },
            None => ChainStyle::Legacy,
        }),
        Some(b) => Err(MpcError::input(format!(
            "not an unsigned Ethereum transaction payload (first byte 0x{b:02x}; expected a type byte 0x01-0x7f or an RLP list)"
        ))),
    }
}

/// RLP encoding of a byte string.
pub fn rlp_bytes(b: &[u8]) -> Vec<u8> {
    if b.len() == 1 && b[0] < 0x80 {
        return b.to_vec();
    }
    let mut out = rlp_len(0x80, b.len());
    out.extend_from_slice(b);
    out
}

/// RLP encoding of an unsigned integer (big-endian, no leading zeros).
pub fn rlp_uint(v: u128) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let first = bytes.iter().position(|&x| x != 0).unwrap_or(bytes.len());
    rlp_bytes(&bytes[first..])
}

/// RLP encoding of a list of already-encoded items.
pub fn rlp_list(items: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = items.concat();
    let mut out = rlp_len(0xc0, body.len());
    out.extend_from_slice(&body);
    out
}

fn rlp_len(offset: u8, len: usize) -> Vec<u8> {
    if len < 56 {
        return vec![offset + len as u8];
    }
    let bytes = (len as u64).to_be_bytes();
    let first = bytes.iter().position(|&x| x != 0).unwrap_or(7);
    let mut out = vec![offset + 55 + (8 - first) as u8];
    out.extend_from_slice(&bytes[first..]);
    out
}

/// An unsigned EIP-1559 transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eip1559Tx {
    /// Chain id.
    pub chain_id: u64,
    /// Nonce.
    pub nonce: u64,
    /// Max priority fee per gas (wei).
    pub max_priority_fee_per_gas: u128,
    /// Max fee per gas (wei).
    pub max_fee_per_gas: u128,
    /// Gas limit.
    pub gas_limit: u64,
    /// Destination.
    pub to: [u8; 20],
    /// Value (wei).
    pub value: u128,
    /// Call data.
    pub data: Vec<u8>,
}

impl Eip1559Tx {
    /// The signing payload `0x02 || rlp([chain_id, nonce, max_priority_fee_per_gas,
    /// max_fee_per_gas, gas_limit, to, value, data, access_list])` (empty access list).
    pub fn signing_payload(&self) -> Vec<u8> {
        let mut out = vec![0x02];
        out.extend(rlp_list(&[
            rlp_uint(u128::from(self.chain_id)),
            rlp_uint(u128::from(self.nonce)),
            rlp_uint(self.max_priority_fee_per_gas),
            rlp_uint(self.max_fee_per_gas),
            rlp_uint(u128::from(self.gas_limit)),
            rlp_bytes(&self.to),
            rlp_uint(self.value),
            rlp_bytes(&self.data),
            rlp_list(&[]),
        ]));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlp_vectors() {
        assert_eq!(rlp_uint(0), vec![0x80]);
        assert_eq!(rlp_uint(15), vec![0x0f]);
        assert_eq!(rlp_uint(1024), vec![0x82, 0x04, 0x00]);
        assert_eq!(rlp_bytes(b"dog"), vec![0x83, b'd', b'o', b'g']);
        assert_eq!(
            rlp_list(&[rlp_bytes(b"cat"), rlp_bytes(b"dog")]),
            hex::decode("c88363617483646f67").unwrap()
        );
        let long = vec![0x61u8; 56];
        assert_eq!(&rlp_bytes(&long)[..2], &[0xb8, 56]);
    }

    #[test]
    fn styles() {
        assert_eq!(
            chain_style_for_payload(&[0x02, 0xc0], None).unwrap(),
            ChainStyle::Typed
        );
        assert_eq!(
            chain_style_for_payload(&[0xc0], Some(1)).unwrap(),
            ChainStyle::Eip155 { chain_id: 1 }
        );
        assert_eq!(
            chain_style_for_payload(&[0xc0], None).unwrap(),
            ChainStyle::Legacy
        );
        assert!(chain_style_for_payload(&[0x80], None).is_err());
        assert!(chain_style_for_payload(&[], None).is_err());
    }
}
