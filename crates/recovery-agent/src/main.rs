//! `recovery-agent`: the wallet's recovery party as a local HTTP service.
//! See `docs/recovery-agent.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use recovery_agent::primes::{fast_generator, PrimePool};
use recovery_agent::{
    api, check_origin, is_loopback, read_secret_file, token, Agent, AgentConfig, PairingToken,
    PrimeSource,
};
use zeroize::Zeroizing;

/// The wallet's recovery party (index 2): joins wallet creations started by a browser
/// wallet and keeps the recovery share encrypted on disk.
#[derive(Debug, Parser)]
#[command(name = "recovery-agent", version)]
struct Args {
    /// Address to listen on. Non-loopback addresses need --allow-non-loopback. Port 0:
    /// a free port chosen by the system (see --port-file).
    #[arg(long, env = "RECOVERY_AGENT_LISTEN", default_value = "127.0.0.1:7350")]
    listen: SocketAddr,

    /// Once listening, write the bound address (`HOST:PORT` and a newline) to this file,
    /// atomically (the "listening on" lines of the log and stdout name it too).
    #[arg(long, env = "RECOVERY_AGENT_PORT_FILE")]
    port_file: Option<PathBuf>,

    /// Allow listening on a non-loopback address (the API is then reachable from the
    /// network; serve it with TLS: --tls-cert-file, --tls-key-file).
    #[arg(long)]
    allow_non_loopback: bool,

    /// Data directory: identity.key and wallets/<wallet id>/recovery_key_shares.json.
    #[arg(
        long,
        env = "RECOVERY_AGENT_DATA_DIR",
        default_value = "./recovery-agent-data"
    )]
    data_dir: PathBuf,

    /// Pairing token (prefer RECOVERY_AGENT_TOKEN or --token-file: command lines are
    /// visible to other local users).
    #[arg(long, env = "RECOVERY_AGENT_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// File holding the pairing token; created with a fresh token (mode 0600) if it
    /// does not exist.
    #[arg(long, env = "RECOVERY_AGENT_TOKEN_FILE")]
    token_file: Option<PathBuf>,

    /// Browser origin allowed to call the API (repeatable, or comma-separated in the
    /// environment), e.g. http://localhost:5173.
    #[arg(
        long = "allow-origin",
        env = "RECOVERY_AGENT_ALLOW_ORIGINS",
        value_delimiter = ','
    )]
    allow_origins: Vec<String>,

    /// File holding the recovery passphrase (encrypts the identity and every share).
    /// Alternatively set RECOVERY_AGENT_PASSPHRASE.
    #[arg(long, env = "RECOVERY_AGENT_PASSPHRASE_FILE")]
    passphrase_file: Option<PathBuf>,

    /// Gateway URL to use instead of the one the cosigner announced in the rooms.
    #[arg(long, env = "RECOVERY_AGENT_GATEWAY_URL")]
    gateway_url: Option<String>,

    /// A PEM file of extra CA certificates trusted for an https:// gateway (beside the
    /// web PKI roots).
    #[arg(long, env = "RECOVERY_AGENT_CA_FILE")]
    ca_file: Option<String>,

    /// Serve HTTPS with this certificate chain (PEM; with --tls-key-file). Default:
    /// plain HTTP.
    #[arg(long, env = "RECOVERY_AGENT_TLS_CERT_FILE", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert-file.
    #[arg(long, env = "RECOVERY_AGENT_TLS_KEY_FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,

    /// Use the repository's PUBLIC test primes for aux info. INSECURE: tests and demos
    /// only; keys made this way are not secret-safe.
    #[arg(long)]
    insecure_dev_primes: bool,

    /// Fast, weak passphrase hashing for the files (tests only).
    #[arg(long)]
    insecure_fast_kdf: bool,

    /// Prime sets generated ahead of time in the background (0: generate per wallet).
    #[arg(long, default_value_t = 1)]
    prime_pool_size: usize,

    /// Wallet creations running at once at most.
    #[arg(long, default_value_t = 2)]
    max_jobs: usize,

    /// Seconds a finished job stays visible.
    #[arg(long, default_value_t = 900)]
    job_ttl_secs: u64,

    /// Deadline of each protocol session (aux info, each DKG), seconds.
    #[arg(long, default_value_t = 900)]
    session_timeout_secs: u64,

    /// Largest request body, bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    max_body_bytes: usize,

    /// Log filter (e.g. info, recovery_agent=debug).
    #[arg(long, env = "RECOVERY_AGENT_LOG", default_value = "info")]
    log: String,

    /// The running agent these commands talk to (default: the address in --port-file,
    /// else --listen).
    #[arg(long, env = "RECOVERY_AGENT_URL")]
    agent_url: Option<String>,

    #[command(subcommand)]
    command: Option<Command>,
}

/// Commands for the user at the agent's machine (without one, the agent runs). They
/// authenticate with `<data dir>/admin.token`, which the running agent wrote.
#[derive(Debug, Subcommand)]
enum Command {
    /// Lists the pages' requests (awaiting confirmation, running, finished).
    Requests {
        /// Print the JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Confirms a request: the agent then sends it to the cosigner.
    Confirm {
        /// The request id (`recovery-agent requests`).
        id: String,
    },
    /// Rejects a request: nothing is sent.
    Reject {
        /// The request id.
        id: String,
    },
}

/// Runs an admin command against the running agent.
async fn admin(args: &Args, command: &Command) -> Result<()> {
    let base = match (&args.agent_url, &args.port_file) {
        (Some(u), _) => u.trim_end_matches('/').to_string(),
        (None, Some(p)) => {
            let addr = std::fs::read_to_string(p).with_context(|| {
                format!(
                    "cannot read the port file {} (is the agent running?)",
                    p.display()
                )
            })?;
            format!("http://{}", addr.trim())
        }
        (None, None) => format!("http://{}", args.listen),
    };
    let token_path = args.data_dir.join(recovery_agent::ADMIN_TOKEN_FILE);
    let token = read_secret_file(&token_path).with_context(|| {
        format!(
            "cannot read the admin token {} (run this as the agent's user, with its --data-dir)",
            token_path.display()
        )
    })?;
    let mut http = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(ca) = &args.ca_file {
        let pem = std::fs::read(ca).with_context(|| format!("cannot read {ca}"))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem).context("CA file")? {
            http = http.add_root_certificate(cert);
        }
    }
    let http = http.build().context("HTTP client")?;
    let (method, url) = match command {
        Command::Requests { .. } => (reqwest::Method::GET, format!("{base}/v1/admin/requests")),
        Command::Confirm { id } => (
            reqwest::Method::POST,
            format!("{base}/v1/admin/requests/{id}/confirm"),
        ),
        Command::Reject { id } => (
            reqwest::Method::POST,
            format!("{base}/v1/admin/requests/{id}/reject"),
        ),
    };
    let resp = http
        .request(method, &url)
        .bearer_auth(token.as_str())
        .send()
        .await
        .with_context(|| format!("cannot reach the agent at {base}"))?;
    let status = resp.status();
    let text = resp.text().await.context("reading the agent's answer")?;
    let body: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("the agent answered {status} with non-JSON"))?;
    if !status.is_success() {
        bail!(
            "{} ({})",
            body["error"]["message"].as_str().unwrap_or("error"),
            body["error"]["code"].as_str().unwrap_or("?")
        );
    }
    let show = |r: &serde_json::Value| {
        format!(
            "{}  {:<22} {:<13} wallet {}  cosigner {}  from {}  reason {:?}",
            r["request_id"].as_str().unwrap_or("?"),
            r["state"].as_str().unwrap_or("?"),
            r["action"].as_str().unwrap_or("?"),
            r["wallet_id"].as_str().unwrap_or("?"),
            r["cosigner_url"].as_str().unwrap_or("?"),
            r["origin"].as_str().unwrap_or("-"),
            r["reason"].as_str().unwrap_or(""),
        )
    };
    match command {
        Command::Requests { json: true } => println!("{body}"),
        Command::Requests { json: false } => {
            let list = body["requests"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("no requests");
            }
            for r in &list {
                println!("{}", show(r));
            }
        }
        Command::Confirm { .. } => println!("confirmed: {}", show(&body)),
        Command::Reject { .. } => println!("rejected: {}", show(&body)),
    }
    Ok(())
}

fn passphrase(args: &Args) -> Result<Zeroizing<String>> {
    if let Some(p) = &args.passphrase_file {
        return Ok(read_secret_file(p)?);
    }
    match std::env::var("RECOVERY_AGENT_PASSPHRASE") {
        Ok(p) if !p.is_empty() => Ok(Zeroizing::new(p)),
        _ => bail!(
            "no recovery passphrase: set RECOVERY_AGENT_PASSPHRASE or --passphrase-file \
             (it encrypts the agent's identity and every recovery share)"
        ),
    }
}

/// Writes `addr` and a newline to `path` through a temporary file and a rename, so a
/// reader never sees a partial address.
fn write_port_file(path: &Path, addr: SocketAddr) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, format!("{addr}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write the port file {}", path.display()))
}

/// Returns the token checker and the token to print, if it was generated.
fn pairing_token(args: &Args) -> Result<(PairingToken, Option<Zeroizing<String>>)> {
    if let Some(t) = &args.token {
        return Ok((PairingToken::new(t)?, None));
    }
    if let Some(f) = &args.token_file {
        let (t, created) = token::load_or_create_file(f)?;
        return Ok((PairingToken::new(&t)?, created.then_some(t)));
    }
    let t = token::generate();
    Ok((PairingToken::new(&t)?, Some(t)))
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
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(command) = &args.command {
        return admin(&args, command).await;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log)
                .with_context(|| format!("invalid --log filter {:?}", args.log))?,
        )
        .with_writer(std::io::stderr)
        .init();

    if !is_loopback(&args.listen) && !args.allow_non_loopback {
        bail!(
            "{} is not a loopback address; pass --allow-non-loopback to expose the agent",
            args.listen
        );
    }
    let allowed_origins = args
        .allow_origins
        .iter()
        .filter(|o| !o.trim().is_empty())
        .map(|o| check_origin(o))
        .collect::<Result<Vec<_>, _>>()?;
    let (token, printed) = pairing_token(&args)?;
    let primes = if args.insecure_dev_primes {
        tracing::warn!(
            "--insecure-dev-primes: using the repository's PUBLIC test primes; keys made now are NOT secret-safe"
        );
        PrimeSource::InsecureDev
    } else {
        let pool = PrimePool::new(args.prime_pool_size, fast_generator);
        PrimeSource::Generated(pool)
    };
    if args.insecure_fast_kdf {
        tracing::warn!("--insecure-fast-kdf: weak passphrase hashing (tests only)");
    }
    let cfg = AgentConfig {
        data_dir: args.data_dir.clone(),
        passphrase: passphrase(&args)?,
        allowed_origins,
        gateway_url: args.gateway_url.clone(),
        ca_file: args.ca_file.clone(),
        insecure_fast_kdf: args.insecure_fast_kdf,
        max_jobs: args.max_jobs,
        job_ttl: Duration::from_secs(args.job_ttl_secs),
        session_timeout: Duration::from_secs(args.session_timeout_secs),
        max_body_bytes: args.max_body_bytes,
    };
    let tls = match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(cert), Some(key)) => {
            Some(server_tls::server_config(cert, key, server_tls::ALPN_HTTP1).context("TLS")?)
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (agent, created) = Agent::open(cfg, token, primes.clone())?;
    if let PrimeSource::Generated(pool) = &primes {
        pool.refill();
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    agent.set_public_url(format!("{scheme}://{addr}"));
    tracing::info!(
        %addr,
        data_dir = %args.data_dir.display(),
        identity_created = created,
        origins = ?agent.config().allowed_origins,
        backend = mpc_core::BACKEND,
        "recovery-agent listening"
    );
    // stdout: what the user (or a test) needs, one fact per line.
    println!("recovery-agent listening on {scheme}://{addr}");
    println!("identity: {}", agent.public_identity());
    if let Some(t) = printed {
        println!("pairing token: {}", t.as_str());
    }
    if let Some(path) = &args.port_file {
        write_port_file(path, addr)?;
    }
    // Pending shares left by a refresh or replacement interrupted by a crash.
    tokio::spawn({
        let agent = std::sync::Arc::clone(&agent);
        async move { agent.settle_pending().await }
    });
    match tls {
        Some(config) => {
            let listener = server_tls::TlsListener::new(listener, config)?;
            api::serve(agent, listener, shutdown_signal()).await?
        }
        None => api::serve(agent, listener, shutdown_signal()).await?,
    }
    tracing::info!("stopped");
    Ok(())
}
