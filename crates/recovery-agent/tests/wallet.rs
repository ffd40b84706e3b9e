//! End to end over real processes on loopback: `sign-gateway`, `sign-service` (GMP, dev
//! primes) and `recovery-agent`. This test plays the browser: it drives the core's
//! wallet creation as the device (party 0) with `mpc-client`'s [`create_wallet`], whose
//! recovery party is the AGENT (its identity from `GET /v1/identity`, the rooms handed
//! over with `POST /v1/wallets`, its public keys from the finished job) — the same
//! effects the browser fulfils. The core checks that the agent reports the same public
//! keys and confirms the wallet; then the test signs with the AGENT's share file
//! through `MpcClient` in recovery mode (what `client --role recovery` does), which
//! proves the agent writes the `mpc-client` file format.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::browser::*;
use crate::common::*;
use anyhow::{Context, Result};
use e2e_tests::TempDir;
use mpc_client::{
    create_wallet, AccountKind, CosignerClient, CreateEffects, CreateParams, MpcError, Persist,
    ProgressListener, RecoveryJob, SessionSettings, WalletMeta,
};
use mpc_core::primes::{dev_fixture_primes, PrimeSet};
use mpc_wire::PublicIdentity;

/// The browser's effects: the recovery party is the agent; the device share is saved
/// in the `mpc-client` file format.
struct AgentCreation {
    agent_url: String,
    device_path: PathBuf,
    cosigner_url: String,
    job_id: Option<String>,
    /// The job's body (kept to check that a second POST is refused).
    body: Option<serde_json::Value>,
    percents: Vec<u64>,
}

impl CreateEffects for AgentCreation {
    async fn recovery_identity(&mut self) -> Result<PublicIdentity, MpcError> {
        agent_identity(&self.agent_url).await
    }

    async fn device_primes(&mut self) -> Result<PrimeSet, MpcError> {
        Ok(dev_fixture_primes()[0].clone())
    }

    async fn start_recovery(&mut self, job: RecoveryJob) -> Result<(), MpcError> {
        let body = serde_json::json!({
            "wallet_id": job.wallet_id,
            "cosigner_identity": job.cosigner_identity.to_string(),
            "device_identity": job.device_identity.to_string(),
            "kind": job.kind.as_str(),
            "aux_info": room(&job.aux_info),
            "accounts": job.accounts.iter().map(|a| serde_json::json!({
                "account_id": a.account_id, "keygen": room(&a.keygen)
            })).collect::<Vec<_>>(),
        });
        self.job_id = post_job(&self.agent_url, "/v1/wallets", &body).await?;
        self.body = Some(body);
        Ok(())
    }

    async fn await_recovery(&mut self) -> Result<BTreeMap<String, String>, MpcError> {
        let id = self.job_id.clone().context("no job").map_err(internal)?;
        let (job, percents) = finished_job(&self.agent_url, &id).await?;
        self.percents = percents;
        serde_json::from_value(job["public_keys"].clone()).map_err(internal)
    }

    async fn persist(&mut self, p: &Persist) -> Result<(), MpcError> {
        save_device_files(&self.device_path, self.cosigner_url.clone(), p)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_role_creates_wallet_with_agent_then_recovery_signs() -> Result<()> {
    let dir = TempDir::new("agent-wallet")?;
    let svc = start_cosigner(&dir.0)?;
    let cosigner_url = svc.url.clone();
    // The agent reaches the gateway through its override (same address here).
    let agent = start_agent(&dir.0.join("agent"), &["--gateway-url", &svc.gateway_url])?;
    let c = http();
    let started = Instant::now();

    // The core's creation as the device, with the agent as the recovery party.
    let device_path = dir.0.join("device").join("device_key_shares.json");
    let mut effects = AgentCreation {
        agent_url: agent.url.clone(),
        device_path: device_path.clone(),
        cosigner_url: cosigner_url.clone(),
        job_id: None,
        body: None,
        percents: Vec::new(),
    };
    let log = Arc::new(Events(Mutex::new(Vec::new())));
    let cosigner = CosignerClient::connect(&cosigner_url, Duration::from_secs(30)).await?;
    let created = create_wallet(
        &cosigner,
        CreateParams {
            accounts: 1,
            kind: AccountKind::Hd,
            label: "agent e2e".into(),
            registration_credential: None,
        },
        &mut effects,
        &SessionSettings {
            gateway_url: None,
            ca_file: None,
            timeout: Duration::from_secs(900),
        },
        &(log.clone() as Arc<dyn ProgressListener>),
    )
    .await?;
    let percents = effects.percents.clone();
    eprintln!(
        "[agent-e2e] wallet created in {:.1}s; agent progress {percents:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(created.committed);
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    let events = log.0.lock().unwrap().clone();
    assert!(events.iter().any(|e| e.stage == "keygen" && e.finished));
    assert!(events.iter().any(|e| e.stage == "confirm" && e.finished));
    let body = effects.body.clone().context("job body")?;
    let rooms_wallet_id = created.wallet_id.clone();
    let rooms_account = created.accounts[0].account_id.clone();

    // 5. The agent's files: where documented, 0600, and the wallet is now held.
    let share = agent_share(&agent, &rooms_wallet_id);
    assert!(share.exists(), "{}", share.display());
    let agent_meta = WalletMeta::load(&share)?;
    assert_eq!(agent_meta.party_index, 2);
    assert_eq!(agent_meta.wallet_id, rooms_wallet_id);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&share)?.permissions().mode() & 0o777,
            0o600
        );
    }
    let r = c
        .post(format!("{}/v1/wallets", agent.url))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await?;
    assert_eq!(r.status(), reqwest::StatusCode::CONFLICT);

    // 6. Recovery signing with the cosigner, from the agent's file (client --role
    //    recovery), and offline signing with device + agent shares.
    let account = rooms_account;
    let path = "m/44/60/0/0/0".to_string();
    let client = recovery_client(&device_path, &cosigner_url, &share)?;
    let pk = client.get_public_key(account.clone(), path.clone()).await?;
    let message = "recovered by the agent's share";
    let t = Instant::now();
    let sig = client
        .sign_message(account.clone(), path.clone(), message.as_bytes().to_vec())
        .await?;
    eprintln!(
        "[agent-e2e] recovery + cosigner signing {:.1}s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(sig.signers, vec![1, 2]);
    e2e_tests::verify_eth_signature(
        &e2e_tests::eip191(message),
        &serde_json::to_value(&sig)?,
        &pk.ethereum_address,
    )?;
    let off = client
        .offline_sign_message(account.clone(), path, b"offline".to_vec())
        .await?;
    e2e_tests::verify_eth_signature(
        &e2e_tests::eip191("offline"),
        &serde_json::to_value(&off)?,
        &pk.ethereum_address,
    )?;

    // 6b. A refresh and a device replacement through the agent: from now on the device
    //     is the new browser profile's file.
    let device_path = crate::agent_lifecycle::refresh_and_replace_through_the_agent(
        &agent,
        &device_path,
        &cosigner_url,
        &rooms_wallet_id,
        &account,
    )
    .await?;

    // 7. Wallet controls through the agent, each only after the user confirms it on
    //    the agent's machine (the CLI with the admin token).
    agent_controls_need_the_users_confirmation(
        &agent,
        &device_path,
        &cosigner_url,
        &rooms_wallet_id,
    )
    .await?;

    // 8. The operator is gone (cosigner AND gateway stopped): the device signs with the
    //    agent's share, over the agent's own relay, after the user confirms.
    let mut svc = svc;
    svc.service.kill();
    svc.gateway.kill();
    let t = Instant::now();
    let sig = device_and_agent_sign_without_the_operator(
        &agent,
        &device_path,
        &rooms_wallet_id,
        &account,
    )
    .await?;
    eprintln!(
        "[agent-e2e] device + agent signing (relay on the agent, confirmation included) {:.1}s",
        t.elapsed().as_secs_f64()
    );
    e2e_tests::verify_eth_signature(
        &e2e_tests::eip191("no operator needed"),
        &serde_json::to_value(&sig)?,
        &pk.ethereum_address,
    )?;
    eprintln!("[agent-e2e] total {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

async fn device_and_agent_sign_without_the_operator(
    agent: &AgentProc,
    device_path: &std::path::Path,
    wallet_id: &str,
    account: &str,
) -> Result<mpc_client::SignedResult> {
    let c = http();
    let url = format!("{}/v1/wallets/{wallet_id}/sign-requests", agent.url);
    let preimage = e2e_tests::eip191("no operator needed");
    let body = |path: &str, hex_preimage: &str| {
        serde_json::json!({
            "account_id": account, "path": path, "preimage_hex": hex_preimage,
            "digest": "keccak256", "chain": "legacy",
        })
    };
    // Malformed requests are refused before anything is recorded.
    for bad in [
        body("m/44'/60", &hex::encode(&preimage)),
        body("m/44/60/0/0/0", "zz"),
        body("m/44/60/0/0/0", ""),
    ] {
        let r = c.post(&url).bearer_auth(TOKEN).json(&bad).send().await?;
        assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = c
        .post(&url)
        .bearer_auth(TOKEN)
        .header("origin", ORIGIN)
        .json(&body("m/44/60/0/0/0", &hex::encode(&preimage)))
        .send()
        .await?;
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
    let req: serde_json::Value = r.json().await?;
    assert_eq!(req["state"], "awaiting_confirmation", "{req}");
    assert_eq!(req["sign"]["message"], "no operator needed", "{req}");
    assert!(
        req.get("session").is_none(),
        "no room before the confirmation: {req}"
    );
    let id = req["request_id"].as_str().context("id")?.to_string();
    // The relay refuses a room without the agent's token.
    let r = c
        .post(format!(
            "{}/v1/relay/rooms/recovery-sign-{id}/broadcast",
            agent.url
        ))
        .body("x")
        .send()
        .await?;
    assert!(r.status().is_client_error(), "{}", r.status());

    let (ok, listed) = agent_cli(agent, &["requests"])?;
    assert!(
        ok && listed.contains(&id) && listed.contains("sign"),
        "{listed}"
    );
    let (ok, out) = agent_cli(agent, &["confirm", &id])?;
    assert!(ok, "{out}");
    let v: serde_json::Value = c
        .get(format!("{}/v1/requests/{id}", agent.url))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let s = &v["session"];
    let room = mpc_client::Room {
        session_id: s["session_id"].as_str().context("session id")?.into(),
        room: s["room"].as_str().context("room")?.into(),
        room_token: s["room_token"].as_str().context("token")?.into(),
        gateway_url: s["gateway_url"].as_str().context("relay")?.into(),
    };
    assert!(room.gateway_url.ends_with("/v1/relay"), "{v}");
    // The page's half, as the device.
    let mut cfg =
        mpc_client::MpcConfig::new(device_path.display().to_string(), e2e_tests::DEVICE_PASS);
    cfg.cosigner_url = "http://127.0.0.1:9".into();
    let device = mpc_client::new_mpc_client(cfg)?;
    let signed = device
        .pair_sign(mpc_client::PairSignParams {
            account_id: account.into(),
            path: "m/44/60/0/0/0".into(),
            preimage,
            digest: mpc_client::DigestKind::Keccak256,
            chain: mpc_client::ChainStyle::Legacy,
            room,
        })
        .await?;
    assert_eq!(signed.signers, vec![0, 2]);
    let done = finished_request(agent, &id).await?;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        done["signature"]["r"],
        serde_json::to_value(&signed)?["r"],
        "{done}"
    );
    Ok(signed)
}

/// Runs `recovery-agent <args>` against the running agent (the user at its machine).
pub(crate) fn agent_cli(agent: &AgentProc, args: &[&str]) -> Result<(bool, String)> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_recovery-agent"))
        .arg("--data-dir")
        .arg(&agent.data_dir)
        .args(["--agent-url", &agent.url])
        .args(args)
        .env_remove("RECOVERY_AGENT_URL")
        .env_remove("RECOVERY_AGENT_DATA_DIR")
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

/// Polls a request until it leaves `running`.
async fn finished_request(agent: &AgentProc, id: &str) -> Result<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: serde_json::Value = http()
            .get(format!("{}/v1/requests/{id}", agent.url))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .json()
            .await?;
        if v["state"] != "running" || Instant::now() > deadline {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn agent_controls_need_the_users_confirmation(
    agent: &AgentProc,
    device_path: &std::path::Path,
    cosigner_url: &str,
    wallet_id: &str,
) -> Result<()> {
    use mpc_client::ControlAction;
    let c = http();
    let device = {
        let mut cfg =
            mpc_client::MpcConfig::new(device_path.display().to_string(), e2e_tests::DEVICE_PASS);
        cfg.cosigner_url = cosigner_url.to_string();
        mpc_client::new_mpc_client(cfg)?
    };
    // The device (say, just before it was lost) freezes the wallet.
    let frozen = device
        .wallet_control(ControlAction::Freeze {
            reason: "laptop lost".into(),
        })
        .await?;
    assert!(frozen.frozen && frozen.unfreeze_at_ms.is_none());

    let ask = |action: &str, reason: &str| {
        c.post(format!("{}/v1/wallets/{wallet_id}/controls", agent.url))
            .bearer_auth(TOKEN)
            .header("origin", ORIGIN)
            .json(&serde_json::json!({
                "action": action, "reason": reason, "cosigner_url": cosigner_url,
            }))
            .send()
    };
    // Bad requests are refused before anything is recorded.
    for (action, reason, code) in [
        ("burn", "", "invalid_request"),
        ("unfreeze", "a\u{7}bell", "invalid_request"),
    ] {
        let r = ask(action, reason).await?;
        assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST);
        let b: serde_json::Value = r.json().await?;
        assert_eq!(b["error"]["code"], code, "{b}");
    }
    let r = c
        .post(format!("{}/v1/wallets/w-not-here/controls", agent.url))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"action": "unfreeze", "cosigner_url": cosigner_url}))
        .send()
        .await?;
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);
    assert_eq!(
        r.json::<serde_json::Value>().await?["error"]["code"],
        "unknown_wallet"
    );

    // The page (or whoever holds the browser profile) asks to unfreeze: recorded, not run.
    let r = ask("unfreeze", "found it").await?;
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
    let req: serde_json::Value = r.json().await?;
    assert_eq!(req["state"], "awaiting_confirmation", "{req}");
    assert_eq!(req["origin"], ORIGIN);
    let id = req["request_id"]
        .as_str()
        .context("request id")?
        .to_string();

    // The page cannot confirm its own request: not with the pairing token, not with the
    // admin token from a browser (Origin), not with a guessed token.
    let admin_token =
        std::fs::read_to_string(agent.data_dir.join(recovery_agent::ADMIN_TOKEN_FILE))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(agent.data_dir.join(recovery_agent::ADMIN_TOKEN_FILE))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let confirm_url = format!("{}/v1/admin/requests/{id}/confirm", agent.url);
    for (token, origin) in [
        (TOKEN, None),
        (admin_token.trim(), Some(ORIGIN)),
        ("0000000000000000000000000000000000000000", None),
    ] {
        let mut rq = c.post(&confirm_url).bearer_auth(token);
        if let Some(o) = origin {
            rq = rq.header("origin", o);
        }
        let r = rq.send().await?;
        assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.json::<serde_json::Value>().await?["error"]["code"],
            "admin_unauthorized"
        );
    }
    let r = c
        .get(format!("{}/v1/admin/requests", agent.url))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    // Nothing reached the cosigner.
    let now = device.wallet_control(ControlAction::Status).await?;
    assert!(now.frozen && now.unfreeze_at_ms.is_none(), "{now:?}");

    // The user at the agent's machine sees both requests, rejects one, confirms the other.
    let second = ask("revoke_device", "stolen")
        .await?
        .json::<serde_json::Value>()
        .await?;
    let second_id = second["request_id"].as_str().context("id")?.to_string();
    let (ok, listed) = agent_cli(agent, &["requests"])?;
    assert!(ok, "{listed}");
    assert!(
        listed.contains(&id) && listed.contains(&second_id),
        "{listed}"
    );
    assert!(listed.contains("awaiting_confirmation"), "{listed}");
    let (ok, out) = agent_cli(agent, &["reject", &second_id])?;
    assert!(ok, "{out}");
    let (ok, out) = agent_cli(agent, &["confirm", &second_id])?;
    assert!(!ok && out.contains("request_not_awaiting"), "{out}");
    assert_eq!(
        finished_request(agent, &second_id).await?["state"],
        "rejected"
    );

    let (ok, out) = agent_cli(agent, &["confirm", &id])?;
    assert!(ok, "{out}");
    let done = finished_request(agent, &id).await?;
    assert_eq!(done["state"], "done", "{done}");
    assert!(
        done["controls"]["frozen"] == true && done["controls"]["unfreeze_at_ms"].is_u64(),
        "{done}"
    );
    // A request runs once.
    let (ok, out) = agent_cli(agent, &["confirm", &id])?;
    assert!(!ok && out.contains("request_not_awaiting"), "{out}");
    let now = device.wallet_control(ControlAction::Status).await?;
    assert!(now.unfreeze_at_ms.is_some(), "{now:?}");

    // Revoking the device through the agent, confirmed: the device is refused by code.
    let rv = ask("revoke_device", "stolen")
        .await?
        .json::<serde_json::Value>()
        .await?;
    let rv_id = rv["request_id"].as_str().context("id")?.to_string();
    let (ok, out) = agent_cli(agent, &["confirm", &rv_id])?;
    assert!(ok, "{out}");
    let done = finished_request(agent, &rv_id).await?;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        done["controls"]["revoked_parties"],
        serde_json::json!([0]),
        "{done}"
    );
    let e = device
        .wallet_control(ControlAction::Status)
        .await
        .expect_err("a revoked device is refused");
    assert!(matches!(e, MpcError::IdentityRevoked { .. }), "{e:?}");
    Ok(())
}
