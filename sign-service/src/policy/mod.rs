//! The signing policy: decodes what is being signed and applies the configured rules.
//! Default deny: the cosigner signs only digests it computed from a payload it decoded
//! and allowed.
//!
//! - `PAYLOAD_KIND_ETHEREUM_TRANSACTION`: the unsigned signing payload decoded with
//!   alloy ([`eth`]); chain id, destination, ERC-20 calldata (token, recipient or
//!   spender, amount), value + maximum fee per transaction and per day.
//! - `PAYLOAD_KIND_ETHEREUM_MESSAGE`: an EIP-191 personal message preimage.
//! - `PAYLOAD_KIND_RAW` / unspecified: refused unless the wallet is listed with
//!   `allow_raw: true` (a raw keccak-256 preimage could be any transaction, EIP-7702
//!   authorization or EIP-712 permit, unseen by the rules).
//!
//! Every refusal names its rule (the `rule` of `google.rpc.ErrorInfo`): the constants
//! of [`rule`].

pub mod config;
pub mod eth;

use alloy_primitives::{Address, U256};
use cosigner_api::pb::PayloadKind;
use mpc_core::DigestKind;

pub use self::config::PolicyConfig;
pub use self::eth::{decode_eth_signing_payload, DecodeError, Erc20Call, EthTx};

/// The rule names a refusal carries (ErrorInfo metadata `rule`).
pub mod rule {
    /// Raw preimage for a wallet without `allow_raw`.
    pub const ALLOW_RAW: &str = "allow_raw";
    /// Payload kind and digest do not fit together (or the preimage is not of its kind).
    pub const PAYLOAD_KIND: &str = "payload_kind";
    /// The transaction cannot be decoded.
    pub const ETHEREUM_TRANSACTION: &str = "ethereum_transaction";
    /// A legacy transaction without a chain id (pre-EIP-155: replayable on any chain).
    pub const EIP155_REQUIRED: &str = "eip155_required";
    /// The chain id is not in `allowed_chain_ids`.
    pub const ALLOWED_CHAIN_IDS: &str = "allowed_chain_ids";
    /// Contract creation refused.
    pub const ALLOW_CONTRACT_CREATION: &str = "allow_contract_creation";
    /// `to` not in `allowed_destinations`.
    pub const ALLOWED_DESTINATIONS: &str = "allowed_destinations";
    /// Calldata with an ERC-20 selector that does not decode canonically.
    pub const ERC20_CALLDATA: &str = "erc20_calldata";
    /// An ERC-20 call to a token not in `erc20.tokens`.
    pub const ERC20_TOKENS: &str = "erc20_tokens";
    /// An ERC-20 recipient or spender not in `erc20.allowed_recipients`.
    pub const ERC20_RECIPIENTS: &str = "erc20_recipients";
    /// An ERC-20 amount above the token's `max_amount_per_tx`.
    pub const ERC20_MAX_AMOUNT: &str = "erc20_max_amount";
    /// Value + maximum fee above `max_value_per_tx_wei`.
    pub const MAX_VALUE_PER_TX_WEI: &str = "max_value_per_tx_wei";
    /// Value + maximum fee would pass `daily_value_limit_wei` (checked in the store).
    pub const DAILY_VALUE_LIMIT_WEI: &str = "daily_value_limit_wei";
}

/// The policy's verdict before any stateful check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; `daily` is `Some((amount, limit))` when the daily value limit applies
    /// (the caller checks and records it atomically in the store).
    Allow {
        /// Decoded transaction, if any (for the audit log).
        tx: Option<Box<EthTx>>,
        /// Amount (value + maximum fee, wei) to add to today's total, and the limit.
        daily: Option<(u128, u128)>,
    },
    /// Refused by `rule`.
    Deny {
        /// Rule name (one of [`rule`]).
        rule: &'static str,
        /// Human explanation.
        reason: String,
    },
    /// The request asks for something the cosigner does not support (`invalid_input`):
    /// EIP-4844 and EIP-7702 transactions for now.
    Unsupported(String),
}

fn deny(rule: &'static str, reason: impl Into<String>) -> Verdict {
    Verdict::Deny {
        rule,
        reason: reason.into(),
    }
}

fn hex_addr(a: &Address) -> String {
    format!("0x{}", hex::encode(a))
}

/// Applies the configured rules to one sign request of `wallet_id`.
pub fn evaluate(
    cfg: &PolicyConfig,
    wallet_id: &str,
    kind: PayloadKind,
    digest: DigestKind,
    preimage: &[u8],
) -> Verdict {
    match kind {
        PayloadKind::Raw | PayloadKind::Unspecified => {
            if !cfg.raw_allowed(wallet_id) {
                return deny(
                    rule::ALLOW_RAW,
                    format!(
                        "raw preimages are not co-signed for wallet {wallet_id} (the cosigner signs \
                         only payloads it decodes: use PAYLOAD_KIND_ETHEREUM_TRANSACTION or \
                         PAYLOAD_KIND_ETHEREUM_MESSAGE, or enable policy.wallets.<id>.allow_raw)"
                    ),
                );
            }
            Verdict::Allow {
                tx: None,
                daily: None,
            }
        }
        PayloadKind::EthereumMessage => {
            if digest != DigestKind::Keccak256 {
                return deny(
                    rule::PAYLOAD_KIND,
                    "Ethereum messages are signed with keccak-256",
                );
            }
            if !preimage.starts_with(b"\x19Ethereum Signed Message:\n") {
                return deny(
                    rule::PAYLOAD_KIND,
                    "not an EIP-191 personal message preimage",
                );
            }
            Verdict::Allow {
                tx: None,
                daily: None,
            }
        }
        PayloadKind::EthereumTypedData | PayloadKind::EthereumAuthorization => Verdict::Unsupported(
            format!("{} is not co-signed yet", kind.as_str_name()),
        ),
        PayloadKind::EthereumTransaction => {
            if digest != DigestKind::Keccak256 {
                return deny(
                    rule::PAYLOAD_KIND,
                    "Ethereum transactions are signed with keccak-256",
                );
            }
            match decode_eth_signing_payload(preimage) {
                Ok(tx) => ethereum(&cfg.ethereum, tx),
                Err(e @ DecodeError::UnsupportedType(_)) => Verdict::Unsupported(e.to_string()),
                Err(e) => deny(
                    rule::ETHEREUM_TRANSACTION,
                    format!("cannot decode the transaction: {e}"),
                ),
            }
        }
    }
}

/// The Ethereum rules, in order: chain, destination (or ERC-20 token, recipient and
/// amount), value + maximum fee.
fn ethereum(eth: &config::EthereumPolicy, tx: EthTx) -> Verdict {
    let Some(chain_id) = tx.chain_id else {
        return deny(
            rule::EIP155_REQUIRED,
            "legacy transaction without a chain id (pre-EIP-155): it could be replayed on any chain",
        );
    };
    if !eth.allowed_chain_ids.is_empty() && !eth.allowed_chain_ids.contains(&chain_id) {
        return deny(
            rule::ALLOWED_CHAIN_IDS,
            format!(
                "chain id {chain_id} is not in allowed_chain_ids {:?}",
                eth.allowed_chain_ids
            ),
        );
    }
    match (tx.to, tx.erc20()) {
        (None, _) if !eth.contract_creation_allowed() => {
            return deny(
                rule::ALLOW_CONTRACT_CREATION,
                "contract creation is not allowed",
            );
        }
        (None, _) => {}
        (Some(_), Some(Err(e))) => return deny(rule::ERC20_CALLDATA, e.to_string()),
        (Some(token), Some(Ok(call))) => {
            if let Some(refusal) = erc20(&eth.erc20, token, &call) {
                return refusal;
            }
        }
        (Some(to), None) if !eth.allowed_destinations.is_empty() => {
            let ok = eth
                .allowed_destinations
                .iter()
                .filter_map(|a| config::parse_address(a).ok())
                .any(|a| Address::from(a) == to);
            if !ok {
                return deny(
                    rule::ALLOWED_DESTINATIONS,
                    format!(
                        "destination {} is not in allowed_destinations",
                        hex_addr(&to)
                    ),
                );
            }
        }
        (Some(_), None) => {}
    }
    let spend = tx.max_spend();
    let spend_u128 = u128::try_from(spend).unwrap_or(u128::MAX);
    if let Some(max) = eth.max_value_per_tx_wei {
        if spend > U256::from(max.0) {
            return deny(
                rule::MAX_VALUE_PER_TX_WEI,
                format!(
                    "value {} wei + maximum fee {} wei (gas limit {} × {} wei) = {spend} wei exceeds \
                     the per-transaction limit {} wei",
                    tx.value,
                    tx.max_fee(),
                    tx.gas_limit,
                    tx.max_fee_per_gas,
                    max.0
                ),
            );
        }
    }
    let daily = eth.daily_value_limit_wei.map(|l| (spend_u128, l.0));
    Verdict::Allow {
        tx: Some(Box::new(tx)),
        daily,
    }
}

/// The ERC-20 rules of one call to `token`: `Some(refusal)` or `None` (allowed).
fn erc20(p: &config::Erc20Policy, token: Address, call: &Erc20Call) -> Option<Verdict> {
    let Some(limits) = p.tokens.get(&config::ConfigAddress(token)) else {
        return Some(deny(
            rule::ERC20_TOKENS,
            format!(
                "ERC-20 `{}` on token {}, which is not in erc20.tokens",
                call.name(),
                hex_addr(&token)
            ),
        ));
    };
    let who = call.counterparty();
    if !p.allowed_recipients.is_empty() && !p.allowed_recipients.iter().any(|a| a.0 == who) {
        return Some(deny(
            rule::ERC20_RECIPIENTS,
            format!(
                "ERC-20 `{}` to {}, which is not in erc20.allowed_recipients",
                call.name(),
                hex_addr(&who)
            ),
        ));
    }
    if let Some(max) = limits.max_amount_per_tx {
        if call.amount() > max.0 {
            return Some(deny(
                rule::ERC20_MAX_AMOUNT,
                format!(
                    "ERC-20 `{}` of {} units of token {} exceeds its max_amount_per_tx {}",
                    call.name(),
                    call.amount(),
                    hex_addr(&token),
                    max.0
                ),
            ));
        }
    }
    None
}

/// The audit summary of a decoded transaction.
pub fn audit_summary(tx: &EthTx) -> serde_json::Value {
    let erc20 = match tx.erc20() {
        Some(Ok(call)) => serde_json::json!({
            "function": call.name(),
            "counterparty": hex_addr(&call.counterparty()),
            "amount": call.amount().to_string(),
        }),
        _ => serde_json::Value::Null,
    };
    serde_json::json!({
        "type": tx.tx_type,
        "chain_id": tx.chain_id,
        "nonce": tx.nonce,
        "to": tx.to.as_ref().map(hex_addr),
        "value_wei": tx.value.to_string(),
        "max_fee_wei": tx.max_fee().to_string(),
        "max_priority_fee_per_gas_wei": tx.max_priority_fee_per_gas.map(|f| f.to_string()),
        "data_len": tx.input.len(),
        "erc20": erc20,
    })
}

/// Days since the Unix epoch (UTC) of `now_ms`.
pub fn utc_day(now_ms: u64) -> u64 {
    now_ms / 86_400_000
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
