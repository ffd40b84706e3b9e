//! Starting real gateway processes on loopback for tests and the benchmark.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gateway_core::Limits;

/// Which gateway implementation a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `sign-gateway` (axum).
    Native,
    /// `edge-gateway` under `wrangler dev` (workerd, local mode).
    Edge,
}

/// Settings a test starts a gateway with.
#[derive(Debug, Clone)]
pub struct TestConfig {
    /// Room-token secret, if any.
    pub secret: Option<String>,
    /// CORS origins.
    pub cors_origins: Vec<String>,
    /// Keep-alive interval.
    pub keepalive_secs: u64,
    /// Refuse room tokens (v1): party tokens only.
    pub require_party_tokens: bool,
    /// Limits.
    pub limits: Limits,
    /// Rooms on this Redis (`rooms: redis`) instead of in memory.
    pub redis: Option<RedisRooms>,
    /// Edge only: `METRICS_TOKEN`, which enables `GET /metrics` for this bearer token
    /// (the room objects then report every 100 ms, `METRICS_REPORT_MS`). The native
    /// gateway's `/metrics` has no token and ignores it.
    pub metrics_token: Option<String>,
}

/// `rooms: redis` settings of a test gateway.
#[derive(Debug, Clone)]
pub struct RedisRooms {
    /// `redis://127.0.0.1:<port>/`
    pub url: String,
    /// Key prefix: gateways with the same prefix share their rooms.
    pub key_prefix: String,
}

impl Default for TestConfig {
    fn default() -> Self {
        TestConfig {
            secret: None,
            cors_origins: vec![],
            keepalive_secs: 15,
            require_party_tokens: false,
            limits: Limits::default(),
            redis: None,
            metrics_token: None,
        }
    }
}

/// A running gateway process; killed (with its process group) on drop.
pub struct GatewayProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// Implementation.
    pub kind: Kind,
    /// The configuration it was started with.
    pub config: TestConfig,
    log: PathBuf,
    _dir: TempDir,
}

impl GatewayProcess {
    /// OS process id (the gateway itself for native; wrangler for edge).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's captured output so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends SIGTERM and waits up to `timeout` for exit; returns the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            if start.elapsed() > timeout {
                bail!("process did not exit within {timeout:?} after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        // The child leads its own process group (wrangler starts workerd children).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(prefix: &str) -> Result<Self> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port that was free a moment ago on 127.0.0.1. Only for servers that cannot bind
/// port 0 and report it (`wrangler dev`); ours take `--port-file` instead.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A loopback address where nothing listens, for as long as this value lives: the port is
/// bound (so no other process can take it) but never listened on, so every connection to
/// it is refused at once. Unlike a port that was free a moment ago, it cannot be taken by
/// a server another test starts meanwhile.
pub struct RefusedPort(tokio::net::TcpSocket);

impl RefusedPort {
    /// Binds a fresh loopback port without listening.
    pub fn new() -> Result<Self> {
        let s = tokio::net::TcpSocket::new_v4()?;
        s.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        Ok(RefusedPort(s))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> Result<String> {
        Ok(format!("http://{}", self.0.local_addr()?))
    }
}

/// Waits for the address a server of ours reports through `--port-file PATH` (bind port
/// 0, then write `HOST:PORT` and a newline atomically once listening) and returns it.
/// Fails when `child` exits first or nothing is reported within `timeout`.
pub fn wait_port_file(child: &mut Child, path: &Path, timeout: Duration) -> Result<SocketAddr> {
    let start = Instant::now();
    loop {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                return text
                    .trim_end()
                    .parse()
                    .with_context(|| format!("port file {} holds {text:?}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        if let Some(status) = child.try_wait()? {
            bail!("exited with {status} before writing {}", path.display());
        }
        if start.elapsed() > timeout {
            bail!("no address in {} after {timeout:?}", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn_logged(mut cmd: Command, log: &Path) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0);
    cmd.spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))
}

async fn wait_healthy(p: &mut GatewayProcess, timeout: Duration) -> Result<()> {
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if let Some(status) = p.child.try_wait()? {
            bail!(
                "{:?} gateway exited early with {status}; output:\n{}",
                p.kind,
                p.log()
            );
        }
        if let Ok(r) = http
            .get(p.url("/health"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if start.elapsed() > timeout {
            bail!(
                "{:?} gateway not healthy after {timeout:?}; output:\n{}",
                p.kind,
                p.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The YAML file for `sign-gateway` matching `cfg` on `port` (0: any free port).
pub fn native_yaml(cfg: &TestConfig, port: u16) -> Result<String> {
    let mut v = serde_json::json!({
        "host": "127.0.0.1",
        "port": port,
        "cors_origins": cfg.cors_origins,
        "keepalive_secs": cfg.keepalive_secs,
        "require_party_tokens": cfg.require_party_tokens,
        "logging": {"level": "warn", "format": "json"},
        "limits": serde_json::to_value(&cfg.limits)?,
    });
    if let Some(s) = &cfg.secret {
        v["access_secret"] = serde_json::Value::String(s.clone());
    }
    if let Some(r) = &cfg.redis {
        v["rooms"] = "redis".into();
        v["redis_url"] = r.url.clone().into();
        v["redis_key_prefix"] = r.key_prefix.clone().into();
    }
    Ok(serde_yaml::to_string(&v)?)
}

/// Starts `sign-gateway` from `bin` with `cfg` on loopback port 0 and reads the port it
/// got from its `--port-file`.
pub async fn start_native(bin: &Path, cfg: &TestConfig) -> Result<GatewayProcess> {
    let dir = TempDir::new("sign-gateway-test")?;
    let cfg_path = dir.0.join("sign-gateway.yaml");
    std::fs::write(&cfg_path, native_yaml(cfg, 0)?)?;
    let log = dir.0.join("out.log");
    let port_file = dir.0.join("sign-gateway.port");
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(&cfg_path)
        .arg("--port-file")
        .arg(&port_file);
    for v in [
        "SIGN_GATEWAY_HOST",
        "SIGN_GATEWAY_PORT",
        "SIGN_GATEWAY_ACCESS_SECRET",
        "SIGN_GATEWAY_LOG",
        "SIGN_GATEWAY_LOG_FORMAT",
        "SIGN_GATEWAY_CONFIG",
        "SIGN_GATEWAY_PORT_FILE",
        "SIGN_GATEWAY_ROOMS",
        "SIGN_GATEWAY_REDIS_URL",
        "SIGN_GATEWAY_REDIS_KEY_PREFIX",
    ] {
        cmd.env_remove(v);
    }
    let mut child = spawn_logged(cmd, &log)?;
    let addr = match wait_port_file(&mut child, &port_file, Duration::from_secs(20)) {
        Ok(addr) => addr,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            let out = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("sign-gateway did not start: {e:#}; output:\n{out}");
        }
    };
    let mut p = GatewayProcess {
        child,
        base: format!("http://{addr}"),
        kind: Kind::Native,
        config: cfg.clone(),
        log,
        _dir: dir,
    };
    wait_healthy(&mut p, Duration::from_secs(20)).await?;
    Ok(p)
}

/// The `edge-gateway/` directory of this repository.
///
/// Prefers the run-time `CARGO_MANIFEST_DIR` (set by `cargo test`/`cargo run`): a
/// compiled-in path can belong to another checkout sharing the same target dir.
pub fn edge_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../../edge-gateway")
}

/// Why the edge gateway cannot be started here, if it cannot.
pub fn edge_missing() -> Option<String> {
    let dir = edge_dir();
    let wrangler = dir.join("node_modules/.bin/wrangler");
    let built = dir.join("build/worker/shim.mjs");
    if !wrangler.exists() {
        return Some(format!(
            "{} is missing: run scripts/gateway-edge-build.sh (npm ci + worker-build)",
            wrangler.display()
        ));
    }
    if !built.exists() {
        return Some(format!(
            "{} is missing: run scripts/gateway-edge-build.sh",
            built.display()
        ));
    }
    None
}

/// Starts the edge gateway under `wrangler dev` (local, no account, no network), or
/// returns `Ok(None)` with a loud notice when it is not built and
/// `REQUIRE_EDGE_GATEWAY=1` is not set (with it set, a missing build is an error).
pub async fn start_edge(cfg: &TestConfig) -> Result<Option<GatewayProcess>> {
    if let Some(why) = edge_missing() {
        if std::env::var("REQUIRE_EDGE_GATEWAY").as_deref() == Ok("1") {
            bail!("REQUIRE_EDGE_GATEWAY=1 but the edge gateway cannot run: {why}");
        }
        eprintln!(
            "\n!!!!!!!!!! SKIPPING EDGE-GATEWAY CONTRACT TESTS: {why} \
             (set REQUIRE_EDGE_GATEWAY=1 to make this a failure) !!!!!!!!!!\n"
        );
        return Ok(None);
    }
    let dir = edge_dir();
    let tmp = TempDir::new("edge-gateway-test")?;
    let port = free_port()?;
    let inspector = free_port()?;
    let log = tmp.0.join("out.log");
    let mut cmd = Command::new(dir.join("node_modules/.bin/wrangler"));
    cmd.current_dir(&dir)
        .args(["dev", "--local", "--ip", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--inspector-port")
        .arg(inspector.to_string())
        .arg("--persist-to")
        .arg(tmp.0.join("state"))
        .args([
            "--log-level",
            "warn",
            "--show-interactive-dev-session=false",
        ])
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("WRANGLER_LOG_PATH", tmp.0.join("wrangler-logs"))
        .env("CI", "1");
    let l = &cfg.limits;
    let vars: Vec<(&str, String)> = vec![
        ("CORS_ORIGINS", cfg.cors_origins.join(",")),
        ("KEEPALIVE_SECS", cfg.keepalive_secs.to_string()),
        ("ACCESS_SECRET", cfg.secret.clone().unwrap_or_default()),
        ("MAX_MESSAGE_BYTES", l.max_message_bytes.to_string()),
        ("MAX_MESSAGES_PER_ROOM", l.max_messages_per_room.to_string()),
        ("MAX_ROOM_BYTES", l.max_room_bytes.to_string()),
        (
            "MAX_SUBSCRIBERS_PER_ROOM",
            l.max_subscribers_per_room.to_string(),
        ),
        ("MAX_UNIQUE_IDX", l.max_unique_idx.to_string()),
        ("ROOM_IDLE_TTL_SECS", l.room_idle_ttl_secs.to_string()),
        (
            "ROOM_MAX_LIFETIME_SECS",
            l.room_max_lifetime_secs.to_string(),
        ),
        ("MAX_ROOMS", l.max_rooms.to_string()),
        ("MAX_TOTAL_BYTES", l.max_total_bytes.to_string()),
        (
            "NEW_ROOM_BUDGET_PERCENT",
            l.new_room_budget_percent.to_string(),
        ),
        (
            "MAX_PARTY_BYTES_PER_ROOM",
            l.max_party_bytes_per_room.to_string(),
        ),
        (
            "MAX_SUBSCRIPTIONS_PER_PARTY",
            l.max_subscriptions_per_party.to_string(),
        ),
        ("REQUIRE_PARTY_TOKENS", cfg.require_party_tokens.to_string()),
        (
            "METRICS_TOKEN",
            cfg.metrics_token.clone().unwrap_or_default(),
        ),
        ("METRICS_REPORT_MS", "100".to_owned()),
    ];
    for (k, v) in vars {
        cmd.arg("--var").arg(format!("{k}:{v}"));
    }
    let child = spawn_logged(cmd, &log)?;
    let mut p = GatewayProcess {
        child,
        base: format!("http://127.0.0.1:{port}"),
        kind: Kind::Edge,
        config: cfg.clone(),
        log,
        _dir: tmp,
    };
    wait_healthy(&mut p, Duration::from_secs(90)).await?;
    Ok(Some(p))
}
