//! `presign-bench`: signing latency over the real local gateway and cosigner.
//!
//! Starts `sign-gateway` and `sign-service` (GMP, public dev primes) as processes, creates
//! a wallet of one INDEPENDENT account with the in-process client (`mpc-client`, device +
//! recovery), then measures:
//!
//! - **refill throughput**: presignatures generated per second by `refill_presignatures`
//!   (device + cosigner sessions over the gateway);
//! - **online signing from the pool**: `sign_message` with the fast path required, N
//!   signatures (default 50), p50 / p95 / max of the client-measured latency;
//! - **full signing over the gateway** (device + cosigner, presignatures off) next to the
//!   **in-process library** time of a full signing by two parties (device + recovery
//!   shares, `mpc_core::local`, both in one thread and one thread per party), and the
//!   ratio.
//!
//! ```text
//! cargo run -p e2e-tests --bin presign-bench -- [--signatures 50] [--full 5] [--json out.json]
//! ```
//! The binaries are built like the e2e tests (one package per cargo invocation so the
//! cosigner keeps GMP); `E2E_NO_BUILD=1` uses those already built.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use e2e_tests::*;
use mpc_client::{
    new_mpc_client, AccountKind, MpcConfig, PresignConfig, PresignMode, SignedResult,
};

struct Args {
    signatures: usize,
    full: usize,
    json: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        signatures: 50,
        full: 5,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--signatures" => a.signatures = value("--signatures")?.parse()?,
            "--full" => a.full = value("--full")?.parse()?,
            "--json" => a.json = Some(PathBuf::from(value("--json")?)),
            "-h" | "--help" => {
                println!("presign-bench [--signatures N (>=1, default 50)] [--full N (default 5)] [--json PATH]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    if a.signatures == 0 || a.full == 0 {
        bail!("--signatures and --full must be at least 1");
    }
    Ok(a)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    if let Err(e) = run() {
        eprintln!("presign-bench: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let bins = bins()?;
    let root = TempDir::new("wallet-presign-bench")?;
    let (gw_dir, svc_dir, client_dir) = (
        root.0.join("gateway"),
        root.0.join("service"),
        root.0.join("client"),
    );
    for d in [&gw_dir, &svc_dir, &client_dir] {
        std::fs::create_dir_all(d)?;
    }
    let (_gateway, gateway_url) = start_gateway(&bins, &gw_dir)?;
    let cap = args.signatures.max(16);
    let mut svc = ServiceConfig {
        port: 0,
        gateway_url,
        data_dir: svc_dir,
        max_value_per_tx_wei: None,
        session_timeout_secs: 300,
        extra_yaml: format!(
            "presign_pool_cap: {cap}\npresign_workers: 2\npresign_max_per_request: 64\n"
        ),
    };
    let _service = start_service(&bins, &mut svc)?;
    let cosigner = svc.url();

    let mut cfg = MpcConfig::new(
        client_dir
            .join("client_key_shares.json")
            .display()
            .to_string(),
        DEVICE_PASS,
    );
    cfg.cosigner_url = cosigner;
    cfg.recovery_path = Some(
        client_dir
            .join("recovery_key_shares.json")
            .display()
            .to_string(),
    );
    cfg.recovery_passphrase = Some(RECOVERY_PASS.into());
    cfg.insecure_dev_primes = true;
    cfg.insecure_fast_kdf = true;
    cfg.sign_timeout_secs = 600;
    let client = new_mpc_client(cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    eprintln!("[bench] creating a wallet (aux info + DKG, dev primes)...");
    let t = Instant::now();
    let wallet =
        rt.block_on(client.create_wallet(1, AccountKind::Independent, "bench".into(), None))?;
    let create_ms = ms(t);
    let account = wallet.accounts[0].account_id.clone();

    // Refill throughput.
    client.set_presign_config(PresignConfig {
        mode: PresignMode::Require,
        auto_refill: false,
        concurrency: 2,
        ..PresignConfig::default()
    })?;
    eprintln!("[bench] refilling {} presignatures...", args.signatures);
    let t = Instant::now();
    let status =
        rt.block_on(client.refill_presignatures(account.clone(), args.signatures as u32))?;
    let refill_ms = ms(t);
    if (status.local as usize) < args.signatures {
        bail!(
            "the refill produced only {} presignatures: {status:?}",
            status.local
        );
    }

    // Online signing from the pool.
    eprintln!("[bench] {} signatures from the pool...", args.signatures);
    let mut online = Vec::with_capacity(args.signatures);
    let mut online_internal = Vec::with_capacity(args.signatures);
    for i in 0..args.signatures {
        let msg = format!("bench message {i}").into_bytes();
        let t = Instant::now();
        let r: SignedResult =
            rt.block_on(client.sign_message(account.clone(), "m".into(), msg.clone()))?;
        online.push(ms(t));
        online_internal.push(r.elapsed_ms as f64);
        if !r.presigned {
            bail!("signature {i} did not use the pool");
        }
        verify_eth_signature(
            &eip191(&format!("bench message {i}")),
            &serde_json::to_value(&r)?,
            &r.ethereum_address,
        )?;
    }

    // Full signing over the gateway vs in-process.
    client.set_presign_config(PresignConfig {
        mode: PresignMode::Off,
        auto_refill: false,
        ..PresignConfig::default()
    })?;
    eprintln!("[bench] {} full signings over the gateway...", args.full);
    let mut full = Vec::with_capacity(args.full);
    for i in 0..args.full {
        let t = Instant::now();
        let r = rt.block_on(client.sign_message(
            account.clone(),
            "m".into(),
            format!("full {i}").into_bytes(),
        ))?;
        full.push(ms(t));
        if r.presigned {
            bail!("full signing used the pool");
        }
    }
    eprintln!("[bench] {} in-process library signings...", args.full);
    let (lib_single, lib_threaded) = library_signing(&client_dir, &account, args.full)?;

    let online_s = latency_stats(online);
    let online_internal_s = latency_stats(online_internal);
    let full_s = latency_stats(full);
    let single_s = latency_stats(lib_single);
    let threaded_s = latency_stats(lib_threaded);
    let p50 = |v: &serde_json::Value| v["p50_ms"].as_f64().unwrap_or(0.0);
    let ratio_threaded = p50(&full_s) / p50(&threaded_s).max(1e-9);
    let ratio_single = p50(&full_s) / p50(&single_s).max(1e-9);
    let throughput = status.generated as f64 / (refill_ms / 1000.0);

    println!(
        "presign-bench ({} backend in the client, GMP in sign-service; profile {})",
        mpc_core::BACKEND,
        if cfg!(debug_assertions) {
            "dev (deps at opt-level 3)"
        } else {
            "release"
        }
    );
    println!(
        "{:<58} {:>10} {:>10} {:>10}",
        "measurement", "p50 ms", "p95 ms", "n"
    );
    let row = |name: &str, s: &serde_json::Value| {
        println!(
            "{:<58} {:>10.2} {:>10.2} {:>10}",
            name,
            s["p50_ms"].as_f64().unwrap_or(0.0),
            s["p95_ms"].as_f64().unwrap_or(0.0),
            s["n"]
        )
    };
    row(
        "online sign from the pool, device+cosigner (wall)",
        &online_s,
    );
    row(
        "online sign from the pool (client-measured)",
        &online_internal_s,
    );
    row(
        "full sign over the gateway, device+cosigner (wall)",
        &full_s,
    );
    row(
        "full sign in-process library, 2 parties, 1 thread",
        &single_s,
    );
    row(
        "full sign in-process library, 2 parties, 2 threads",
        &threaded_s,
    );
    println!(
        "refill: {} presignatures in {:.1} s = {:.2} presignatures/s (concurrency 2)",
        status.generated,
        refill_ms / 1000.0,
        throughput
    );
    println!(
        "ratio gateway / in-process (p50): {ratio_threaded:.2}x vs 2 threads, {ratio_single:.2}x vs 1 thread (target <= 1.15x)"
    );
    println!(
        "online p50 {:.2} ms (target <= 20 ms); wallet creation {:.1} s",
        p50(&online_s),
        create_ms / 1000.0
    );
    if let Some(path) = args.json {
        let j = serde_json::json!({
            "client_backend": mpc_core::BACKEND,
            "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
            "online_sign_pool_wall": online_s,
            "online_sign_pool_client": online_internal_s,
            "full_sign_gateway": full_s,
            "full_sign_library_single_thread": single_s,
            "full_sign_library_two_threads": threaded_s,
            "ratio_gateway_vs_library_two_threads_p50": ratio_threaded,
            "ratio_gateway_vs_library_single_thread_p50": ratio_single,
            "refill": {
                "generated": status.generated,
                "seconds": refill_ms / 1000.0,
                "presignatures_per_second": throughput,
                "concurrency": 2,
            },
            "wallet_creation_seconds": create_ms / 1000.0,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&j)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("[bench] wrote {}", path.display());
    }
    Ok(())
}

/// Full signing by device + recovery in this process, with the same shares: one thread
/// (`run_sessions`) and one thread per party (`run_sessions_threaded`).
fn library_signing(dir: &std::path::Path, account: &str, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    use mpc_core::keystore::KeyShareBundle;
    use mpc_core::{DigestKind, Session, SignRequest};
    let share = |file: &str, pass: &str| -> Result<mpc_core::KeyShare> {
        let b = KeyShareBundle::load(&dir.join(file), pass)?;
        let aux = b.aux_info.as_ref().context("no aux info")?;
        Ok(b.accounts
            .get(account)
            .context("no account")?
            .complete(aux)?)
    };
    let shares = [
        share("client_key_shares.json", DEVICE_PASS)?,
        share("recovery_key_shares.json", RECOVERY_PASS)?,
    ];
    let signers = vec![0u16, 2];
    let (mut single, mut threaded) = (Vec::new(), Vec::new());
    for i in 0..n {
        let req = SignRequest {
            preimage: format!("library {i}").into_bytes(),
            digest: DigestKind::Keccak256,
        };
        let sid = format!("lib-single-{i}");
        let sessions = shares
            .iter()
            .map(|s| {
                Session::sign(
                    sid.as_bytes(),
                    signers.clone(),
                    s.clone(),
                    None,
                    req.data_to_sign(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let t = Instant::now();
        mpc_core::local::run_sessions(sessions, None)
            .map_err(|(p, e)| anyhow::anyhow!("party {p}: {e}"))?;
        single.push(ms(t));
        let sid = format!("lib-threaded-{i}");
        let factories: Vec<_> = shares
            .iter()
            .map(|s| {
                let (s, sid, signers, data) =
                    (s.clone(), sid.clone(), signers.clone(), req.data_to_sign());
                move || Session::sign(sid.as_bytes(), signers, s, None, data)
            })
            .collect();
        let t = Instant::now();
        mpc_core::local::run_sessions_threaded(factories, &|_, _| {})
            .map_err(|(p, e)| anyhow::anyhow!("party {p}: {e}"))?;
        threaded.push(ms(t));
    }
    Ok((single, threaded))
}
