//! Shared helpers of the agent's tests: start the real `recovery-agent` binary on
//! loopback port 0 (it reports the port it got through `--port-file`).

#![allow(dead_code)]

pub mod browser;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use e2e_tests::{Bins, Proc};

/// Pairing token used by the tests.
pub const TOKEN: &str = "test-pairing-token-0123456789";
/// Recovery passphrase used by the tests.
pub const PASSPHRASE: &str = "agent test passphrase";
/// Origin allowed by the tests.
pub const ORIGIN: &str = "http://allowed.example:5173";

/// A running agent.
pub struct AgentProc {
    /// The process (killed on drop).
    pub proc: Proc,
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
}

/// Starts the agent with dev primes, fast KDF, [`TOKEN`], [`ORIGIN`], plus `extra` args.
pub fn start_agent(dir: &Path, extra: &[&str]) -> Result<AgentProc> {
    let data_dir = dir.join("agent-data");
    let port_file = dir.join("recovery-agent.port");
    let _ = std::fs::remove_file(&port_file);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_recovery-agent"));
    cmd.args(["--listen", "127.0.0.1:0", "--port-file"])
        .arg(&port_file)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--token", TOKEN, "--allow-origin", ORIGIN])
        .args([
            "--insecure-dev-primes",
            "--insecure-fast-kdf",
            "--log",
            "info",
        ])
        .args(extra)
        .env("RECOVERY_AGENT_PASSPHRASE", PASSPHRASE);
    for v in [
        "RECOVERY_AGENT_LISTEN",
        "RECOVERY_AGENT_PORT_FILE",
        "RECOVERY_AGENT_DATA_DIR",
        "RECOVERY_AGENT_TOKEN",
        "RECOVERY_AGENT_TOKEN_FILE",
        "RECOVERY_AGENT_ALLOW_ORIGINS",
        "RECOVERY_AGENT_PASSPHRASE_FILE",
        "RECOVERY_AGENT_GATEWAY_URL",
    ] {
        cmd.env_remove(v);
    }
    std::fs::create_dir_all(dir)?;
    let mut proc = Proc::spawn("recovery-agent", cmd, &dir.join("recovery-agent.log"))?;
    let addr = proc.wait_port_file(&port_file, Duration::from_secs(30))?;
    Ok(AgentProc {
        proc,
        url: format!("http://{addr}"),
        data_dir,
    })
}

/// An HTTP client.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

/// `GET /v1/requests/{id}` of `agent`: the request's view.
pub async fn request_view(agent: &AgentProc, id: &str) -> Result<serde_json::Value> {
    Ok(http()
        .get(format!("{}/v1/requests/{id}", agent.url))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?)
}

/// Polls the agent's request `id` until `done(view)` or `timeout`; returns the last view
/// (the caller checks which).
pub async fn poll_request(
    agent: &AgentProc,
    id: &str,
    timeout: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Result<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let v = request_view(agent, id).await?;
        if done(&v) || Instant::now() > deadline {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET {url}/v1/jobs/{id}` until the state is not `running`; returns the job and every
/// percent seen.
pub async fn wait_job(
    url: &str,
    job_id: &str,
    timeout: Duration,
) -> Result<(serde_json::Value, Vec<u64>)> {
    let c = http();
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        let r = c
            .get(format!("{url}/v1/jobs/{job_id}"))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("job {job_id}: {} {}", r.status(), r.text().await?);
        }
        let v: serde_json::Value = r.json().await?;
        if let Some(p) = v["progress"]["percent"].as_u64() {
            if seen.last() != Some(&p) {
                seen.push(p);
            }
        }
        if v["state"] != "running" {
            return Ok((v, seen));
        }
        if started.elapsed() > timeout {
            bail!("job {job_id} still running after {timeout:?}: {v}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// All files under `dir`, recursively (relative paths).
pub fn files_under(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let e = e?;
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            } else {
                out.push(
                    e.path()
                        .strip_prefix(dir)
                        .unwrap_or(&e.path())
                        .display()
                        .to_string(),
                );
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A wallet-creation body with the given identities and gateway URL.
pub fn wallet_body(
    wallet_id: &str,
    device: &str,
    cosigner: &str,
    gateway_url: &str,
) -> serde_json::Value {
    let room = |s: &str| {
        serde_json::json!({
            "session_id": format!("{wallet_id}-{s}-session"),
            "room": format!("{wallet_id}-{s}"),
            "room_token": "",
            "gateway_url": gateway_url,
        })
    };
    serde_json::json!({
        "wallet_id": wallet_id,
        "cosigner_identity": cosigner,
        "device_identity": device,
        "kind": "hd",
        "aux_info": room("aux"),
        "accounts": [{"account_id": "acct-0", "keygen": room("kg0")}],
    })
}

/// Builds (unless `E2E_NO_BUILD=1`) and locates `pkg`'s binary of the same name in this
/// test's target directory, each package in its own cargo invocation (so the cosigner
/// gets GMP), once per test process.
pub fn server_bin(pkg: &'static str) -> Result<PathBuf> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static BUILT: Mutex<Option<HashMap<&'static str, std::result::Result<PathBuf, String>>>> =
        Mutex::new(None);
    let mut guard = BUILT
        .lock()
        .map_err(|_| anyhow::anyhow!("build lock poisoned"))?;
    let map = guard.get_or_insert_with(HashMap::new);
    map.entry(pkg)
        .or_insert_with(|| e2e_tests::build_bin(pkg, pkg).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

/// `sign-gateway` and `sign-service`.
pub fn server_bins() -> Result<Bins> {
    Ok(Bins {
        client: PathBuf::new(),
        gateway: server_bin("sign-gateway")?,
        service: server_bin("sign-service")?,
    })
}

/// Only `sign-gateway` (the other paths are empty).
pub fn gateway_bins() -> Result<Bins> {
    Ok(Bins {
        client: PathBuf::new(),
        gateway: server_bin("sign-gateway")?,
        service: PathBuf::new(),
    })
}
