//! The signing policy: decodes what is being signed and applies the configured rules.
//! Default deny: the cosigner signs only digests it computed from a payload it decoded
//! and allowed.
//!
//! Payloads are decoded by `wallet-evm` (alloy), the codec every party uses.
//!
//! - `PAYLOAD_KIND_ETHEREUM_TRANSACTION`: the unsigned signing payload of any type
//!   (0-4); chain id, destination, ERC-20 calldata (token, recipient or spender,
//!   amount), value + maximum fee (blob fees included) per transaction and per day.
//! - `PAYLOAD_KIND_ETHEREUM_MESSAGE`: an EIP-191 personal message preimage whose length
//!   matches.
//! - `PAYLOAD_KIND_ETHEREUM_TYPED_DATA`: the typed data's JSON, hashed here; chain id,
//!   verifying contract, and permits (EIP-2612, DAI, Permit2): spender, tokens, amounts.
//! - `PAYLOAD_KIND_ETHEREUM_AUTHORIZATION`: an EIP-7702 authorization; delegate and
//!   chain id.
//! - `PAYLOAD_KIND_BITCOIN_PSBT_INPUT`: one input of a PSBT, analyzed whole by
//!   `wallet-btc` ([`bitcoin`]): network, destinations of the external outputs, their
//!   sum per transaction and per day (a transaction counted once, by txid), fee and fee
//!   rate; the signed preimage is the input's BIP-143 preimage.
//! - `PAYLOAD_KIND_RAW` / unspecified: refused unless the wallet is listed with
//!   `allow_raw: true` (a raw keccak-256 preimage could be any transaction, EIP-7702
//!   authorization or EIP-712 permit, unseen by the rules).
//!
//! Every refusal names its rule (the `rule` of `google.rpc.ErrorInfo`): the constants
//! of [`rule`].

pub mod bitcoin;
pub mod config;

use alloy_primitives::{Address, U256};
use cosigner_api::pb::PayloadKind;
use mpc_core::DigestKind;
use wallet_evm::{
    AuthorizationFields, DecodeError, Decoded, Erc20Call, EthTx, PayloadError, Permit,
    TypedDataPayload,
};

pub use self::config::PolicyConfig;

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
    /// An ERC-20 call (or a permit) for a token not in `erc20.tokens`.
    pub const ERC20_TOKENS: &str = "erc20_tokens";
    /// An ERC-20 recipient or spender not in `erc20.allowed_recipients`.
    pub const ERC20_RECIPIENTS: &str = "erc20_recipients";
    /// An ERC-20 amount (or a permit's) above the token's `max_amount_per_tx`.
    pub const ERC20_MAX_AMOUNT: &str = "erc20_max_amount";
    /// Value + maximum fee above `max_value_per_tx_wei`.
    pub const MAX_VALUE_PER_TX_WEI: &str = "max_value_per_tx_wei";
    /// Value + maximum fee would pass `daily_value_limit_wei` (checked in the store).
    pub const DAILY_VALUE_LIMIT_WEI: &str = "daily_value_limit_wei";
    /// Typed data that does not decode or hash.
    pub const EIP712_TYPED_DATA: &str = "eip712_typed_data";
    /// A domain's `verifyingContract` not in `typed_data.allowed_verifying_contracts`.
    pub const EIP712_VERIFYING_CONTRACTS: &str = "eip712_verifying_contracts";
    /// A permit whose domain names no chain.
    pub const EIP712_CHAIN_ID: &str = "eip712_chain_id";
    /// A permit's spender not in `typed_data.permit_spenders` (or a permit that cannot
    /// be read).
    pub const PERMIT_SPENDERS: &str = "permit_spenders";
    /// An EIP-7702 authorization payload that does not decode.
    pub const EIP7702_AUTHORIZATION: &str = "eip7702_authorization";
    /// An EIP-7702 delegate not in `eip7702.allowed_delegates`.
    pub const EIP7702_DELEGATES: &str = "eip7702_delegates";
    /// An EIP-7702 authorization for chain id 0 without `eip7702.allow_any_chain`.
    pub const EIP7702_ANY_CHAIN: &str = "eip7702_any_chain";
    /// A PSBT that `wallet-btc` refuses (malformed, an input not the wallet's, a script
    /// other than P2WPKH, a sighash type other than ALL, amounts); ErrorInfo also
    /// carries `psbt_error` (the codec's code) and `input` when it names one.
    pub const BITCOIN_PSBT: &str = "bitcoin_psbt";
    /// The request's `bitcoin_network` is not in `bitcoin.allowed_networks`.
    pub const BITCOIN_NETWORKS: &str = "bitcoin_allowed_networks";
    /// An external output pays to an address not in `bitcoin.allowed_destinations`.
    pub const BITCOIN_DESTINATIONS: &str = "bitcoin_allowed_destinations";
    /// The external outputs exceed `bitcoin.max_sats_per_tx`.
    pub const BITCOIN_MAX_SATS_PER_TX: &str = "bitcoin_max_sats_per_tx";
    /// The external outputs would pass `bitcoin.daily_limit_sats` (checked in the store,
    /// once per txid).
    pub const BITCOIN_DAILY_LIMIT_SATS: &str = "bitcoin_daily_limit_sats";
    /// The fee exceeds `bitcoin.max_fee_sats`.
    pub const BITCOIN_MAX_FEE_SATS: &str = "bitcoin_max_fee_sats";
    /// The fee rate exceeds `bitcoin.max_fee_rate_sat_per_vb`.
    pub const BITCOIN_MAX_FEE_RATE: &str = "bitcoin_max_fee_rate_sat_per_vb";
}

/// The policy's verdict before any stateful check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; `daily` is `Some((amount, limit))` when the daily value limit applies
    /// (the caller checks and records it atomically in the store).
    Allow {
        /// Decoded transaction, if any (for the audit log).
        tx: Option<Box<EthTx>>,
        /// The decoded fields of typed data, an authorization or a message (for the
        /// audit log).
        fields: Option<serde_json::Value>,
        /// Amount (value + maximum fee, wei) to add to today's total, and the limit.
        daily: Option<(u128, u128)>,
        /// A Bitcoin transaction's external outputs to add to today's total once per
        /// txid, and the limit.
        bitcoin_daily: Option<bitcoin::BitcoinDaily>,
    },
    /// Refused by `rule`.
    Deny {
        /// Rule name (one of [`rule`]).
        rule: &'static str,
        /// Human explanation.
        reason: String,
    },
    /// The request asks for something that does not exist (`invalid_input`): an
    /// unknown transaction type.
    Unsupported(String),
}

fn deny(rule: &'static str, reason: impl Into<String>) -> Verdict {
    Verdict::Deny {
        rule,
        reason: reason.into(),
    }
}

fn allow(fields: serde_json::Value) -> Verdict {
    Verdict::Allow {
        tx: None,
        fields: Some(fields),
        daily: None,
        bitcoin_daily: None,
    }
}

fn hex_addr(a: &Address) -> String {
    wallet_evm::hex_address(a)
}

/// The vocabulary kind of a wire kind (`UNSPECIFIED` is raw).
fn vocabulary(kind: PayloadKind) -> wallet_types::PayloadKind {
    use wallet_types::PayloadKind as K;
    match kind {
        PayloadKind::Unspecified | PayloadKind::Raw => K::Raw,
        PayloadKind::EthereumTransaction => K::EthereumTransaction,
        PayloadKind::EthereumMessage => K::EthereumMessage,
        PayloadKind::EthereumTypedData => K::EthereumTypedData,
        PayloadKind::EthereumAuthorization => K::EthereumAuthorization,
        PayloadKind::BitcoinPsbtInput => K::BitcoinPsbtInput,
    }
}

/// The preimage the parties sign for the wire `payload` of `kind`, the one place it is
/// derived: typed data is decoded for it ([`wallet_evm::signing_preimage`]; bad typed
/// data is refused here, before anything else); a PSBT input's is its BIP-143 preimage
/// from the analyzed PSBT (`bitcoin`, from [`bitcoin::prepare`]: without it the kind is
/// refused as not Ethereum); every other kind's is the payload itself.
pub fn signing_preimage(
    kind: PayloadKind,
    payload: &[u8],
    bitcoin: Option<&bitcoin::BitcoinInput>,
) -> Result<Vec<u8>, PayloadError> {
    match (kind, bitcoin) {
        (PayloadKind::BitcoinPsbtInput, Some(b)) => Ok(b.input().preimage.clone()),
        // Never the PSBT's own bytes.
        (PayloadKind::BitcoinPsbtInput, None) => Err(PayloadError::NotEthereum {
            kind: wallet_types::PayloadKind::BitcoinPsbtInput.as_str(),
        }),
        _ => wallet_evm::signing_preimage(vocabulary(kind), payload).map(|p| p.into_owned()),
    }
}

/// Applies the configured rules to one sign request of `wallet_id`: `payload` is what
/// the request carried (for typed data, its JSON).
pub fn evaluate(
    cfg: &PolicyConfig,
    wallet_id: &str,
    kind: PayloadKind,
    digest: DigestKind,
    payload: &[u8],
) -> Verdict {
    let kind = vocabulary(kind);
    if kind == wallet_types::PayloadKind::Raw {
        if !cfg.raw_allowed(wallet_id) {
            return deny(
                rule::ALLOW_RAW,
                format!(
                    "raw preimages are not co-signed for wallet {wallet_id} (the cosigner signs \
                     only payloads it decodes: use an Ethereum payload kind, or enable \
                     policy.wallets.<id>.allow_raw)"
                ),
            );
        }
        return Verdict::Allow {
            tx: None,
            fields: None,
            daily: None,
            bitcoin_daily: None,
        };
    }
    let decoded = match wallet_evm::decode(kind, digest.into(), payload) {
        Ok(d) => d,
        Err(e) => return refusal(e),
    };
    match decoded {
        Decoded::Raw => deny(rule::PAYLOAD_KIND, "a raw payload decoded as Ethereum"),
        Decoded::Transaction(tx) => ethereum(&cfg.ethereum, tx.fields()),
        Decoded::Message(m) => allow(serde_json::json!({
            "kind": "eip191",
            "length": m.len(),
            "utf8": std::str::from_utf8(m).is_ok(),
        })),
        Decoded::TypedData(t) => typed_data(&cfg.ethereum, &t),
        Decoded::Authorization(a) => authorization(&cfg.ethereum, &a),
    }
}

/// The refusal of a payload that is not what its kind says.
fn refusal(e: PayloadError) -> Verdict {
    match e {
        PayloadError::Digest { .. }
        | PayloadError::Message(_)
        | PayloadError::NotEthereum { .. } => deny(rule::PAYLOAD_KIND, e.to_string()),
        PayloadError::Transaction(e @ DecodeError::UnsupportedType(_)) => {
            Verdict::Unsupported(e.to_string())
        }
        PayloadError::Transaction(e) => deny(
            rule::ETHEREUM_TRANSACTION,
            format!("cannot decode the transaction: {e}"),
        ),
        PayloadError::TypedData(e) => deny(rule::EIP712_TYPED_DATA, e.to_string()),
        PayloadError::Authorization(e) => deny(rule::EIP7702_AUTHORIZATION, e.to_string()),
    }
}

/// Whether `chain_id` passes `allowed_chain_ids` (unset: every chain).
fn chain_allowed(eth: &config::EthereumPolicy, chain_id: U256) -> bool {
    eth.allowed_chain_ids.is_empty()
        || eth
            .allowed_chain_ids
            .iter()
            .any(|c| U256::from(*c) == chain_id)
}

/// The typed-data rules: chain, verifying contract, then permits (spender, tokens,
/// amounts).
fn typed_data(eth: &config::EthereumPolicy, t: &TypedDataPayload) -> Verdict {
    let p = &eth.typed_data;
    if let Some(chain_id) = t.chain_id() {
        if !chain_allowed(eth, chain_id) {
            return deny(
                rule::ALLOWED_CHAIN_IDS,
                format!(
                    "typed data for chain id {chain_id}, which is not in allowed_chain_ids {:?}",
                    eth.allowed_chain_ids
                ),
            );
        }
    }
    if !p.allowed_verifying_contracts.is_empty() {
        let ok = t
            .verifying_contract()
            .is_some_and(|c| p.allowed_verifying_contracts.iter().any(|a| a.0 == c));
        if !ok {
            return deny(
                rule::EIP712_VERIFYING_CONTRACTS,
                format!(
                    "verifyingContract {} is not in typed_data.allowed_verifying_contracts",
                    t.verifying_contract()
                        .map_or("(none)".into(), |c| hex_addr(&c))
                ),
            );
        }
    }
    let permit = match t.permit() {
        None => None,
        Some(Err(e)) => return deny(rule::PERMIT_SPENDERS, e.to_string()),
        Some(Ok(permit)) => {
            if let Some(refusal) = permit_rules(eth, t, &permit) {
                return refusal;
            }
            Some(permit)
        }
    };
    allow(serde_json::json!({
        "kind": "eip712",
        "primary_type": t.primary_type(),
        "domain_name": t.domain_name(),
        "chain_id": t.chain_id().map(|c| c.to_string()),
        "verifying_contract": t.verifying_contract().map(|c| hex_addr(&c)),
        "permit": permit.map(|p| serde_json::json!({
            "standard": p.standard.as_str(),
            "spender": hex_addr(&p.spender),
            "allowances": p.allowances.iter().map(|(token, amount)| serde_json::json!({
                "token": hex_addr(token),
                "amount": amount.to_string(),
            })).collect::<Vec<_>>(),
        })),
    }))
}

/// A permit is an approval: a named chain, a listed spender, listed tokens within
/// their per-transaction amounts.
fn permit_rules(eth: &config::EthereumPolicy, t: &TypedDataPayload, p: &Permit) -> Option<Verdict> {
    let std = p.standard.as_str();
    if t.chain_id().is_none() {
        return Some(deny(
            rule::EIP712_CHAIN_ID,
            format!("a {std} permit whose domain names no chain id"),
        ));
    }
    if !eth
        .typed_data
        .permit_spenders
        .iter()
        .any(|s| s.0 == p.spender)
    {
        return Some(deny(
            rule::PERMIT_SPENDERS,
            format!(
                "{std} permit for spender {}, which is not in typed_data.permit_spenders",
                hex_addr(&p.spender)
            ),
        ));
    }
    for (token, amount) in &p.allowances {
        let Some(limits) = eth.erc20.tokens.get(&config::ConfigAddress(*token)) else {
            return Some(deny(
                rule::ERC20_TOKENS,
                format!(
                    "{std} permit for token {}, which is not in erc20.tokens",
                    hex_addr(token)
                ),
            ));
        };
        if let Some(max) = limits.max_amount_per_tx {
            if *amount > max.0 {
                return Some(deny(
                    rule::ERC20_MAX_AMOUNT,
                    format!(
                        "{std} permit of {amount} units of token {} exceeds its max_amount_per_tx {}",
                        hex_addr(token),
                        max.0
                    ),
                ));
            }
        }
    }
    None
}

/// The EIP-7702 rules: a listed delegate, an allowed chain (chain id 0 only with
/// `allow_any_chain`).
fn authorization(eth: &config::EthereumPolicy, a: &AuthorizationFields) -> Verdict {
    let p = &eth.eip7702;
    if !p.allowed_delegates.iter().any(|d| d.0 == a.delegate) {
        return deny(
            rule::EIP7702_DELEGATES,
            format!(
                "delegation to {}, which is not in eip7702.allowed_delegates",
                hex_addr(&a.delegate)
            ),
        );
    }
    if a.chain_id.is_zero() {
        if !p.allow_any_chain {
            return deny(
                rule::EIP7702_ANY_CHAIN,
                "an authorization for chain id 0 is valid on every chain (eip7702.allow_any_chain is off)",
            );
        }
    } else if !chain_allowed(eth, a.chain_id) {
        return deny(
            rule::ALLOWED_CHAIN_IDS,
            format!(
                "authorization for chain id {}, which is not in allowed_chain_ids {:?}",
                a.chain_id, eth.allowed_chain_ids
            ),
        );
    }
    allow(serde_json::json!({
        "kind": "eip7702",
        "chain_id": a.chain_id.to_string(),
        "delegate": hex_addr(&a.delegate),
        "nonce": a.nonce,
    }))
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
    if !chain_allowed(eth, U256::from(chain_id)) {
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
        fields: None,
        daily,
        bitcoin_daily: None,
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
        "blobs": (tx.tx_type == 3).then_some(tx.blob_hashes),
        "authorizations": (tx.tx_type == 4).then(|| tx.authorizations.iter().map(|a| serde_json::json!({
            "chain_id": a.chain_id.to_string(),
            "delegate": hex_addr(&a.delegate),
            "nonce": a.nonce,
        })).collect::<Vec<_>>()),
    })
}

/// Days since the Unix epoch (UTC) of `now_ms`.
pub fn utc_day(now_ms: u64) -> u64 {
    now_ms / 86_400_000
}

#[cfg(test)]
mod bitcoin_tests;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
