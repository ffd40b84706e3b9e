//! The ERC-20 calls the policy reads from calldata (`alloy-sol-types` `sol!`), decoded
//! strictly: canonical ABI words, nothing after them.

use alloy_primitives::{Address, U256};
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::address;

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
