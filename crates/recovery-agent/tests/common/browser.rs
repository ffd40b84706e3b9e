//! The browser's side of the end-to-end tests with the agent as the recovery party: a
//! cosigner on loopback, the agent's HTTP calls as `mpc-client` effects, the device's
//! share files and a recovery-mode client on the agent's share.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use e2e_tests::{start_gateway, start_service, Proc, ServiceConfig};
use mpc_client::{
    new_mpc_client, save_party_files, MpcClient, MpcConfig, MpcError, PartyRole, Persist,
    ProgressEvent, ProgressListener, Room, WalletMeta, WALLET_META_FORMAT,
};
use mpc_wire::PublicIdentity;

use super::{http, server_bins, wait_job, AgentProc, ORIGIN, PASSPHRASE, TOKEN};

/// Every progress event.
pub struct Events(pub Mutex<Vec<ProgressEvent>>);

impl ProgressListener for Events {
    fn on_progress(&self, e: ProgressEvent) {
        if let Ok(mut v) = self.0.lock() {
            v.push(e);
        }
    }
}

/// An `MpcError::internal` of `e`.
pub fn internal(e: impl std::fmt::Display) -> MpcError {
    MpcError::internal(e.to_string())
}

/// A room as the agent's job bodies spell it.
pub fn room(r: &Room) -> serde_json::Value {
    serde_json::json!({
        "session_id": r.session_id, "room": r.room,
        "room_token": r.room_token, "gateway_url": r.gateway_url,
    })
}

/// A `sign-gateway` and a `sign-service` (dev primes) on loopback (killed on drop).
pub struct Cosigner {
    pub gateway: Proc,
    pub service: Proc,
    pub gateway_url: String,
    /// The cosigner's URL.
    pub url: String,
}

/// Starts a [`Cosigner`] with its files under `dir`.
pub fn start_cosigner(dir: &Path) -> Result<Cosigner> {
    let bins = server_bins()?;
    let (gateway, gateway_url) = start_gateway(&bins, dir)?;
    let mut svc_cfg = ServiceConfig {
        port: 0,
        gateway_url: gateway_url.clone(),
        data_dir: dir.join("cosigner"),
        max_value_per_tx_wei: None,
        session_timeout_secs: 300,
        extra_yaml: String::new(),
    };
    let service = start_service(&bins, &mut svc_cfg)?;
    Ok(Cosigner {
        gateway,
        service,
        gateway_url,
        url: svc_cfg.url(),
    })
}

/// `GET {agent_url}/v1/identity`: the agent's public identity.
pub async fn agent_identity(agent_url: &str) -> Result<PublicIdentity, MpcError> {
    let v: serde_json::Value = http()
        .get(format!("{agent_url}/v1/identity"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .map_err(internal)?
        .json()
        .await
        .map_err(internal)?;
    v["identity"]
        .as_str()
        .context("identity")
        .map_err(internal)?
        .parse()
        .map_err(internal)
}

/// `POST {agent_url}{path}` with `body`, which must be accepted; returns the job id.
pub async fn post_job(
    agent_url: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<Option<String>, MpcError> {
    let r = http()
        .post(format!("{agent_url}{path}"))
        .bearer_auth(TOKEN)
        .header("origin", ORIGIN)
        .json(body)
        .send()
        .await
        .map_err(internal)?;
    if r.status() != reqwest::StatusCode::ACCEPTED {
        return Err(internal(format!(
            "agent: {}",
            r.text().await.unwrap_or_default()
        )));
    }
    let v: serde_json::Value = r.json().await.map_err(internal)?;
    Ok(v["job_id"].as_str().map(str::to_string))
}

/// Waits for the agent's job `id`, which must finish `done` at 100%; returns the job
/// and every percent seen.
pub async fn finished_job(
    agent_url: &str,
    id: &str,
) -> Result<(serde_json::Value, Vec<u64>), MpcError> {
    let (job, percents) = wait_job(agent_url, id, Duration::from_secs(1200))
        .await
        .map_err(internal)?;
    if job["state"] != "done" || job["progress"]["percent"] != 100 {
        return Err(internal(format!("agent job: {job}")));
    }
    Ok((job, percents))
}

/// Saves the device's share of `p` (party 0) at `device_path` in the `mpc-client`
/// file format.
pub fn save_device_files(
    device_path: &Path,
    cosigner_url: String,
    p: &Persist,
) -> Result<(), MpcError> {
    let meta = WalletMeta {
        format: WALLET_META_FORMAT.into(),
        wallet_id: p.wallet_id().to_string(),
        party_index: 0,
        cosigner_url,
        label: p.label().to_string(),
        created_at_ms: 0,
    };
    save_party_files(device_path, e2e_tests::DEVICE_PASS, true, &meta, p.bundle())
}

/// The agent's share file of `wallet_id`.
pub fn agent_share(agent: &AgentProc, wallet_id: &str) -> PathBuf {
    agent
        .data_dir
        .join("wallets")
        .join(wallet_id)
        .join("recovery_key_shares.json")
}

/// A client of the device's files at `device_path` (the page's half, played natively),
/// reaching the cosigner at `cosigner_url`.
pub fn device_client(device_path: &Path, cosigner_url: &str) -> Result<MpcClient> {
    let mut cfg = MpcConfig::new(device_path.display().to_string(), e2e_tests::DEVICE_PASS);
    cfg.cosigner_url = cosigner_url.to_string();
    cfg.insecure_fast_kdf = true;
    Ok(new_mpc_client(cfg)?)
}

/// A client in recovery mode on the agent's `share` (what `client --role recovery`
/// does), with the device's files at `device_path`.
pub fn recovery_client(device_path: &Path, cosigner_url: &str, share: &Path) -> Result<MpcClient> {
    let mut cfg = MpcConfig::new(device_path.display().to_string(), e2e_tests::DEVICE_PASS);
    cfg.cosigner_url = cosigner_url.to_string();
    cfg.recovery_path = Some(share.display().to_string());
    cfg.recovery_passphrase = Some(PASSPHRASE.into());
    cfg.role = PartyRole::Recovery;
    Ok(new_mpc_client(cfg)?)
}
