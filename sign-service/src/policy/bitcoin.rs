//! Bitcoin PSBT inputs (`PAYLOAD_KIND_BITCOIN_PSBT_INPUT`): the PSBT is analyzed by
//! `wallet-btc` (the codec every party uses) with the account's root key and chain code,
//! before any session; the preimage the cosigner signs is the requested input's BIP-143
//! preimage (its double SHA-256 is the sighash), and the rules of `policy.bitcoin` look
//! at the whole transaction.

use mpc_core::hd::DerivationPath;
use mpc_core::{Account, AccountKind, DigestKind};
use wallet_btc::{BtcError, InputPlan, Network, PsbtPlan, WalletKeys};

use super::config::BitcoinPolicy;
use super::{deny, rule, Verdict};

/// Why a `BITCOIN_PSBT_INPUT` request is refused before the policy's rules.
#[derive(Debug, thiserror::Error)]
pub enum PsbtRefusal {
    /// `bitcoin_network` names no network (`invalid_input`).
    #[error("bitcoin_network {0:?} is not one of mainnet (bitcoin), testnet, signet, regtest")]
    Network(String),
    /// The account cannot sign Bitcoin inputs (`invalid_input`).
    #[error("account {account_id}: {reason}")]
    Account {
        /// The account.
        account_id: String,
        /// Why.
        reason: String,
    },
    /// The digest is not double SHA-256 (`policy_denied`, rule `payload_kind`).
    #[error("a Bitcoin PSBT input is signed with double SHA-256 (the BIP-143 sighash), not {0:?}")]
    Digest(DigestKind),
    /// `wallet-btc` refused the PSBT (`policy_denied`, rule `bitcoin_psbt`, with the
    /// codec's error code and the input it names).
    #[error("the PSBT is refused ({code}): {0}", code = .0.code())]
    Psbt(#[from] BtcError),
    /// `input_index` is not an input of the PSBT (`invalid_input`).
    #[error("input_index {index} is not an input of the PSBT (it has {count})")]
    NoSuchInput {
        /// The index asked for.
        index: u32,
        /// The PSBT's number of inputs.
        count: usize,
    },
    /// `derivation_path` is not the path of the input's key (`invalid_input`).
    #[error("derivation_path {requested} is not input {index}'s path {path}")]
    PathMismatch {
        /// The input.
        index: usize,
        /// Its path, from the PSBT.
        path: String,
        /// The request's.
        requested: String,
    },
}

impl PsbtRefusal {
    /// The input this refusal is about, if it names one.
    pub fn input(&self) -> Option<usize> {
        match self {
            PsbtRefusal::Psbt(e) => btc_error_input(e),
            PsbtRefusal::NoSuchInput { index, .. } => usize::try_from(*index).ok(),
            PsbtRefusal::PathMismatch { index, .. } => Some(*index),
            _ => None,
        }
    }
}

/// The input a `wallet-btc` error names, if any.
fn btc_error_input(e: &BtcError) -> Option<usize> {
    match e {
        BtcError::DuplicateInput { input }
        | BtcError::AlreadyFinalized { input }
        | BtcError::MissingUtxo { input }
        | BtcError::UtxoMismatch { input, .. }
        | BtcError::AmountMismatch { input, .. }
        | BtcError::UnsupportedScript { input, .. }
        | BtcError::UnsupportedSighash { input, .. }
        | BtcError::NotOurInput { input }
        | BtcError::Sighash { input, .. } => Some(*input),
        _ => None,
    }
}

/// One input of an analyzed PSBT, to be signed.
#[derive(Debug, Clone)]
pub struct BitcoinInput {
    /// The whole transaction as `wallet-btc` analyzed it.
    pub plan: PsbtPlan,
    /// The position of the requested input in `plan.inputs` (= its index).
    pub position: usize,
}

impl BitcoinInput {
    /// The input being signed.
    pub fn input(&self) -> &InputPlan {
        &self.plan.inputs[self.position]
    }
}

/// The wallet keys of an HD account (root public key and chain code).
pub fn wallet_keys(account: &Account) -> Result<WalletKeys, PsbtRefusal> {
    let refused = |reason: String| PsbtRefusal::Account {
        account_id: account.id.clone(),
        reason,
    };
    if account.kind != AccountKind::Hd {
        return Err(refused(
            "an independent account has no BIP-32 children: PSBT inputs are signed by HD accounts"
                .into(),
        ));
    }
    let chain_code = account
        .chain_code
        .as_deref()
        .and_then(|c| hex::decode(c).ok())
        .and_then(|c| <[u8; 32]>::try_from(c).ok())
        .ok_or_else(|| refused("no valid chain code".into()))?;
    let root = hex::decode(&account.public_key).map_err(|e| refused(e.to_string()))?;
    WalletKeys::new(&root, &chain_code).map_err(|e| refused(e.to_string()))
}

/// Analyzes the PSBT of a `BITCOIN_PSBT_INPUT` request of `account`: the network, the
/// digest, the whole PSBT (`wallet_btc::analyze_psbt`: every input the wallet's,
/// P2WPKH, SIGHASH_ALL, amounts, fee), then that `input_index` is one of its inputs and
/// `path` is that input's path.
pub fn prepare(
    psbt: &[u8],
    account: &Account,
    path: &DerivationPath,
    digest: DigestKind,
    input_index: u32,
    network: &str,
) -> Result<BitcoinInput, PsbtRefusal> {
    let net = parse_network(network)?;
    if digest != DigestKind::DoubleSha256 {
        return Err(PsbtRefusal::Digest(digest));
    }
    prepare_with_keys(psbt, &wallet_keys(account)?, path, digest, input_index, net)
}

/// `bitcoin_network` as the request carries it.
pub fn parse_network(network: &str) -> Result<Network, PsbtRefusal> {
    network
        .parse()
        .map_err(|_| PsbtRefusal::Network(network.to_string()))
}

/// [`prepare`] with the account's keys and the network given.
pub fn prepare_with_keys(
    psbt: &[u8],
    keys: &WalletKeys,
    path: &DerivationPath,
    digest: DigestKind,
    input_index: u32,
    net: Network,
) -> Result<BitcoinInput, PsbtRefusal> {
    if digest != DigestKind::DoubleSha256 {
        return Err(PsbtRefusal::Digest(digest));
    }
    let plan = wallet_btc::analyze_psbt(psbt, keys, net)?;
    let position = usize::try_from(input_index)
        .ok()
        .and_then(|i| plan.inputs.iter().position(|p| p.index == i))
        .ok_or(PsbtRefusal::NoSuchInput {
            index: input_index,
            count: plan.inputs.len(),
        })?;
    let input = &plan.inputs[position];
    let input_path: Vec<u32> = input.path.into_iter().map(|c| u32::from(*c)).collect();
    if input_path != path.indices() {
        return Err(PsbtRefusal::PathMismatch {
            index: input.index,
            path: input.path_string(),
            requested: path.to_string(),
        });
    }
    Ok(BitcoinInput { plan, position })
}

/// The Bitcoin rules, in order: network, destinations of the external outputs, their
/// sum per transaction, the fee (absolute, then rate); the daily limit is handed to the
/// store (`Verdict::Allow::bitcoin_daily`).
pub fn evaluate(p: &BitcoinPolicy, b: &BitcoinInput) -> Verdict {
    let plan = &b.plan;
    if !p.network_allowed(plan.network) {
        return deny(
            rule::BITCOIN_NETWORKS,
            format!(
                "network {} is not in bitcoin.allowed_networks",
                plan.network
            ),
        );
    }
    if !p.allowed_destinations.is_empty() {
        let allowed: Vec<_> = p
            .allowed_destinations
            .iter()
            .filter_map(|a| a.script_on(plan.network))
            .map(|s| s.to_hex_string())
            .collect();
        if let Some(o) = plan
            .outputs
            .iter()
            .find(|o| !o.is_change && !allowed.contains(&o.script_hex))
        {
            return deny(
                rule::BITCOIN_DESTINATIONS,
                format!(
                    "output {} pays {} sat to {}, which is not in bitcoin.allowed_destinations",
                    o.index,
                    o.amount_sats,
                    o.address
                        .clone()
                        .unwrap_or_else(|| format!("script {}", o.script_hex))
                ),
            );
        }
    }
    if let Some(max) = p.max_sats_per_tx {
        if plan.external_out_sats > max.0 {
            return deny(
                rule::BITCOIN_MAX_SATS_PER_TX,
                format!(
                    "the external outputs of {} send {} sat, above bitcoin.max_sats_per_tx {} sat",
                    plan.txid, plan.external_out_sats, max.0
                ),
            );
        }
    }
    if let Some(max) = p.max_fee_sats {
        if plan.fee_sats > max.0 {
            return deny(
                rule::BITCOIN_MAX_FEE_SATS,
                format!(
                    "fee {} sat is above bitcoin.max_fee_sats {} sat",
                    plan.fee_sats, max.0
                ),
            );
        }
    }
    if let Some(max) = p.max_fee_rate_sat_per_vb {
        let rate = plan.fee_rate_sat_per_vb();
        if rate > max {
            return deny(
                rule::BITCOIN_MAX_FEE_RATE,
                format!(
                    "fee rate {rate:.2} sat/vB ({} sat over {} vB) is above bitcoin.max_fee_rate_sat_per_vb {max}",
                    plan.fee_sats, plan.vsize
                ),
            );
        }
    }
    Verdict::Allow {
        tx: None,
        fields: Some(audit_summary(b)),
        daily: None,
        bitcoin_daily: p.daily_limit_sats.map(|limit| BitcoinDaily {
            txid: plan.txid.clone(),
            sats: plan.external_out_sats,
            limit: limit.0,
        }),
    }
}

/// The daily amount of an allowed Bitcoin transaction, checked and recorded by the store
/// once per txid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitcoinDaily {
    /// The unsigned transaction's txid.
    pub txid: String,
    /// Its external outputs.
    pub sats: u64,
    /// `bitcoin.daily_limit_sats`.
    pub limit: u64,
}

/// What the audit log records of a PSBT input: the txid, the input signed, amounts,
/// fee and every output.
pub fn audit_summary(b: &BitcoinInput) -> serde_json::Value {
    let plan = &b.plan;
    let input = b.input();
    serde_json::json!({
        "kind": "bitcoin_psbt_input",
        "network": plan.network.as_str(),
        "psbt_version": plan.psbt_version,
        "txid": plan.txid,
        "input": input.index,
        "input_path": input.path_string(),
        "input_sats": input.amount_sats,
        "inputs": plan.inputs.len(),
        "total_in_sats": plan.total_in_sats,
        "total_out_sats": plan.total_out_sats,
        "external_out_sats": plan.external_out_sats,
        "fee_sats": plan.fee_sats,
        "vsize": plan.vsize,
        "outputs": plan.outputs.iter().map(|o| serde_json::json!({
            "index": o.index,
            "address": o.address,
            "sats": o.amount_sats,
            "change": o.is_change,
        })).collect::<Vec<_>>(),
    })
}
