//! The wallet on a real Ethereum node, across real processes on loopback: anvil +
//! `sign-gateway` + `sign-service` (with an Ethereum policy) + the `client` CLI.
//!
//! 1. compile (solc-js) and deploy an EIP-2612 token and an EIP-7702 delegate
//!    (`testing/e2e-tests/contracts/`), then start the cosigner with a policy naming
//!    them: chain 31337 only, the token with a per-transaction limit, one permit
//!    spender, one delegate;
//! 2. create a wallet; fund its address with `anvil_setBalance`;
//! 3. `client send` moves value: receipt status 1, the recipient's balance is the value
//!    and the wallet paid value + gas;
//! 4. a permit signed with `client sign-typed-data` is accepted on chain by `permit(...)`
//!    and sets the allowance; permits to another spender or over the limit are refused
//!    by the cosigner (exit 3, the rule named);
//! 5. an authorization signed with `client sign-auth` rides in a type-4 transaction sent
//!    by an anvil account: the wallet's code becomes `0xef0100 ‖ delegate` and runs;
//!    another delegate is refused;
//! 6. a transaction for chain 1 is refused (`allowed_chain_ids`); messages from a file
//!    and standard input, and a passphrase from a file.
//!
//! Needs anvil and solc-js: `bash scripts/setup.sh evm` (a missing tool fails the test).
//! Run: `cargo test -p e2e-tests --test integration evm:: -- --nocapture`.

use std::future::IntoFuture;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use alloy_eips::eip7702::{Authorization, SignedAuthorization};
use alloy_primitives::{Address, Bytes, U256};
use alloy_provider::{Provider, RootProvider};
use alloy_rpc_types_eth::TransactionRequest;
use alloy_sol_types::{sol, SolCall, SolValue};
use anyhow::{ensure, Context, Result};
use e2e_tests::anvil::{self, Anvil, CHAIN_ID};
use e2e_tests::*;

sol! {
    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s);
    function allowance(address owner, address spender) returns (uint256);
    function nonces(address owner) returns (uint256);
    function whoami() returns (address);
}

const ETH: u128 = 1_000_000_000_000_000_000;
/// The permit spender the policy allows, and one it does not.
const SPENDER: Address = Address::repeat_byte(0x5e);
const OTHER_SPENDER: Address = Address::repeat_byte(0x0e);
/// The recipient of `client send`.
const RECIPIENT: Address = Address::repeat_byte(0x42);
/// A delegate the policy does not allow.
const OTHER_DELEGATE: Address = Address::repeat_byte(0xde);
/// The token's per-transaction limit in the policy: 1000 tokens (18 decimals).
const TOKEN_LIMIT: u128 = 1000 * ETH;
/// 2100-01-01: permit deadlines.
const DEADLINE: u64 = 4_102_444_800;

fn step(name: &str) {
    eprintln!("\n[evm] ===== {name}");
}

#[test]
fn wallet_on_anvil() -> Result<()> {
    let total = Instant::now();
    let bins = bins()?;
    let root = TempDir::new("wallet-evm")?;
    let anvil = Anvil::start(&root.0.join("anvil"))?;
    eprintln!("[evm] anvil at {}", anvil.url);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let p = anvil.provider();

    step("compile and deploy the token and the delegate (solc-js, anvil dev account)");
    let code = anvil::compile(
        &root.0.join("solc"),
        &[("Token.sol", "Token"), ("Delegate.sol", "Delegate")],
    )?;
    let dev = rt.block_on(anvil::dev_accounts(p))?;
    let supply = U256::from(1_000_000u64) * U256::from(ETH);
    let mut token_code = code[0].to_vec();
    token_code.extend(supply.abi_encode());
    let token = rt.block_on(anvil::deploy(p, dev[0], token_code.into()))?;
    let delegate = rt.block_on(anvil::deploy(p, dev[0], code[1].clone()))?;
    eprintln!("[evm] token {token}, delegate {delegate}");

    step("gateway + cosigner with an Ethereum policy");
    let gw_dir = root.0.join("gateway");
    let client_dir = root.0.join("client");
    let svc_dir = root.0.join("service");
    std::fs::create_dir_all(&client_dir)?;
    let (_gateway, gateway_url) = start_gateway(&bins, &gw_dir)?;
    let policy = format!(
        "policy:\n  ethereum:\n    allowed_chain_ids: [{CHAIN_ID}]\n    erc20:\n      tokens:\n        \
         \"{token}\":\n          max_amount_per_tx: \"{TOKEN_LIMIT}\"\n    typed_data:\n      \
         permit_spenders: [\"{SPENDER}\"]\n    eip7702:\n      allowed_delegates: [\"{delegate}\"]\n"
    );
    let mut svc_cfg = ServiceConfig {
        port: 0,
        gateway_url,
        data_dir: svc_dir,
        max_value_per_tx_wei: None,
        session_timeout_secs: 60,
        extra_yaml: policy,
    };
    let service = start_service(&bins, &mut svc_cfg)?;
    let result = scenario(
        &bins,
        &client_dir,
        &svc_cfg.url(),
        &anvil,
        &rt,
        token,
        delegate,
        &dev,
    );
    if let Err(e) = &result {
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        eprintln!(
            "[evm] FAILED: {e:#}\n--- sign-service log (tail) ---\n{}\n--- anvil log (tail) ---\n{}",
            tail(service.output()),
            tail(anvil.proc.output())
        );
    }
    result?;
    eprintln!("[evm] whole scenario {:.1}s", total.elapsed().as_secs_f64());
    Ok(())
}

/// A refusal by the cosigner's policy: exit code 3, `policy_denied`, the rule named.
fn expect_refused(r: &ClientRun, rule: &str) -> Result<()> {
    ensure!(
        r.code == 3,
        "expected exit 3 (policy_denied, rule {rule}), got {}:\n{}\n{}",
        r.code,
        r.stdout,
        r.stderr
    );
    let e = r.json()?;
    ensure!(e["error"]["code"] == "policy_denied", "{e}");
    ensure!(e["error"]["rule"] == rule, "expected rule {rule}: {e}");
    Ok(())
}

/// The EIP-2612 permit of the test token as `eth_signTypedData_v4` JSON.
fn permit_json(
    token: Address,
    owner: Address,
    spender: Address,
    value: U256,
    nonce: U256,
) -> String {
    serde_json::json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"}
            ],
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"}
            ]
        },
        "primaryType": "Permit",
        "domain": {
            "name": "Test Token",
            "version": "1",
            "chainId": CHAIN_ID,
            "verifyingContract": token.to_checksum(None)
        },
        "message": {
            "owner": owner.to_checksum(None),
            "spender": spender.to_checksum(None),
            "value": value.to_string(),
            "nonce": nonce.to_string(),
            "deadline": DEADLINE
        }
    })
    .to_string()
}

fn word(sig: &serde_json::Value, k: &str) -> Result<U256> {
    let h = sig[k]
        .as_str()
        .with_context(|| format!("no {k} in {sig}"))?;
    Ok(U256::from_str_radix(h.trim_start_matches("0x"), 16)?)
}

#[allow(clippy::too_many_arguments)]
fn scenario(
    bins: &Bins,
    dir: &Path,
    cosigner: &str,
    anvil: &Anvil,
    rt: &tokio::runtime::Runtime,
    token: Address,
    delegate: Address,
    dev: &[Address],
) -> Result<()> {
    let run = |args: &[&str]| client(bins, dir, cosigner, args);
    let p: &RootProvider = anvil.provider();
    let rpc = anvil.url.as_str();

    step("create a wallet (device + recovery local, insecure dev primes)");
    let w = run(&["create-wallet", "--accounts", "1", "--insecure-dev-primes"])?.ok()?;
    let wallet: Address = w["accounts"][0]["ethereum_address"]
        .as_str()
        .context("no address")?
        .parse()?;
    eprintln!("[evm] wallet address {wallet}");

    step("fund the wallet (anvil_setBalance) and `client send` a transfer");
    let funded = U256::from(100 * ETH);
    rt.block_on(anvil::set_balance(p, wallet, funded))?;
    let value = U256::from(ETH + ETH / 2);
    let sent = run(&[
        "send",
        "--to",
        &RECIPIENT.to_string(),
        "--value",
        "1.5ether",
        "--rpc-url",
        rpc,
    ])?
    .ok()?;
    eprintln!("[evm] send: {sent}");
    ensure!(sent["status"] == 1, "receipt status: {sent}");
    ensure!(sent["chain_id"] == CHAIN_ID && sent["nonce"] == 0, "{sent}");
    let hash = sent["transaction_hash"].as_str().context("no hash")?;
    let receipt = rt
        .block_on(p.get_transaction_receipt(hash.parse()?))?
        .context("the node has no receipt")?;
    ensure!(receipt.status() && receipt.from == wallet, "{receipt:?}");
    ensure!(receipt.to == Some(RECIPIENT), "{receipt:?}");
    let recipient_balance = rt.block_on(p.get_balance(RECIPIENT).into_future())?;
    ensure!(
        recipient_balance == value,
        "recipient has {recipient_balance}"
    );
    let paid = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
    let wallet_balance = rt.block_on(p.get_balance(wallet).into_future())?;
    ensure!(
        wallet_balance == funded - value - paid,
        "the wallet has {wallet_balance}, expected {funded} - {value} - {paid}"
    );
    ensure!(rt.block_on(p.get_transaction_count(wallet).into_future())? == 1);

    step("send: a mined transaction that reverts exits 7; node and argument errors are typed");
    // The token has no fallback: a call with unknown calldata reverts (gas given, so
    // no estimate refuses it first).
    let r = run(&[
        "send",
        "--to",
        &token.to_string(),
        "--data",
        "0xdeadbeef",
        "--gas",
        "100000",
        "--rpc-url",
        rpc,
    ])?;
    ensure!(r.code == 7, "expected exit 7 (reverted): {r:?}");
    let reverted = r.json()?;
    ensure!(
        reverted["status"] == 0 && reverted["nonce"] == 1,
        "{reverted}"
    );
    let dead = RefusedPort::new()?;
    let r = run(&[
        "send",
        "--to",
        &RECIPIENT.to_string(),
        "--rpc-url",
        &dead.url()?,
    ])?;
    ensure!(
        r.code == 1 && r.json()?["error"]["code"] == "config",
        "unreachable node: {r:?}"
    );
    let r = run(&["send", "--to", "0x1234", "--rpc-url", rpc])?;
    ensure!(
        r.code == 1 && r.json()?["error"]["code"] == "invalid_input",
        "bad address: {r:?}"
    );

    step("a transaction for chain 1 is refused (allowed_chain_ids)");
    let tx = run(&[
        "mktx",
        "--to",
        &RECIPIENT.to_string(),
        "--value",
        "1000",
        "--chain-id",
        "1",
        "--nonce",
        "1",
        "--gas",
        "21000",
        "--max-fee-per-gas",
        "2gwei",
        "--max-priority-fee-per-gas",
        "1gwei",
    ])?
    .ok()?;
    let payload = tx["unsigned_transaction"].as_str().context("no payload")?;
    expect_refused(&run(&["sign-tx", payload])?, "allowed_chain_ids")?;

    step("EIP-2612 permit: signed with sign-typed-data, accepted on chain by permit(...)");
    let amount = U256::from(500 * ETH);
    let permit_file = dir.join("permit.json");
    std::fs::write(
        &permit_file,
        permit_json(token, wallet, SPENDER, amount, U256::ZERO),
    )?;
    let sig = run(&["sign-typed-data", &permit_file.display().to_string()])?.ok()?;
    let v = sig["v"].as_u64().context("no v")?;
    ensure!(v == 27 || v == 28, "{sig}");
    let call = permitCall {
        owner: wallet,
        spender: SPENDER,
        value: amount,
        deadline: U256::from(DEADLINE),
        v: v as u8,
        r: word(&sig, "r")?.into(),
        s: word(&sig, "s")?.into(),
    };
    let r = rt.block_on(anvil::transact(
        p,
        TransactionRequest::default()
            .from(dev[1])
            .to(token)
            .input(Bytes::from(call.abi_encode()).into()),
    ))?;
    ensure!(r.status(), "permit(...) reverted: {r:?}");
    let allowed = rt.block_on(anvil::call(
        p,
        token,
        allowanceCall {
            owner: wallet,
            spender: SPENDER,
        }
        .abi_encode(),
    ))?;
    let allowed = allowanceCall::abi_decode_returns(&allowed)?;
    ensure!(allowed == amount, "allowance {allowed}, expected {amount}");
    let nonce = rt.block_on(anvil::call(
        p,
        token,
        noncesCall { owner: wallet }.abi_encode(),
    ))?;
    ensure!(noncesCall::abi_decode_returns(&nonce)? == U256::from(1));
    // The same signature does not permit anything else: a replay reverts.
    let replay = rt.block_on(anvil::transact(
        p,
        TransactionRequest::default()
            .from(dev[1])
            .to(token)
            .input(Bytes::from(call.abi_encode()).into())
            .gas_limit(200_000),
    ))?;
    ensure!(!replay.status(), "a replayed permit succeeded");

    step("permits to another spender, or over the token's limit, are refused");
    let other = dir.join("permit-other.json");
    std::fs::write(
        &other,
        permit_json(token, wallet, OTHER_SPENDER, amount, U256::from(1)),
    )?;
    expect_refused(
        &run(&["sign-typed-data", &other.display().to_string()])?,
        "permit_spenders",
    )?;
    let over = dir.join("permit-over.json");
    std::fs::write(
        &over,
        permit_json(
            token,
            wallet,
            SPENDER,
            U256::from(TOKEN_LIMIT + 1),
            U256::from(1),
        ),
    )?;
    expect_refused(
        &run(&["sign-typed-data", &over.display().to_string()])?,
        "erc20_max_amount",
    )?;

    step("EIP-7702: sign-auth, a type-4 transaction sent by an anvil account");
    // Authorizations are applied after the sender's nonce is bumped: an anvil account
    // sends this transaction, so the authorization carries the wallet's current nonce
    // (were the wallet the sender, it would need its nonce + 1).
    let wallet_nonce = rt.block_on(p.get_transaction_count(wallet).into_future())?;
    let auth = run(&[
        "sign-auth",
        "--delegate",
        &delegate.to_string(),
        "--chain-id",
        &CHAIN_ID.to_string(),
        "--nonce",
        &wallet_nonce.to_string(),
    ])?
    .ok()?;
    ensure!(
        auth["chain_id"].as_str() == Some(CHAIN_ID.to_string().as_str()),
        "{auth}"
    );
    ensure!(auth["nonce"] == wallet_nonce, "{auth}");
    let y_parity = auth["y_parity"].as_u64().context("no y_parity")? as u8;
    let signed = SignedAuthorization::new_unchecked(
        Authorization {
            chain_id: U256::from(CHAIN_ID),
            address: auth["address"].as_str().context("no address")?.parse()?,
            nonce: wallet_nonce,
        },
        y_parity,
        word(&auth, "r")?,
        word(&auth, "s")?,
    );
    // The transaction calls the wallet, whose code is the delegate's once the
    // authorization is applied (the delegate has no fallback: an empty call reverts).
    let mut req = TransactionRequest::default()
        .from(dev[0])
        .to(wallet)
        .input(Bytes::from(whoamiCall {}.abi_encode()).into());
    req.authorization_list = Some(vec![signed]);
    let r = rt.block_on(anvil::transact(p, req))?;
    ensure!(r.status(), "the type-4 transaction failed: {r:?}");
    ensure!(
        r.inner.tx_type() as u8 == 4,
        "not a type-4 transaction: {r:?}"
    );
    let code = rt.block_on(p.get_code_at(wallet).into_future())?;
    let mut designator = vec![0xef, 0x01, 0x00];
    designator.extend_from_slice(delegate.as_slice());
    ensure!(
        code.as_ref() == designator.as_slice(),
        "the wallet's code is {code}, expected 0xef0100 ‖ {delegate}"
    );
    ensure!(rt.block_on(p.get_transaction_count(wallet).into_future())? == wallet_nonce + 1);
    // The delegate's code runs as the wallet.
    let me = rt.block_on(anvil::call(p, wallet, whoamiCall {}.abi_encode()))?;
    ensure!(whoamiCall::abi_decode_returns(&me)? == wallet);

    step("an authorization to another delegate is refused (eip7702_delegates)");
    expect_refused(
        &run(&[
            "sign-auth",
            "--delegate",
            &OTHER_DELEGATE.to_string(),
            "--chain-id",
            &CHAIN_ID.to_string(),
            "--nonce",
            &(wallet_nonce + 1).to_string(),
        ])?,
        "eip7702_delegates",
    )?;

    step("messages from a file and from standard input; the passphrase from a file");
    let msg = b"a message\nfrom a file\n";
    let msg_file = dir.join("message.txt");
    std::fs::write(&msg_file, msg)?;
    let pass_file = dir.join("device.pass");
    std::fs::write(&pass_file, format!("{DEVICE_PASS}\n"))?;
    let mut cmd = client_command(
        bins,
        dir,
        cosigner,
        &[
            "--passphrase-file",
            &pass_file.display().to_string(),
            "sign-message",
            "--file",
            &msg_file.display().to_string(),
        ],
    );
    cmd.env_remove("WALLET_CLIENT_PASSPHRASE");
    let out = cmd.output()?;
    ensure!(out.status.success(), "{out:?}");
    let sig: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    verify_eth_signature(&wallet_evm_preimage(msg), &sig, &wallet.to_string())?;
    let mut child = client_command(bins, dir, cosigner, &["sign-message", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(b"from stdin")?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "{out:?}");
    let sig: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    verify_eth_signature(
        &wallet_evm_preimage(b"from stdin"),
        &sig,
        &wallet.to_string(),
    )?;
    // A wrong passphrase file fails before anything is signed.
    std::fs::write(&pass_file, "not the passphrase\n")?;
    let mut cmd = client_command(
        bins,
        dir,
        cosigner,
        &[
            "--passphrase-file",
            &pass_file.display().to_string(),
            "sign-message",
            "x",
        ],
    );
    cmd.env_remove("WALLET_CLIENT_PASSPHRASE");
    let out = cmd.output()?;
    ensure!(
        String::from_utf8_lossy(&out.stderr).contains("wrong_passphrase"),
        "{out:?}"
    );
    Ok(())
}

/// The EIP-191 preimage of message bytes.
fn wallet_evm_preimage(m: &[u8]) -> Vec<u8> {
    let mut v = format!("\x19Ethereum Signed Message:\n{}", m.len()).into_bytes();
    v.extend_from_slice(m);
    v
}
