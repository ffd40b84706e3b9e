//! Refresh and device replacement through the agent, with the page played natively
//! (mpc-client with the device's share, or a fresh identity for the new device): the
//! agent starts each lifecycle session after the user confirms it, the page joins with
//! the plan (and, for a replacement, the template, after proving possession of its new
//! identity). Called by `wallet.rs` on its wallet (cosigner and gateway running).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use anyhow::{bail, Context, Result};
use base64::Engine;
use client_core::lifecycle::NewDeviceTemplate;
use mpc_client::MpcError;
use mpc_wire::IdentityKey;

/// Polls request `id` until `done(view)`.
async fn wait_for(
    agent: &AgentProc,
    id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Result<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let v: serde_json::Value = http()
            .get(format!("{}/v1/requests/{id}", agent.url))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .json()
            .await?;
        if done(&v) {
            return Ok(v);
        }
        if v["state"] == "failed" || Instant::now() > deadline {
            bail!("request {id}: {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ask(
    agent: &AgentProc,
    wallet_id: &str,
    body: serde_json::Value,
) -> Result<reqwest::Response> {
    Ok(http()
        .post(format!("{}/v1/wallets/{wallet_id}/lifecycle", agent.url))
        .bearer_auth(TOKEN)
        .header("origin", ORIGIN)
        .json(&body)
        .send()
        .await?)
}

fn plan_of(v: &serde_json::Value) -> Result<Vec<u8>> {
    let b64 = v["lifecycle"]["plan_b64"].as_str().context("plan_b64")?;
    Ok(base64::engine::general_purpose::STANDARD.decode(b64)?)
}

fn client(path: &Path, cosigner_url: &str) -> Result<mpc_client::MpcClient> {
    let mut cfg = mpc_client::MpcConfig::new(path.display().to_string(), e2e_tests::DEVICE_PASS);
    cfg.cosigner_url = cosigner_url.to_string();
    cfg.insecure_fast_kdf = true;
    Ok(mpc_client::new_mpc_client(cfg)?)
}

async fn post_possession(agent: &AgentProc, id: &str, sig: &str) -> Result<reqwest::Response> {
    Ok(http()
        .post(format!("{}/v1/requests/{id}/possession", agent.url))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "signature_hex": sig }))
        .send()
        .await?)
}

async fn code(r: reqwest::Response) -> Result<(u16, String)> {
    let status = r.status().as_u16();
    let b: serde_json::Value = r.json().await?;
    Ok((
        status,
        b["error"]["code"].as_str().unwrap_or("").to_string(),
    ))
}

/// A refresh, then a replacement, through the agent; returns the new device's file.
pub async fn refresh_and_replace_through_the_agent(
    agent: &AgentProc,
    device_path: &Path,
    cosigner_url: &str,
    wallet_id: &str,
    account: &str,
) -> Result<PathBuf> {
    let t = Instant::now();
    let path = "m/44/60/0/0/0".to_string();
    let device = client(device_path, cosigner_url)?;
    let address = device
        .get_public_key(account.into(), path.clone())
        .await?
        .ethereum_address;

    // 1. A refresh: the user confirms, the agent opens it, the page joins with the plan.
    let r = ask(
        agent,
        wallet_id,
        serde_json::json!({"kind": "refresh", "cosigner_url": cosigner_url}),
    )
    .await?;
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
    let req: serde_json::Value = r.json().await?;
    assert_eq!(
        (&req["state"], &req["action"]),
        (&"awaiting_confirmation".into(), &"refresh".into()),
        "{req}"
    );
    let id = req["request_id"].as_str().context("id")?.to_string();
    // No proof of possession for a refresh, nor before the user confirmed.
    let (status, c) = code(post_possession(agent, &id, &"00".repeat(64)).await?).await?;
    assert_eq!((status, c.as_str()), (409, "request_not_awaiting"));
    let (ok, out) = crate::wallet::agent_cli(agent, &["confirm", &id])?;
    assert!(ok, "{out}");
    let v = wait_for(agent, &id, |v| v.get("lifecycle").is_some()).await?;
    assert_eq!(v["lifecycle"]["kind"], "refresh", "{v}");
    let joined = device.join_refresh(&plan_of(&v)?, None).await?;
    assert_eq!(joined.epoch, 1);
    let done = wait_for(agent, &id, |v| v["state"] == "done").await?;
    assert_eq!(
        done["outcome"]["lifecycle"],
        serde_json::json!({"epoch": 1, "committed": true}),
        "{done}"
    );
    let sig = device
        .sign_message(account.into(), path.clone(), b"refreshed".to_vec())
        .await?;
    assert_eq!(sig.signers, vec![0, 1]);
    e2e_tests::verify_eth_signature(
        &e2e_tests::eip191("refreshed"),
        &serde_json::to_value(&sig)?,
        &address,
    )?;
    eprintln!(
        "[agent-e2e] refresh through the agent {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // 2. A replacement for a new browser profile (a fresh identity).
    let t = Instant::now();
    let r = ask(
        agent,
        wallet_id,
        serde_json::json!({"kind": "replace_device", "cosigner_url": cosigner_url}),
    )
    .await?;
    assert_eq!(code(r).await?, (400, "invalid_request".to_string()));
    let new = IdentityKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let r = ask(
        agent,
        wallet_id,
        serde_json::json!({
            "kind": "replace_device", "cosigner_url": cosigner_url, "reason": "laptop lost",
            "new_device_identity": new.public().to_string(),
        }),
    )
    .await?;
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
    let req: serde_json::Value = r.json().await?;
    assert_eq!(req["action"], "replace_device", "{req}");
    let id = req["request_id"].as_str().context("id")?.to_string();
    let (ok, out) = crate::wallet::agent_cli(agent, &["confirm", &id])?;
    assert!(ok, "{out}");
    let v = wait_for(agent, &id, |v| v["state"] == "awaiting_device").await?;
    let ch = &v["possession_challenge"];
    let msg = hex::decode(ch["message_hex"].as_str().context("message")?)?;
    let expected = cosigner_api::auth::replace_device_possession_message(
        ch["audience"].as_str().context("audience")?,
        wallet_id,
        &new.public().to_string(),
        ch["timestamp_ms"].as_u64().context("ts")?,
        &hex::decode(ch["nonce_hex"].as_str().context("nonce")?)?,
    );
    assert_eq!(msg, expected, "{v}");
    // A signature by another key, a malformed one: refused, the request keeps waiting.
    let other = IdentityKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let bad = hex::encode(cosigner_api::auth::sign_bytes(&other, &msg)?);
    for s in [bad.as_str(), "zz"] {
        let (status, c) = code(post_possession(agent, &id, s).await?).await?;
        assert_eq!((status, c.as_str()), (400, "invalid_input"));
    }
    let good = hex::encode(cosigner_api::auth::sign_bytes(&new, &msg)?);
    let r = post_possession(agent, &id, &good).await?;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let v = wait_for(agent, &id, |v| v.get("lifecycle").is_some()).await?;
    let template: NewDeviceTemplate = serde_json::from_value(v["lifecycle"]["template"].clone())?;
    assert_eq!(template.wallet_id, wallet_id);
    let new_path = device_path.with_file_name("new_device_key_shares.json");
    let page = client(&new_path, cosigner_url)?;
    let primes = mpc_core::primes::dev_fixture_primes()
        .into_iter()
        .next()
        .context("primes")?;
    let joined = page
        .join_replacement(
            new_path.display().to_string(),
            e2e_tests::DEVICE_PASS.into(),
            new,
            &template,
            &plan_of(&v)?,
            primes,
            None,
        )
        .await?;
    assert_eq!(joined.epoch, 2);
    let done = wait_for(agent, &id, |v| v["state"] == "done").await?;
    assert_eq!(done["outcome"]["lifecycle"]["epoch"], 2, "{done}");
    // The old device is refused by code at once; the new one signs, same address.
    let old = client(device_path, cosigner_url)?;
    let e = old
        .sign_message(account.into(), path.clone(), b"old".to_vec())
        .await
        .expect_err("the old device is revoked");
    // Party 0 is now the new identity: the old one's signature is refused by code.
    assert!(
        matches!(
            e,
            MpcError::Unauthorized { .. } | MpcError::IdentityRevoked { .. }
        ),
        "{e:?}"
    );
    let page = client(&new_path, cosigner_url)?;
    let pk = page.get_public_key(account.into(), path.clone()).await?;
    assert_eq!(pk.ethereum_address, address);
    let sig = page
        .sign_message(account.into(), path, b"new device".to_vec())
        .await?;
    e2e_tests::verify_eth_signature(
        &e2e_tests::eip191("new device"),
        &serde_json::to_value(&sig)?,
        &address,
    )?;
    eprintln!(
        "[agent-e2e] replacement through the agent {:.1}s",
        t.elapsed().as_secs_f64()
    );
    Ok(new_path)
}
