//! End to end over real processes on loopback (`sign-gateway`, `sign-service` with
//! dev primes, `recovery-agent`), playing the browser: the device ENROLLS with
//! `mpc-client`'s [`enroll_device`] driver, the agent being the recovery party
//! (`POST /v1/enrollments`); then it creates a wallet FROM the enrollment with
//! [`create_wallet_from_enrollment`] (`POST /v1/wallets` with `enrollment_id`): only
//! the keygens run, the agent deletes its enrollment and writes its share, and the
//! agent's share signs with the cosigner. And the native client (`MpcClient`) enrolls
//! and creates from its stored enrollment against the same cosigner.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::*;
use e2e_tests::{start_gateway, start_service, ServiceConfig, TempDir};
use mpc_client::{
    create_wallet_from_enrollment, enroll_device, new_mpc_client, save_party_files, AccountKind,
    CosignerClient, CreateEffects, CreateParams, EnrollEffects, EnrollParams, EnrollRecoveryJob,
    Enrollment, MpcConfig, MpcError, PartyRole, Persist, ProgressEvent, ProgressListener,
    RecoveryJob, Room, SessionSettings, WalletMeta, WALLET_META_FORMAT,
};
use mpc_core::primes::{dev_fixture_primes, PrimeSet};
use mpc_wire::PublicIdentity;

struct Quiet;

impl ProgressListener for Quiet {
    fn on_progress(&self, _: ProgressEvent) {}
}

fn internal(e: impl std::fmt::Display) -> MpcError {
    MpcError::internal(e.to_string())
}

fn room(r: &Room) -> serde_json::Value {
    serde_json::json!({
        "session_id": r.session_id, "room": r.room,
        "room_token": r.room_token, "gateway_url": r.gateway_url,
    })
}

/// The browser's effects with the agent as party 2 (enrollment and creation).
struct AgentParty {
    agent_url: String,
    device_path: PathBuf,
    job_id: Option<String>,
    /// The device's enrollment, once persisted.
    enrollment: Option<Enrollment>,
    /// The agent's job progress, per job.
    percents: Vec<u64>,
}

impl AgentParty {
    async fn identity(&self) -> Result<PublicIdentity, MpcError> {
        let v: serde_json::Value = http()
            .get(format!("{}/v1/identity", self.agent_url))
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

    async fn post(&mut self, path: &str, body: serde_json::Value) -> Result<(), MpcError> {
        let r = http()
            .post(format!("{}{path}", self.agent_url))
            .bearer_auth(TOKEN)
            .header("origin", ORIGIN)
            .json(&body)
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
        self.job_id = v["job_id"].as_str().map(str::to_string);
        Ok(())
    }

    async fn job(&mut self) -> Result<serde_json::Value, MpcError> {
        let id = self.job_id.take().context("no job").map_err(internal)?;
        let (job, percents) = wait_job(&self.agent_url, &id, Duration::from_secs(1200))
            .await
            .map_err(internal)?;
        if job["state"] != "done" || job["progress"]["percent"] != 100 {
            return Err(internal(format!("agent job: {job}")));
        }
        self.percents = percents;
        Ok(job)
    }
}

impl EnrollEffects for AgentParty {
    async fn recovery_identity(&mut self) -> Result<PublicIdentity, MpcError> {
        self.identity().await
    }

    async fn device_primes(&mut self) -> Result<PrimeSet, MpcError> {
        Ok(dev_fixture_primes()[0].clone())
    }

    async fn start_recovery(&mut self, job: EnrollRecoveryJob) -> Result<(), MpcError> {
        let body = serde_json::json!({
            "enrollment_id": job.enrollment_id,
            "cosigner_identity": job.cosigner_identity.to_string(),
            "device_identity": job.device_identity.to_string(),
            "aux_info": room(&job.aux_info),
        });
        self.post("/v1/enrollments", body).await
    }

    async fn await_recovery(&mut self) -> Result<(), MpcError> {
        let job = self.job().await?;
        if job.get("public_keys").is_some() {
            return Err(internal(format!("an enrollment job with keys: {job}")));
        }
        Ok(())
    }

    async fn persist(&mut self, enrollment: &Enrollment) -> Result<(), MpcError> {
        self.enrollment = Some(enrollment.clone());
        Ok(())
    }
}

impl CreateEffects for AgentParty {
    async fn recovery_identity(&mut self) -> Result<PublicIdentity, MpcError> {
        Err(internal(
            "a wallet from an enrollment asks no recovery identity",
        ))
    }

    async fn device_primes(&mut self) -> Result<PrimeSet, MpcError> {
        Err(internal("a wallet from an enrollment asks no primes"))
    }

    async fn start_recovery(&mut self, job: RecoveryJob) -> Result<(), MpcError> {
        let enrollment_id = job
            .enrollment_id
            .clone()
            .context("no enrollment")
            .map_err(internal)?;
        let body = serde_json::json!({
            "wallet_id": job.wallet_id,
            "cosigner_identity": job.cosigner_identity.to_string(),
            "device_identity": job.device_identity.to_string(),
            "kind": job.kind.as_str(),
            "enrollment_id": enrollment_id,
            "accounts": job.accounts.iter().map(|a| serde_json::json!({
                "account_id": a.account_id, "keygen": room(&a.keygen)
            })).collect::<Vec<_>>(),
        });
        self.post("/v1/wallets", body).await
    }

    async fn await_recovery(&mut self) -> Result<BTreeMap<String, String>, MpcError> {
        let job = self.job().await?;
        serde_json::from_value(job["public_keys"].clone()).map_err(internal)
    }

    async fn persist(&mut self, p: &Persist) -> Result<(), MpcError> {
        let meta = WalletMeta {
            format: WALLET_META_FORMAT.into(),
            wallet_id: p.wallet_id().to_string(),
            party_index: 0,
            cosigner_url: String::new(),
            label: p.label().to_string(),
            created_at_ms: 0,
        };
        save_party_files(
            &self.device_path,
            e2e_tests::DEVICE_PASS,
            true,
            &meta,
            p.bundle(),
        )
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn enroll_with_the_agent_then_create_from_the_enrollment_and_recover() -> Result<()> {
    let dir = TempDir::new("agent-enroll-e2e")?;
    let bins = server_bins()?;
    let (_gw, gateway_url) = start_gateway(&bins, &dir.0)?;
    let mut svc_cfg = ServiceConfig {
        port: 0,
        gateway_url: gateway_url.clone(),
        data_dir: dir.0.join("cosigner"),
        max_value_per_tx_wei: None,
        session_timeout_secs: 300,
        extra_yaml: String::new(),
    };
    let _svc = start_service(&bins, &mut svc_cfg)?;
    let cosigner_url = svc_cfg.url();
    let agent = start_agent(&dir.0.join("agent"), &["--gateway-url", &gateway_url])?;
    let cosigner = CosignerClient::connect(&cosigner_url, Duration::from_secs(30)).await?;
    let settings = SessionSettings {
        gateway_url: None,
        timeout: Duration::from_secs(900),
    };
    let progress: Arc<dyn ProgressListener> = Arc::new(Quiet);
    let device_path = dir.0.join("device").join("device_key_shares.json");
    let mut party = AgentParty {
        agent_url: agent.url.clone(),
        device_path: device_path.clone(),
        job_id: None,
        enrollment: None,
        percents: Vec::new(),
    };

    // 1. Enrollment: the agent stores its enrollment; the device gets its own.
    let t = Instant::now();
    let enrollment = enroll_device(
        &cosigner,
        EnrollParams::default(),
        &mut party,
        &settings,
        &progress,
    )
    .await?;
    eprintln!(
        "[enroll-e2e] enrolled in {:.1}s; agent progress {:?}",
        t.elapsed().as_secs_f64(),
        party.percents
    );
    let percents = party.percents.clone();
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    let agent_file = agent
        .data_dir
        .join("enrollments")
        .join(format!("{}.json", enrollment.enrollment_id));
    assert!(agent_file.exists(), "{}", agent_file.display());
    assert_eq!(
        party.enrollment.as_ref().map(|e| e.enrollment_id.clone()),
        Some(enrollment.enrollment_id.clone())
    );

    // 2. A wallet from it: keygens only.
    let t = Instant::now();
    let created = create_wallet_from_enrollment(
        &cosigner,
        CreateParams {
            accounts: 2,
            kind: AccountKind::Hd,
            label: "from an enrollment".into(),
            registration_credential: None,
        },
        enrollment.clone(),
        &mut party,
        &settings,
        &progress,
    )
    .await?;
    eprintln!(
        "[enroll-e2e] wallet from the enrollment in {:.1}s; agent progress {:?}",
        t.elapsed().as_secs_f64(),
        party.percents
    );
    assert!(created.committed);
    assert_eq!(created.accounts.len(), 2);
    assert!(!agent_file.exists(), "the agent deletes a used enrollment");
    // Used: the cosigner refuses a second wallet from it, by name.
    let e = create_wallet_from_enrollment(
        &cosigner,
        CreateParams {
            accounts: 1,
            kind: AccountKind::Hd,
            label: "again".into(),
            registration_credential: None,
        },
        enrollment,
        &mut party,
        &settings,
        &progress,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, MpcError::EnrollmentUnusable { .. }), "{e:?}");

    // 3. The agent's share signs with the cosigner (client --role recovery).
    let share = agent
        .data_dir
        .join("wallets")
        .join(&created.wallet_id)
        .join("recovery_key_shares.json");
    let mut cfg = MpcConfig::new(device_path.display().to_string(), e2e_tests::DEVICE_PASS);
    cfg.cosigner_url = cosigner_url.clone();
    cfg.recovery_path = Some(share.display().to_string());
    cfg.recovery_passphrase = Some(PASSPHRASE.into());
    cfg.role = PartyRole::Recovery;
    let client = new_mpc_client(cfg)?;
    let account = created.accounts[1].account_id.clone();
    let path = "m/44/60/0/0/0".to_string();
    let pk = client.get_public_key(account.clone(), path.clone()).await?;
    let message = "signed from an enrolled wallet";
    let sig = client
        .sign_message(account, path, message.as_bytes().to_vec())
        .await?;
    assert_eq!(sig.signers, vec![1, 2]);
    e2e_tests::verify_eth_signature(
        &e2e_tests::eip191(message),
        &serde_json::to_value(&sig)?,
        &pk.ethereum_address,
    )?;
    Ok(())
}

/// The native client (`MpcClient`: both user parties in process, files) against the
/// same real cosigner: `enroll_device` stores both enrollments, `create_wallet_with`
/// uses the stored one (keygens only) and removes it, and the wallet signs.
#[tokio::test(flavor = "multi_thread")]
async fn native_client_enrolls_then_creates_from_its_stored_enrollment() -> Result<()> {
    let dir = TempDir::new("client-enroll-e2e")?;
    let bins = server_bins()?;
    let (_gw, gateway_url) = start_gateway(&bins, &dir.0)?;
    let mut svc_cfg = ServiceConfig {
        port: 0,
        gateway_url,
        data_dir: dir.0.join("cosigner"),
        max_value_per_tx_wei: None,
        session_timeout_secs: 300,
        extra_yaml: String::new(),
    };
    let _svc = start_service(&bins, &mut svc_cfg)?;
    let wallet_dir = dir.0.join("wallet");
    let mut cfg = MpcConfig::new(
        wallet_dir.join("device.json").display().to_string(),
        e2e_tests::DEVICE_PASS,
    );
    cfg.cosigner_url = svc_cfg.url();
    cfg.recovery_path = Some(wallet_dir.join("recovery.json").display().to_string());
    cfg.recovery_passphrase = Some("another recovery passphrase".into());
    cfg.insecure_dev_primes = true;
    cfg.insecure_fast_kdf = true;
    let client = new_mpc_client(cfg)?;

    let events = Arc::new(Events(std::sync::Mutex::new(Vec::new())));
    let t = Instant::now();
    let info = client.enroll_device(Some(events.clone())).await?;
    eprintln!("[client-e2e] enrolled in {:.1}s", t.elapsed().as_secs_f64());
    let stages: Vec<(String, bool)> = events
        .0
        .lock()
        .map(|v| v.iter().map(|e| (e.stage.clone(), e.finished)).collect())
        .unwrap_or_default();
    assert_eq!(stages.first(), Some(&("enroll".to_string(), false)));
    assert_eq!(stages.last(), Some(&("enroll".to_string(), true)));
    assert!(stages.iter().any(|(s, f)| s == "aux-info" && *f));
    let listed = client.list_enrollments()?;
    assert_eq!(listed, vec![info.clone()]);
    let enrollments = wallet_dir.join("enrollments");
    let mut files: Vec<String> = std::fs::read_dir(&enrollments)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().to_string()))
        .collect::<std::io::Result<_>>()?;
    files.sort();
    assert_eq!(
        files,
        [
            format!("{}.device.json", info.enrollment_id),
            format!("{}.recovery.json", info.enrollment_id)
        ]
    );
    assert!(!wallet_dir.join("device.json").exists());

    let t = Instant::now();
    let w = client
        .create_wallet_with(
            1,
            AccountKind::Independent,
            "enrolled".into(),
            Some(info.enrollment_id.clone()),
            None,
        )
        .await?;
    eprintln!(
        "[client-e2e] wallet from the enrollment in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    assert!(w.committed);
    assert!(client.list_enrollments()?.is_empty());
    assert_eq!(std::fs::read_dir(&enrollments)?.count(), 0);
    let account = w.accounts[0].account_id.clone();
    let pk = client.get_public_key(account.clone(), "m".into()).await?;
    let sig = client
        .sign_message(account, "m".into(), b"enrolled device".to_vec())
        .await?;
    assert_eq!(sig.signers, vec![0, 1]);
    e2e_tests::verify_eth_signature(
        &e2e_tests::eip191("enrolled device"),
        &serde_json::to_value(&sig)?,
        &pk.ethereum_address,
    )?;
    Ok(())
}

/// Every progress event.
struct Events(std::sync::Mutex<Vec<ProgressEvent>>);

impl ProgressListener for Events {
    fn on_progress(&self, e: ProgressEvent) {
        if let Ok(mut v) = self.0.lock() {
            v.push(e);
        }
    }
}
