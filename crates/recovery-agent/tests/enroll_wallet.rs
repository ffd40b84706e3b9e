//! End to end over real processes on loopback (`sign-gateway`, `sign-service` with
//! dev primes, `recovery-agent`), playing the browser: the device ENROLLS with
//! `mpc-client`'s [`enroll_device`] driver, the agent being the recovery party
//! (`POST /v1/enrollments`); then it creates a wallet FROM the enrollment with
//! [`create_wallet_from_enrollment`] (`POST /v1/wallets` with `enrollment_id`): only
//! the keygens run, the agent deletes its enrollment and writes its share, and the
//! agent's share signs with the cosigner. (The native client's enrollment from its
//! stored files is in the end-to-end lifecycle, `testing/e2e-tests/tests/e2e.rs`,
//! through the CLI.)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::browser::*;
use crate::common::*;
use anyhow::{Context, Result};
use e2e_tests::TempDir;
use mpc_client::{
    create_wallet_from_enrollment, enroll_device, AccountKind, CosignerClient, CreateEffects,
    CreateParams, EnrollEffects, EnrollParams, EnrollRecoveryJob, Enrollment, MpcError, Persist,
    ProgressEvent, ProgressListener, RecoveryJob, SessionSettings,
};
use mpc_core::primes::{dev_fixture_primes, PrimeSet};
use mpc_wire::PublicIdentity;

struct Quiet;

impl ProgressListener for Quiet {
    fn on_progress(&self, _: ProgressEvent) {}
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
    async fn post(&mut self, path: &str, body: serde_json::Value) -> Result<(), MpcError> {
        self.job_id = post_job(&self.agent_url, path, &body).await?;
        Ok(())
    }

    async fn job(&mut self) -> Result<serde_json::Value, MpcError> {
        let id = self.job_id.take().context("no job").map_err(internal)?;
        let (job, percents) = finished_job(&self.agent_url, &id).await?;
        self.percents = percents;
        Ok(job)
    }
}

impl EnrollEffects for AgentParty {
    async fn recovery_identity(&mut self) -> Result<PublicIdentity, MpcError> {
        agent_identity(&self.agent_url).await
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
        save_device_files(&self.device_path, String::new(), p)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn enroll_with_the_agent_then_create_from_the_enrollment_and_recover() -> Result<()> {
    let dir = TempDir::new("agent-enroll-e2e")?;
    let svc = start_cosigner(&dir.0)?;
    let cosigner_url = svc.url.clone();
    let agent = start_agent(&dir.0.join("agent"), &["--gateway-url", &svc.gateway_url])?;
    let cosigner = CosignerClient::connect(&cosigner_url, Duration::from_secs(30)).await?;
    let settings = SessionSettings {
        gateway_url: None,
        ca_file: None,
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
    let share = agent_share(&agent, &created.wallet_id);
    let client = recovery_client(&device_path, &cosigner_url, &share)?;
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
