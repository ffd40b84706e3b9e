//! A real Ethereum node for the tests: Foundry's anvil (its binary ships inside the npm
//! package `@foundry-rs/anvil`, installed by `bash scripts/setup.sh evm`), started on
//! loopback port 0, and the Solidity compiler solc-js for the tests' contracts
//! (`testing/e2e-tests/contracts/`). Both are required: a missing tool is an error that
//! names the setup command, never a skipped test.
//!
//! JSON-RPC goes through alloy's provider (the CLI's [`wallet_cli::evm::Node`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, Bytes, U256};
use alloy_provider::network::ReceiptResponse;
use alloy_provider::{Provider, RootProvider};
use alloy_rpc_types_eth::{TransactionReceipt, TransactionRequest};
use anyhow::{bail, Context, Result};

use crate::{repo_root, Proc};

/// The chain id the tests' anvil runs.
pub const CHAIN_ID: u64 = 31337;

/// A tool of `testing/evm-tools` from its environment variable (`ANVIL_BIN`,
/// `SOLCJS_BIN`, as `scripts/lib.sh` exports them) or its place in `node_modules`.
fn evm_tool(var: &str, default: &str) -> Result<PathBuf> {
    let p = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        repo_root()
            .join("testing/evm-tools/node_modules")
            .join(default)
    });
    if !p.exists() {
        bail!(
            "{} is missing ({var}): install the EVM tools with `bash scripts/setup.sh evm`",
            p.display()
        );
    }
    Ok(p)
}

/// The anvil binary.
pub fn anvil_bin() -> Result<PathBuf> {
    evm_tool("ANVIL_BIN", "@foundry-rs/anvil-linux-amd64/bin/anvil")
}

/// The solc-js command line compiler.
pub fn solcjs_bin() -> Result<PathBuf> {
    evm_tool("SOLCJS_BIN", ".bin/solcjs")
}

/// A running anvil (killed on drop) and its JSON-RPC URL.
pub struct Anvil {
    /// The process.
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The node, through alloy's provider.
    pub node: wallet_cli::evm::Node,
}

impl Anvil {
    /// Starts anvil on loopback port 0 with chain id [`CHAIN_ID`] and the Prague
    /// hardfork (EIP-7702), its log in `dir`, and waits for the port it reports
    /// (`Listening on 127.0.0.1:PORT`).
    pub fn start(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut cmd = Command::new(anvil_bin()?);
        cmd.args([
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--chain-id",
            &CHAIN_ID.to_string(),
            "--hardfork",
            "prague",
        ]);
        let mut proc = Proc::spawn("anvil", cmd, &dir.join("anvil.log"))?;
        let started = Instant::now();
        let url = loop {
            let out = proc.output();
            if let Some(addr) = out
                .lines()
                .find_map(|l| l.trim().strip_prefix("Listening on "))
            {
                break format!("http://{}", addr.trim());
            }
            if !proc.alive() || started.elapsed() > Duration::from_secs(30) {
                bail!("anvil did not start; output:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let node = wallet_cli::evm::Node::new(&url)?;
        Ok(Anvil { proc, url, node })
    }

    /// The provider.
    pub fn provider(&self) -> &RootProvider {
        self.node.provider()
    }
}

/// Compiles `files` of `testing/e2e-tests/contracts` with solc-js (optimized) into
/// `out` and returns the creation bytecode of contract `name` of each, in order.
pub fn compile(out: &Path, contracts: &[(&str, &str)]) -> Result<Vec<Bytes>> {
    let src = repo_root().join("testing/e2e-tests/contracts");
    std::fs::create_dir_all(out)?;
    let solc = solcjs_bin()?;
    let mut cmd = Command::new(&solc);
    cmd.current_dir(&src)
        .args(["--bin", "--optimize", "-o"])
        .arg(out);
    for (file, _) in contracts {
        cmd.arg(file);
    }
    let o = cmd
        .output()
        .with_context(|| format!("cannot run {}", solc.display()))?;
    if !o.status.success() {
        bail!(
            "solcjs failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    contracts
        .iter()
        .map(|(file, name)| {
            // solcjs names its output `<file with . as _>_<contract>.bin`.
            let bin = out.join(format!("{}_{name}.bin", file.replace(['.', '/'], "_")));
            let hex_code = std::fs::read_to_string(&bin)
                .with_context(|| format!("no bytecode at {}", bin.display()))?;
            Ok(Bytes::from(hex::decode(hex_code.trim())?))
        })
        .collect()
}

/// anvil's unlocked development accounts (`eth_accounts`).
pub async fn dev_accounts(p: &RootProvider) -> Result<Vec<Address>> {
    let a = p.get_accounts().await?;
    if a.len() < 2 {
        bail!("anvil has {} unlocked accounts, the tests need 2", a.len());
    }
    Ok(a)
}

/// Sends `req` with `eth_sendTransaction` (from an unlocked account) and waits for its
/// receipt (30 s).
pub async fn transact(p: &RootProvider, req: TransactionRequest) -> Result<TransactionReceipt> {
    let pending = p
        .send_transaction(req)
        .await
        .context("eth_sendTransaction")?;
    Ok(pending
        .with_timeout(Some(Duration::from_secs(30)))
        .get_receipt()
        .await?)
}

/// Deploys `code` (creation bytecode and constructor arguments) from `from`; the
/// contract's address.
pub async fn deploy(p: &RootProvider, from: Address, code: Bytes) -> Result<Address> {
    let r = transact(
        p,
        TransactionRequest::default().from(from).input(code.into()),
    )
    .await?;
    if !r.status() {
        bail!("the deployment reverted: {r:?}");
    }
    r.contract_address().context("no contract address")
}

/// `eth_call` of `data` on `to` at the latest block.
pub async fn call(p: &RootProvider, to: Address, data: Vec<u8>) -> Result<Bytes> {
    Ok(p.call(
        TransactionRequest::default()
            .to(to)
            .input(Bytes::from(data).into()),
    )
    .await?)
}

/// `anvil_setBalance`.
pub async fn set_balance(p: &RootProvider, account: Address, wei: U256) -> Result<()> {
    let _: serde_json::Value = p
        .raw_request("anvil_setBalance".into(), (account, wei))
        .await
        .context("anvil_setBalance")?;
    Ok(())
}
