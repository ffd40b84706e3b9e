//! `key-gen`: creates the three parties' key shares of a 2-of-3 wallet on this machine.
//!
//! By default it runs a real distributed key generation between three local sessions
//! (no trusted dealer): aux info (Paillier keys) once per party, then one DKG per
//! account. It writes `client_key_shares.json`, `service_key_shares.json` and
//! `recovery_key_shares.json`, each encrypted under its own passphrase.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use mpc_core::keystore::{write_atomically, KdfParams, KeyShareBundle};
use mpc_core::local::{run_sessions, run_sessions_threaded};
use mpc_core::primes::{dev_fixture_primes, PrimeSet, PrimesFile};
use mpc_core::{Account, AccountKind, Session, SessionOutput, PARTIES, THRESHOLD};
use wallet_cli::{passphrase_for, PASSPHRASE_ENV, ROLES, SHARE_FILES};

#[derive(Parser, Debug)]
#[command(
    name = "key-gen",
    version,
    about = "Create the key shares of a 2-of-3 threshold wallet (local DKG)"
)]
struct Args {
    /// Number of accounts (independent keys) to create.
    #[arg(long, default_value_t = 1)]
    accounts: u32,
    /// Account kind: `hd` (derive children, full signing) or `independent`
    /// (root key only, eligible for presignatures).
    #[arg(long, default_value = "hd")]
    kind: String,
    /// Directory for the three share files.
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
    /// Reuse safe primes generated earlier (a file written by `--save-primes`).
    #[arg(long)]
    primes: Option<PathBuf>,
    /// Save the generated primes (secret material: they are the Paillier private keys).
    #[arg(long)]
    save_primes: Option<PathBuf>,
    /// Use the repository's PUBLIC test primes. Keys made this way are not secret-safe:
    /// anyone can read the parties' Paillier keys. For development only.
    #[arg(long)]
    insecure_dev_primes: bool,
    /// Import an existing private key (hex) with a trusted dealer instead of DKG.
    /// This is a single point of failure: the key exists whole on this machine.
    #[arg(long, value_name = "HEX")]
    import_hex: Option<String>,
    /// Overwrite existing share files.
    #[arg(long)]
    force: bool,
    /// Fast, weak passphrase hashing (tests only).
    #[arg(long, hide = true)]
    insecure_fast_kdf: bool,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn run(args: Args) -> Result<()> {
    let kind = match args.kind.as_str() {
        "hd" => AccountKind::Hd,
        "independent" => AccountKind::Independent,
        other => bail!("--kind must be `hd` or `independent`, not {other:?}"),
    };
    if args.accounts == 0 || args.accounts > 1000 {
        bail!("--accounts must be between 1 and 1000");
    }
    // Check everything that can fail cheaply before minutes of work.
    let passphrases: Vec<String> = (0..3)
        .map(passphrase_for)
        .collect::<Result<_>>()
        .with_context(|| {
            format!(
                "each share file needs a passphrase: set {}",
                PASSPHRASE_ENV.join(", ")
            )
        })?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let paths: Vec<PathBuf> = SHARE_FILES.iter().map(|f| args.out_dir.join(f)).collect();
    if !args.force {
        if let Some(p) = paths.iter().find(|p| p.exists()) {
            bail!(
                "{} already exists; refusing to overwrite key shares (use --force)",
                p.display()
            );
        }
    }
    let secret = match &args.import_hex {
        Some(h) => {
            let bytes = hex::decode(h.trim().trim_start_matches("0x"))
                .context("--import-hex is not hex")?;
            if bytes.len() != 32 {
                bail!(
                    "--import-hex must be a 32-byte private key, got {} bytes",
                    bytes.len()
                );
            }
            if args.accounts != 1 {
                bail!("--import-hex imports exactly one account");
            }
            Some(zeroize::Zeroizing::new(bytes))
        }
        None => None,
    };

    let primes = load_primes(&args)?;
    let started = Instant::now();

    // Aux info: once per party, reused by every account.
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>22} [{bar:30}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bars: Vec<ProgressBar> = (0..3)
        .map(|i| {
            let b = multi.add(ProgressBar::new(100));
            b.set_style(style.clone());
            b.set_prefix(format!(
                "aux info {}",
                ROLES[i].split(' ').next().unwrap_or("")
            ));
            b
        })
        .collect();
    let bars_ref = Mutex::new(&bars);
    let factories: Vec<_> = primes
        .iter()
        .enumerate()
        .map(|(i, set)| {
            let set = set.clone();
            move || -> Result<Session, mpc_core::SessionError> {
                let p = set
                    .to_pregenerated()
                    .map_err(|e| mpc_core::SessionError::InvalidParams(e.to_string()))?;
                Session::aux_info(
                    format!("key-gen-aux-{}", now()).as_bytes(),
                    i as u16,
                    PARTIES,
                    p,
                )
            }
        })
        .collect();
    let outs = run_sessions_threaded(factories, &|party, pr| {
        if let Ok(bars) = bars_ref.lock() {
            if let Some(b) = bars.get(usize::from(party)) {
                b.set_position(u64::from(pr.percent()));
                b.set_message(format!(
                    "round {}/{}",
                    pr.round.min(pr.total_rounds),
                    pr.total_rounds
                ));
            }
        }
    })
    .map_err(|(p, e)| anyhow::anyhow!("aux-info generation failed at party {p}: {e}"))?;
    for b in &bars {
        b.finish_with_message("done");
    }
    let aux: Vec<mpc_core::AuxInfo> = outs
        .into_iter()
        .map(|o| match o {
            SessionOutput::AuxInfo(a) => Ok(*a),
            other => bail!("unexpected output {other:?}"),
        })
        .collect::<Result<_>>()?;
    eprintln!("aux info ready in {:.1}s", started.elapsed().as_secs_f64());

    let mut bundles: Vec<KeyShareBundle> = (0..3u16)
        .map(|i| {
            let mut b = KeyShareBundle::new(i);
            b.aux_info = Some(aux[usize::from(i)].clone());
            b
        })
        .collect();

    let created = now();
    if let Some(secret) = secret {
        eprintln!("WARNING: --import-hex uses a trusted dealer. The whole private key exists on this machine");
        eprintln!("         while it is split; wipe the source of the key afterwards. A DKG never has this weakness.");
        let shares = mpc_core::import::import_private_key(&secret).context("cannot import key")?;
        for (i, share) in shares.into_iter().enumerate() {
            let acct = Account::new("account-0", kind, share, created);
            bundles[i].accounts.insert(acct.id.clone(), acct);
        }
    } else {
        let bar = ProgressBar::new(u64::from(args.accounts));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>22} [{bar:30}] {pos}/{len} accounts")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix("distributed keygen");
        for a in 0..args.accounts {
            let id = format!("account-{a}");
            let sid = format!("key-gen-dkg-{created}-{id}");
            let sessions = (0..PARTIES)
                .map(|i| Session::keygen(sid.as_bytes(), i, PARTIES, THRESHOLD))
                .collect::<Result<Vec<_>, _>>()?;
            let outs = run_sessions(sessions, None)
                .map_err(|(p, e)| anyhow::anyhow!("DKG failed at party {p}: {e}"))?;
            for (i, o) in outs.into_iter().enumerate() {
                let SessionOutput::Keygen(share) = o else {
                    bail!("unexpected DKG output")
                };
                let acct = Account::new(id.clone(), kind, *share, created);
                // A share is only useful with its aux info; check that they fit together.
                acct.complete(&aux[i])
                    .context("DKG share does not fit the aux info")?;
                bundles[i].accounts.insert(id.clone(), acct);
            }
            bar.inc(1);
        }
        bar.finish();
    }

    let kdf = if args.insecure_fast_kdf {
        KdfParams::insecure_for_tests()
    } else {
        KdfParams::default()
    };
    for (i, bundle) in bundles.iter().enumerate() {
        bundle
            .save(&paths[i], &passphrases[i], kdf)
            .with_context(|| format!("cannot write {}", paths[i].display()))?;
    }
    println!(
        "Created {} account(s) in {:.1}s:",
        args.accounts,
        started.elapsed().as_secs_f64()
    );
    for acct in bundles[0].accounts.values() {
        let pk = acct.master_public_key();
        println!(
            "  {}  public key {}  ethereum {}",
            acct.id,
            acct.public_key,
            mpc_core::address::ethereum_address(&pk)
        );
    }
    for (i, p) in paths.iter().enumerate() {
        println!(
            "  {:<20} {}  (passphrase from {})",
            ROLES[i],
            p.display(),
            PASSPHRASE_ENV[i]
        );
    }
    println!("Keep the three files on three different machines: any two of them can sign.");
    Ok(())
}

fn load_primes(args: &Args) -> Result<Vec<PrimeSet>> {
    if let Some(path) = &args.primes {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read primes file {}", path.display()))?;
        let file = PrimesFile::from_json(&text)?;
        if file.parties.len() != 3 {
            bail!(
                "{} holds {} prime sets; key-gen needs 3 (one per party)",
                path.display(),
                file.parties.len()
            );
        }
        if file.is_public_fixture() && !args.insecure_dev_primes {
            bail!(
                "{} contains the repository's PUBLIC test primes. Aux info built from them gives every reader \
                 the parties' Paillier private keys, so the shares would not be safe to hold money. \
                 Pass --insecure-dev-primes to use them anyway for development.",
                path.display()
            );
        }
        for (i, s) in file.parties.iter().enumerate() {
            s.to_pregenerated()
                .with_context(|| format!("prime set {i} in {}", path.display()))?;
        }
        return Ok(file.parties);
    }
    if args.insecure_dev_primes {
        eprintln!("WARNING: using the repository's PUBLIC test primes (--insecure-dev-primes).");
        eprintln!("         These keys are for development only: do not send funds to them.");
        return Ok(dev_fixture_primes());
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "Generating 3 x 4 safe primes of 1536 bits ({}, {threads} threads; reuse them with --save-primes/--primes)...",
        mpc_core::primes::FAST_PRIME_BACKEND
    );
    let bar = ProgressBar::new(12);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>22} [{bar:30}] {pos}/{len} primes {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix("safe primes");
    let mut sets: Vec<PrimeSet> = Vec::with_capacity(3);
    for party in 0..3u64 {
        let set = PrimeSet::generate_fast(threads, None, &mut |p| {
            bar.set_position(party * 4 + p.found.min(4));
            bar.set_message(format!("{} candidates tested", p.fermat_q));
        })
        .with_context(|| format!("generating the safe primes of party {party}"))?;
        sets.push(set);
    }
    bar.finish();
    if let Some(path) = &args.save_primes {
        let file = PrimesFile {
            insecure_public_fixture: false,
            warning: Some(
                "SECRET: Paillier private keys of the three parties. Keep offline.".into(),
            ),
            parties: sets.clone(),
        };
        let text = serde_json::to_string_pretty(&file)?;
        write_atomically(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "saved primes to {} (mode 0600; secret material)",
            path.display()
        );
    }
    Ok(sets)
}
