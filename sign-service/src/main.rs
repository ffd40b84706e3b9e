//! `sign-service` binary:
//! - `sign-service [--config FILE] [--port-file PATH]`: serve the API;
//! - `sign-service import FILE [--passphrase-file PATH] [--insecure-dev-primes]`:
//!   import key-gen's party-1 share file as a confirmed wallet (the service stopped).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sign_service::audit::{AuditLog, AuditRecord};
use sign_service::config::{Config, LogFormat};
use sign_service::import::{import_bundle, ImportOptions};
use sign_service::store::{KeySource, Store};
use zeroize::Zeroizing;

/// Environment variable with the 32-byte store key (64 hex digits).
const ENV_STORE_KEY: &str = "SIGN_SERVICE_STORE_KEY";
/// Environment variable with a passphrase the store key is derived from (Argon2id).
const ENV_STORE_PASSPHRASE: &str = "SIGN_SERVICE_STORE_PASSPHRASE";
/// The passphrase of key-gen's `service_key_shares.json` (key-gen's own variable).
const ENV_SHARE_PASSPHRASE: &str = "WALLET_SERVICE_PASSPHRASE";

/// The wallet's cosigner (party 1): gRPC + gRPC-web API, GMP, encrypted key store.
/// Runs with no configuration file on 127.0.0.1:50051 (the store key must still be
/// given: SIGN_SERVICE_STORE_KEY or SIGN_SERVICE_STORE_PASSPHRASE).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// YAML configuration file (all keys optional; see config/sign-service.yaml).
    #[arg(long, short, env = "SIGN_SERVICE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Encrypt the key store under a fixed, PUBLIC key. Local tests only.
    #[arg(long, global = true)]
    insecure_dev_store_key: bool,
    /// Once listening, write `HOST:PORT` and a newline to this file (atomically: a
    /// temporary file renamed into place). With `port: 0` the system picks the port.
    #[arg(long, value_name = "PATH")]
    port_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Import a party-1 key-share file written by key-gen (service_key_shares.json) as a
    /// confirmed wallet, then print one JSON line: wallet_id, cosigner_identity,
    /// insecure_dev_primes, accounts. Stop the service first (the store is locked
    /// while it runs).
    Import {
        /// The encrypted key-share file.
        file: PathBuf,
        /// File whose first line is the share file's passphrase (default: the
        /// WALLET_SERVICE_PASSPHRASE environment variable, as for key-gen).
        #[arg(long, value_name = "PATH")]
        passphrase_file: Option<PathBuf>,
        /// Accept a file whose aux info was built from the repository's PUBLIC dev
        /// primes (key-gen --insecure-dev-primes). Development only: the wallet is
        /// flagged in the store, the logs and the audit log.
        #[arg(long)]
        insecure_dev_primes: bool,
        /// Wallet label.
        #[arg(long, default_value = "imported")]
        label: String,
    },
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("sign-service: error: {e:#}");
        std::process::exit(1);
    }
}

/// Logs go to stdout when serving, to stderr for a command whose result is stdout.
fn init_logging(cfg: &Config, to_stderr: bool) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.logging.level)
        .with_context(|| format!("invalid logging.level {:?}", cfg.logging.level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let res = match (cfg.logging.format, to_stderr) {
        (LogFormat::Json, false) => builder.json().try_init(),
        (LogFormat::Pretty, false) => builder.try_init(),
        (LogFormat::Json, true) => builder.json().with_writer(std::io::stderr).try_init(),
        (LogFormat::Pretty, true) => builder.with_writer(std::io::stderr).try_init(),
    };
    res.map_err(|e| anyhow::anyhow!("cannot initialise logging: {e}"))
}

fn key_source(insecure: bool) -> anyhow::Result<KeySource> {
    let key = std::env::var(ENV_STORE_KEY).ok().filter(|s| !s.is_empty());
    let pass = std::env::var(ENV_STORE_PASSPHRASE)
        .ok()
        .filter(|s| !s.is_empty());
    match (key, pass, insecure) {
        (Some(_), Some(_), _) => {
            anyhow::bail!("set only one of {ENV_STORE_KEY} and {ENV_STORE_PASSPHRASE}")
        }
        (Some(k), None, _) => Ok(KeySource::Hex(Zeroizing::new(k))),
        (None, Some(p), _) => Ok(KeySource::Passphrase(Zeroizing::new(p))),
        (None, None, true) => Ok(KeySource::InsecureDev),
        (None, None, false) => anyhow::bail!(
            "no key-store key: set {ENV_STORE_KEY} (64 hex digits, e.g. `openssl rand -hex 32`) or \
             {ENV_STORE_PASSPHRASE}; for local tests only, pass --insecure-dev-store-key"
        ),
    }
}

fn open_store(cfg: &Config, insecure_dev_store_key: bool) -> anyhow::Result<Store> {
    let source = key_source(insecure_dev_store_key)?;
    if matches!(source, KeySource::InsecureDev) {
        tracing::warn!(
            "INSECURE: the key store is encrypted under a fixed PUBLIC key (--insecure-dev-store-key). \
             Anyone with the file can read every key share. Local tests only."
        );
    }
    Store::open(&cfg.key_store, &source)
        .with_context(|| format!("cannot open the key store {}", cfg.key_store.display()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let cfg = Config::load(args.config.as_deref())?;
    init_logging(&cfg, args.command.is_some())?;
    if let Some(Command::Import {
        file,
        passphrase_file,
        insecure_dev_primes,
        label,
    }) = args.command
    {
        let store = open_store(&cfg, args.insecure_dev_store_key)?;
        return import(
            &cfg,
            &store,
            &file,
            passphrase_file.as_deref(),
            ImportOptions {
                allow_dev_primes: insecure_dev_primes,
                label,
            },
        );
    }
    if cfg.insecure_dev_primes {
        tracing::warn!(
            "INSECURE: insecure_dev_primes is set: aux info uses the PUBLIC test primes, so anyone \
             can break the Paillier layer of every wallet created now. Tests and demos only."
        );
    }
    let store = open_store(&cfg, args.insecure_dev_store_key)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let result = rt.block_on(serve(cfg, Arc::new(store), args.port_file));
    // Do not wait for a background prime generation (CPU-bound, minutes) to finish.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

fn read_passphrase(file: Option<&Path>) -> anyhow::Result<Zeroizing<String>> {
    let pass = match file {
        Some(path) => {
            let text = Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
            );
            Zeroizing::new(text.lines().next().unwrap_or("").to_string())
        }
        None => Zeroizing::new(std::env::var(ENV_SHARE_PASSPHRASE).unwrap_or_default()),
    };
    if pass.is_empty() {
        anyhow::bail!(
            "no passphrase for the share file: give --passphrase-file or set {ENV_SHARE_PASSPHRASE}"
        );
    }
    Ok(pass)
}

fn import(
    cfg: &Config,
    store: &Store,
    file: &Path,
    passphrase_file: Option<&Path>,
    opts: ImportOptions,
) -> anyhow::Result<()> {
    let pass = read_passphrase(passphrase_file)?;
    let bundle = mpc_core::keystore::KeyShareBundle::load(file, &pass)
        .with_context(|| format!("cannot open {}", file.display()))?;
    let now = cosigner_api::auth::now_ms();
    let rec = import_bundle(store, bundle, &opts, now)
        .with_context(|| format!("cannot import {}", file.display()))?;
    let identity = store.load_or_create_identity()?.public();
    AuditLog::open(&cfg.audit_log)?.append(&AuditRecord {
        timestamp_ms: now,
        event: "import_wallet",
        wallet_id: rec.wallet_id.clone(),
        outcome: Some(format!("imported {} accounts", rec.accounts.len())),
        insecure_dev_primes: rec.insecure_dev_primes.then_some(true),
        ..Default::default()
    })?;
    if rec.insecure_dev_primes {
        tracing::warn!(wallet_id = %rec.wallet_id, "INSECURE: imported a wallet whose aux info uses the PUBLIC dev primes (development only)");
    }
    tracing::info!(wallet_id = %rec.wallet_id, accounts = rec.accounts.len(), "wallet imported");
    let accounts: Vec<serde_json::Value> = rec
        .accounts
        .values()
        .map(|a| {
            serde_json::json!({
                "account_id": a.id,
                "public_key": a.public_key,
                "ethereum_address": mpc_core::address::ethereum_address(&a.master_public_key()),
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "wallet_id": rec.wallet_id,
            "cosigner_identity": identity.to_string(),
            "insecure_dev_primes": rec.insecure_dev_primes,
            "accounts": accounts,
        })
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}

/// Writes `HOST:PORT\n` to `path` atomically (a temporary file renamed into place).
fn write_port_file(path: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("--port-file {} names no file", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, format!("{addr}\n"))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

async fn serve(cfg: Config, store: Arc<Store>, port_file: Option<PathBuf>) -> anyhow::Result<()> {
    let addr: SocketAddr = tokio::net::lookup_host((cfg.host.as_str(), cfg.port))
        .await
        .with_context(|| format!("cannot resolve host {:?}", cfg.host))?
        .next()
        .with_context(|| format!("host {:?} resolves to no address", cfg.host))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (the port is busy: is another sign-service running? choose another `port` in the \
             config file or set SIGN_SERVICE_PORT; port 0 lets the system pick one)"
        } else {
            ""
        };
        anyhow::anyhow!("cannot listen on {addr}: {e}{hint}")
    })?;
    let local = listener.local_addr().context("no local address")?;
    let state = sign_service::State::new(cfg, store)?;
    let cfg = &state.cfg;
    if cfg.gateway_access_secret.is_none() {
        tracing::warn!(
            "no gateway access secret: room tokens are empty (the gateway must be open)"
        );
    }
    tracing::info!(
        listen = %local,
        backend = mpc_core::BACKEND,
        identity = %state.public_identity(),
        gateway = %cfg.gateway_url,
        key_store = %cfg.key_store.display(),
        audit_log = %cfg.audit_log.display(),
        cors_origins = ?cfg.cors_origins,
        "sign-service listening (gRPC and gRPC-web)"
    );
    if mpc_core::BACKEND != "rug (GMP)" {
        tracing::warn!(
            backend = mpc_core::BACKEND,
            "not using GMP: feature unification enabled num-bigint"
        );
    }
    if let Some(path) = &port_file {
        write_port_file(path, local)?;
    }
    // The machine-readable line (stderr; the logs go to stdout).
    eprintln!("sign-service listening on {local}");
    let st = Arc::clone(&state);
    sign_service::serve(state, listener, shutdown_signal()).await?;
    tracing::info!(active_sessions = st.active_sessions(), "stopped");
    Ok(())
}
