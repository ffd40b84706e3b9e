//! Ethereum pieces of `client`: reading addresses, amounts and calldata from the
//! command line, building unsigned transactions with alloy's types (`client mktx`,
//! `client send`), and talking JSON-RPC to a node with alloy's provider (`client
//! send`: nonce, gas, fees, chain id, broadcast, receipt).
//!
//! Everything a user typed is checked here and refused as `invalid_input`
//! ([`mpc_client::MpcError::input`]) before any key file is opened or any request is
//! sent; what the node answers is mapped to the wallet's error codes by [`NodeError`].

use std::time::Duration;

use alloy_consensus::{TxEip1559, TxEip2930, TxLegacy};
use alloy_primitives::utils::parse_units;
use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use alloy_provider::network::ReceiptResponse;
use alloy_provider::{PendingTransactionError, Provider, RootProvider};
use alloy_rpc_types_eth::TransactionRequest;
use alloy_transport::{RpcError, TransportError, TransportErrorKind};
use mpc_client::{ErrorCode, MpcError};
use serde::Serialize;
use wallet_evm::UnsignedTx;

/// An address ([`wallet_evm::parse_address`]: mixed case must be the EIP-55 checksum).
pub fn parse_address(name: &str, s: &str) -> Result<Address, MpcError> {
    wallet_evm::parse_address(s).map_err(|e| MpcError::input(format!("{name} {s:?}: {e}")))
}

/// An amount in wei: a decimal integer, `0x` hex, or a decimal number with a unit
/// (`1.5ether`, `20gwei`, `7wei`).
pub fn parse_amount(name: &str, s: &str) -> Result<U256, MpcError> {
    let t = s.trim().to_ascii_lowercase();
    let bad = |why: &str| {
        MpcError::input(format!(
            "{name} {s:?} is not an amount{why} (wei as an integer or 0x hex, or e.g. 1.5ether, 20gwei)"
        ))
    };
    for unit in ["ether", "gwei", "wei"] {
        if let Some(num) = t.strip_suffix(unit) {
            return parse_units(num.trim(), unit)
                .map(Into::into)
                .map_err(|e| bad(&format!(": {e}")));
        }
    }
    if let Some(hex) = t.strip_prefix("0x") {
        return U256::from_str_radix(hex, 16).map_err(|_| bad(""));
    }
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(""));
    }
    U256::from_str_radix(&t, 10).map_err(|_| bad(": too large"))
}

/// An amount of wei that fits a fee field (`u128`).
pub fn parse_fee(name: &str, s: &str) -> Result<u128, MpcError> {
    let v = parse_amount(name, s)?;
    u128::try_from(v).map_err(|_| MpcError::input(format!("{name} {s:?} is too large for a fee")))
}

/// An unsigned integer (decimal or `0x` hex), e.g. a nonce, chain id or gas limit.
pub fn parse_u64(name: &str, s: &str) -> Result<u64, MpcError> {
    let t = s.trim();
    let r = match t.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse::<u64>(),
    };
    r.map_err(|_| MpcError::input(format!("{name} {s:?} is not an unsigned 64-bit integer")))
}

/// Calldata: `0x` hex, possibly empty (`0x` or nothing).
pub fn parse_data(name: &str, s: &str) -> Result<Bytes, MpcError> {
    let t = s.trim();
    let h = t.strip_prefix("0x").unwrap_or(t);
    hex::decode(h)
        .map(Bytes::from)
        .map_err(|e| MpcError::input(format!("{name} is not hex: {e}")))
}

/// The fields of a transaction to build, already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxFields {
    /// 0 (legacy, EIP-155), 1 (EIP-2930) or 2 (EIP-1559).
    pub tx_type: u8,
    /// Chain id.
    pub chain_id: u64,
    /// The sender's nonce.
    pub nonce: u64,
    /// Destination.
    pub to: Address,
    /// Value in wei.
    pub value: U256,
    /// Calldata.
    pub data: Bytes,
    /// Gas limit.
    pub gas: u64,
    /// `max_fee_per_gas` (type 2) or `gas_price` (types 0 and 1).
    pub max_fee_per_gas: u128,
    /// `max_priority_fee_per_gas` (type 2 only).
    pub max_priority_fee_per_gas: u128,
}

impl TxFields {
    /// The unsigned transaction (alloy's types; the wallet's codec serializes it).
    pub fn build(&self) -> Result<UnsignedTx, MpcError> {
        let to = TxKind::Call(self.to);
        Ok(match self.tx_type {
            0 => UnsignedTx::Legacy(TxLegacy {
                chain_id: Some(self.chain_id),
                nonce: self.nonce,
                gas_price: self.max_fee_per_gas,
                gas_limit: self.gas,
                to,
                value: self.value,
                input: self.data.clone(),
            }),
            1 => UnsignedTx::Eip2930(TxEip2930 {
                chain_id: self.chain_id,
                nonce: self.nonce,
                gas_price: self.max_fee_per_gas,
                gas_limit: self.gas,
                to,
                value: self.value,
                access_list: Default::default(),
                input: self.data.clone(),
            }),
            2 => {
                if self.max_priority_fee_per_gas > self.max_fee_per_gas {
                    return Err(MpcError::input(format!(
                        "the max priority fee per gas ({}) is above the max fee per gas ({})",
                        self.max_priority_fee_per_gas, self.max_fee_per_gas
                    )));
                }
                UnsignedTx::Eip1559(TxEip1559 {
                    chain_id: self.chain_id,
                    nonce: self.nonce,
                    gas_limit: self.gas,
                    max_fee_per_gas: self.max_fee_per_gas,
                    max_priority_fee_per_gas: self.max_priority_fee_per_gas,
                    to,
                    value: self.value,
                    access_list: Default::default(),
                    input: self.data.clone(),
                })
            }
            other => {
                return Err(MpcError::input(format!(
                    "--type {other}: mktx builds types 0 (legacy, EIP-155), 1 (EIP-2930) and 2 (EIP-1559)"
                )))
            }
        })
    }
}

/// `client mktx`: the arguments, as typed (checked by [`MkTxArgs::fields`]).
#[derive(clap::Args, Debug, Clone)]
pub struct MkTxArgs {
    /// Destination address.
    #[arg(long)]
    pub to: String,
    /// Value in wei (integer or 0x hex), or with a unit: 1.5ether, 20gwei.
    #[arg(long, default_value = "0")]
    pub value: String,
    /// Calldata, hex.
    #[arg(long, default_value = "")]
    pub data: String,
    /// Chain id.
    #[arg(long)]
    pub chain_id: String,
    /// The sender's account nonce.
    #[arg(long)]
    pub nonce: String,
    /// Gas limit.
    #[arg(long)]
    pub gas: String,
    /// Max fee per gas in wei (type 2); the gas price for types 0 and 1 unless
    /// --gas-price is given.
    #[arg(long)]
    pub max_fee_per_gas: Option<String>,
    /// Max priority fee per gas in wei (type 2).
    #[arg(long)]
    pub max_priority_fee_per_gas: Option<String>,
    /// Gas price in wei (types 0 and 1).
    #[arg(long)]
    pub gas_price: Option<String>,
    /// Transaction type: 2 (EIP-1559), 0 (legacy with EIP-155) or 1 (EIP-2930).
    #[arg(long = "type", default_value = "2")]
    pub tx_type: String,
}

impl MkTxArgs {
    /// The checked fields.
    pub fn fields(&self) -> Result<TxFields, MpcError> {
        let tx_type = match self.tx_type.trim() {
            "0" => 0,
            "1" => 1,
            "2" => 2,
            other => {
                return Err(MpcError::input(format!(
                    "--type {other:?}: mktx builds types 0 (legacy, EIP-155), 1 (EIP-2930) and 2 (EIP-1559)"
                )))
            }
        };
        let opt_fee =
            |name: &str, v: &Option<String>| v.as_deref().map(|s| parse_fee(name, s)).transpose();
        let max_fee = opt_fee("--max-fee-per-gas", &self.max_fee_per_gas)?;
        let priority = opt_fee("--max-priority-fee-per-gas", &self.max_priority_fee_per_gas)?;
        let gas_price = opt_fee("--gas-price", &self.gas_price)?;
        let (max_fee_per_gas, max_priority_fee_per_gas) = if tx_type == 2 {
            if gas_price.is_some() {
                return Err(MpcError::input(
                    "--gas-price is for types 0 and 1; type 2 takes --max-fee-per-gas and --max-priority-fee-per-gas",
                ));
            }
            match (max_fee, priority) {
                (Some(f), Some(p)) => (f, p),
                _ => {
                    return Err(MpcError::input(
                        "type 2 needs --max-fee-per-gas and --max-priority-fee-per-gas",
                    ))
                }
            }
        } else {
            if priority.is_some() {
                return Err(MpcError::input(
                    "--max-priority-fee-per-gas is for type 2 transactions",
                ));
            }
            match gas_price.or(max_fee) {
                Some(p) => (p, 0),
                None => {
                    return Err(MpcError::input(format!(
                        "type {tx_type} needs --gas-price (or --max-fee-per-gas)"
                    )))
                }
            }
        };
        Ok(TxFields {
            tx_type,
            chain_id: parse_u64("--chain-id", &self.chain_id)?,
            nonce: parse_u64("--nonce", &self.nonce)?,
            to: parse_address("--to", &self.to)?,
            value: parse_amount("--value", &self.value)?,
            data: parse_data("--data", &self.data)?,
            gas: parse_u64("--gas", &self.gas)?,
            max_fee_per_gas,
            max_priority_fee_per_gas,
        })
    }
}

/// An error of the Ethereum node behind `--rpc-url`, with the wallet's error code:
/// `config` (the node cannot be reached), `invalid_input` (the node refused the
/// request, e.g. insufficient funds or a reverting call), `invalid_response` (it
/// answered something unreadable), `timeout` (no receipt in time).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    /// The wallet's error code.
    pub code: ErrorCode,
    /// What happened.
    pub message: String,
}

impl NodeError {
    fn new(code: ErrorCode, message: String) -> Self {
        NodeError { code, message }
    }

    /// An RPC error of `method`.
    pub fn rpc(method: &str, e: TransportError) -> Self {
        match e {
            RpcError::ErrorResp(p) => NodeError::new(
                ErrorCode::InvalidInput,
                format!("the node refused {method}: {} (code {})", p.message, p.code),
            ),
            RpcError::Transport(TransportErrorKind::HttpError(h)) => NodeError::new(
                ErrorCode::InvalidResponse,
                format!(
                    "the node answered {method} with HTTP {}: {}",
                    h.status, h.body
                ),
            ),
            RpcError::Transport(k) => NodeError::new(
                ErrorCode::Config,
                format!("cannot reach the node (--rpc-url) for {method}: {k}"),
            ),
            RpcError::NullResp | RpcError::DeserError { .. } => NodeError::new(
                ErrorCode::InvalidResponse,
                format!("the node's answer to {method} is unreadable: {e}"),
            ),
            other => NodeError::new(ErrorCode::Internal, format!("{method}: {other}")),
        }
    }
}

/// An Ethereum node over JSON-RPC (HTTP or HTTPS), through alloy's provider.
#[derive(Debug, Clone)]
pub struct Node {
    provider: RootProvider,
}

impl Node {
    /// A node at `url` (`http://` or `https://`); nothing is sent yet.
    pub fn new(url: &str) -> Result<Self, MpcError> {
        let parsed = reqwest::Url::parse(url.trim())
            .map_err(|e| MpcError::input(format!("--rpc-url {url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(MpcError::input(format!(
                "--rpc-url {url:?}: only http:// and https:// nodes are supported"
            )));
        }
        // reqwest 0.13 is built without a TLS provider of its own (see Cargo.toml):
        // ring, which the rest of the workspace uses, serves the whole process. Err:
        // one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Node {
            provider: RootProvider::new_http(parsed),
        })
    }

    /// The alloy provider.
    pub fn provider(&self) -> &RootProvider {
        &self.provider
    }

    /// `eth_chainId`.
    pub async fn chain_id(&self) -> Result<u64, NodeError> {
        self.provider
            .get_chain_id()
            .await
            .map_err(|e| NodeError::rpc("eth_chainId", e))
    }

    /// The account's nonce counting its pending transactions.
    pub async fn pending_nonce(&self, account: Address) -> Result<u64, NodeError> {
        self.provider
            .get_transaction_count(account)
            .pending()
            .await
            .map_err(|e| NodeError::rpc("eth_getTransactionCount", e))
    }

    /// EIP-1559 fees from the node's fee history (alloy's estimator).
    pub async fn eip1559_fees(&self) -> Result<(u128, u128), NodeError> {
        let f = self
            .provider
            .estimate_eip1559_fees()
            .await
            .map_err(|e| NodeError::rpc("eth_feeHistory", e))?;
        Ok((f.max_fee_per_gas, f.max_priority_fee_per_gas))
    }

    /// `eth_estimateGas` of a call from `from`.
    pub async fn estimate_gas(
        &self,
        from: Address,
        to: Address,
        value: U256,
        data: Bytes,
    ) -> Result<u64, NodeError> {
        let req = TransactionRequest::default()
            .from(from)
            .to(to)
            .value(value)
            .input(data.into());
        self.provider
            .estimate_gas(req)
            .await
            .map_err(|e| NodeError::rpc("eth_estimateGas", e))
    }

    /// Broadcasts a signed transaction (`eth_sendRawTransaction`) and, unless `wait`
    /// is zero, waits up to `wait` for its receipt.
    pub async fn send_raw(
        &self,
        raw: &[u8],
        wait: Duration,
    ) -> Result<(B256, Option<Receipt>), NodeError> {
        let pending = self
            .provider
            .send_raw_transaction(raw)
            .await
            .map_err(|e| NodeError::rpc("eth_sendRawTransaction", e))?;
        let hash = *pending.tx_hash();
        if wait.is_zero() {
            return Ok((hash, None));
        }
        let r = pending
            .with_timeout(Some(wait))
            .get_receipt()
            .await
            .map_err(|e| match e {
                PendingTransactionError::TransportError(t) => {
                    NodeError::rpc("eth_getTransactionReceipt", t)
                }
                PendingTransactionError::TxWatcher(_) => NodeError::new(
                    ErrorCode::Timeout,
                    format!(
                        "transaction {hash} was sent but not mined within {}s (--wait-secs)",
                        wait.as_secs()
                    ),
                ),
                other => NodeError::new(
                    ErrorCode::Internal,
                    format!("waiting for the receipt of {hash}: {other}"),
                ),
            })?;
        Ok((
            hash,
            Some(Receipt {
                status: u8::from(r.status()),
                block_number: r.block_number(),
                gas_used: r.gas_used(),
                effective_gas_price: r.effective_gas_price().to_string(),
            }),
        ))
    }
}

/// What a receipt says about a mined transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// 1: success, 0: reverted.
    pub status: u8,
    /// The block it was mined in.
    pub block_number: Option<u64>,
    /// Gas used.
    pub gas_used: u64,
    /// Wei per gas paid (decimal).
    pub effective_gas_price: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = parse_address("--to", "0x52908400098527886E0F7030069857D2E4169EE7").unwrap();
        assert_eq!(
            a,
            parse_address("--to", "0x52908400098527886e0f7030069857d2e4169ee7").unwrap()
        );
        // A changed case breaks the checksum.
        assert!(parse_address("--to", "0x52908400098527886E0F7030069857D2E4169Ee7").is_err());
        for bad in [
            "",
            "0x",
            "0x1234",
            "0xzz908400098527886e0f7030069857d2e4169ee7",
        ] {
            let e = parse_address("--to", bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("v", "1000").unwrap(), U256::from(1000));
        assert_eq!(parse_amount("v", "0x3e8").unwrap(), U256::from(1000));
        assert_eq!(
            parse_amount("v", "1.5ether").unwrap(),
            U256::from(1_500_000_000_000_000_000u128)
        );
        assert_eq!(
            parse_amount("v", "20 gwei").unwrap(),
            U256::from(20_000_000_000u64)
        );
        assert_eq!(parse_amount("v", "7wei").unwrap(), U256::from(7));
        for bad in ["", "-1", "1.5", "1e18", "abc", "0xg"] {
            assert!(parse_amount("v", bad).is_err(), "{bad}");
        }
        assert!(parse_fee("f", &format!("{}", u128::MAX)).is_ok());
        assert!(parse_fee("f", &format!("{}0", u128::MAX)).is_err());
    }

    fn mktx(tx_type: &str) -> MkTxArgs {
        MkTxArgs {
            to: "0x3535353535353535353535353535353535353535".into(),
            value: "1000000000000000000".into(),
            data: String::new(),
            chain_id: "1".into(),
            nonce: "9".into(),
            gas: "21000".into(),
            max_fee_per_gas: Some("20000000000".into()),
            max_priority_fee_per_gas: None,
            gas_price: None,
            tx_type: tx_type.into(),
        }
    }

    #[test]
    fn legacy_is_the_eip155_example() {
        // EIP-155's example transaction: nonce 9, gas price 20 gwei, gas 21000, to
        // 0x3535..., 1 ether, chain id 1.
        let tx = mktx("0").fields().unwrap().build().unwrap();
        assert_eq!(
            hex::encode(tx.signing_payload()),
            "ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080"
        );
    }

    #[test]
    fn eip1559_round_trips_through_the_codec() {
        let mut a = mktx("2");
        a.max_priority_fee_per_gas = Some("1gwei".into());
        a.data = "0xdeadbeef".into();
        let tx = a.fields().unwrap().build().unwrap();
        let payload = tx.signing_payload();
        assert_eq!(payload[0], 2);
        let back = UnsignedTx::decode(&payload).unwrap().fields();
        assert_eq!(back.chain_id, Some(1));
        assert_eq!(back.nonce, 9);
        assert_eq!(back.max_fee_per_gas, 20_000_000_000);
        assert_eq!(back.max_priority_fee_per_gas, Some(1_000_000_000));
        assert_eq!(back.input.as_ref(), &[0xde, 0xad, 0xbe, 0xef]);
        // Type 1 as well.
        let t1 = mktx("1").fields().unwrap().build().unwrap();
        assert_eq!(
            UnsignedTx::decode(&t1.signing_payload()).unwrap().tx_type(),
            1
        );
    }

    #[test]
    fn bad_arguments_are_invalid_input() {
        let mut a = mktx("2");
        assert!(a.fields().is_err(), "type 2 without a priority fee");
        a.max_priority_fee_per_gas = Some("30gwei".into());
        assert!(
            a.fields().unwrap().build().is_err(),
            "priority above max fee"
        );
        for (i, f) in [
            |a: &mut MkTxArgs| a.tx_type = "3".into(),
            |a: &mut MkTxArgs| a.nonce = "-1".into(),
            |a: &mut MkTxArgs| a.data = "0xabc".into(),
            |a: &mut MkTxArgs| a.to = "nobody".into(),
            |a: &mut MkTxArgs| a.gas_price = Some("1".into()),
        ]
        .iter()
        .enumerate()
        {
            let mut a = mktx("2");
            a.max_priority_fee_per_gas = Some("1".into());
            f(&mut a);
            let e = a
                .fields()
                .err()
                .unwrap_or_else(|| panic!("case {i} accepted"));
            assert_eq!(e.code(), ErrorCode::InvalidInput, "case {i}");
        }
    }

    #[test]
    fn node_urls_are_checked() {
        assert!(Node::new("ftp://example.org").is_err());
        assert!(Node::new("not a url").is_err());
        assert!(Node::new("http://127.0.0.1:8545").is_ok());
    }
}
