//! The wallet across real processes on loopback: `sign-gateway` + `sign-service` +
//! `client`, each with its own temporary directory. One scenario runs the whole life of
//! a wallet (wallet creation is the expensive step, so it is done once):
//!
//! 1. create a wallet (device + recovery shares local, cosigner's share in its store);
//! 2. sign with device + cosigner (message and EIP-1559 transaction), recovery +
//!    cosigner, and device + recovery without any cosigner;
//! 3. policy refusal (per-tx value limit) reported with the rule;
//! 4. wrong credentials refused (foreign identity key, tampered request, replay);
//! 5. restart sign-service: its shares persisted, signing works again;
//! 6. kill sign-service mid-signing: clear error at the client; after a restart a new
//!    session succeeds;
//! 7. backup: the device share exported, restored on another device, signing there
//!    (`lifecycle/backup.rs`); Bitcoin PSBTs signed in full and from pools;
//! 8. a proactive refresh (`lifecycle/replace_device.rs`), then the device is lost:
//!    frozen, revoked; device + recovery sign with the cosigner stopped;
//! 9. the lost device is replaced keeping every address, the new group refreshes again,
//!    and the states a crash leaves are settled (`lifecycle/replace_device.rs`).
//!
//! Every signature is verified independently (keccak + k256 recovery + DER verify).
//! Latency figures are printed (not asserted).
//!
//! Run: `cargo test -p e2e-tests -- --nocapture`.

#[path = "lifecycle/backup.rs"]
mod backup;
#[path = "lifecycle/replace_device.rs"]
mod replace_device;

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use e2e_tests::*;

const ETH: u128 = 1_000_000_000_000_000_000;

fn step(name: &str) {
    eprintln!("\n[e2e] ===== {name}");
}

struct Stats(Vec<(String, f64)>);

impl Stats {
    fn add(&mut self, name: &str, ms: f64) {
        self.0.push((name.into(), ms));
    }
}

#[test]
fn wallet_lifecycle_across_processes() -> Result<()> {
    let total = Instant::now();
    let bins = bins()?;
    let root = TempDir::new("wallet-e2e")?;
    let gw_dir = root.0.join("gateway");
    let client_dir = root.0.join("client");
    let svc_dir = root.0.join("service");
    for d in [&gw_dir, &client_dir, &svc_dir] {
        std::fs::create_dir_all(d)?;
    }
    let (_gateway, gateway_url) = start_gateway(&bins, &gw_dir)?;
    // Closed registration, as in production: the operator's issuer signs one
    // credential per wallet.
    let (issuer, _) = registration_issuer(&bins, &svc_dir)?;
    let mut svc_cfg = ServiceConfig {
        port: 0,
        gateway_url: gateway_url.clone(),
        data_dir: svc_dir.clone(),
        // Raw preimages are refused by default: this scenario signs one (double
        // SHA-256), so its wallets opt in (see `raw_payload_policy_yaml`).
        max_value_per_tx_wei: None,
        // A replacement's aux info runs beside other suites in CI.
        session_timeout_secs: 120,
        // A short unfreeze delay: the lost-device step waits it out.
        extra_yaml: raw_payload_policy_yaml(ETH)
            + &registration_issuer_yaml(&issuer)
            + "unfreeze_delay_secs: 1\n",
    };
    let mut service = start_service(&bins, &mut svc_cfg)?;
    let cosigner = svc_cfg.url();
    let mut stats = Stats(Vec::new());
    let result = scenario(
        &bins,
        &client_dir,
        &cosigner,
        &mut svc_cfg,
        &mut service,
        &mut stats,
    );
    if let Err(e) = &result {
        eprintln!(
            "[e2e] FAILED: {e:#}\n--- sign-service log (tail) ---\n{}",
            tail(&service.output(), 60)
        );
    }
    result?;
    eprintln!("\n[e2e] ===== latency (ms; client-measured = inside the client process, wall = whole process)");
    for (name, ms) in &stats.0 {
        eprintln!("[e2e]   {name:<55} {ms:>9.1}");
    }
    let median = |prefix: &str| {
        let mut v: Vec<f64> = stats
            .0
            .iter()
            .filter(|(n, _)| n.starts_with(prefix) && n.ends_with("client-measured"))
            .map(|(_, ms)| *ms)
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (e2e, local) = (
        median("sign-message device+cosigner"),
        median("offline-sign"),
    );
    eprintln!(
        "[e2e] median sign: device+cosigner across processes {e2e:.0} ms vs device+recovery in one process {local:.0} ms (ratio {:.2})",
        if local > 0.0 { e2e / local } else { 0.0 }
    );
    eprintln!("[e2e] whole scenario {:.1}s", total.elapsed().as_secs_f64());
    Ok(())
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn scenario(
    bins: &Bins,
    dir: &Path,
    cosigner: &str,
    svc_cfg: &mut ServiceConfig,
    service: &mut Proc,
    stats: &mut Stats,
) -> Result<()> {
    let run = |args: &[&str]| client(bins, dir, cosigner, args);

    step("health");
    let h = run(&["health"])?.ok()?;
    ensure!(h["status"] == "ok", "health: {h}");
    eprintln!("[e2e] cosigner backend: {}", h["backend"]);

    step("create wallet without a registration credential: refused, nothing written");
    let refused = run(&["create-wallet", "--accounts", "1", "--insecure-dev-primes"])?;
    let e = refused.json()?;
    ensure!(
        refused.code == 1 && e["error"]["code"] == "registration_required",
        "not refused as registration_required: {refused:?}"
    );
    ensure!(
        !dir.join("client_key_shares.json").exists(),
        "a share file was written"
    );

    step("enroll the device (aux info ahead of time; device + recovery local, insecure dev primes) with an operator-issued credential");
    let credential = issue_registration(bins, &svc_cfg.data_dir.join("registration-issuer.key"))?;
    let t = Instant::now();
    let enroll_run = run(&[
        "enroll",
        "--insecure-dev-primes",
        "--registration-credential",
        &credential,
    ])?;
    let enrolled = enroll_run.ok()?;
    stats.add(
        "enroll (aux info, 3 parties), wall",
        t.elapsed().as_secs_f64() * 1000.0,
    );
    let enrollment = enrolled["enrollment_id"]
        .as_str()
        .context("no enrollment id")?
        .to_string();
    ensure!(
        !dir.join("client_key_shares.json").exists(),
        "enrollment wrote a share file"
    );
    // The progress of the aux-info sessions, then both parties' enrollments stored.
    ensure!(
        enroll_run.stderr.contains("[aux-info device]")
            && enroll_run.stderr.contains("[aux-info recovery]")
            && enroll_run.stderr.contains(" done"),
        "no aux-info progress: {}",
        tail(&enroll_run.stderr, 8)
    );
    let enrollment_files = || -> Result<Vec<String>> {
        let mut v: Vec<String> = std::fs::read_dir(dir.join("enrollments"))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().to_string()))
            .collect::<std::io::Result<_>>()?;
        v.sort();
        Ok(v)
    };
    ensure!(
        enrollment_files()?
            == [
                format!("{enrollment}.device.json"),
                format!("{enrollment}.recovery.json")
            ],
        "stored enrollments: {:?}",
        enrollment_files()?
    );
    // The credential was consumed by the enrollment: it cannot enroll a second device.
    let reused = run(&[
        "enroll",
        "--insecure-dev-primes",
        "--registration-credential",
        &credential,
    ])?;
    ensure!(
        reused.code == 1 && reused.json()?["error"]["code"] == "registration_required",
        "a consumed credential enrolled again: {reused:?}"
    );

    step("create the wallet from the stored enrollment (DKG only, no credential needed)");
    let t = Instant::now();
    let created = run(&["create-wallet", "--accounts", "1", "--label", "e2e"])?;
    stats.add(
        "create-wallet after enrollment (1 DKG), wall",
        t.elapsed().as_secs_f64() * 1000.0,
    );
    ensure!(
        created
            .stderr
            .contains(&format!("from enrollment {enrollment}")),
        "create-wallet did not use the stored enrollment: {}",
        tail(&created.stderr, 8)
    );
    let w = created.ok()?;
    stats.add(
        "create-wallet (aux info + 1 DKG), wall",
        t.elapsed().as_secs_f64() * 1000.0,
    );
    ensure!(
        enrollment_files()?.is_empty(),
        "the enrollment used by the wallet is still stored: {:?}",
        enrollment_files()?
    );
    eprintln!("{}", tail(&created.stderr, 8));
    ensure!(w["committed"] == true, "not committed: {w}");
    let account = w["accounts"][0]["account_id"]
        .as_str()
        .context("no account id")?
        .to_string();
    let master_addr = w["accounts"][0]["ethereum_address"]
        .as_str()
        .context("no address")?
        .to_string();
    ensure!(
        dir.join("client_key_shares.json").exists()
            && dir.join("recovery_key_shares.json").exists()
    );
    // A second create-wallet must not overwrite the shares.
    let again = run(&["create-wallet", "--insecure-dev-primes"])?;
    ensure!(
        again.code != 0 && again.stderr.contains("wallet_exists"),
        "overwrite not refused: {again:?}"
    );

    step("list accounts and addresses (device and recovery files agree)");
    let accounts = run(&["list-accounts"])?.ok()?;
    ensure!(accounts[0]["account_id"] == account.as_str(), "{accounts}");
    let path = "m/44/60/0/0/0";
    let addr = run(&["address", "--path", path])?.ok()?;
    let addr_rec = run(&["--recovery", "address", "--path", path])?.ok()?;
    ensure!(addr == addr_rec, "device {addr} vs recovery {addr_rec}");
    let address = addr["ethereum_address"]
        .as_str()
        .context("address")?
        .to_string();
    ensure!(
        address != master_addr,
        "derived address equals the master address"
    );
    ensure!(
        addr["bitcoin_address"]
            .as_str()
            .is_some_and(|a| a.starts_with("bc1q")),
        "{addr}"
    );

    step("presignatures are refused on HD accounts, with clear errors");
    let r = run(&["presign", "refill", "--target", "1"])?;
    ensure!(
        r.code != 0 && r.stderr.contains("is an HD account"),
        "refill on an HD account: {r:?}"
    );
    let r = run(&["--presign", "require", "sign-message", "x"])?;
    ensure!(
        r.code != 0 && r.stderr.contains("is an HD account"),
        "required fast path on an HD account: {r:?}"
    );

    step("device + cosigner: EIP-191 message");
    let msg = "hello from the e2e test";
    let mut device_ms = Vec::new();
    for i in 0..3 {
        let m = format!("{msg} #{i}");
        let r = run(&["sign-message", "--path", path, &m])?;
        let sig = r.ok()?;
        verify_eth_signature(&eip191(&m), &sig, &address)?;
        ensure!(sig["signers"] == serde_json::json!([0, 1]), "{sig}");
        ensure!(sig["v"] == 27 || sig["v"] == 28, "{sig}");
        device_ms.push(sig["elapsed_ms"].as_f64().unwrap_or(0.0));
        stats.add(
            &format!("sign-message device+cosigner #{i}, wall"),
            r.wall.as_secs_f64() * 1000.0,
        );
        if i == 0 {
            // The CLI's own verify agrees, and rejects another address.
            let rsv = format!("0x{}", sig["rsv"].as_str().unwrap_or_default());
            run(&[
                "verify",
                "--message",
                &m,
                "--signature",
                &rsv,
                "--address",
                &address,
            ])?
            .ok()?;
            let bad = run(&[
                "verify",
                "--message",
                &m,
                "--signature",
                &rsv,
                "--address",
                &master_addr,
            ])?;
            ensure!(bad.code != 0, "verify accepted the wrong address");
            let bad = run(&[
                "verify",
                "--message",
                "other",
                "--signature",
                &rsv,
                "--address",
                &address,
            ])?;
            ensure!(bad.code != 0, "verify accepted another message");
        }
    }
    for (i, ms) in device_ms.iter().enumerate() {
        stats.add(
            &format!("sign-message device+cosigner #{i}, client-measured"),
            *ms,
        );
    }

    step("device + cosigner: EIP-1559 transaction within the policy");
    let tx = eip1559(ETH / 2, 0);
    let sig = run(&["sign-tx", "--path", path, &hex::encode(&tx)])?.ok()?;
    verify_eth_signature(&tx, &sig, &address)?;
    ensure!(
        sig["v"] == sig["y_parity"],
        "typed tx must have v = y_parity: {sig}"
    );

    step("device + cosigner: legacy EIP-155 transaction");
    let legacy = legacy_eip155(5, 2, ETH / 10);
    let sig = run(&["sign-tx", "--path", path, &hex::encode(&legacy)])?.ok()?;
    verify_eth_signature(&legacy, &sig, &address)?;
    let v = sig["v"].as_u64().context("v")?;
    ensure!(
        v == 5 * 2 + 35 + sig["y_parity"].as_u64().unwrap_or(9),
        "EIP-155 v: {sig}"
    );

    step("gateway override: an unreachable gateway is a typed error");
    let dead = RefusedPort::new()?;
    let r = run(&[
        "--gateway",
        &dead.url()?,
        "sign-message",
        "--path",
        path,
        "x",
    ])?;
    ensure!(
        r.code != 0 && r.stderr.contains("gateway_unavailable"),
        "{r:?}"
    );

    step("device + cosigner: raw Bitcoin-style preimage (double SHA-256, DER)");
    let preimage = b"bitcoin sighash preimage stand-in".to_vec();
    let sig = run(&[
        "sign-raw",
        "--path",
        path,
        "--digest",
        "double_sha256",
        &hex::encode(&preimage),
    ])?
    .ok()?;
    verify_der(&preimage, &sig)?;

    step("policy refusal: EIP-1559 transaction above the per-tx limit");
    let big = eip1559(2 * ETH, 1);
    let before = line_count(&svc_cfg.audit_log());
    let r = run(&["sign-tx", "--path", path, &hex::encode(&big)])?;
    ensure!(
        r.code == 3,
        "expected exit 3 (policy_denied), got {}: {}",
        r.code,
        r.stderr
    );
    let err = r.json()?;
    ensure!(err["error"]["code"] == "policy_denied", "{err}");
    ensure!(err["error"]["message"].is_string(), "{err}");
    let names_rules = cosigner_sends_error_info(cosigner)?;
    if names_rules {
        ensure!(
            err["error"]["rule"] == "max_value_per_tx_wei",
            "the refusal does not name its rule: {err}"
        );
    } else {
        eprintln!("[e2e] note: this cosigner sends no ErrorInfo: the rule is not checked");
    }
    ensure!(
        line_count(&svc_cfg.audit_log()) > before,
        "the refusal was not audited"
    );
    // The same refusal through the library: the code (and rule) of MpcError.
    let mut cfg = mpc_client::MpcConfig::new(
        dir.join("client_key_shares.json").display().to_string(),
        DEVICE_PASS,
    );
    cfg.cosigner_url = cosigner.to_string();
    let lib = mpc_client::new_mpc_client(cfg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let e = rt
        .block_on(lib.sign_tx(
            account.clone(),
            path.to_string(),
            big.clone(),
            mpc_client::DigestKind::Keccak256,
            mpc_client::PayloadKind::EthereumTransaction,
            mpc_client::ChainStyle::Typed,
        ))
        .err()
        .context("the policy let the library sign")?;
    ensure!(e.code() == mpc_client::ErrorCode::PolicyDenied, "{e}");
    ensure!(!e.retryable(), "{e}");
    if names_rules {
        ensure!(e.rule() == Some("max_value_per_tx_wei"), "{e:?}");
    }

    step("recovery + cosigner");
    let m = "signed by the recovery share";
    let r = run(&["--recovery", "sign-message", "--path", path, m])?;
    let sig = r.ok()?;
    verify_eth_signature(&eip191(m), &sig, &address)?;
    ensure!(sig["signers"] == serde_json::json!([1, 2]), "{sig}");
    stats.add(
        "sign-message recovery+cosigner, client-measured",
        sig["elapsed_ms"].as_f64().unwrap_or(0.0),
    );

    step("wrong credentials");
    wrong_credentials(dir, cosigner, &account)?;
    // The CLI with a wrong passphrase fails cleanly before any network use.
    let mut cmd = client_command(bins, dir, cosigner, &["sign-message", "x"]);
    cmd.env("WALLET_CLIENT_PASSPHRASE", "not the passphrase");
    let out = cmd.output()?;
    ensure!(
        String::from_utf8_lossy(&out.stderr).contains("wrong_passphrase"),
        "{out:?}"
    );

    bitcoin_psbt(&run, dir, stats)?;

    step("restart sign-service: shares persisted");
    service.terminate();
    *service = start_service(bins, svc_cfg)?;
    let m = "after a restart";
    let sig = run(&["sign-message", "--path", path, m])?.ok()?;
    verify_eth_signature(&eip191(m), &sig, &address)?;

    step("kill sign-service mid-signing");
    kill_mid_signing(bins, dir, cosigner, svc_cfg, service)?;
    *service = start_service(bins, svc_cfg)?;
    let m = "after the crash";
    let sig = run(&["sign-message", "--path", path, m])?.ok()?;
    verify_eth_signature(&eip191(m), &sig, &address)?;

    step("backup: export the device share, restore it on a new device, sign there");
    let wallet_id = w["wallet_id"].as_str().context("no wallet id")?;
    backup::restore_on_a_new_device(
        bins,
        cosigner,
        dir,
        &dir.with_file_name("restored-device"),
        wallet_id,
        &account,
        &master_addr,
    )?;

    let refreshed =
        replace_device::refresh_keeps_every_address(bins, dir, cosigner, wallet_id, &account)?;

    lost_device(&run, path, &address)?;

    step("device + recovery offline (cosigner stopped)");
    service.terminate();
    let h = run(&["health"])?;
    ensure!(h.code == 5, "the cosigner should be down: {h:?}");
    for (i, m) in ["offline message", "offline message 2"].iter().enumerate() {
        let r = run(&["offline-sign", "--path", path, "--message", m])?;
        let sig = r.ok()?;
        verify_eth_signature(&eip191(m), &sig, &address)?;
        ensure!(sig["signers"] == serde_json::json!([0, 2]), "{sig}");
        stats.add(
            &format!("offline-sign device+recovery in-process #{i}, client-measured"),
            sig["elapsed_ms"].as_f64().unwrap_or(0.0),
        );
    }
    let sig = run(&["offline-sign", "--path", path, "--tx", &hex::encode(&big)])?.ok()?;
    verify_eth_signature(&big, &sig, &address)?;
    // Signing with the cosigner down is a clear, typed error.
    let r = run(&["sign-message", "--path", path, "no cosigner"])?;
    ensure!(
        r.code == 5 && r.stderr.contains("cosigner_unavailable"),
        "{r:?}"
    );

    step("the cosigner is back: the lost device is replaced");
    *service = start_service(bins, svc_cfg)?;
    replace_device::replace_the_lost_device(bins, dir, cosigner, &refreshed)
}

/// The device is lost: the owner freezes the wallet from it (nothing signs), the
/// recovery share asks to unfreeze (the device cannot) and revokes the device; the
/// device is refused from then on, by code; once the unfreeze took effect the recovery
/// share signs with the cosigner again.
fn lost_device(
    run: &dyn Fn(&[&str]) -> Result<ClientRun>,
    path: &str,
    address: &str,
) -> Result<()> {
    step("lost device: freeze from the device, unfreeze and revoke with the recovery share");
    let c = run(&["wallet", "freeze", "--reason", "phone lost"])?.ok()?;
    ensure!(
        c["frozen"] == true && c["revoked_parties"] == serde_json::json!([]),
        "{c}"
    );
    let r = run(&["sign-message", "--path", path, "while frozen"])?;
    ensure!(
        r.code != 0 && r.json()?["error"]["code"] == "wallet_not_ready",
        "frozen wallet signed: {r:?}"
    );
    let r = run(&["wallet", "unfreeze"])?;
    ensure!(
        r.code != 0 && r.json()?["error"]["code"] == "config",
        "the device asked to unfreeze: {r:?}"
    );
    let c = run(&["--recovery", "wallet", "unfreeze"])?.ok()?;
    ensure!(c["unfreeze_at_ms"].as_u64().unwrap_or(0) > 0, "{c}");
    let c = run(&[
        "--recovery",
        "wallet",
        "revoke-device",
        "--reason",
        "stolen",
    ])?
    .ok()?;
    ensure!(c["revoked_parties"] == serde_json::json!([0]), "{c}");
    for args in [
        &["wallet", "status"][..],
        &["sign-message", "--path", path, "a thief signs"][..],
    ] {
        let r = run(args)?;
        let e = r.json()?;
        ensure!(
            r.code != 0 && e["error"]["code"] == "unauthorized",
            "a revoked device was served ({args:?}): {r:?}"
        );
    }
    // The unfreeze (1 s in this scenario) takes effect; the recovery share signs.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = run(&["--recovery", "wallet", "status"])?.ok()?;
        if c["frozen"] == false {
            ensure!(c["revoked_parties"] == serde_json::json!([0]), "{c}");
            break;
        }
        ensure!(Instant::now() < deadline, "never unfrozen: {c}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let m = "the recovery share after the device was revoked";
    let sig = run(&["--recovery", "sign-message", "--path", path, m])?.ok()?;
    verify_eth_signature(&eip191(m), &sig, address)?;
    Ok(())
}

/// A regtest PSBT spending `n` P2WPKH coins of the wallet at `m/84/1/0/0/{first + i}`
/// (keys from the account's exported tpub, rust-bitcoin's derivation) to a foreign
/// output, and the spent outputs.
fn regtest_psbt(
    xpub: &wallet_btc::bitcoin::bip32::Xpub,
    fingerprint: wallet_btc::bitcoin::bip32::Fingerprint,
    first: u32,
    n: u32,
) -> Result<(
    wallet_btc::bitcoin::psbt::Psbt,
    Vec<wallet_btc::bitcoin::TxOut>,
)> {
    use wallet_btc::bitcoin::absolute::LockTime;
    use wallet_btc::bitcoin::bip32::{ChildNumber, DerivationPath};
    use wallet_btc::bitcoin::hashes::Hash;
    use wallet_btc::bitcoin::transaction::Version;
    use wallet_btc::bitcoin::{
        Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, WPubkeyHash, Witness,
    };
    let secp = wallet_btc::bitcoin::secp256k1::Secp256k1::verification_only();
    let mut coins = Vec::new();
    for i in first..first + n {
        let rel = [
            ChildNumber::Normal { index: 0 },
            ChildNumber::Normal { index: i },
        ];
        let key = xpub.derive_pub(&secp, &rel)?.public_key;
        let path: DerivationPath = format!("m/84/1/0/0/{i}").parse()?;
        let out = TxOut {
            value: Amount::from_sat(90_000 + u64::from(i)),
            script_pubkey: wallet_btc::p2wpkh_script(&key),
        };
        coins.push((key, path, out));
    }
    let total: u64 = coins.iter().map(|(_, _, o)| o.value.to_sat()).sum();
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: (first..first + n)
            .map(|i| TxIn {
                previous_output: OutPoint {
                    txid: Txid::from_byte_array([0xa0 + i as u8; 32]),
                    vout: 0,
                },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: vec![TxOut {
            value: Amount::from_sat(total - 2_000),
            script_pubkey: ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([0x44; 20])),
        }],
    };
    let mut psbt = wallet_btc::bitcoin::psbt::Psbt::from_unsigned_tx(tx)?;
    for (input, (key, path, out)) in psbt.inputs.iter_mut().zip(&coins) {
        input.witness_utxo = Some(out.clone());
        input
            .bip32_derivation
            .insert(*key, (fingerprint, path.clone()));
    }
    Ok((psbt, coins.into_iter().map(|(_, _, o)| o).collect()))
}

/// Bitcoin Core's interpreter (libbitcoinconsensus) on every input of a signed PSBT's
/// transaction, against the spent script and amount.
fn core_verifies(signed: &serde_json::Value, spent: &[wallet_btc::bitcoin::TxOut]) -> Result<()> {
    let raw = hex::decode(signed["tx_hex"].as_str().context("tx_hex")?)?;
    let tx: wallet_btc::bitcoin::Transaction =
        wallet_btc::bitcoin::consensus::encode::deserialize(&raw)?;
    ensure!(
        tx.compute_txid().to_string() == signed["txid"].as_str().unwrap_or_default(),
        "txid: {signed}"
    );
    bitcoin_core_verifies(&raw, spent)
}

/// `client btc sign-psbt` with the cosigner: refusals before any session, 1- and 5-input
/// PSBTs signed in full and from the pools of their paths, each verified by Bitcoin
/// Core's interpreter.
fn bitcoin_psbt(
    run: &dyn Fn(&[&str]) -> Result<ClientRun>,
    dir: &Path,
    stats: &mut Stats,
) -> Result<()> {
    step("bitcoin: PSBT refusals before any session (foreign input, missing UTXO, Taproot, bad base64)");
    let d = run(&["btc", "descriptor", "--network", "regtest"])?.ok()?;
    let xpub: wallet_btc::bitcoin::bip32::Xpub = d["xpub"].as_str().context("xpub")?.parse()?;
    let fingerprint: wallet_btc::bitcoin::bip32::Fingerprint =
        d["fingerprint"].as_str().context("fingerprint")?.parse()?;
    let (good, _) = regtest_psbt(&xpub, fingerprint, 0, 2)?;
    let mut foreign = good.clone();
    foreign.inputs[1]
        .bip32_derivation
        .values_mut()
        .for_each(|(fp, _)| *fp = wallet_btc::bitcoin::bip32::Fingerprint::from([1, 2, 3, 4]));
    let mut missing = good.clone();
    missing.inputs[0].witness_utxo = None;
    let mut taproot = good.clone();
    if let Some(u) = taproot.inputs[1].witness_utxo.as_mut() {
        let key = xpub.public_key.x_only_public_key().0;
        u.script_pubkey = wallet_btc::bitcoin::ScriptBuf::new_p2tr_tweaked(
            wallet_btc::bitcoin::key::TweakedPublicKey::dangerous_assume_tweaked(key),
        );
    }
    let file = dir.join("psbt.in");
    let file_arg = file.display().to_string();
    for (code, bytes) in [
        ("not_our_input", foreign.serialize()),
        ("missing_utxo", missing.serialize()),
        ("unsupported_script", taproot.serialize()),
        ("invalid_base64", b"cHNidP8B***".to_vec()),
    ] {
        std::fs::write(&file, bytes)?;
        let r = run(&["btc", "sign-psbt", &file_arg, "--network", "regtest"])?;
        let e = r.json()?;
        ensure!(
            r.code != 0
                && e["error"]["code"] == "invalid_input"
                && e["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("PSBT refused") && m.contains(code)),
            "{code}: {r:?}"
        );
    }

    for (label, first, n) in [("1 input", 0u32, 1u32), ("5 inputs", 0, 5)] {
        step(&format!(
            "bitcoin: {label} PSBT signed with the cosigner (full signing)"
        ));
        let (psbt, spent) = regtest_psbt(&xpub, fingerprint, first, n)?;
        std::fs::write(&file, wallet_btc::encode_psbt(&psbt))?;
        let signed = run(&["btc", "sign-psbt", &file_arg, "--network", "regtest"])?.ok()?;
        core_verifies(&signed, &spent)?;
        let inputs = signed["inputs"].as_array().context("inputs")?;
        ensure!(inputs.len() == n as usize, "{signed}");
        ensure!(inputs.iter().all(|i| i["presigned"] == false), "{signed}");
        stats.add(
            &format!("btc sign-psbt {label}, full signing, client-measured"),
            signed["elapsed_ms"].as_f64().unwrap_or(0.0),
        );
    }

    step("bitcoin: pools at the inputs' paths, then 1- and 5-input PSBTs from the pools");
    // Fresh coins at m/84/1/0/0/10..15: one presignature at each of their paths.
    for i in 10..15 {
        let p = format!("m/84/1/0/0/{i}");
        run(&["presign", "refill", "--path", &p, "--target", "1"])?.ok()?;
    }
    for (label, first, n) in [("1 input", 10u32, 1u32), ("5 inputs", 10, 5)] {
        let (psbt, spent) = regtest_psbt(&xpub, fingerprint, first, n)?;
        std::fs::write(&file, wallet_btc::encode_psbt(&psbt))?;
        let signed = run(&[
            "--presign",
            "require",
            "btc",
            "sign-psbt",
            &file_arg,
            "--network",
            "regtest",
        ])?
        .ok()?;
        core_verifies(&signed, &spent)?;
        let inputs = signed["inputs"].as_array().context("inputs")?;
        ensure!(inputs.iter().all(|i| i["presigned"] == true), "{signed}");
        stats.add(
            &format!("btc sign-psbt {label}, from pools, client-measured"),
            signed["elapsed_ms"].as_f64().unwrap_or(0.0),
        );
        // The 1-input PSBT used the presignature of m/84/1/0/0/10: refill it for the
        // 5-input one.
        if n == 1 {
            run(&[
                "presign",
                "refill",
                "--path",
                "m/84/1/0/0/10",
                "--target",
                "1",
            ])?
            .ok()?;
        }
    }
    Ok(())
}

/// Verifies the DER signature of a raw preimage under double SHA-256 with k256.
fn verify_der(preimage: &[u8], sig: &serde_json::Value) -> Result<()> {
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    use sha2::{Digest, Sha256};
    let digest: [u8; 32] = Sha256::digest(Sha256::digest(preimage)).into();
    ensure!(
        sig["digest"] == hex::encode(digest),
        "digest mismatch: {sig}"
    );
    let pk = k256::ecdsa::VerifyingKey::from_sec1_bytes(&hex::decode(
        sig["public_key"].as_str().context("public_key")?,
    )?)?;
    let der = k256::ecdsa::Signature::from_der(&hex::decode(sig["der"].as_str().context("der")?)?)?;
    ensure!(der.normalize_s().is_none(), "DER s is not low");
    pk.verify_prehash(&digest, &der)
        .context("DER signature does not verify")?;
    Ok(())
}

/// Talks gRPC directly to check that the cosigner refuses bad credentials (and accepts
/// the genuine one, so the test can fail).
fn wrong_credentials(dir: &Path, cosigner: &str, account: &str) -> Result<()> {
    use cosigner_api::auth;
    use cosigner_api::pb;
    use mpc_core::keystore::KeyShareBundle;
    use mpc_wire::IdentityKey;

    let bundle = KeyShareBundle::load(&dir.join("client_key_shares.json"), DEVICE_PASS)?;
    let device =
        IdentityKey::from_seed_hex(bundle.identity_secret.as_deref().context("no identity")?)?;
    let meta = mpc_client::WalletMeta::load(&dir.join("client_key_shares.json"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The audience of every request: the cosigner's identity (party 1 of the bundle).
    let me: mpc_wire::PublicIdentity = bundle
        .peers
        .get(&1)
        .context("no cosigner identity in the bundle")?
        .parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut grpc = pb::cosigner_client::CosignerClient::connect(cosigner.to_string()).await?;
        let req = || pb::GetPublicKeyRequest {
            auth: None,
            account_id: account.to_string(),
            derivation_path: "m/1".into(),
        };
        // Genuine request: accepted.
        let mut good = req();
        auth::sign_request(&mut good, &device, &me, &meta.wallet_id, 0)?;
        let pk = grpc
            .get_public_key(good.clone())
            .await
            .context("genuine request refused")?
            .into_inner();
        ensure!(!pk.public_key.is_empty());
        // Replayed: refused.
        let replay = grpc.get_public_key(good).await;
        ensure!(replay.is_err(), "a replayed request was accepted");
        // Signed by a foreign identity key: refused as unauthenticated.
        let mut foreign = req();
        auth::sign_request(
            &mut foreign,
            &IdentityKey::generate()?,
            &me,
            &meta.wallet_id,
            0,
        )?;
        let e = grpc
            .get_public_key(foreign)
            .await
            .err()
            .context("foreign key accepted")?;
        ensure!(
            e.code() == tonic::Code::Unauthenticated,
            "foreign key: {e:?}"
        );
        // The recovery identity claimed as the device: refused.
        // Tampered after signing (another path): refused.
        let mut tampered = req();
        auth::sign_request(&mut tampered, &device, &me, &meta.wallet_id, 0)?;
        tampered.derivation_path = "m/2".into();
        let e = grpc
            .get_public_key(tampered)
            .await
            .err()
            .context("tampered request accepted")?;
        ensure!(e.code() == tonic::Code::Unauthenticated, "tampered: {e:?}");
        // StartSign with a foreign key: refused before any session starts.
        let mut sign = pb::StartSignRequest {
            auth: None,
            account_id: account.to_string(),
            derivation_path: String::new(),
            preimage: e2e_tests::eip191("x"),
            digest: pb::DigestKind::Keccak256 as i32,
            payload_kind: pb::PayloadKind::EthereumMessage as i32,
            ..Default::default()
        };
        auth::sign_request(
            &mut sign,
            &IdentityKey::generate()?,
            &me,
            &meta.wallet_id,
            0,
        )?;
        let e = grpc
            .start_sign(sign)
            .await
            .err()
            .context("foreign StartSign accepted")?;
        ensure!(
            e.code() == tonic::Code::Unauthenticated,
            "foreign StartSign: {e:?}"
        );
        // Presignatures on an HD account at its root (HD pools are per BIP-44 path):
        // refused by the cosigner itself.
        let mut pre = pb::StartPresignRequest {
            auth: None,
            account_id: account.to_string(),
            count: 1,
            release_ids: Vec::new(),
            derivation_path: String::new(),
        };
        auth::sign_request(&mut pre, &device, &me, &meta.wallet_id, 0)?;
        let e = grpc
            .start_presign(pre)
            .await
            .err()
            .context("StartPresign on an HD account accepted")?;
        ensure!(
            e.code() == tonic::Code::InvalidArgument && e.message().contains("BIP-44"),
            "StartPresign on HD: {e:?}"
        );
        eprintln!("[e2e] genuine accepted; replay, foreign key and tampered request refused");
        Ok(())
    })
}

/// Starts a signing client whose gateway traffic passes a [`BroadcastGate`], kills
/// sign-service (SIGKILL) while the gate holds the client's second protocol message (the
/// session is under way and cannot finish: the cosigner never got that message), then
/// lets the message through and checks the client's error. No race with the signature:
/// it cannot complete whatever the timing.
fn kill_mid_signing(
    bins: &Bins,
    dir: &Path,
    cosigner: &str,
    svc_cfg: &ServiceConfig,
    service: &mut Proc,
) -> Result<()> {
    let gate = BroadcastGate::start(&svc_cfg.gateway_url, 2)?;
    let child = client_command(
        bins,
        dir,
        cosigner,
        &[
            "--gateway",
            &gate.url,
            "--timeout",
            "60",
            "sign-message",
            "--path",
            "m/44/60/0/0/0",
            "crash test",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()?;
    let held = gate.wait_held(Duration::from_secs(120));
    service.kill();
    gate.release();
    let out = child.wait_with_output()?;
    let code = out.status.code().unwrap_or(-1);
    let text = String::from_utf8_lossy(&out.stderr);
    eprintln!("[e2e] client exited {code}:\n{text}");
    ensure!(
        held,
        "the client never sent its second protocol message: {text}"
    );
    // Exit 5 with this text is the client's cosigner watch, not its 60 s session timeout
    // (which reports the session's error).
    ensure!(
        code == 5,
        "expected cosigner_unavailable (exit 5), got {code}: {text}"
    );
    ensure!(
        text.contains("stopped responding during signing session"),
        "unclear error: {text}"
    );
    Ok(())
}

/// A gateway proxy for one client: it passes every request through, counts the protocol
/// messages (`POST .../broadcast`) and holds the `hold_at`-th one until
/// [`BroadcastGate::release`]. A signing session held there is under way and cannot end:
/// the other party never gets that message.
struct BroadcastGate {
    /// `http://127.0.0.1:<port>`, the gateway URL to give the client.
    url: String,
    state: Arc<(Mutex<GateState>, Condvar)>,
}

#[derive(Default)]
struct GateState {
    broadcasts: usize,
    held: bool,
    released: bool,
}

impl BroadcastGate {
    fn start(gateway_url: &str, hold_at: usize) -> Result<Self> {
        let upstream: SocketAddr = gateway_url
            .trim_start_matches("http://")
            .parse()
            .with_context(|| format!("gateway URL {gateway_url}"))?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new((Mutex::new(GateState::default()), Condvar::new()));
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(up) = TcpStream::connect(upstream) else {
                    continue;
                };
                let st = st.clone();
                std::thread::spawn(move || pipe_requests(client, up, hold_at, &st));
            }
        });
        Ok(BroadcastGate { url, state })
    }

    /// Whether a message is held, waiting at most `timeout` for one.
    fn wait_held(&self, timeout: Duration) -> bool {
        let (lock, cv) = &*self.state;
        let g = lock.lock().unwrap_or_else(|e| e.into_inner());
        cv.wait_timeout_while(g, timeout, |g| !g.held)
            .map(|(g, _)| g.held)
            .unwrap_or(false)
    }

    /// Lets the held message (and every later one) through.
    fn release(&self) {
        let (lock, cv) = &*self.state;
        lock.lock().unwrap_or_else(|e| e.into_inner()).released = true;
        cv.notify_all();
    }
}

impl Drop for BroadcastGate {
    fn drop(&mut self) {
        self.release();
    }
}

/// Copies HTTP/1.1 requests (bodies with Content-Length, as the gateway client sends
/// them) from `client` to `up`, holding the `hold_at`-th broadcast, and the responses
/// back.
fn pipe_requests(
    client: TcpStream,
    mut up: TcpStream,
    hold_at: usize,
    state: &(Mutex<GateState>, Condvar),
) -> std::io::Result<()> {
    use std::io::{BufRead, Read, Write};
    let (mut up_r, mut client_w) = (up.try_clone()?, client.try_clone()?);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_r, &mut client_w);
        let _ = client_w.shutdown(Shutdown::Both);
    });
    let mut reader = std::io::BufReader::new(client);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return up.shutdown(Shutdown::Both);
            }
            head.extend_from_slice(&line);
            if line == b"\r\n" {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head);
        let len = text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        let first = text.lines().next().unwrap_or_default();
        if first.starts_with("POST ") && first.contains("/broadcast") {
            let (lock, cv) = state;
            let mut g = lock.lock().unwrap_or_else(|e| e.into_inner());
            g.broadcasts += 1;
            if g.broadcasts == hold_at {
                g.held = true;
                cv.notify_all();
                let _g = cv
                    .wait_while(g, |g| !g.released)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
        up.write_all(&head)?;
        up.write_all(&body)?;
    }
}
