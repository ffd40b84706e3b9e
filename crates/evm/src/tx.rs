//! Unsigned Ethereum transactions (`alloy-consensus`): the signing payload of every
//! type, decoded strictly, and the signed transaction serialized from it.
//!
//! The decoder is strict: what it accepts re-encodes to exactly the bytes given
//! (canonical RLP, EIP-155 `r = s = 0`, no trailing bytes). The digest every party signs
//! is computed over those bytes, so the policy's reading of a payload is the only
//! reading there is.

use alloy_consensus::transaction::RlpEcdsaDecodableTx;
use alloy_consensus::{
    EthereumTxEnvelope, SignableTransaction, Signed, Transaction, TxEip1559, TxEip2930, TxEip4844,
    TxEip7702, TxLegacy,
};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{keccak256, Address, Bytes, Signature, TxKind, B256, U256};
use alloy_rlp::Decodable;

use crate::erc20::{decode_erc20, Erc20Call, Erc20Error};

/// Gas per blob (EIP-4844 `GAS_PER_BLOB`): what one blob can cost is this many times
/// `max_fee_per_blob_gas`.
pub const GAS_PER_BLOB: u64 = 131_072;

/// Why a transaction payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Empty payload.
    #[error("empty transaction payload")]
    Empty,
    /// A transaction type that does not exist (yet): `0x05..=0x7f`, or `0x00`.
    #[error("unknown transaction type 0x{0:02x}: legacy, 0x01 (EIP-2930), 0x02 (EIP-1559), 0x03 (EIP-4844) and 0x04 (EIP-7702) exist")]
    UnsupportedType(u8),
    /// The bytes are not a transaction of their type.
    #[error("malformed {kind} transaction: {reason}")]
    Malformed {
        /// Transaction kind.
        kind: &'static str,
        /// The RLP error.
        reason: String,
    },
    /// Bytes after the transaction.
    #[error("{0} trailing bytes after the transaction")]
    Trailing(usize),
    /// Decodes, but is not the canonical signing payload of what it decodes to (e.g.
    /// EIP-155 `r`/`s` not empty, a non-canonical length).
    #[error("not a canonical signing payload (it does not re-encode to the same bytes)")]
    NonCanonical,
}

/// An unsigned Ethereum transaction as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthTx {
    /// 0 legacy, 1 EIP-2930, 2 EIP-1559, 3 EIP-4844, 4 EIP-7702.
    pub tx_type: u8,
    /// Chain id (`None` for a pre-EIP-155 legacy transaction).
    pub chain_id: Option<u64>,
    /// Sender nonce.
    pub nonce: u64,
    /// Destination; `None` for contract creation.
    pub to: Option<Address>,
    /// Value in wei.
    pub value: U256,
    /// Gas limit.
    pub gas_limit: u64,
    /// `max_fee_per_gas` (EIP-1559) or `gas_price` (legacy, EIP-2930), wei per gas.
    pub max_fee_per_gas: u128,
    /// `max_priority_fee_per_gas` (EIP-1559 only; bounded by `max_fee_per_gas`, so the
    /// limits need not count it).
    pub max_priority_fee_per_gas: Option<u128>,
    /// Calldata (or init code).
    pub input: Bytes,
    /// EIP-4844: the most the transaction pays per blob gas, and how many blobs.
    pub max_fee_per_blob_gas: Option<u128>,
    /// EIP-4844: the versioned hashes of its blobs.
    pub blob_hashes: usize,
    /// EIP-7702: the authorizations the transaction carries (signed by their
    /// authorities, not by this signature).
    pub authorizations: Vec<crate::authorization::AuthorizationFields>,
}

impl EthTx {
    /// The most the transaction can pay in fees: `gas_limit × max_fee_per_gas`, plus
    /// `blobs × GAS_PER_BLOB × max_fee_per_blob_gas` for a blob transaction.
    pub fn max_fee(&self) -> U256 {
        let execution = U256::from(self.gas_limit).saturating_mul(U256::from(self.max_fee_per_gas));
        let blobs = U256::from(self.blob_hashes as u64)
            .saturating_mul(U256::from(GAS_PER_BLOB))
            .saturating_mul(U256::from(self.max_fee_per_blob_gas.unwrap_or(0)));
        execution.saturating_add(blobs)
    }

    /// `value` + the maximum fee: what the value limits count.
    pub fn max_spend(&self) -> U256 {
        self.value.saturating_add(self.max_fee())
    }

    /// The ERC-20 call in the calldata (contract calls only).
    pub fn erc20(&self) -> Option<Result<Erc20Call, Erc20Error>> {
        self.to.and(decode_erc20(&self.input))
    }

    fn from_alloy<T: Transaction>(tx_type: u8, tx: &T) -> Self {
        EthTx {
            tx_type,
            chain_id: tx.chain_id(),
            nonce: tx.nonce(),
            to: match tx.kind() {
                TxKind::Call(a) => Some(a),
                TxKind::Create => None,
            },
            value: tx.value(),
            gas_limit: tx.gas_limit(),
            max_fee_per_gas: tx.max_fee_per_gas(),
            max_priority_fee_per_gas: tx.max_priority_fee_per_gas(),
            input: tx.input().clone(),
            max_fee_per_blob_gas: tx.max_fee_per_blob_gas(),
            blob_hashes: tx.blob_versioned_hashes().map_or(0, <[B256]>::len),
            authorizations: tx
                .authorization_list()
                .unwrap_or_default()
                .iter()
                .map(|a| crate::authorization::AuthorizationFields::from_alloy(a))
                .collect(),
        }
    }
}

/// An unsigned transaction of any type, as decoded from its signing payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsignedTx {
    /// Legacy (pre- or post-EIP-155).
    Legacy(TxLegacy),
    /// `0x01`.
    Eip2930(TxEip2930),
    /// `0x02`.
    Eip1559(TxEip1559),
    /// `0x03`: the blob transaction's signing envelope (the sidecar is not signed).
    Eip4844(TxEip4844),
    /// `0x04`.
    Eip7702(TxEip7702),
}

impl UnsignedTx {
    /// Decodes an unsigned transaction signing payload: legacy RLP (pre- or
    /// post-EIP-155) or `type ‖ rlp(fields)` for types `0x01` to `0x04`. Strict: the
    /// payload must be exactly what the transaction encodes for signing.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        fn typed<T: RlpEcdsaDecodableTx + SignableTransaction<Signature>>(
            kind: &'static str,
            body: &[u8],
        ) -> Result<T, DecodeError> {
            let mut buf = body;
            let tx = T::rlp_decode(&mut buf).map_err(|e| DecodeError::Malformed {
                kind,
                reason: e.to_string(),
            })?;
            if !buf.is_empty() {
                return Err(DecodeError::Trailing(buf.len()));
            }
            Ok(tx)
        }
        let first = *payload.first().ok_or(DecodeError::Empty)?;
        let body = &payload[1..];
        let tx = match first {
            0xc0..=0xff => {
                let mut buf = payload;
                let tx = TxLegacy::decode(&mut buf).map_err(|e| DecodeError::Malformed {
                    kind: "legacy",
                    reason: e.to_string(),
                })?;
                if !buf.is_empty() {
                    return Err(DecodeError::Trailing(buf.len()));
                }
                UnsignedTx::Legacy(tx)
            }
            0x01 => UnsignedTx::Eip2930(typed("EIP-2930", body)?),
            0x02 => UnsignedTx::Eip1559(typed("EIP-1559", body)?),
            0x03 => UnsignedTx::Eip4844(typed("EIP-4844", body)?),
            0x04 => UnsignedTx::Eip7702(typed("EIP-7702", body)?),
            0x00..=0x7f => return Err(DecodeError::UnsupportedType(first)),
            _ => {
                return Err(DecodeError::Malformed {
                    kind: "legacy",
                    reason: "the payload is neither an RLP list nor a typed transaction".into(),
                })
            }
        };
        if tx.signing_payload() != payload {
            return Err(DecodeError::NonCanonical);
        }
        Ok(tx)
    }

    /// The transaction type: 0 (legacy) to 4.
    pub fn tx_type(&self) -> u8 {
        match self {
            UnsignedTx::Legacy(_) => 0,
            UnsignedTx::Eip2930(_) => 1,
            UnsignedTx::Eip1559(_) => 2,
            UnsignedTx::Eip4844(_) => 3,
            UnsignedTx::Eip7702(_) => 4,
        }
    }

    /// The bytes whose keccak-256 is signed.
    pub fn signing_payload(&self) -> Vec<u8> {
        match self {
            UnsignedTx::Legacy(t) => t.encoded_for_signing(),
            UnsignedTx::Eip2930(t) => t.encoded_for_signing(),
            UnsignedTx::Eip1559(t) => t.encoded_for_signing(),
            UnsignedTx::Eip4844(t) => t.encoded_for_signing(),
            UnsignedTx::Eip7702(t) => t.encoded_for_signing(),
        }
    }

    /// What the policy reads.
    pub fn fields(&self) -> EthTx {
        let ty = self.tx_type();
        match self {
            UnsignedTx::Legacy(t) => EthTx::from_alloy(ty, t),
            UnsignedTx::Eip2930(t) => EthTx::from_alloy(ty, t),
            UnsignedTx::Eip1559(t) => EthTx::from_alloy(ty, t),
            UnsignedTx::Eip4844(t) => EthTx::from_alloy(ty, t),
            UnsignedTx::Eip7702(t) => EthTx::from_alloy(ty, t),
        }
    }

    /// The signed transaction: its EIP-2718 encoding (what `eth_sendRawTransaction`
    /// takes; a legacy transaction's `v` is EIP-155's when it has a chain id) and its
    /// hash. A blob transaction is serialized without its sidecar (the caller attaches
    /// the blobs for the network).
    pub fn into_signed(self, signature: Signature) -> SignedTx {
        fn finish<T>(signed: Signed<T>) -> SignedTx
        where
            EthereumTxEnvelope<TxEip4844>: From<Signed<T>>,
        {
            let raw = EthereumTxEnvelope::<TxEip4844>::from(signed).encoded_2718();
            SignedTx {
                hash: keccak256(&raw),
                raw,
            }
        }
        match self {
            UnsignedTx::Legacy(t) => finish(t.into_signed(signature)),
            UnsignedTx::Eip2930(t) => finish(t.into_signed(signature)),
            UnsignedTx::Eip1559(t) => finish(t.into_signed(signature)),
            UnsignedTx::Eip4844(t) => finish(t.into_signed(signature)),
            UnsignedTx::Eip7702(t) => finish(t.into_signed(signature)),
        }
    }
}

/// A signed transaction, ready to broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// The EIP-2718 encoding (`eth_sendRawTransaction`).
    pub raw: Vec<u8>,
    /// The transaction hash (keccak-256 of `raw`).
    pub hash: B256,
}

/// Decodes an unsigned transaction signing payload into what the policy reads
/// ([`UnsignedTx::decode`], then [`UnsignedTx::fields`]).
pub fn decode_eth_signing_payload(payload: &[u8]) -> Result<EthTx, DecodeError> {
    UnsignedTx::decode(payload).map(|t| t.fields())
}
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The EIP-155 example transaction's signing payload (from the EIP text).
    pub(crate) const EIP155: &str = "ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080";

    pub(crate) fn eip1559(chain: u64, to: Option<Address>, value: U256, input: Vec<u8>) -> Vec<u8> {
        TxEip1559 {
            chain_id: chain,
            nonce: 7,
            gas_limit: 21_000,
            max_fee_per_gas: 30_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: to.map_or(TxKind::Create, TxKind::Call),
            value,
            access_list: Default::default(),
            input: input.into(),
        }
        .encoded_for_signing()
    }

    #[test]
    fn decodes_the_eip155_vector() {
        let p = hex::decode(EIP155).unwrap();
        let tx = decode_eth_signing_payload(&p).unwrap();
        assert_eq!(tx.tx_type, 0);
        assert_eq!(tx.chain_id, Some(1));
        assert_eq!(tx.nonce, 9);
        assert_eq!(tx.to, Some(Address::repeat_byte(0x35)));
        assert_eq!(tx.value, U256::from(10u128.pow(18)));
        assert_eq!(tx.gas_limit, 21_000);
        assert_eq!(tx.max_fee_per_gas, 20_000_000_000);
        assert_eq!(tx.max_fee(), U256::from(21_000u64 * 20_000_000_000));
        assert_eq!(
            hex::encode(keccak256(&p)),
            "daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53"
        );
    }

    #[test]
    fn decodes_every_supported_type() {
        let legacy = TxLegacy {
            chain_id: None,
            nonce: 0,
            gas_price: 1,
            gas_limit: 21_000,
            to: TxKind::Call(Address::repeat_byte(1)),
            value: U256::from(5),
            input: Bytes::new(),
        };
        let tx = decode_eth_signing_payload(&legacy.encoded_for_signing()).unwrap();
        assert_eq!((tx.tx_type, tx.chain_id), (0, None));
        let t2930 = TxEip2930 {
            chain_id: 5,
            nonce: 0,
            gas_price: 20_000_000_000,
            gas_limit: 21_000,
            to: TxKind::Call(Address::repeat_byte(2)),
            value: U256::from(77),
            access_list: Default::default(),
            input: Bytes::new(),
        };
        let tx = decode_eth_signing_payload(&t2930.encoded_for_signing()).unwrap();
        assert_eq!(
            (tx.tx_type, tx.chain_id, tx.value, tx.max_fee_per_gas),
            (1, Some(5), U256::from(77), 20_000_000_000)
        );
        let p = eip1559(1, None, U256::ZERO, vec![0x60, 0x00]);
        let tx = decode_eth_signing_payload(&p).unwrap();
        assert_eq!((tx.tx_type, tx.to, tx.input.len()), (2, None, 2));
        assert_eq!(tx.max_fee(), U256::from(21_000u128 * 30_000_000_000));
    }

    #[test]
    fn refuses_malformed_and_non_canonical() {
        assert_eq!(decode_eth_signing_payload(&[]), Err(DecodeError::Empty));
        for t in [0u8, 5, 0x7f] {
            assert_eq!(
                decode_eth_signing_payload(&[t, 0xc0]),
                Err(DecodeError::UnsupportedType(t))
            );
        }
        let mut p = hex::decode(EIP155).unwrap();
        p.push(0);
        assert!(decode_eth_signing_payload(&p).is_err());
        let p = hex::decode(EIP155).unwrap();
        assert!(decode_eth_signing_payload(&p[..p.len() - 3]).is_err());
        // EIP-155 with r = 1 instead of empty.
        let mut bad = p.clone();
        let n = bad.len();
        bad[n - 1] = 0x01;
        assert_eq!(
            decode_eth_signing_payload(&bad),
            Err(DecodeError::NonCanonical)
        );
        assert!(decode_eth_signing_payload(&[0xc0]).is_err());
        assert!(decode_eth_signing_payload(&[0x85, 1, 2, 3, 4, 5]).is_err());
        let mut typed = eip1559(1, Some(Address::ZERO), U256::ZERO, vec![]);
        typed.push(0);
        assert_eq!(
            decode_eth_signing_payload(&typed),
            Err(DecodeError::Trailing(1))
        );
    }

    #[test]
    fn the_eip155_example_serializes_to_its_published_signed_transaction() {
        let tx = UnsignedTx::decode(&hex::decode(EIP155).unwrap()).unwrap();
        let r: U256 = "0x28ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276"
            .parse()
            .unwrap();
        let s: U256 = "0x67cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
            .parse()
            .unwrap();
        let signed = tx.into_signed(Signature::new(r, s, false));
        assert_eq!(
            hex::encode(&signed.raw),
            "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
        );
        assert_eq!(signed.hash, keccak256(&signed.raw));
    }

    fn blob_and_7702() -> (TxEip4844, TxEip7702) {
        let blob = TxEip4844 {
            chain_id: 31337,
            nonce: 1,
            gas_limit: 21_000,
            max_fee_per_gas: 10,
            max_priority_fee_per_gas: 1,
            to: Address::repeat_byte(4),
            value: U256::from(9),
            access_list: Default::default(),
            blob_versioned_hashes: vec![B256::repeat_byte(1), B256::repeat_byte(2)],
            max_fee_per_blob_gas: 3,
            input: Bytes::new(),
        };
        let auth = crate::AuthorizationFields {
            chain_id: U256::from(31337),
            delegate: Address::repeat_byte(0xd1),
            nonce: 2,
        }
        .into_signed(Signature::new(U256::from(1), U256::from(2), true));
        let t7702 = TxEip7702 {
            chain_id: 31337,
            nonce: 1,
            gas_limit: 100_000,
            max_fee_per_gas: 10,
            max_priority_fee_per_gas: 1,
            to: Address::repeat_byte(5),
            value: U256::ZERO,
            access_list: Default::default(),
            authorization_list: vec![auth],
            input: Bytes::new(),
        };
        (blob, t7702)
    }

    #[test]
    fn decodes_blob_and_7702_transactions() {
        let (blob, t7702) = blob_and_7702();
        let tx = decode_eth_signing_payload(&blob.encoded_for_signing()).unwrap();
        assert_eq!(
            (tx.tx_type, tx.blob_hashes, tx.max_fee_per_blob_gas),
            (3, 2, Some(3))
        );
        // 21,000 × 10 + 2 blobs × 131,072 × 3.
        assert_eq!(tx.max_fee(), U256::from(210_000u64 + 2 * 131_072 * 3));
        let tx = decode_eth_signing_payload(&t7702.encoded_for_signing()).unwrap();
        assert_eq!(tx.tx_type, 4);
        assert_eq!(tx.authorizations.len(), 1);
        assert_eq!(tx.authorizations[0].delegate, Address::repeat_byte(0xd1));
        assert_eq!(tx.authorizations[0].nonce, 2);
    }

    #[test]
    fn every_type_signs_into_an_envelope_that_decodes_back() {
        use alloy_eips::eip2718::Decodable2718;
        let (blob, t7702) = blob_and_7702();
        let payloads = [
            hex::decode(EIP155).unwrap(),
            eip1559(1, Some(Address::ZERO), U256::from(1), vec![]),
            blob.encoded_for_signing(),
            t7702.encoded_for_signing(),
        ];
        let sig = Signature::new(U256::from(11), U256::from(22), true);
        for p in payloads {
            let tx = UnsignedTx::decode(&p).unwrap();
            let ty = tx.tx_type();
            let signed = tx.into_signed(sig);
            let back =
                EthereumTxEnvelope::<TxEip4844>::decode_2718(&mut signed.raw.as_slice()).unwrap();
            assert_eq!(back.tx_type() as u8, ty);
            assert_eq!(back.signature().r(), U256::from(11));
            assert!(back.signature().v());
            assert_eq!(*back.tx_hash(), signed.hash);
        }
    }
}
