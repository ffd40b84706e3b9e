//! `scale-bench`: many concurrent signings through two cosigners on one PostgreSQL
//! store and two gateways on one Redis, with one cosigner killed mid-run.
//!
//! Everything is started here, as real processes: a throwaway PostgreSQL server and
//! `redis-server` (`test-servers`), two `sign-gateway` processes with their rooms on that
//! Redis (`rooms: redis`, one key prefix), two `sign-service` processes (GMP) on one
//! database of that PostgreSQL (`store_url`). Cosigner A announces gateway 1 and B
//! gateway 2, while the clients of A use gateway 2 and those of B gateway 1 (the
//! client's gateway override): every session crosses both gateways through Redis.
//!
//! Then: wallets are created with the real flow (aux info + DKG, device and recovery in
//! this process, dev primes), alternately through A and B; their presignature pools are
//! filled; and `--pool` + `--full` signings (EIP-191 messages) run from `--clients`
//! client tasks at once, each task with its own two `MpcClient`s (one per cosigner) on
//! its wallet, its signings one after the other, half of the tasks starting on A, half
//! on B. When `--kill-at` of the signings are done, cosigner A gets SIGKILL: its
//! sessions in flight fail, the failure's code must be retryable (`ErrorCode`, not
//! text), and the task retries on B (and stays there). A non-retryable error, or a
//! signing still failing after `--max-attempts`, is a final failure.
//!
//! Checked: every signing ends signed (zero final failures), every signature verifies
//! against its wallet's account key (k256, independently of the wallet's code) and no
//! two share an r (a reused presignature would); in PostgreSQL, after the run, no
//! presignature is both unused and used, every pool signature's presignature id was
//! taken (recorded used) exactly once during the run, the take counter moved by exactly
//! the presignatures recorded used, and the presignatures taken without a signature are
//! at most the pool attempts that failed; on the devices, pool signature ids are all
//! different, each left the local pool, and each local pool shrank by no more than its
//! pool attempts. Reported: p50/p95 per kind (pool, full; client wall time of the whole
//! signing, retries included), throughput, retries and their codes, the kill's
//! in-flight sessions, the machine's load. Exit status 1 on any failure.
//!
//! ```text
//! cargo run --release -p e2e-tests --bin scale-bench -- [--pool 150] [--full 50] \
//!     [--clients 40] [--wallets 2] [--kill-at 0.5] [--json scale.json]
//! ```
//! The servers are built like the e2e tests build them (one cargo invocation per
//! package, in this binary's profile); `E2E_NO_BUILD=1` uses those already built.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use e2e_tests::*;
use mpc_client::{
    new_mpc_client, AccountKind, MpcClient, MpcConfig, PresignConfig, PresignMode, SignedResult,
};
use test_servers::postgres::PgServer;
use test_servers::redis::RedisServer;

mod checks;
mod report;
use checks::{check_devices, check_signatures, check_store, StoreState};
use report::Run;

const HELP: &str = "\
scale-bench: concurrent signings through two cosigners (sign-service, GMP) on one
PostgreSQL and two gateways (sign-gateway) on one Redis, one cosigner killed mid-run.

Starts PostgreSQL, redis-server, 2 gateways and 2 cosigners itself; creates wallets
(real flow, dev primes), fills their presignature pools, runs the signings from many
client tasks spread over both cosigners, SIGKILLs cosigner A once --kill-at of them
are done; its in-flight sessions must fail with a retryable code and their retries on
cosigner B must succeed. Then checks the signatures, the store (PostgreSQL) and the
devices' pools: every presignature used at most once. Exit status 1 on any failure.

Options:
  --pool N          signings from the presignature pool (default 150)
  --full N          full signings, a protocol session each (default 50)
  --clients N       client tasks signing at once, >= 2 (default 40)
  --wallets N       wallets, created alternately through A and B (default 2)
  --kill-at F       SIGKILL cosigner A when this fraction is done, 0 < F < 1 (default 0.5)
  --max-attempts N  attempts per signing before it counts as failed (default 3)
  --json PATH       write the results as JSON (scripts/bench.sh: scale.json)
  -h, --help        this text

With the defaults a run took 6.5 minutes on a 2-core machine shared with other builds
(load average 4-15; docs/operations.md): 42 s to create the wallets, 4.4 minutes to
generate the 160 presignatures, 64 s for the 200 signings; less on an idle machine.
Building the servers the first time comes on top (release).";

struct Args {
    pool: usize,
    full: usize,
    clients: usize,
    wallets: usize,
    kill_at: f64,
    max_attempts: usize,
    json: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        pool: 150,
        full: 50,
        clients: 40,
        wallets: 2,
        kill_at: 0.5,
        max_attempts: 3,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--pool" => a.pool = value("--pool")?.parse().context("--pool")?,
            "--full" => a.full = value("--full")?.parse().context("--full")?,
            "--clients" => a.clients = value("--clients")?.parse().context("--clients")?,
            "--wallets" => a.wallets = value("--wallets")?.parse().context("--wallets")?,
            "--kill-at" => a.kill_at = value("--kill-at")?.parse().context("--kill-at")?,
            "--max-attempts" => {
                a.max_attempts = value("--max-attempts")?.parse().context("--max-attempts")?
            }
            "--json" => a.json = Some(PathBuf::from(value("--json")?)),
            "-h" | "--help" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    if a.pool + a.full == 0 {
        bail!("nothing to sign: --pool and --full are both 0");
    }
    if a.clients < 2 || a.wallets == 0 || a.max_attempts < 2 {
        bail!("--clients must be at least 2, --wallets at least 1, --max-attempts at least 2");
    }
    if !(a.kill_at > 0.0 && a.kill_at < 1.0) {
        bail!("--kill-at must be between 0 and 1 (exclusive)");
    }
    Ok(a)
}

/// Presignature sessions a wallet's refill runs at once (and each cosigner runs for one
/// wallet: the cosigner ends a session whose caller has not joined in time).
const REFILL_LANES: usize = 4;

/// The two cosigners: A (index 0, killed mid-run) and B (index 1).
const NAMES: [&str; 2] = ["A", "B"];

/// Pool or full signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Pool,
    Full,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Pool => "pool",
            Kind::Full => "full",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn presign(self) -> PresignConfig {
        PresignConfig {
            mode: match self {
                Kind::Pool => PresignMode::Require,
                Kind::Full => PresignMode::Off,
            },
            auto_refill: false,
            ..PresignConfig::default()
        }
    }
}

/// Where a client reaches a cosigner: its gRPC URL and the gateway the client uses
/// (the OTHER gateway than the one the cosigner announces).
#[derive(Clone)]
struct Endpoint {
    cosigner: String,
    gateway: String,
}

/// A wallet made for the run.
struct Wallet {
    dir: PathBuf,
    account: String,
    address: String,
}

/// One signing to do.
#[derive(Clone, Copy)]
struct Job {
    id: usize,
    kind: Kind,
}

/// A failed attempt.
#[derive(Debug, Clone)]
struct Failure {
    cosigner: usize,
    code: &'static str,
    retryable: bool,
    /// Seconds since the signing phase started.
    at_s: f64,
    message: String,
}

/// What became of one signing.
struct Outcome {
    job: Job,
    wallet: usize,
    start_s: f64,
    end_s: f64,
    failures: Vec<Failure>,
    /// The signature and the cosigner that gave it, or nothing (a final failure).
    signed: Option<(SignedResult, usize)>,
}

/// Shared state of the signing phase.
struct Phase {
    started: Instant,
    done: AtomicUsize,
    /// Attempts in flight by [cosigner][kind].
    in_flight: [[AtomicUsize; 2]; 2],
    max_attempts: usize,
}

fn client_for(wallet_dir: &Path, ep: &Endpoint) -> Result<MpcClient> {
    let mut cfg = MpcConfig::new(
        wallet_dir
            .join("client_key_shares.json")
            .display()
            .to_string(),
        DEVICE_PASS,
    );
    cfg.cosigner_url = ep.cosigner.clone();
    cfg.gateway_url = Some(ep.gateway.clone());
    cfg.recovery_path = Some(
        wallet_dir
            .join("recovery_key_shares.json")
            .display()
            .to_string(),
    );
    cfg.recovery_passphrase = Some(RECOVERY_PASS.into());
    cfg.insecure_dev_primes = true;
    cfg.insecure_fast_kdf = true;
    cfg.request_timeout_secs = 120;
    cfg.sign_timeout_secs = 600;
    Ok(new_mpc_client(cfg)?)
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

/// Busy and total jiffies of all cores so far (`/proc/stat`), to tell how busy the
/// machine was during the signing phase (other processes included).
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("scale-bench: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let bench_started = Instant::now();
    let load_before = loadavg();
    let bins = Bins {
        // The bench drives the wallet through mpc-client in this process: no CLI.
        client: PathBuf::new(),
        gateway: build_bin("sign-gateway", "sign-gateway")?,
        service: build_bin("sign-service", "sign-service")?,
    };
    let root = TempDir::new("wallet-scale-bench")?;

    eprintln!("[scale] starting PostgreSQL and Redis...");
    let pg = PgServer::start();
    let db = pg.database();
    let redis = RedisServer::start()?;
    let redis_url = redis.url();
    let gw_env = [
        ("SIGN_GATEWAY_ROOMS", "redis"),
        ("SIGN_GATEWAY_REDIS_URL", redis_url.as_str()),
        ("SIGN_GATEWAY_REDIS_KEY_PREFIX", "scale-bench:"),
    ];
    let (_gw1, gw1) = start_gateway_with_env(&bins, &root.0.join("gateway-1"), &gw_env)?;
    let (_gw2, gw2) = start_gateway_with_env(&bins, &root.0.join("gateway-2"), &gw_env)?;

    // Pools: each wallet's pool signings, plus one spare per task of it that starts on
    // A (such a task loses at most one taken presignature to the kill, then stays on B).
    let total = args.pool + args.full;
    let jobs = plan_jobs(args.pool, total);
    let task_jobs = deal(&jobs, args.clients);
    let mut pool_target = vec![0usize; args.wallets];
    for (t, js) in task_jobs.iter().enumerate() {
        let w = t % args.wallets;
        pool_target[w] += js.iter().filter(|j| j.kind == Kind::Pool).count();
        if home_of(t, args.wallets) == 0 && js.iter().any(|j| j.kind == Kind::Pool) {
            pool_target[w] += 1;
        }
    }
    let cap = pool_target.iter().copied().max().unwrap_or(0).max(16);

    eprintln!("[scale] starting cosigners A and B on one PostgreSQL database...");
    let extra = format!(
        "store_url: \"{db}\"\nmax_concurrent_sessions: 1024\npresign_workers: 8\n\
         presign_workers_per_wallet: {REFILL_LANES}\npresign_join_deadline_secs: 120\npresign_pool_cap: {cap}\npresign_max_per_request: 64\n\
         replay_nonces_per_identity: 1000000\nrate_limits:\n  requests_per_identity_per_second: 10000\n  \
         requests_burst_per_identity: 10000\n"
    );
    let mut cfgs = [("cosigner-a", &gw1), ("cosigner-b", &gw2)].map(|(dir, gw)| ServiceConfig {
        port: 0,
        gateway_url: gw.clone(),
        data_dir: root.0.join(dir),
        max_value_per_tx_wei: None,
        session_timeout_secs: 600,
        extra_yaml: extra.clone(),
    });
    let mut cosigner_a = start_service(&bins, &mut cfgs[0])?;
    let cosigner_b = start_service(&bins, &mut cfgs[1])?;
    // Each cosigner's clients use the other gateway: the sessions cross through Redis.
    let endpoints = [
        Endpoint {
            cosigner: cfgs[0].url(),
            gateway: gw2.clone(),
        },
        Endpoint {
            cosigner: cfgs[1].url(),
            gateway: gw1.clone(),
        },
    ];

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    // Wallets, created at once, alternately through A and B.
    eprintln!(
        "[scale] creating {} wallet(s) (aux info + DKG, dev primes)...",
        args.wallets
    );
    let t = Instant::now();
    let wallets: Vec<Wallet> = rt.block_on(async {
        let mut handles = Vec::new();
        for w in 0..args.wallets {
            let dir = root.0.join(format!("wallet-{w}"));
            std::fs::create_dir_all(&dir)?;
            let client = client_for(&dir, &endpoints[w % 2])?;
            handles.push(tokio::spawn(async move {
                let info = client
                    .create_wallet(1, AccountKind::Independent, format!("scale {w}"), None)
                    .await?;
                let account = info.accounts.first().context("no account")?;
                anyhow::Ok(Wallet {
                    dir,
                    account: account.account_id.clone(),
                    address: account.ethereum_address.clone(),
                })
            }));
        }
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await??);
        }
        anyhow::Ok(out)
    })?;
    let create_s = secs(t);

    // Pools, filled at once, each wallet through the cosigner that created it.
    let presignatures: usize = pool_target.iter().sum();
    eprintln!("[scale] filling the pools: {presignatures} presignatures...");
    let t = Instant::now();
    rt.block_on(async {
        let mut handles = Vec::new();
        for (w, wallet) in wallets.iter().enumerate() {
            if pool_target[w] == 0 {
                continue;
            }
            let client = client_for(&wallet.dir, &endpoints[w % 2])?;
            client.set_presign_config(PresignConfig {
                mode: PresignMode::Require,
                auto_refill: false,
                concurrency: REFILL_LANES as u32,
                pool_target: pool_target[w] as u32,
                low_water: 0,
            })?;
            let (account, target) = (wallet.account.clone(), pool_target[w]);
            handles.push(tokio::spawn(async move {
                let status = client.refill_presignatures(account, target as u32).await?;
                if (status.local as usize) < target {
                    bail!(
                        "wallet {w}: the refill made {} of {target}: {status:?}",
                        status.local
                    );
                }
                anyhow::Ok(())
            }));
        }
        for h in handles {
            h.await??;
        }
        anyhow::Ok(())
    })?;
    let refill_s = secs(t);

    // The state before the signing phase: the store's take counter and used ids, the
    // devices' pools.
    let before = StoreState::read(&pg, &db)?;
    let local_before: Vec<HashSet<String>> = rt.block_on(local_pools(&wallets, &endpoints))?;

    eprintln!(
        "[scale] {total} signings ({} pool, {} full) from {} client tasks; SIGKILL of cosigner A at {:.0}%...",
        args.pool,
        args.full,
        args.clients,
        args.kill_at * 100.0
    );
    let wallets = Arc::new(wallets);
    let phase = Arc::new(Phase {
        started: Instant::now(),
        done: AtomicUsize::new(0),
        in_flight: Default::default(),
        max_attempts: args.max_attempts,
    });
    let ticks_before = cpu_ticks();
    let kill_after = ((total as f64) * args.kill_at).ceil() as usize;
    let (outcomes, kill) = rt.block_on(async {
        let mut handles = Vec::new();
        for (t, js) in task_jobs.into_iter().enumerate() {
            let w = t % args.wallets;
            let home = home_of(t, args.wallets);
            let clients = [
                client_for(&wallets[w].dir, &endpoints[0])?,
                client_for(&wallets[w].dir, &endpoints[1])?,
            ];
            let (phase, wallets) = (Arc::clone(&phase), Arc::clone(&wallets));
            handles.push(tokio::spawn(async move {
                client_task(&phase, &wallets[w], w, clients, home, js).await
            }));
        }
        let mut kill: Option<Kill> = None;
        while !handles.iter().all(|h| h.is_finished()) {
            if kill.is_none() && phase.done.load(Ordering::SeqCst) >= kill_after {
                let in_flight = [Kind::Pool, Kind::Full]
                    .map(|k| phase.in_flight[0][k.index()].load(Ordering::SeqCst));
                // The time is taken before the signal: a session failing while the
                // process dies is one the kill caused.
                let at_s = secs(phase.started);
                cosigner_a.kill();
                kill = Some(Kill {
                    at_s,
                    done: phase.done.load(Ordering::SeqCst),
                    in_flight,
                });
                eprintln!(
                    "[scale] SIGKILL cosigner A at {:.1} s ({} done; in flight on A: {} pool, {} full)",
                    secs(phase.started),
                    kill_after,
                    in_flight[0],
                    in_flight[1]
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut outcomes = Vec::new();
        for h in handles {
            outcomes.extend(h.await??);
        }
        anyhow::Ok((outcomes, kill))
    })?;
    let phase_s = secs(phase.started);
    let ticks_after = cpu_ticks();
    let cpu_busy = if ticks_after.1 > ticks_before.1 {
        100.0 * (ticks_after.0 - ticks_before.0) as f64 / (ticks_after.1 - ticks_before.1) as f64
    } else {
        0.0
    };
    let load_after = loadavg();
    let kill = kill.context("the run ended before the kill")?;

    // ---------------------------------------------------------------- the checks
    let mut problems: Vec<String> = Vec::new();
    let after = StoreState::read(&pg, &db)?;
    let local_after: Vec<HashSet<String>> = rt.block_on(local_pools(&wallets, &endpoints))?;
    check_signatures(&outcomes, &wallets, &mut problems);
    let store = check_store(&before, &after, &outcomes, &mut problems);
    check_devices(&local_before, &local_after, &outcomes, &mut problems);
    for (name, log) in [("A", cosigner_a.output()), ("B", cosigner_b.output())] {
        if log.contains("panicked") {
            problems.push(format!("cosigner {name} panicked (see its log)"));
        }
    }

    let run = Run {
        args: &args,
        outcomes: &outcomes,
        kill: &kill,
        create_s,
        refill_s,
        presignatures,
        phase_s,
        cpu_busy,
        load_before,
        load_after,
        store,
        takes: (before.takes, after.takes),
        unused_left: after.unused.len(),
        total_s: secs(bench_started),
    };
    report::report(&run, &mut problems)?;
    if !problems.is_empty() {
        bail!("{} check(s) failed (see above)", problems.len());
    }
    Ok(())
}

/// The kill of cosigner A.
struct Kill {
    at_s: f64,
    done: usize,
    /// Attempts in flight on A at that moment: pool, full.
    in_flight: [usize; 2],
}

/// `pool` pool signings among `total`, spread evenly (Bresenham), numbered.
fn plan_jobs(pool: usize, total: usize) -> Vec<Job> {
    (0..total)
        .map(|id| Job {
            id,
            kind: if (id + 1) * pool / total > id * pool / total {
                Kind::Pool
            } else {
                Kind::Full
            },
        })
        .collect()
}

/// The cosigner task `t` starts on: tasks go to the wallets round-robin, and each
/// wallet's tasks alternate between A and B.
fn home_of(t: usize, wallets: usize) -> usize {
    (t / wallets) % 2
}

/// Deals the jobs round-robin to `tasks` tasks.
fn deal(jobs: &[Job], tasks: usize) -> Vec<Vec<Job>> {
    let mut out = vec![Vec::new(); tasks];
    for (i, j) in jobs.iter().enumerate() {
        out[i % tasks].push(*j);
    }
    out
}

/// One client task: its signings one after the other, starting on cosigner `home`; after
/// a retryable failure it retries on the other cosigner and stays there.
async fn client_task(
    phase: &Phase,
    wallet: &Wallet,
    w: usize,
    clients: [MpcClient; 2],
    home: usize,
    jobs: Vec<Job>,
) -> Result<Vec<Outcome>> {
    let mut current = home;
    let mut out = Vec::new();
    for job in jobs {
        let message = format!("scale-bench signing {}", job.id).into_bytes();
        let start_s = secs(phase.started);
        let mut failures = Vec::new();
        let signed = loop {
            let c = current;
            clients[c].set_presign_config(job.kind.presign())?;
            phase.in_flight[c][job.kind.index()].fetch_add(1, Ordering::SeqCst);
            let r = clients[c]
                .sign_message(wallet.account.clone(), "m".into(), message.clone())
                .await;
            phase.in_flight[c][job.kind.index()].fetch_sub(1, Ordering::SeqCst);
            match r {
                Ok(s) => break Some((s, c)),
                Err(e) => {
                    let code = e.code();
                    failures.push(Failure {
                        cosigner: c,
                        code: code.as_str(),
                        retryable: code.retryable(),
                        at_s: secs(phase.started),
                        message: e.to_string(),
                    });
                    if !code.retryable() || failures.len() >= phase.max_attempts {
                        break None;
                    }
                    current = 1 - c;
                }
            }
        };
        phase.done.fetch_add(1, Ordering::SeqCst);
        out.push(Outcome {
            job,
            wallet: w,
            start_s,
            end_s: secs(phase.started),
            failures,
            signed,
        });
    }
    Ok(out)
}

/// Ids in each wallet's local (device) pool, read through a client of the wallet.
async fn local_pools(
    wallets: &[Wallet],
    endpoints: &[Endpoint; 2],
) -> Result<Vec<HashSet<String>>> {
    let mut out = Vec::new();
    for (w, wallet) in wallets.iter().enumerate() {
        let client = client_for(&wallet.dir, &endpoints[w % 2])?;
        out.push(
            client
                .local_presignatures(wallet.account.clone())
                .await?
                .into_iter()
                .collect(),
        );
    }
    Ok(out)
}
