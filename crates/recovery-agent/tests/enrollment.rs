//! The enrollment endpoints of the real `recovery-agent` process: `POST
//! /v1/enrollments` (validation, auth, origin guard, body limit, duplicates, a failed
//! job writes nothing) and `POST /v1/wallets` with an `enrollment_id` (exactly one of
//! `aux_info` and `enrollment_id`; an unknown enrollment is 404, another device's or
//! cosigner's 403; a failed creation keeps the enrollment).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use anyhow::Result;
use e2e_tests::TempDir;
use mpc_client::Enrollment;
use mpc_core::keystore::KdfParams;
use mpc_wire::IdentityKey;
use reqwest::StatusCode;

fn identity() -> String {
    IdentityKey::generate()
        .map(|k| k.public().to_string())
        .unwrap_or_default()
}

/// A change to a request body.
type Edit<'a> = Box<dyn Fn(&mut serde_json::Value) + 'a>;

/// Nothing listens there: sessions fail at once.
const DEAD_GATEWAY: &str = "http://127.0.0.1:9";

fn enrollment_body(id: &str, device: &str, cosigner: &str) -> serde_json::Value {
    serde_json::json!({
        "enrollment_id": id,
        "cosigner_identity": cosigner,
        "device_identity": device,
        "aux_info": {
            "session_id": format!("{id}-aux-session"),
            "room": format!("{id}-aux"),
            "room_token": "",
            "gateway_url": DEAD_GATEWAY,
        },
    })
}

async fn post(url: &str, path: &str, body: &serde_json::Value) -> Result<reqwest::Response> {
    Ok(http()
        .post(format!("{url}{path}"))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await?)
}

async fn code(r: reqwest::Response) -> Result<(StatusCode, String)> {
    let status = r.status();
    let v: serde_json::Value = r.json().await?;
    Ok((
        status,
        v["error"]["code"].as_str().unwrap_or("").to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn enrollment_requests_are_validated_and_guarded() -> Result<()> {
    let dir = TempDir::new("agent-enroll-http")?;
    let agent = start_agent(&dir.0, &["--max-body-bytes", "4096"])?;
    let url = agent.url.as_str();
    let own: String = http()
        .get(format!("{url}/v1/identity"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json::<serde_json::Value>()
        .await?["identity"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (device, cosigner) = (identity(), identity());
    let good = enrollment_body("enr-1", &device, &cosigner);

    // Auth, origin, media type, body limit: as for POST /v1/wallets.
    let r = http()
        .post(format!("{url}/v1/enrollments"))
        .json(&good)
        .send()
        .await?;
    assert_eq!(
        code(r).await?,
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );
    let r = http()
        .post(format!("{url}/v1/enrollments"))
        .bearer_auth(TOKEN)
        .header("origin", "http://evil.example")
        .json(&good)
        .send()
        .await?;
    assert_eq!(
        code(r).await?,
        (StatusCode::FORBIDDEN, "origin_not_allowed".into())
    );
    let r = http()
        .post(format!("{url}/v1/enrollments"))
        .bearer_auth(TOKEN)
        .body(good.to_string())
        .send()
        .await?;
    assert_eq!(
        code(r).await?,
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type".into()
        )
    );
    let mut big = good.clone();
    big["aux_info"]["room_token"] = "x".repeat(5000).into();
    assert_eq!(
        code(post(url, "/v1/enrollments", &big).await?).await?,
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large".into())
    );

    // Invalid fields.
    let cases: Vec<(&str, Edit)> = vec![
        (
            "id traversal",
            Box::new(|b| b["enrollment_id"] = "../x".into()),
        ),
        ("empty id", Box::new(|b| b["enrollment_id"] = "".into())),
        (
            "bad device",
            Box::new(|b| b["device_identity"] = "zz".into()),
        ),
        (
            "own identity as device",
            Box::new(|b| b["device_identity"] = own.clone().into()),
        ),
        (
            "no aux room",
            Box::new(|b| {
                b.as_object_mut().map(|o| o.remove("aux_info"));
            }),
        ),
        (
            "bad session id",
            Box::new(|b| b["aux_info"]["session_id"] = "has space".into()),
        ),
    ];
    for (what, edit) in cases {
        let mut b = good.clone();
        edit(&mut b);
        let (status, c) = code(post(url, "/v1/enrollments", &b).await?).await?;
        assert_eq!(
            (status, c.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{what}"
        );
    }

    // POST /v1/wallets: exactly one of aux_info and enrollment_id.
    let mut both = wallet_body("w-1", &device, &cosigner, DEAD_GATEWAY);
    both["enrollment_id"] = "enr-1".into();
    assert_eq!(
        code(post(url, "/v1/wallets", &both).await?).await?,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let mut neither = wallet_body("w-1", &device, &cosigner, DEAD_GATEWAY);
    neither.as_object_mut().map(|o| o.remove("aux_info"));
    assert_eq!(
        code(post(url, "/v1/wallets", &neither).await?).await?,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let mut bad_id = neither.clone();
    bad_id["enrollment_id"] = "a/b".into();
    assert_eq!(
        code(post(url, "/v1/wallets", &bad_id).await?).await?,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let mut unknown = neither.clone();
    unknown["enrollment_id"] = "enr-unknown".into();
    assert_eq!(
        code(post(url, "/v1/wallets", &unknown).await?).await?,
        (StatusCode::NOT_FOUND, "unknown_enrollment".into())
    );

    // A valid enrollment starts; the same id again is a conflict while it runs; with no
    // gateway it fails and writes nothing.
    let r = post(url, "/v1/enrollments", &good).await?;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job_id = r.json::<serde_json::Value>().await?["job_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let again = code(post(url, "/v1/enrollments", &good).await?).await?;
    let (job, _) = wait_job(url, &job_id, Duration::from_secs(60)).await?;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(job.get("public_keys").is_none(), "{job}");
    // The conflict, unless the job had already failed by then.
    if again.0 != StatusCode::ACCEPTED {
        assert_eq!(again, (StatusCode::CONFLICT, "enrollment_exists".into()));
    }
    assert!(files_under(&agent.data_dir.join("enrollments"))?.is_empty());
    Ok(())
}

/// The agent's enrollment for `device` and `cosigner`, with the agent's own identity
/// and party 2's finished aux info of the committed dev wallet
/// (`testing/fixtures/dev-wallet.json`, real aux info from the public dev primes): what
/// an enrollment holds, without a minute of aux info in the test (what is tested here
/// is how the agent checks a creation against it; enrolling itself is tested in
/// `enroll_wallet.rs`).
fn agent_enrollment(
    agent_key: IdentityKey,
    id: &str,
    device: IdentityKey,
    cosigner: IdentityKey,
) -> Result<Enrollment> {
    #[derive(serde::Deserialize)]
    struct File {
        bundles: Vec<mpc_core::keystore::KeyShareBundle>,
    }
    let file: File =
        serde_json::from_str(include_str!("../../../testing/fixtures/dev-wallet.json"))?;
    let aux_info = file
        .bundles
        .into_iter()
        .nth(2)
        .and_then(|b| b.aux_info)
        .ok_or_else(|| anyhow::anyhow!("the dev wallet has no aux info for party 2"))?;
    Ok(Enrollment {
        enrollment_id: id.into(),
        party_index: 2,
        identity: agent_key,
        aux_info,
        peers: BTreeMap::from([(0, device.public()), (1, cosigner.public())]),
        expires_at_ms: 0,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wallet_from_an_enrollment_checks_its_identities() -> Result<()> {
    let dir = TempDir::new("agent-enroll-wallet")?;
    let agent = start_agent(&dir.0, &[])?;
    let url = agent.url.as_str();
    let (agent_key, _) = recovery_agent::identity::load_or_create(
        &agent.data_dir.join("identity.key"),
        PASSPHRASE,
        true,
    )?;
    let (device, cosigner) = (IdentityKey::generate()?, IdentityKey::generate()?);
    let e = agent_enrollment(agent_key, "enr-2", device.clone(), cosigner.clone())?;
    let file = agent.data_dir.join("enrollments").join("enr-2.json");
    std::fs::write(
        &file,
        e.encrypt(PASSPHRASE, KdfParams::insecure_for_tests())?,
    )?;

    let (d, c) = (device.public().to_string(), cosigner.public().to_string());
    let from = |wallet: &str, device: &str, cosigner: &str| {
        let mut b = wallet_body(wallet, device, cosigner, DEAD_GATEWAY);
        b.as_object_mut().map(|o| o.remove("aux_info"));
        b["enrollment_id"] = "enr-2".into();
        b
    };
    // Another device's or cosigner's: 403 with a code.
    for body in [from("w-2", &identity(), &c), from("w-2", &d, &identity())] {
        assert_eq!(
            code(post(url, "/v1/wallets", &body).await?).await?,
            (StatusCode::FORBIDDEN, "enrollment_mismatch".into())
        );
    }
    // The right identities: the job starts (keygens only: no primes, no aux info);
    // without a gateway it fails, and the enrollment stays for another try.
    let r = post(url, "/v1/wallets", &from("w-2", &d, &c)).await?;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job_id = r.json::<serde_json::Value>().await?["job_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (job, seen) = wait_job(url, &job_id, Duration::from_secs(60)).await?;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        !job["progress"]["stage"]
            .as_str()
            .is_some_and(|s| s == "primes" || s == "aux-info"),
        "{job}"
    );
    assert!(seen.iter().all(|&p| p == 0 || p >= 10), "{seen:?}");
    assert!(file.exists(), "a failed creation keeps the enrollment");
    // A duplicate enrollment id is a conflict (the file exists).
    assert_eq!(
        code(post(url, "/v1/enrollments", &enrollment_body("enr-2", &d, &c)).await?).await?,
        (StatusCode::CONFLICT, "enrollment_exists".into())
    );
    Ok(())
}
