//! `sign-gateway` binary: `sign-gateway [--config config/sign-gateway.yaml]`.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sign_gateway::config::{Config, LogFormat, RoomBackend, ENV_ACCESS_SECRET};
use tokio::sync::watch;

/// Native SSE room broker of the wallet. Runs with no configuration on 127.0.0.1:8080.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// YAML configuration file (all keys optional; see config/sign-gateway.yaml).
    #[arg(long, short, env = "SIGN_GATEWAY_CONFIG")]
    config: Option<PathBuf>,

    /// Once listening, write the bound address (`HOST:PORT` and a newline) to this file,
    /// atomically. With `port: 0` the system picks a free port: this file (or the log
    /// line "sign-gateway listening on ...") tells which.
    #[arg(long, env = "SIGN_GATEWAY_PORT_FILE")]
    port_file: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("sign-gateway: error: {e:#}");
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

fn run(args: Args) -> anyhow::Result<()> {
    let cfg = Config::load(args.config.as_deref())?;
    init_logging(&cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(serve(cfg, args.port_file))
}

/// Writes `addr` and a newline to `path` through a temporary file and a rename, so a
/// reader never sees a partial address.
fn write_port_file(path: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, format!("{addr}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write the port file {}", path.display()))
}

async fn serve(cfg: Config, port_file: Option<PathBuf>) -> anyhow::Result<()> {
    let addr: SocketAddr = tokio::net::lookup_host((cfg.host.as_str(), cfg.port))
        .await
        .with_context(|| format!("cannot resolve host {:?}", cfg.host))?
        .next()
        .with_context(|| format!("host {:?} resolves to no address", cfg.host))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (the port is busy: is another sign-gateway running? choose another `port` \
             in the config file or set SIGN_GATEWAY_PORT)"
        } else {
            ""
        };
        anyhow::anyhow!("cannot listen on {addr}: {e}{hint}")
    })?;
    let local = listener.local_addr().context("no local address")?;

    let tls = match &cfg.tls {
        Some(t) => Some(
            server_tls::server_config(&t.cert_file, &t.key_file, server_tls::ALPN_HTTP1)
                .context("tls")?,
        ),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let gw = cfg.gateway();
    let store = sign_gateway::rooms::open(&cfg)
        .await
        .context("cannot open the room store")?;
    match cfg.rooms {
        RoomBackend::Memory => tracing::info!("rooms in memory (one instance)"),
        RoomBackend::Redis => tracing::info!(
            prefix = %cfg.redis_key_prefix,
            "rooms on Redis (shared by every instance with this key prefix)"
        ),
    }
    let state = sign_gateway::AppState::with_store(gw.clone(), store, shutdown_rx.clone());

    if gw.access_secret.is_none() {
        tracing::warn!(
            "GATEWAY IS OPEN: no access secret configured, anyone who can reach \
             {scheme}://{local} can use any room. Set {ENV_ACCESS_SECRET} (or access_secret \
             in the config file) for anything but local use."
        );
    } else {
        tracing::info!("room tokens required (access secret configured)");
    }
    if gw.cors_origins.is_empty() {
        tracing::info!("CORS disabled (no cors_origins configured)");
    } else {
        tracing::info!(origins = ?gw.cors_origins, "CORS enabled");
    }
    tracing::info!(
        limits = ?gw.limits,
        "sign-gateway listening on {scheme}://{local}"
    );
    if let Some(path) = &port_file {
        write_port_file(path, local)?;
    }

    // Expire idle rooms in the background.
    let sweeper = {
        let state = state.clone();
        let mut stop = shutdown_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(state.sweep_interval());
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = state.sweep().await {
                            tracing::warn!(error = %e, "cannot sweep expired rooms");
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    };

    let app = sign_gateway::router(state);
    let mut shutdown_wait = shutdown_rx.clone();
    let stop = async move {
        let _ = shutdown_wait.wait_for(|v| *v).await;
    };
    let server = match tls {
        Some(config) => {
            let listener =
                server_tls::TlsListener::new(listener, config).context("cannot start TLS")?;
            tokio::spawn(
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .into_future(),
            )
        }
        None => tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .into_future(),
        ),
    };

    shutdown_signal().await;
    tracing::info!("shutting down: closing subscriptions and draining requests");
    let _ = shutdown_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(anyhow::anyhow!("server error: {e}")),
        Ok(Err(e)) => return Err(anyhow::anyhow!("server task failed: {e}")),
        Err(_) => tracing::warn!("connections still open after 10 s; exiting anyway"),
    }
    sweeper.abort();
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
