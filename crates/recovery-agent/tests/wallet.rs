//! End to end over real processes on loopback: `sign-gateway`, `sign-service` (GMP, dev
//! primes) and `recovery-agent`. This test plays the browser: it opens the wallet at the
//! cosigner as the device (party 0), hands the rooms to the agent (`POST /v1/wallets`),
//! runs the device's aux info and DKG itself with `mpc-client`'s
//! [`join_wallet_creation`], checks that the agent reports the same public keys,
//! confirms the wallet, and then signs with the AGENT's share file through
//! `MpcClient` in recovery mode (what `client --role recovery` does), which proves the
//! agent writes the `mpc-client` file format.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::*;
use e2e_tests::{start_gateway, start_service, ServiceConfig, TempDir};
use mpc_client::{
    bundle_public_keys, join_wallet_creation, new_mpc_client, save_party_files, AccountKind,
    CosignerClient, JoinRequest, MpcConfig, PartyRole, ProgressEvent, ProgressListener, WalletMeta,
    WALLET_META_FORMAT,
};
use mpc_core::primes::dev_fixture_primes;
use mpc_wire::{IdentityKey, PublicIdentity};

struct Log(Mutex<Vec<ProgressEvent>>);

impl ProgressListener for Log {
    fn on_progress(&self, e: ProgressEvent) {
        if let Ok(mut v) = self.0.lock() {
            v.push(e);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_role_creates_wallet_with_agent_then_recovery_signs() -> Result<()> {
    let dir = TempDir::new("agent-wallet")?;
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
    // The agent reaches the gateway through its override (same address here).
    let agent = start_agent(&dir.0.join("agent"), &["--gateway-url", &gateway_url])?;
    let c = http();
    let started = Instant::now();

    // 1. The "browser": device identity, the agent's identity, CreateWallet.
    let device = IdentityKey::generate()?;
    let v: serde_json::Value = c
        .get(format!("{}/v1/identity", agent.url))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let recovery: PublicIdentity = v["identity"].as_str().context("identity")?.parse()?;
    let cosigner = CosignerClient::connect(&cosigner_url, Duration::from_secs(30)).await?;
    let rooms = cosigner
        .open_wallet(&device, &recovery, 1, AccountKind::Hd, "agent e2e")
        .await?;
    let cosigner_id: PublicIdentity = rooms.cosigner_identity.parse()?;

    // 2. Hand the rooms to the agent.
    let room = |r: &mpc_client::RoomInfo| {
        serde_json::json!({
            "session_id": r.session_id, "room": r.room,
            "room_token": r.room_token, "gateway_url": r.gateway_url,
        })
    };
    let body = serde_json::json!({
        "wallet_id": rooms.wallet_id,
        "cosigner_identity": rooms.cosigner_identity,
        "device_identity": device.public().to_string(),
        "kind": "hd",
        "aux_info": room(&rooms.aux_info),
        "accounts": rooms.accounts.iter().map(|a| serde_json::json!({
            "account_id": a.account_id, "keygen": room(&a.keygen)
        })).collect::<Vec<_>>(),
    });
    let r = c
        .post(format!("{}/v1/wallets", agent.url))
        .bearer_auth(TOKEN)
        .header("origin", ORIGIN)
        .json(&body)
        .send()
        .await?;
    assert_eq!(
        r.status(),
        reqwest::StatusCode::ACCEPTED,
        "{}",
        r.text().await?
    );
    let job: serde_json::Value = r.json().await?;
    let job_id = job["job_id"].as_str().context("job_id")?.to_string();

    // 3. The device's own sessions, concurrently with the agent's job.
    let log = Arc::new(Log(Mutex::new(Vec::new())));
    let join = JoinRequest {
        me: 0,
        identity: device.clone(),
        peers: BTreeMap::from([(1, cosigner_id), (2, recovery)]),
        primes: dev_fixture_primes()[0].clone(),
        kind: AccountKind::Hd,
        aux_info: rooms.aux_info.clone(),
        accounts: rooms.accounts.clone(),
        gateway_url: None,
        session_timeout: Duration::from_secs(900),
    };
    let (bundle, job) = tokio::join!(
        join_wallet_creation(join, log.clone()),
        wait_job(&agent.url, &job_id, Duration::from_secs(1200)),
    );
    let bundle = bundle?;
    let (job, percents) = job?;
    eprintln!(
        "[agent-e2e] wallet created in {:.1}s; agent progress {percents:?}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["progress"]["percent"], 100);
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    let device_keys = bundle_public_keys(&bundle);
    let agent_keys: BTreeMap<String, String> = serde_json::from_value(job["public_keys"].clone())?;
    assert_eq!(device_keys, agent_keys, "device and agent disagree");
    assert!(log
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.stage == "keygen" && e.finished));

    // 4. Confirm with the cosigner, store the device share.
    assert!(
        cosigner
            .confirm_wallet_keys(&device, &rooms.wallet_id, device_keys.clone())
            .await?
    );
    let device_path = dir.0.join("device").join("device_key_shares.json");
    let meta = WalletMeta {
        format: WALLET_META_FORMAT.into(),
        wallet_id: rooms.wallet_id.clone(),
        party_index: 0,
        cosigner_url: cosigner_url.clone(),
        label: String::new(),
        created_at_ms: 0,
    };
    save_party_files(&device_path, e2e_tests::DEVICE_PASS, true, &meta, &bundle)?;

    // 5. The agent's files: where documented, 0600, and the wallet is now held.
    let share = agent
        .data_dir
        .join("wallets")
        .join(&rooms.wallet_id)
        .join("recovery_key_shares.json");
    assert!(share.exists(), "{}", share.display());
    let agent_meta = WalletMeta::load(&share)?;
    assert_eq!(agent_meta.party_index, 2);
    assert_eq!(agent_meta.wallet_id, rooms.wallet_id);
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
    let account = rooms.accounts[0].account_id.clone();
    let path = "m/44/60/0/0/0".to_string();
    let mut cfg = MpcConfig::new(device_path.display().to_string(), e2e_tests::DEVICE_PASS);
    cfg.cosigner_url = cosigner_url.clone();
    cfg.recovery_path = Some(share.display().to_string());
    cfg.recovery_passphrase = Some(PASSPHRASE.into());
    cfg.role = PartyRole::Recovery;
    let client = new_mpc_client(cfg)?;
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
        .offline_sign_message(account, path, b"offline".to_vec())
        .await?;
    e2e_tests::verify_eth_signature(
        &e2e_tests::eip191("offline"),
        &serde_json::to_value(&off)?,
        &pk.ethereum_address,
    )?;
    eprintln!("[agent-e2e] total {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
