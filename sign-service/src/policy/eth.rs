//! Ethereum payload decoding with alloy: the unsigned transaction signing payload
//! (`alloy-consensus`: legacy, EIP-2930, EIP-1559) and the ERC-20 calls in its calldata
//! (`alloy-sol-types`).
//!
//! Both decoders are strict: what they accept re-encodes to exactly the bytes given
//! (canonical RLP, EIP-155 `r = s = 0`, no trailing bytes; canonical ABI words, no
//! trailing calldata). The digest the cosigner signs is computed over those bytes, so
//! the policy's reading of a payload is the only reading there is.

use alloy_consensus::transaction::RlpEcdsaDecodableTx;
use alloy_consensus::{SignableTransaction, Transaction, TxEip1559, TxEip2930, TxLegacy};
use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_rlp::Decodable;
use alloy_sol_types::{sol, SolCall};

sol! {
    /// The ERC-20 calls the policy reads (EIP-20, and OpenZeppelin's
    /// `increaseAllowance`).
    interface IERC20 {
        function transfer(address to, uint256 amount) external returns (bool);
        function transferFrom(address from, address to, uint256 amount) external returns (bool);
        function approve(address spender, uint256 amount) external returns (bool);
        function increaseAllowance(address spender, uint256 addedValue) external returns (bool);
    }
}

/// Why a transaction payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Empty payload.
    #[error("empty transaction payload")]
    Empty,
    /// A transaction type the cosigner does not decode (yet): EIP-4844 (`0x03`),
    /// EIP-7702 (`0x04`) or an unknown one.
    #[error("unsupported transaction type 0x{0:02x}: the cosigner decodes legacy, 0x01 (EIP-2930) and 0x02 (EIP-1559) transactions")]
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

/// An ERC-20 call decoded from calldata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Erc20Call {
    /// `transfer(to, amount)`.
    Transfer {
        /// Recipient.
        to: Address,
        /// Amount (token units).
        amount: U256,
    },
    /// `transferFrom(from, to, amount)`.
    TransferFrom {
        /// Owner.
        from: Address,
        /// Recipient.
        to: Address,
        /// Amount (token units).
        amount: U256,
    },
    /// `approve(spender, amount)`.
    Approve {
        /// Spender.
        spender: Address,
        /// Allowance (token units).
        amount: U256,
    },
    /// `increaseAllowance(spender, addedValue)`.
    IncreaseAllowance {
        /// Spender.
        spender: Address,
        /// Added allowance (token units).
        amount: U256,
    },
}

impl Erc20Call {
    /// The function name.
    pub fn name(&self) -> &'static str {
        match self {
            Erc20Call::Transfer { .. } => "transfer",
            Erc20Call::TransferFrom { .. } => "transferFrom",
            Erc20Call::Approve { .. } => "approve",
            Erc20Call::IncreaseAllowance { .. } => "increaseAllowance",
        }
    }

    /// Who receives the tokens (or the allowance).
    pub fn counterparty(&self) -> Address {
        match *self {
            Erc20Call::Transfer { to, .. } | Erc20Call::TransferFrom { to, .. } => to,
            Erc20Call::Approve { spender, .. } | Erc20Call::IncreaseAllowance { spender, .. } => {
                spender
            }
        }
    }

    /// The amount moved or allowed, in token units.
    pub fn amount(&self) -> U256 {
        match *self {
            Erc20Call::Transfer { amount, .. }
            | Erc20Call::TransferFrom { amount, .. }
            | Erc20Call::Approve { amount, .. }
            | Erc20Call::IncreaseAllowance { amount, .. } => amount,
        }
    }
}

/// Why calldata with an ERC-20 selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("calldata of ERC-20 `{function}` is malformed or not canonical: {reason}")]
pub struct Erc20Error {
    /// The function the selector names.
    pub function: &'static str,
    /// Why.
    pub reason: String,
}

/// Decodes `data` as one of the four ERC-20 calls: `None` when its selector is none of
/// them, `Some(Err)` when it is but the arguments are malformed or not in canonical
/// form (every word exactly as the ABI encodes it, nothing after them).
pub fn decode_erc20(data: &[u8]) -> Option<Result<Erc20Call, Erc20Error>> {
    fn strict<C: SolCall>(data: &[u8]) -> Result<C, Erc20Error> {
        let err = |reason: String| Erc20Error {
            function: erc20_name(C::SELECTOR),
            reason,
        };
        let call = C::abi_decode_validate(data).map_err(|e| err(e.to_string()))?;
        if call.abi_encode() != data {
            return Err(err("does not re-encode to the same bytes".into()));
        }
        Ok(call)
    }
    let selector: [u8; 4] = data.get(..4)?.try_into().ok()?;
    Some(match selector {
        IERC20::transferCall::SELECTOR => {
            strict::<IERC20::transferCall>(data).map(|c| Erc20Call::Transfer {
                to: c.to,
                amount: c.amount,
            })
        }
        IERC20::transferFromCall::SELECTOR => {
            strict::<IERC20::transferFromCall>(data).map(|c| Erc20Call::TransferFrom {
                from: c.from,
                to: c.to,
                amount: c.amount,
            })
        }
        IERC20::approveCall::SELECTOR => {
            strict::<IERC20::approveCall>(data).map(|c| Erc20Call::Approve {
                spender: c.spender,
                amount: c.amount,
            })
        }
        IERC20::increaseAllowanceCall::SELECTOR => strict::<IERC20::increaseAllowanceCall>(data)
            .map(|c| Erc20Call::IncreaseAllowance {
                spender: c.spender,
                amount: c.addedValue,
            }),
        _ => return None,
    })
}

fn erc20_name(selector: [u8; 4]) -> &'static str {
    match selector {
        IERC20::transferCall::SELECTOR => "transfer",
        IERC20::transferFromCall::SELECTOR => "transferFrom",
        IERC20::approveCall::SELECTOR => "approve",
        _ => "increaseAllowance",
    }
}

/// An unsigned Ethereum transaction as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthTx {
    /// 0 legacy, 1 EIP-2930, 2 EIP-1559.
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
}

impl EthTx {
    /// The most the transaction can pay in fees: `gas_limit × max_fee_per_gas`.
    pub fn max_fee(&self) -> U256 {
        U256::from(self.gas_limit).saturating_mul(U256::from(self.max_fee_per_gas))
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
        }
    }
}

/// Decodes an unsigned transaction signing payload: legacy RLP (pre- or post-EIP-155),
/// `0x01 ‖ rlp` (EIP-2930) or `0x02 ‖ rlp` (EIP-1559). Types `0x03` and `0x04` and
/// unknown types are [`DecodeError::UnsupportedType`].
pub fn decode_eth_signing_payload(payload: &[u8]) -> Result<EthTx, DecodeError> {
    fn done<T: SignableTransaction<alloy_primitives::Signature>>(
        kind: &'static str,
        rest: &[u8],
        tx: Result<T, alloy_rlp::Error>,
    ) -> Result<T, DecodeError> {
        let tx = tx.map_err(|e| DecodeError::Malformed {
            kind,
            reason: e.to_string(),
        })?;
        if !rest.is_empty() {
            return Err(DecodeError::Trailing(rest.len()));
        }
        Ok(tx)
    }
    let first = *payload.first().ok_or(DecodeError::Empty)?;
    let (tx, encoded) = match first {
        0xc0..=0xff => {
            let mut buf = payload;
            let tx = done("legacy", &[], TxLegacy::decode(&mut buf))?;
            if !buf.is_empty() {
                return Err(DecodeError::Trailing(buf.len()));
            }
            (EthTx::from_alloy(0, &tx), tx.encoded_for_signing())
        }
        0x01 => {
            let mut buf = &payload[1..];
            let res = TxEip2930::rlp_decode(&mut buf);
            let tx = done("EIP-2930", buf, res)?;
            (EthTx::from_alloy(1, &tx), tx.encoded_for_signing())
        }
        0x02 => {
            let mut buf = &payload[1..];
            let res = TxEip1559::rlp_decode(&mut buf);
            let tx = done("EIP-1559", buf, res)?;
            (EthTx::from_alloy(2, &tx), tx.encoded_for_signing())
        }
        0x00..=0x7f => return Err(DecodeError::UnsupportedType(first)),
        _ => {
            return Err(DecodeError::Malformed {
                kind: "legacy",
                reason: "the payload is neither an RLP list nor a typed transaction".into(),
            })
        }
    };
    if encoded != payload {
        return Err(DecodeError::NonCanonical);
    }
    Ok(tx)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloy_primitives::address;
    use mpc_core::DigestKind;

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
            hex::encode(DigestKind::Keccak256.digest(&p)),
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
        for t in [0u8, 3, 4, 5, 0x7f] {
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
    fn erc20_calls() {
        let to = address!("00000000000000000000000000000000000000aa");
        let data = IERC20::transferCall {
            to,
            amount: U256::from(42),
        }
        .abi_encode();
        assert_eq!(
            decode_erc20(&data),
            Some(Ok(Erc20Call::Transfer {
                to,
                amount: U256::from(42)
            }))
        );
        let data = IERC20::approveCall {
            spender: to,
            amount: U256::MAX,
        }
        .abi_encode();
        let call = decode_erc20(&data).unwrap().unwrap();
        assert_eq!((call.name(), call.amount()), ("approve", U256::MAX));
        let data = IERC20::increaseAllowanceCall {
            spender: to,
            addedValue: U256::from(1),
        }
        .abi_encode();
        assert_eq!(decode_erc20(&data).unwrap().unwrap().counterparty(), to);
        let data = IERC20::transferFromCall {
            from: Address::repeat_byte(1),
            to,
            amount: U256::from(3),
        }
        .abi_encode();
        assert_eq!(decode_erc20(&data).unwrap().unwrap().counterparty(), to);
        // Other selectors and short data are not ERC-20 calls.
        assert_eq!(decode_erc20(&[0xde, 0xad, 0xbe, 0xef, 0]), None);
        assert_eq!(decode_erc20(&[0xa9, 0x05, 0x9c]), None);
        // Dirty address bits, truncated or trailing data: refused.
        let mut dirty = IERC20::transferCall {
            to,
            amount: U256::from(1),
        }
        .abi_encode();
        dirty[4] = 1;
        assert!(matches!(decode_erc20(&dirty), Some(Err(_))));
        let good = IERC20::transferCall {
            to,
            amount: U256::from(1),
        }
        .abi_encode();
        assert!(matches!(
            decode_erc20(&good[..good.len() - 1]),
            Some(Err(_))
        ));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(decode_erc20(&long), Some(Err(e)) if e.function == "transfer"));
    }
}
