//! `sign-service` binary: `sign-service [--config config/sign-service.yaml]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use sign_service::config::{Config, LogFormat};
use sign_service::store::{KeySource, Store};
use zeroize::Zeroizing;

/// Environment variable with the 32-byte store key (64 hex digits).
const ENV_STORE_KEY: &str = "SIGN_SERVICE_STORE_KEY";
/// Environment variable with a passphrase the store key is derived from (Argon2id).
const ENV_STORE_PASSPHRASE: &str = "SIGN_SERVICE_STORE_PASSPHRASE";

/// The wallet's cosigner (party 1): gRPC + gRPC-web API, GMP, encrypted key store.
/// Runs with no configuration file on 127.0.0.1:50051 (the store key must still be
/// given: SIGN_SERVICE_STORE_KEY or SIGN_SERVICE_STORE_PASSPHRASE).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// YAML configuration file (all keys optional; see config/sign-service.yaml).
    #[arg(long, short, env = "SIGN_SERVICE_CONFIG")]
    config: Option<PathBuf>,
    /// Encrypt the key store under a fixed, PUBLIC key. Local tests only.
    #[arg(long)]
    insecure_dev_store_key: bool,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("sign-service: error: {e:#}");
        std::process::exit(1);
    }
}

fn init_logging(cfg: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.logging.level)
        .with_context(|| format!("invalid logging.level {:?}", cfg.logging.level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let res = match cfg.logging.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
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

fn run(args: Args) -> anyhow::Result<()> {
    let cfg = Config::load(args.config.as_deref())?;
    init_logging(&cfg)?;
    let source = key_source(args.insecure_dev_store_key)?;
    if matches!(source, KeySource::InsecureDev) {
        tracing::warn!(
            "INSECURE: the key store is encrypted under a fixed PUBLIC key (--insecure-dev-store-key). \
             Anyone with the file can read every key share. Local tests only."
        );
    }
    if cfg.insecure_dev_primes {
        tracing::warn!(
            "INSECURE: insecure_dev_primes is set: aux info uses the PUBLIC test primes, so anyone \
             can break the Paillier layer of every wallet created now. Tests and demos only."
        );
    }
    let store = Store::open(&cfg.key_store, &source)
        .with_context(|| format!("cannot open the key store {}", cfg.key_store.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let result = rt.block_on(serve(cfg, Arc::new(store)));
    // Do not wait for a background prime generation (CPU-bound, minutes) to finish.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result
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

async fn serve(cfg: Config, store: Arc<Store>) -> anyhow::Result<()> {
    let addr: SocketAddr = tokio::net::lookup_host((cfg.host.as_str(), cfg.port))
        .await
        .with_context(|| format!("cannot resolve host {:?}", cfg.host))?
        .next()
        .with_context(|| format!("host {:?} resolves to no address", cfg.host))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (the port is busy: is another sign-service running? choose another `port` in the \
             config file or set SIGN_SERVICE_PORT)"
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
    let st = Arc::clone(&state);
    sign_service::serve(state, listener, shutdown_signal()).await?;
    tracing::info!(active_sessions = st.active_sessions(), "stopped");
    Ok(())
}
