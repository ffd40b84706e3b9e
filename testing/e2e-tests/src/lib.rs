//! Harness of the end-to-end tests: builds and locates the real binaries
//! (`sign-gateway`, `sign-service`, `client`), starts them on loopback port 0 (each
//! reports the port it got through `--port-file`) with their own temporary directories, runs the client, and verifies signatures
//! independently of the wallet's code (k256 + keccak directly).
//!
//! The binaries are built with `cargo build -p <package> --bin <bin>` in this test's
//! target directory; the cosigner from its own workspace (`sign-service/Cargo.toml`,
//! GMP only). Set `E2E_NO_BUILD=1` to use binaries that are already in the target
//! directory (CI builds them once, before the suites run in parallel).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use sha3::{Digest, Keccak256};

pub use gateway_tests::process::RefusedPort;

pub mod anvil;

/// Passphrase of the device file in the tests.
pub const DEVICE_PASS: &str = "e2e device passphrase";
/// Passphrase of the recovery file in the tests.
pub const RECOVERY_PASS: &str = "e2e recovery passphrase";
/// Key-store key of the cosigner in the tests (public: tests only).
pub const STORE_KEY: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

/// Paths of the three binaries.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `client`.
    pub client: PathBuf,
    /// `sign-gateway`.
    pub gateway: PathBuf,
    /// `sign-service`.
    pub service: PathBuf,
}

/// The target profile directory the test executable runs from (`target/debug`).
pub fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("no current exe")?;
    // target/debug/deps/e2e-xxxx (tests) or target/debug/presign-bench (binaries)
    // -> target/debug
    let parent = exe.parent().context("unexpected executable location")?;
    let dir = if parent.file_name().is_some_and(|n| n == "deps") {
        parent
            .parent()
            .context("unexpected test executable location")?
    } else {
        parent
    };
    Ok(dir.to_path_buf())
}

/// Builds (unless `E2E_NO_BUILD=1`) and locates the binaries, once per process.
pub fn bins() -> Result<Bins> {
    static BINS: OnceLock<std::result::Result<Bins, String>> = OnceLock::new();
    BINS.get_or_init(|| build_bins().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

fn build_bins() -> Result<Bins> {
    Ok(Bins {
        client: build_bin("wallet-cli", "client")?,
        gateway: build_bin("sign-gateway", "sign-gateway")?,
        service: build_bin("sign-service", "sign-service")?,
    })
}

/// Builds (unless `E2E_NO_BUILD=1`) `pkg`'s binary `bin` in its own cargo invocation
/// (so that features are not unified: the cosigner keeps GMP), in this test's target
/// directory and profile, and returns its path.
pub fn build_bin(pkg: &str, bin: &str) -> Result<PathBuf> {
    let dir = profile_dir()?;
    let release = dir.file_name().is_some_and(|n| n == "release");
    if std::env::var("E2E_NO_BUILD").as_deref() != Ok("1") {
        let started = Instant::now();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", pkg, "--bin", bin]);
        if pkg == "sign-service" {
            // The cosigner is a workspace of its own (GMP only).
            cmd.arg("--manifest-path")
                .arg(repo_root().join("sign-service").join("Cargo.toml"));
        }
        if release {
            cmd.arg("--release");
        }
        // The target dir of the nested build must be ours.
        if let Some(target) = dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        let status = cmd
            .status()
            .with_context(|| format!("cannot run cargo build -p {pkg}"))?;
        if !status.success() {
            bail!("cargo build -p {pkg} --bin {bin} failed ({status})");
        }
        eprintln!(
            "[e2e] built {bin} ({:.1}s)",
            started.elapsed().as_secs_f64()
        );
    }
    let p = dir.join(bin);
    if !p.exists() {
        bail!(
            "{} is missing (build it, or unset E2E_NO_BUILD)",
            p.display()
        );
    }
    Ok(p)
}

/// The repository's root directory (from the run-time `CARGO_MANIFEST_DIR` when cargo
/// runs the test, else from where this crate was compiled).
pub fn repo_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    // testing/e2e-tests, or any crate one or two levels below the root.
    manifest
        .ancestors()
        .find(|d| d.join("sign-service").join("Cargo.toml").exists())
        .map(Path::to_path_buf)
        .unwrap_or(manifest)
}

/// A temporary directory (removed on drop unless `E2E_KEEP=1`).
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates a fresh directory.
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
        if std::env::var("E2E_KEEP").as_deref() != Ok("1") {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A running process, killed on drop; its output goes to a log file.
pub struct Proc {
    name: String,
    child: Option<Child>,
    /// Log file (stdout + stderr).
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with its output in `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Proc {
            name: name.into(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// The output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL (a crash) and wait.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, wait up to 15 s, then SIGKILL.
    pub fn terminate(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.kill();
    }

    /// Waits for the address the process reports through `--port-file` (see
    /// [`gateway_tests::process::wait_port_file`]).
    pub fn wait_port_file(&mut self, port_file: &Path, timeout: Duration) -> Result<SocketAddr> {
        let child = self.child.as_mut().context("not running")?;
        gateway_tests::process::wait_port_file(child, port_file, timeout)
            .with_context(|| format!("{} did not start; output:\n{}", self.name, self.output()))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `sign-gateway` (open, no access secret) on loopback port 0; returns it and its
/// URL (the port read from its `--port-file`).
pub fn start_gateway(bins: &Bins, dir: &Path) -> Result<(Proc, String)> {
    start_gateway_with_env(bins, dir, &[])
}

/// [`start_gateway`] with more environment variables (e.g. `SIGN_GATEWAY_CORS_ORIGINS`).
pub fn start_gateway_with_env(
    bins: &Bins,
    dir: &Path,
    env: &[(&str, &str)],
) -> Result<(Proc, String)> {
    std::fs::create_dir_all(dir)?;
    let cfg = dir.join("sign-gateway.yaml");
    std::fs::write(
        &cfg,
        "host: 127.0.0.1\nport: 0\nlogging:\n  level: warn\n  format: pretty\n",
    )?;
    let port_file = dir.join("sign-gateway.port");
    let _ = std::fs::remove_file(&port_file);
    let mut cmd = Command::new(&bins.gateway);
    cmd.arg("--config")
        .arg(&cfg)
        .arg("--port-file")
        .arg(&port_file);
    for v in [
        "SIGN_GATEWAY_HOST",
        "SIGN_GATEWAY_PORT",
        "SIGN_GATEWAY_PORT_FILE",
        "SIGN_GATEWAY_ACCESS_SECRET",
        "SIGN_GATEWAY_CONFIG",
        "SIGN_GATEWAY_CORS_ORIGINS",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    let mut p = Proc::spawn("sign-gateway", cmd, &dir.join("sign-gateway.log"))?;
    let addr = p.wait_port_file(&port_file, Duration::from_secs(20))?;
    Ok((p, format!("http://{addr}")))
}

/// The `policy` section of a test cosigner whose scenarios sign raw preimages (the
/// Bitcoin-style double SHA-256 steps): the cosigner refuses raw payloads unless a wallet
/// opts in, so every wallet does (`"*"`, accepted only with `insecure_dev_primes: true`,
/// which [`ServiceConfig::yaml`] sets), with a per-transaction value limit (wei; value +
/// maximum fee). Goes in `extra_yaml` with `max_value_per_tx_wei: None`.
pub fn raw_payload_policy_yaml(max_value_per_tx_wei: u128) -> String {
    format!(
        "policy:\n  wallets:\n    \"*\":\n      allow_raw: true\n  ethereum:\n    \
         max_value_per_tx_wei: \"{max_value_per_tx_wei}\"\n"
    )
}

/// Settings of a `sign-service` run.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// gRPC port: 0 for a first start (the system picks one; [`start_service`] reads it
    /// from the service's `--port-file`), then the port it got, so that a restart comes
    /// back at the same URL.
    pub port: u16,
    /// Gateway URL.
    pub gateway_url: String,
    /// Data directory (key store, audit log).
    pub data_dir: PathBuf,
    /// Per-transaction value limit (wei), if any.
    pub max_value_per_tx_wei: Option<u128>,
    /// Signing session timeout.
    pub session_timeout_secs: u64,
    /// More YAML appended to the generated config (e.g. presignature settings).
    pub extra_yaml: String,
}

impl ServiceConfig {
    /// The audit log path.
    pub fn audit_log(&self) -> PathBuf {
        self.data_dir.join("audit.jsonl")
    }

    /// `http://127.0.0.1:<port>` (after [`start_service`] when the port was 0).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The YAML config.
    pub fn yaml(&self) -> String {
        let mut y = format!(
            "host: 127.0.0.1\nport: {}\ngateway_url: {}\nkey_store: {}\naudit_log: {}\n\
             insecure_dev_primes: true\nsession_timeout_secs: {}\nwallet_creation_timeout_secs: 600\n\
             prime_pool_size: 0\nlogging:\n  level: info\n  format: pretty\n",
            self.port,
            self.gateway_url,
            self.data_dir.join("store.redb").display(),
            self.audit_log().display(),
            self.session_timeout_secs,
        );
        // Open registration unless the test configures registration itself.
        if !self.extra_yaml.contains("dev_open_registration") {
            y.push_str("dev_open_registration: true\n");
        }
        if let Some(max) = self.max_value_per_tx_wei {
            y.push_str(&format!(
                "policy:\n  ethereum:\n    max_value_per_tx_wei: \"{max}\"\n"
            ));
        }
        y.push_str(&self.extra_yaml);
        y
    }
}

/// Starts `sign-service` with `cfg` (port 0 on a first start) and waits for the address
/// it reports through `--port-file`; stores the port it got in `cfg.port`.
pub fn start_service(bins: &Bins, cfg: &mut ServiceConfig) -> Result<Proc> {
    start_service_with_env(bins, cfg, &[])
}

/// [`start_service`] with more environment variables (e.g. `SIGN_SERVICE_CORS_ORIGINS`).
pub fn start_service_with_env(
    bins: &Bins,
    cfg: &mut ServiceConfig,
    env: &[(&str, &str)],
) -> Result<Proc> {
    std::fs::create_dir_all(&cfg.data_dir)?;
    let path = cfg.data_dir.join("sign-service.yaml");
    std::fs::write(&path, cfg.yaml())?;
    let port_file = cfg.data_dir.join("sign-service.port");
    let _ = std::fs::remove_file(&port_file);
    let mut cmd = Command::new(&bins.service);
    cmd.arg("--config")
        .arg(&path)
        .arg("--port-file")
        .arg(&port_file)
        .env("SIGN_SERVICE_STORE_KEY", STORE_KEY);
    for v in [
        "SIGN_SERVICE_HOST",
        "SIGN_SERVICE_PORT",
        "SIGN_SERVICE_PORT_FILE",
        "SIGN_SERVICE_GATEWAY_URL",
        "SIGN_SERVICE_KEY_STORE",
        "SIGN_SERVICE_AUDIT_LOG",
        "SIGN_SERVICE_CONFIG",
        "SIGN_SERVICE_STORE_PASSPHRASE",
        "SIGN_SERVICE_CORS_ORIGINS",
        "SIGN_GATEWAY_ACCESS_SECRET",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    let mut p = Proc::spawn("sign-service", cmd, &cfg.data_dir.join("sign-service.log"))?;
    cfg.port = p
        .wait_port_file(&port_file, Duration::from_secs(60))?
        .port();
    Ok(p)
}

/// Runs the client with `args` in `dir` (passphrases set, JSON output, fast KDF).
pub fn client_command(bins: &Bins, dir: &Path, cosigner: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(&bins.client);
    cmd.current_dir(dir)
        .args(["--json", "--insecure-fast-kdf", "--cosigner", cosigner])
        .args(args)
        .env("WALLET_CLIENT_PASSPHRASE", DEVICE_PASS)
        .env("WALLET_RECOVERY_PASSPHRASE", RECOVERY_PASS)
        .env_remove("WALLET_COSIGNER_URL")
        .env_remove("WALLET_GATEWAY_URL");
    cmd
}

/// The operator's side of registration, with the real `sign-service registration`
/// commands: makes an issuer key in `dir` and returns (its public identity, the key
/// file). Configure the cosigner with `registration_issuer_yaml`.
pub fn registration_issuer(bins: &Bins, dir: &Path) -> Result<(String, PathBuf)> {
    let key = dir.join("registration-issuer.key");
    let out = Command::new(&bins.service)
        .args(["registration", "new-issuer", "--out"])
        .arg(&key)
        .env_remove("SIGN_SERVICE_CONFIG")
        .output()
        .context("cannot run sign-service registration new-issuer")?;
    ensure_ok(&out, "sign-service registration new-issuer")?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("new-issuer output")?;
    let issuer = v["issuer"].as_str().context("no issuer")?.to_string();
    Ok((issuer, key))
}

/// The cosigner YAML trusting `issuer` only (closed registration).
pub fn registration_issuer_yaml(issuer: &str) -> String {
    format!("dev_open_registration: false\nregistration_issuers: [\"{issuer}\"]\n")
}

/// One registration credential from the issuer key `key` (`sign-service registration
/// issue`).
pub fn issue_registration(bins: &Bins, key: &Path) -> Result<String> {
    let out = Command::new(&bins.service)
        .args(["registration", "issue", "--ttl-secs", "600", "--issuer-key"])
        .arg(key)
        .env_remove("SIGN_SERVICE_CONFIG")
        .output()
        .context("cannot run sign-service registration issue")?;
    ensure_ok(&out, "sign-service registration issue")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn ensure_ok(out: &Output, what: &str) -> Result<()> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Output of a client run.
#[derive(Debug)]
pub struct ClientRun {
    /// Exit code (-1 if killed).
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
    /// Wall time of the process.
    pub wall: Duration,
}

impl ClientRun {
    /// Parses stdout's last line as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        let line = self.stdout.lines().last().context("no output")?;
        serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))
    }

    /// Requires success and returns the JSON output.
    pub fn ok(&self) -> Result<serde_json::Value> {
        if self.code != 0 {
            bail!(
                "client failed with {}:\nstdout: {}\nstderr: {}",
                self.code,
                self.stdout,
                self.stderr
            );
        }
        self.json()
    }
}

/// Runs the client to completion.
pub fn client(bins: &Bins, dir: &Path, cosigner: &str, args: &[&str]) -> Result<ClientRun> {
    let started = Instant::now();
    let out: Output = client_command(bins, dir, cosigner, args)
        .output()
        .context("cannot run client")?;
    Ok(ClientRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
        wall: started.elapsed(),
    })
}

/// EIP-55-insensitive Ethereum address of a k256 key.
pub fn eth_address(vk: &VerifyingKey) -> String {
    let pt = vk.to_encoded_point(false);
    let h = Keccak256::digest(&pt.as_bytes()[1..]);
    format!("0x{}", hex::encode(&h[12..]))
}

/// Independently verifies a client signature JSON (`r`, `s`, `y_parity`, `der`,
/// `digest`, `public_key`) over `preimage` (keccak-256) against `address`: the digest is
/// recomputed, the key is recovered from (r, s, y_parity) and must give `address`, the
/// DER form must verify under the public key, and s must be low.
pub fn verify_eth_signature(preimage: &[u8], sig: &serde_json::Value, address: &str) -> Result<()> {
    let field = |k: &str| sig[k].as_str().with_context(|| format!("no {k} in {sig}"));
    let digest: [u8; 32] = Keccak256::digest(preimage).into();
    if hex::encode(digest) != field("digest")? {
        bail!(
            "digest {} is not keccak256(preimage) {}",
            field("digest")?,
            hex::encode(digest)
        );
    }
    let mut rs = hex::decode(field("r")?)?;
    rs.extend(hex::decode(field("s")?)?);
    let signature = Signature::from_slice(&rs).context("bad r||s")?;
    if signature.normalize_s().is_some() {
        bail!("s is not low");
    }
    let y = sig["y_parity"].as_u64().context("no y_parity")? as u8;
    let recid = RecoveryId::from_byte(y).context("bad y_parity")?;
    let vk = VerifyingKey::recover_from_prehash(&digest, &signature, recid)
        .context("cannot recover key")?;
    let recovered = eth_address(&vk);
    if !recovered.eq_ignore_ascii_case(address) {
        bail!("signature recovers to {recovered}, expected {address}");
    }
    let pk = VerifyingKey::from_sec1_bytes(&hex::decode(field("public_key")?)?)?;
    let der = Signature::from_der(&hex::decode(field("der")?)?).context("bad DER")?;
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    pk.verify_prehash(&digest, &der)
        .context("DER signature does not verify")?;
    if eth_address(&pk) != recovered.to_ascii_lowercase() {
        bail!("public key and recovered key differ");
    }
    Ok(())
}

/// The EIP-191 preimage of a text message.
pub fn eip191(message: &str) -> Vec<u8> {
    let mut v = format!("\x19Ethereum Signed Message:\n{}", message.len()).into_bytes();
    v.extend_from_slice(message.as_bytes());
    v
}

/// Number of lines of a file (0 if missing).
pub fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// The device's (or recovery's) identity key and wallet id, read from its share file,
/// to talk gRPC to the cosigner directly.
pub fn party_identity(
    share_file: &Path,
    passphrase: &str,
) -> Result<(mpc_wire::IdentityKey, String)> {
    let bundle = mpc_core::keystore::KeyShareBundle::load(share_file, passphrase)?;
    let key = mpc_wire::IdentityKey::from_seed_hex(
        bundle.identity_secret.as_deref().context("no identity")?,
    )?;
    let meta = mpc_client::WalletMeta::load(share_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((key, meta.wallet_id))
}

/// Percentile (0..=100) of a sample, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Latency figures of a sample in milliseconds, as the benches write them: `n`,
/// `p50_ms`, `p95_ms` (nearest rank), `min_ms`, `max_ms`, `mean_ms`.
pub fn latency_stats(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    serde_json::json!({
        "n": v.len(),
        "p50_ms": percentile(&v, 50.0),
        "p95_ms": percentile(&v, 95.0),
        "min_ms": v.first().copied().unwrap_or(0.0),
        "max_ms": v.last().copied().unwrap_or(0.0),
        "mean_ms": mean,
    })
}

/// Bitcoin Core's script interpreter (libbitcoinconsensus) on every input of a raw
/// transaction, against the script and amount of the output it spends (`spent`, in input
/// order).
pub fn bitcoin_core_verifies(raw_tx: &[u8], spent: &[wallet_btc::bitcoin::TxOut]) -> Result<()> {
    for (i, out) in spent.iter().enumerate() {
        bitcoinconsensus::verify(
            out.script_pubkey.as_bytes(),
            out.value.to_sat(),
            raw_tx,
            None,
            i,
        )
        .map_err(|e| anyhow::anyhow!("input {i} fails Bitcoin Core's interpreter: {e:?}"))?;
    }
    Ok(())
}

/// Whether the cosigner at `url` names its errors with a `google.rpc.ErrorInfo` in
/// `grpc-status-details-bin` (the code, the policy rule...): a request without
/// authentication must fail, and the failure shows whether details come with it.
/// Cosigners older than that contract name no rule, so tests check rules only when this
/// holds.
pub fn cosigner_sends_error_info(url: &str) -> Result<bool> {
    use cosigner_api::pb;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut grpc = pb::cosigner_client::CosignerClient::connect(url.to_string()).await?;
        match grpc.start_sign(pb::StartSignRequest::default()).await {
            Ok(_) => bail!("the cosigner accepted a request without authentication"),
            Err(s) => Ok(!s.details().is_empty()),
        }
    })
}

/// The signing payload of an EIP-1559 transfer of `value` wei to `0x1111…11` on chain
/// 1 (alloy builds it).
pub fn eip1559(value: u128, nonce: u64) -> Vec<u8> {
    use alloy_consensus::{SignableTransaction, TxEip1559};
    use alloy_primitives::{Address, TxKind, U256};
    TxEip1559 {
        chain_id: 1,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 30_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(Address::repeat_byte(0x11)),
        value: U256::from(value),
        access_list: Default::default(),
        input: Default::default(),
    }
    .encoded_for_signing()
}

/// The signing payload of a legacy EIP-155 transaction (chain id `chain_id`).
pub fn legacy_eip155(chain_id: u64, nonce: u64, value: u128) -> Vec<u8> {
    use alloy_consensus::{SignableTransaction, TxLegacy};
    use alloy_primitives::{Address, TxKind, U256};
    TxLegacy {
        chain_id: Some(chain_id),
        nonce,
        gas_price: 20_000_000_000,
        gas_limit: 21_000,
        to: TxKind::Call(Address::repeat_byte(0x22)),
        value: U256::from(value),
        input: Default::default(),
    }
    .encoded_for_signing()
}
