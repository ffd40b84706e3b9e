//! `psbt-bench`: time to sign Bitcoin PSBTs over the real local gateway and cosigner.
//!
//! Starts `sign-gateway` and `sign-service` (GMP, public dev primes) as processes, creates
//! a wallet of one HD account with the in-process client (`mpc-client`, device +
//! recovery), then signs regtest PSBTs (built with rust-bitcoin through
//! `wallet_btc::testing`) with `MpcClient::sign_psbt`, device + cosigner:
//!
//! - **1-input and 5-input PSBTs in full** (presignatures off): one signing session per
//!   input;
//! - **the same from the pools of the inputs' paths** (presignatures required; the pools
//!   are filled before each PSBT, untimed).
//!
//! Every signed transaction is checked with Bitcoin Core's script interpreter
//! (libbitcoinconsensus) before its time counts. Wall time per PSBT, p50 / p95.
//!
//! ```text
//! cargo run -p e2e-tests --bin psbt-bench -- [--rounds 5] [--json out.json]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use e2e_tests::*;
use mpc_client::{
    new_mpc_client, AccountKind, BitcoinNetwork, MpcClient, MpcConfig, PresignConfig, PresignMode,
    PsbtSigner,
};
use wallet_btc::WalletKeys;

struct Args {
    rounds: usize,
    json: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        rounds: 5,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--rounds" => a.rounds = value("--rounds")?.parse()?,
            "--json" => a.json = Some(PathBuf::from(value("--json")?)),
            "-h" | "--help" => {
                println!("psbt-bench [--rounds N (>=1, default 5)] [--json PATH]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    if a.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    Ok(a)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("psbt-bench: error: {e:#}");
        std::process::exit(1);
    }
}

/// Signs `rounds` PSBTs of `inputs` inputs each (coins from `first` on, new ones every
/// round), from the pools (`pool`: filled before each, untimed) or in full.
#[allow(clippy::too_many_arguments)]
fn sign_rounds(
    rt: &tokio::runtime::Runtime,
    client: &MpcClient,
    keys: &WalletKeys,
    account: &str,
    inputs: u32,
    rounds: usize,
    first: &mut u32,
    pool: bool,
) -> Result<Vec<f64>> {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let (psbt, spent) = wallet_btc::testing::regtest_spend(keys, *first, inputs);
        if pool {
            for i in *first..*first + inputs {
                rt.block_on(client.refill_presignatures_at(
                    account.to_string(),
                    format!("m/84/1/0/0/{i}"),
                    1,
                ))?;
            }
        }
        *first += inputs;
        let t = Instant::now();
        let signed = rt.block_on(client.sign_psbt(
            account.to_string(),
            psbt.serialize(),
            BitcoinNetwork::Regtest,
            PsbtSigner::Cosigner,
        ))?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if signed.inputs.iter().any(|i| i.presigned != pool) {
            bail!(
                "expected every input signed {}",
                if pool { "from its pool" } else { "in full" }
            );
        }
        bitcoin_core_verifies(&hex::decode(&signed.tx_hex)?, &spent)?;
    }
    Ok(times)
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let bins = bins()?;
    let root = TempDir::new("wallet-psbt-bench")?;
    let (gw_dir, svc_dir, client_dir) = (
        root.0.join("gateway"),
        root.0.join("service"),
        root.0.join("client"),
    );
    for d in [&gw_dir, &svc_dir, &client_dir] {
        std::fs::create_dir_all(d)?;
    }
    let (_gateway, gateway_url) = start_gateway(&bins, &gw_dir)?;
    let mut svc = ServiceConfig {
        port: 0,
        gateway_url,
        data_dir: svc_dir,
        max_value_per_tx_wei: None,
        session_timeout_secs: 300,
        extra_yaml: "presign_pool_cap: 64\npresign_workers: 2\n".into(),
    };
    let _service = start_service(&bins, &mut svc)?;

    let mut cfg = MpcConfig::new(
        client_dir.join("device.json").display().to_string(),
        DEVICE_PASS,
    );
    cfg.cosigner_url = svc.url();
    cfg.recovery_path = Some(client_dir.join("recovery.json").display().to_string());
    cfg.recovery_passphrase = Some(RECOVERY_PASS.into());
    cfg.insecure_dev_primes = true;
    cfg.insecure_fast_kdf = true;
    cfg.sign_timeout_secs = 600;
    let client = new_mpc_client(cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    eprintln!("[bench] creating an HD wallet (aux info + DKG, dev primes)...");
    let wallet = rt.block_on(client.create_wallet(1, AccountKind::Hd, "psbt".into(), None))?;
    let account = wallet.accounts[0].account_id.clone();
    // The root xpub (public key + chain code): what a watch-only wallet derives from.
    let watch = rt.block_on(client.bitcoin_watch_only(
        account.clone(),
        Some("m".into()),
        BitcoinNetwork::Regtest,
    ))?;
    let xpub: wallet_btc::bitcoin::bip32::Xpub = watch.xpub.parse()?;
    let keys = WalletKeys::new(&xpub.public_key.serialize(), xpub.chain_code.as_bytes())?;
    if keys.fingerprint().to_string() != watch.fingerprint {
        bail!("the exported fingerprint is not the root key's");
    }

    let mut first = 0u32;
    let off = PresignConfig {
        mode: PresignMode::Off,
        auto_refill: false,
        ..PresignConfig::default()
    };
    let require = PresignConfig {
        mode: PresignMode::Require,
        auto_refill: false,
        concurrency: 2,
        ..PresignConfig::default()
    };
    let five_rounds = args.rounds.div_ceil(2);
    client.set_presign_config(off.clone())?;
    eprintln!("[bench] {} 1-input PSBTs in full...", args.rounds);
    let full1 = sign_rounds(
        &rt,
        &client,
        &keys,
        &account,
        1,
        args.rounds,
        &mut first,
        false,
    )?;
    eprintln!("[bench] {five_rounds} 5-input PSBTs in full...");
    let full5 = sign_rounds(
        &rt,
        &client,
        &keys,
        &account,
        5,
        five_rounds,
        &mut first,
        false,
    )?;
    client.set_presign_config(require)?;
    eprintln!("[bench] {} 1-input PSBTs from the pools...", args.rounds);
    let pool1 = sign_rounds(
        &rt,
        &client,
        &keys,
        &account,
        1,
        args.rounds,
        &mut first,
        true,
    )?;
    eprintln!("[bench] {five_rounds} 5-input PSBTs from the pools...");
    let pool5 = sign_rounds(
        &rt,
        &client,
        &keys,
        &account,
        5,
        five_rounds,
        &mut first,
        true,
    )?;

    let rows = [
        (
            "psbt_1_input_full",
            "1-input PSBT, full signing",
            latency_stats(full1),
        ),
        (
            "psbt_5_inputs_full",
            "5-input PSBT, full signing",
            latency_stats(full5),
        ),
        (
            "psbt_1_input_pool",
            "1-input PSBT, from the pool",
            latency_stats(pool1),
        ),
        (
            "psbt_5_inputs_pool",
            "5-input PSBT, from the pools",
            latency_stats(pool5),
        ),
    ];
    println!(
        "psbt-bench ({} backend in the client, GMP in sign-service; profile {})",
        mpc_core::BACKEND,
        if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        }
    );
    println!(
        "{:<40} {:>10} {:>10} {:>4}",
        "PSBT signed and finalized", "p50 ms", "p95 ms", "n"
    );
    for (_, label, s) in &rows {
        println!(
            "{:<40} {:>10.1} {:>10.1} {:>4}",
            label,
            s["p50_ms"].as_f64().unwrap_or(0.0),
            s["p95_ms"].as_f64().unwrap_or(0.0),
            s["n"]
        );
    }
    if let Some(path) = args.json {
        let mut j = serde_json::json!({
            "suite": "psbt",
            "client_backend": mpc_core::BACKEND,
            "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
        });
        for (k, _, s) in rows {
            j[k] = s;
        }
        std::fs::write(&path, serde_json::to_string_pretty(&j)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("[bench] wrote {}", path.display());
    }
    Ok(())
}
