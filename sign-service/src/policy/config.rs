//! The `policy` section of the configuration: what the cosigner co-signs.
//!
//! Default deny: raw preimages are refused for every wallet not listed under
//! `policy.wallets` with `allow_raw: true`; ERC-20 token movements are refused for every
//! token not listed under `policy.ethereum.erc20.tokens`; legacy transactions without a
//! chain id are always refused. See `config/sign-service.yaml` and `docs/cosigner.md`.

use std::collections::BTreeMap;

use alloy_primitives::{Address, U256};
use serde::{Deserialize, Deserializer};

/// The wallet id that stands for every wallet in `policy.wallets` (accepted only with
/// `insecure_dev_primes: true`, i.e. for tests and demos).
pub const ANY_WALLET: &str = "*";

/// An amount of wei (YAML integer or decimal string, since amounts exceed 64 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wei(pub u128);

/// YAML integer or decimal string (`_` separators allowed).
#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrString {
    Int(u64),
    Str(String),
}

impl IntOrString {
    fn digits(self) -> String {
        match self {
            IntOrString::Int(v) => v.to_string(),
            IntOrString::Str(s) => s.trim().replace('_', ""),
        }
    }
}

impl<'de> Deserialize<'de> for Wei {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = IntOrString::deserialize(d)?.digits();
        s.parse::<u128>()
            .map(Wei)
            .map_err(|e| serde::de::Error::custom(format!("not a wei amount {s:?}: {e}")))
    }
}

/// An amount of an ERC-20 token in its smallest unit (what the contract's `uint256`
/// carries: 1 USDC with 6 decimals is 1000000). YAML integer or decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenAmount(pub U256);

impl<'de> Deserialize<'de> for TokenAmount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = IntOrString::deserialize(d)?.digits();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(serde::de::Error::custom(format!(
                "not a token amount {s:?}: use decimal digits (the token's smallest unit)"
            )));
        }
        U256::from_str_radix(&s, 10)
            .map(TokenAmount)
            .map_err(|e| serde::de::Error::custom(format!("not a token amount {s:?}: {e}")))
    }
}

/// A 20-byte address from hex (`0x` optional, any case), as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigAddress(pub Address);

impl<'de> Deserialize<'de> for ConfigAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_address(&s)
            .map(|a| ConfigAddress(Address::from(a)))
            .map_err(serde::de::Error::custom)
    }
}

/// Parses a 20-byte hex address (`0x` optional, any case).
pub fn parse_address(s: &str) -> Result<[u8; 20], String> {
    let h = s.trim().trim_start_matches("0x").trim_start_matches("0X");
    let mut out = [0u8; 20];
    hex::decode_to_slice(h, &mut out).map_err(|_| format!("{s:?} is not a 20-byte hex address"))?;
    Ok(out)
}

/// One ERC-20 token the cosigner may move.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Erc20Token {
    /// Largest `amount` of one `transfer` / `transferFrom` / `approve` /
    /// `increaseAllowance`, in the token's smallest unit. Unset: no per-transaction
    /// limit.
    pub max_amount_per_tx: Option<TokenAmount>,
}

/// Rules for EIP-712 typed data. The domain's `chainId`, when present, must be in
/// `ethereum.allowed_chain_ids` (when that is set).
///
/// A permit (EIP-2612 `Permit`, DAI's permit, Uniswap Permit2) is an approval: it is
/// co-signed only when its spender is in `permit_spenders` and every token it allows
/// is in `ethereum.erc20.tokens`, within its `max_amount_per_tx`; its domain must name
/// the chain.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TypedDataPolicy {
    /// The contracts a domain's `verifyingContract` may name. Empty: any (a domain
    /// without one is accepted only then).
    pub allowed_verifying_contracts: Vec<ConfigAddress>,
    /// The spenders a permit may name. Empty: no permit is co-signed.
    pub permit_spenders: Vec<ConfigAddress>,
}

/// Rules for EIP-7702 authorizations: delegating the account's code to a contract
/// gives that contract the account, so nothing is delegated by default.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Eip7702Policy {
    /// The contracts the account may delegate to. Empty: no authorization is
    /// co-signed.
    pub allowed_delegates: Vec<ConfigAddress>,
    /// Whether chain id 0 (valid on every chain) is co-signed. Default: no.
    pub allow_any_chain: bool,
}

/// Rules for the ERC-20 calls decoded from calldata (`transfer`, `transferFrom`,
/// `approve`, `increaseAllowance`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Erc20Policy {
    /// The token contracts (the transaction's `to`) these calls may go to, with their
    /// limits. Empty: no ERC-20 call is co-signed (default deny).
    pub tokens: BTreeMap<ConfigAddress, Erc20Token>,
    /// Recipients of `transfer` / `transferFrom` and spenders of `approve` /
    /// `increaseAllowance`. Empty: any.
    pub allowed_recipients: Vec<ConfigAddress>,
}

/// Rules applied to Ethereum transactions before co-signing.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EthereumPolicy {
    /// Chain ids a transaction may carry. Empty: any chain (legacy transactions without
    /// a chain id are refused regardless).
    pub allowed_chain_ids: Vec<u64>,
    /// Allowed `to` addresses (hex, any case) of transfers and contract calls. Empty: any
    /// destination. ERC-20 calls go to the tokens of `erc20.tokens` instead.
    pub allowed_destinations: Vec<String>,
    /// Whether contract creation (no `to`) is allowed. Unset: allowed only when
    /// `allowed_destinations` is empty.
    pub allow_contract_creation: Option<bool>,
    /// Largest `value` + maximum fee (`gas_limit × max_fee_per_gas`, or `gas_price` for
    /// legacy / EIP-2930) of one transaction, in wei.
    pub max_value_per_tx_wei: Option<Wei>,
    /// Largest sum of `value` + maximum fee per wallet per UTC day, in wei.
    pub daily_value_limit_wei: Option<Wei>,
    /// ERC-20 calls.
    pub erc20: Erc20Policy,
    /// EIP-712 typed data (token permits among them).
    pub typed_data: TypedDataPolicy,
    /// EIP-7702 authorizations (delegating the account's code).
    pub eip7702: Eip7702Policy,
}

impl EthereumPolicy {
    /// Contract creation is allowed when explicitly enabled, or by default when no
    /// destination list restricts transfers.
    pub fn contract_creation_allowed(&self) -> bool {
        self.allow_contract_creation
            .unwrap_or(self.allowed_destinations.is_empty())
    }
}

/// An amount of satoshis (YAML integer or decimal string, `_` separators allowed), at
/// most 21 million BTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sats(pub u64);

/// 21 million BTC in satoshis.
pub const MAX_MONEY_SATS: u64 = 21_000_000 * 100_000_000;

impl<'de> Deserialize<'de> for Sats {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = IntOrString::deserialize(d)?.digits();
        let v = s
            .parse::<u64>()
            .map_err(|e| serde::de::Error::custom(format!("not a satoshi amount {s:?}: {e}")))?;
        if v > MAX_MONEY_SATS {
            return Err(serde::de::Error::custom(format!(
                "{v} sat is more than 21 million BTC"
            )));
        }
        Ok(Sats(v))
    }
}

/// A Bitcoin network as written in the config (`mainnet` or `bitcoin`, `testnet`,
/// `signet`, `regtest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigNetwork(pub wallet_btc::Network);

impl<'de> Deserialize<'de> for ConfigNetwork {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<wallet_btc::Network>()
            .map(ConfigNetwork)
            .map_err(serde::de::Error::custom)
    }
}

/// A Bitcoin address as written in the config: checked for syntax (and checksum) at
/// load; which network it belongs to is checked against the PSBT's network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigBtcAddress(
    pub wallet_btc::bitcoin::Address<wallet_btc::bitcoin::address::NetworkUnchecked>,
);

impl<'de> Deserialize<'de> for ConfigBtcAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.trim()
            .parse()
            .map(ConfigBtcAddress)
            .map_err(|e| serde::de::Error::custom(format!("not a Bitcoin address {s:?}: {e}")))
    }
}

impl ConfigBtcAddress {
    /// The output script this address pays to on `network`, or `None` when the address
    /// belongs to another network.
    pub fn script_on(
        &self,
        network: wallet_btc::Network,
    ) -> Option<wallet_btc::bitcoin::ScriptBuf> {
        let net = network.to_bitcoin();
        self.0
            .is_valid_for_network(net)
            .then(|| self.0.clone().assume_checked().script_pubkey())
    }
}

/// Rules applied to Bitcoin PSBTs (`PAYLOAD_KIND_BITCOIN_PSBT_INPUT`) before co-signing
/// any of their inputs. The PSBT is analyzed whole (every input must be the wallet's);
/// the rules look at the whole transaction, whichever input is being signed.
///
/// Amounts count the **external** outputs only: an output is change (not counted, not
/// checked against `allowed_destinations`) only when its PSBT `bip32_derivation` names
/// a key of this wallet whose P2WPKH script is exactly the output's script. The fee is
/// limited by `max_fee_sats` and `max_fee_rate_sat_per_vb`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct BitcoinPolicy {
    /// The networks a request's `bitcoin_network` may name. Empty: any.
    pub allowed_networks: Vec<ConfigNetwork>,
    /// The addresses external outputs may pay to (read for the PSBT's network: an
    /// address of another network matches nothing). Empty: any destination.
    pub allowed_destinations: Vec<ConfigBtcAddress>,
    /// Largest sum of the external outputs of one transaction, in satoshis.
    pub max_sats_per_tx: Option<Sats>,
    /// Largest sum of the external outputs of the wallet's transactions per UTC day, in
    /// satoshis. A transaction counts once (by its unsigned txid), however many of its
    /// inputs are signed and however often.
    pub daily_limit_sats: Option<Sats>,
    /// Largest fee of one transaction, in satoshis.
    pub max_fee_sats: Option<Sats>,
    /// Largest fee rate, in sat/vB (the fee over the predicted virtual size of the
    /// signed transaction).
    pub max_fee_rate_sat_per_vb: Option<f64>,
}

impl BitcoinPolicy {
    /// Whether `network` passes `allowed_networks` (empty: every network).
    pub fn network_allowed(&self, network: wallet_btc::Network) -> bool {
        self.allowed_networks.is_empty() || self.allowed_networks.iter().any(|n| n.0 == network)
    }
}

/// Settings of one wallet.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WalletPolicy {
    /// Co-sign raw preimages (`PAYLOAD_KIND_RAW`, any digest) for this wallet. A raw
    /// keccak-256 preimage can be an Ethereum transaction, an EIP-7702 authorization or
    /// an EIP-712 permit that no rule looks at: enable only for wallets that need it
    /// (raw Bitcoin sighashes, whose transaction no rule sees: prefer
    /// `PAYLOAD_KIND_BITCOIN_PSBT_INPUT`). Logged as a WARNING at start-up.
    pub allow_raw: bool,
}

/// Signing policy.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Per-wallet settings by wallet id. `"*"` (every wallet) only with
    /// `insecure_dev_primes: true`.
    pub wallets: BTreeMap<String, WalletPolicy>,
    /// Removed (raw payloads were allowed for every wallet): `true` is refused with a
    /// message naming `wallets.<id>.allow_raw`; `false` is accepted and ignored.
    pub allow_raw_payloads: Option<bool>,
    /// Removed with `allow_raw_payloads` (same handling).
    pub raw_keccak256_allowed: Option<bool>,
    /// Ethereum transaction rules.
    pub ethereum: EthereumPolicy,
    /// Bitcoin PSBT rules.
    pub bitcoin: BitcoinPolicy,
}

impl PolicyConfig {
    /// Whether raw preimages may be co-signed for `wallet_id`.
    pub fn raw_allowed(&self, wallet_id: &str) -> bool {
        [wallet_id, ANY_WALLET]
            .iter()
            .any(|id| self.wallets.get(*id).is_some_and(|w| w.allow_raw))
    }

    /// The wallet ids with raw preimages enabled (for the start-up warning).
    pub fn raw_wallets(&self) -> Vec<&str> {
        self.wallets
            .iter()
            .filter(|(_, w)| w.allow_raw)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// Checks the section: `(key, reason)` of the first problem. `dev` is
    /// `insecure_dev_primes`.
    pub fn check(&self, dev: bool) -> Result<(), (String, String)> {
        for (key, v) in [
            ("policy.allow_raw_payloads", self.allow_raw_payloads),
            ("policy.raw_keccak256_allowed", self.raw_keccak256_allowed),
        ] {
            if v == Some(true) {
                return Err((
                    key.into(),
                    "removed: raw payloads are refused by default; enable them per wallet with \
                     `policy.wallets.<wallet_id>.allow_raw: true`"
                        .into(),
                ));
            }
        }
        for id in self.wallets.keys() {
            if id == ANY_WALLET && !dev {
                return Err((
                    "policy.wallets".into(),
                    "\"*\" (every wallet) is accepted only with insecure_dev_primes: true \
                     (tests and demos); name each wallet id"
                        .into(),
                ));
            }
            if id.trim().is_empty() {
                return Err(("policy.wallets".into(), "empty wallet id".into()));
            }
        }
        for a in &self.ethereum.allowed_destinations {
            parse_address(a).map_err(|r| ("policy.ethereum.allowed_destinations".into(), r))?;
        }
        if let Some(rate) = self.bitcoin.max_fee_rate_sat_per_vb {
            if !rate.is_finite() || rate < 0.0 {
                return Err((
                    "policy.bitcoin.max_fee_rate_sat_per_vb".into(),
                    format!("{rate} is not a fee rate (a non-negative number of sat/vB)"),
                ));
            }
        }
        if let Some(a) = self.bitcoin.allowed_destinations.iter().find(|a| {
            !self.bitcoin.allowed_networks.is_empty()
                && !self
                    .bitcoin
                    .allowed_networks
                    .iter()
                    .any(|n| a.script_on(n.0).is_some())
        }) {
            return Err((
                "policy.bitcoin.allowed_destinations".into(),
                format!(
                    "{} belongs to none of allowed_networks",
                    a.0.clone().assume_checked()
                ),
            ));
        }
        Ok(())
    }

    /// Deprecation notes for the start-up log.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, v) in [
            ("policy.allow_raw_payloads", self.allow_raw_payloads),
            ("policy.raw_keccak256_allowed", self.raw_keccak256_allowed),
        ] {
            if v.is_some() {
                out.push(format!(
                    "{key} is deprecated and ignored (raw payloads are refused unless a wallet \
                     has policy.wallets.<id>.allow_raw: true); remove it"
                ));
            }
        }
        out
    }
}
