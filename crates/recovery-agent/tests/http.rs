//! Adversarial HTTP tests of the real `recovery-agent` process on loopback: auth, CORS,
//! malformed and oversized bodies, invalid identities, duplicate wallets, job limits,
//! unknown jobs, and that a failed creation writes nothing.

use std::time::Duration;

use crate::common::*;
use anyhow::Result;
use e2e_tests::{start_gateway, TempDir};
use mpc_wire::IdentityKey;
use reqwest::StatusCode;

fn identity() -> String {
    IdentityKey::generate()
        .map(|k| k.public().to_string())
        .unwrap_or_default()
}

async fn error_code(r: reqwest::Response) -> Result<(StatusCode, String)> {
    let status = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let v: serde_json::Value = r.json().await?;
    assert_eq!(ct, "application/json", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    Ok((
        status,
        v["error"]["code"].as_str().unwrap_or("").to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn http_contract_and_adversarial_requests() -> Result<()> {
    let dir = TempDir::new("agent-http")?;
    // A real gateway where no other party ever shows up: sessions hang until their
    // deadline.
    let bins = gateway_bins()?;
    let (_gw, hole_url) = start_gateway(&bins, &dir.0)?;
    let agent = start_agent(
        &dir.0,
        &[
            "--max-jobs",
            "1",
            "--session-timeout-secs",
            "4",
            "--max-body-bytes",
            "4096",
        ],
    )?;
    let url = agent.url.clone();
    let c = http();

    // Health: no token needed.
    let h: serde_json::Value = c
        .get(format!("{url}/v1/health"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(h["status"], "ok");
    assert_eq!(h["party_index"], 2);
    assert!(h["version"].as_str().is_some());

    // Identity: token required; constant answer.
    let r = c.get(format!("{url}/v1/identity")).send().await?;
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_eq!(
        error_code(r).await?,
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );
    for bad in ["wrong-token-0123456789", "", TOKEN.trim_end_matches('9')] {
        let r = c
            .get(format!("{url}/v1/identity"))
            .bearer_auth(bad)
            .send()
            .await?;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "token {bad:?}");
    }
    let r = c
        .get(format!("{url}/v1/identity"))
        .header("authorization", TOKEN)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "token without Bearer");
    let id: serde_json::Value = c
        .get(format!("{url}/v1/identity"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let own = id["identity"].as_str().unwrap().to_string();
    assert_eq!(own.len(), 128);
    assert!(own.parse::<mpc_wire::PublicIdentity>().is_ok());

    // Routes and methods.
    let r = c
        .get(format!("{url}/v1/nope"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(
        error_code(r).await?,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let r = c
        .delete(format!("{url}/v1/wallets"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(
        error_code(r).await?,
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into())
    );
    let r = c
        .get(format!("{url}/v1/jobs/0123456789abcdef"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(
        error_code(r).await?,
        (StatusCode::NOT_FOUND, "unknown_job".into())
    );
    let r = c
        .get(format!("{url}/v1/jobs/{}", "x".repeat(300)))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // CORS: preflight from the allowed origin (with Private Network Access).
    let r = c
        .request(reqwest::Method::OPTIONS, format!("{url}/v1/wallets"))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .header("access-control-request-private-network", "true")
        .send()
        .await?;
    assert!(r.status().is_success(), "{}", r.status());
    let hv = |r: &reqwest::Response, k: &str| {
        r.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    assert_eq!(hv(&r, "access-control-allow-origin"), ORIGIN);
    assert!(hv(&r, "access-control-allow-headers").contains("authorization"));
    assert!(hv(&r, "access-control-allow-headers").contains("content-type"));
    assert!(hv(&r, "access-control-allow-methods").contains("post"));
    assert_eq!(hv(&r, "access-control-allow-private-network"), "true");
    // Actual request from the allowed origin: CORS headers, also on errors.
    let r = c
        .get(format!("{url}/v1/identity"))
        .header("origin", ORIGIN)
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(hv(&r, "access-control-allow-origin"), ORIGIN);
    let r = c
        .get(format!("{url}/v1/identity"))
        .header("origin", ORIGIN)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(hv(&r, "access-control-allow-origin"), ORIGIN);
    // A foreign origin is refused outright, preflight or not, token or not.
    for evil in ["http://evil.example", "http://allowed.example:5174", "null"] {
        let r = c
            .request(reqwest::Method::OPTIONS, format!("{url}/v1/wallets"))
            .header("origin", evil)
            .header("access-control-request-method", "POST")
            .send()
            .await?;
        assert!(r.headers().get("access-control-allow-origin").is_none());
        assert_eq!(
            error_code(r).await?,
            (StatusCode::FORBIDDEN, "origin_not_allowed".into())
        );
        let r = c
            .get(format!("{url}/v1/identity"))
            .header("origin", evil)
            .bearer_auth(TOKEN)
            .send()
            .await?;
        assert!(r.headers().get("access-control-allow-origin").is_none());
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = c
            .post(format!("{url}/v1/wallets"))
            .header("origin", evil)
            .bearer_auth(TOKEN)
            .json(&wallet_body("evil", &identity(), &identity(), &hole_url))
            .send()
            .await?;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }

    // POST /v1/wallets: bad bodies.
    let post = |body: reqwest::Body, ct: &'static str| {
        c.post(format!("{url}/v1/wallets"))
            .bearer_auth(TOKEN)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = c
        .post(format!("{url}/v1/wallets"))
        .json(&wallet_body(
            "w-noauth",
            &identity(),
            &identity(),
            &hole_url,
        ))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = post("{\"wallet_id\": ".into(), "application/json").await?;
    assert_eq!(
        error_code(r).await?,
        (StatusCode::BAD_REQUEST, "invalid_json".into())
    );
    let r = post("[1,2,3]".into(), "application/json").await?;
    assert_eq!(
        error_code(r).await?,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let r = post("{\"wallet_id\":\"w\"}".into(), "application/json").await?;
    assert_eq!(
        error_code(r).await?,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let ok_body = wallet_body("w-type", &identity(), &identity(), &hole_url).to_string();
    let r = post(ok_body.into(), "text/plain").await?;
    assert_eq!(
        error_code(r).await?,
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type".into()
        )
    );
    // Oversized (limit 4096), with and without a padded but valid JSON shape.
    let mut big = wallet_body("w-big", &identity(), &identity(), &hole_url);
    big["padding"] = serde_json::Value::String("x".repeat(8000));
    let r = post(big.to_string().into(), "application/json").await?;
    assert_eq!(
        error_code(r).await?,
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large".into())
    );
    let stream = chunked(vec![vec![b' '; 3000], vec![b' '; 3000]]);
    let r = post(stream, "application/json").await?;
    assert_eq!(
        r.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "chunked oversized body"
    );

    // Invalid fields.
    let dev = identity();
    let cos = identity();
    let invalid: Vec<(&str, serde_json::Value)> = vec![
        (
            "short identity",
            wallet_body("w1", &dev[..126], &cos, &hole_url),
        ),
        (
            "non-hex identity",
            wallet_body("w1", &format!("zz{}", &dev[2..]), &cos, &hole_url),
        ),
        (
            "small-order key",
            wallet_body(
                "w1",
                &format!("{}{}", &dev[..64], "00".repeat(32)),
                &cos,
                &hole_url,
            ),
        ),
        (
            "device = cosigner",
            wallet_body("w1", &dev, &dev, &hole_url),
        ),
        ("device = agent", wallet_body("w1", &own, &cos, &hole_url)),
        (
            "path in wallet id",
            wallet_body("../w1", &dev, &cos, &hole_url),
        ),
        ("empty wallet id", wallet_body("", &dev, &cos, &hole_url)),
        (
            "bad gateway url",
            wallet_body("w1", &dev, &cos, "file:///etc/passwd"),
        ),
        ("bad kind", {
            let mut b = wallet_body("w1", &dev, &cos, &hole_url);
            b["kind"] = "bip44".into();
            b
        }),
        ("no accounts", {
            let mut b = wallet_body("w1", &dev, &cos, &hole_url);
            b["accounts"] = serde_json::json!([]);
            b
        }),
        ("reused session id", {
            let mut b = wallet_body("w1", &dev, &cos, &hole_url);
            b["accounts"][0]["keygen"]["session_id"] = b["aux_info"]["session_id"].clone();
            b
        }),
        ("bad session id", {
            let mut b = wallet_body("w1", &dev, &cos, &hole_url);
            b["aux_info"]["session_id"] = "has space".into();
            b
        }),
        ("duplicate account", {
            let mut b = wallet_body("w1", &dev, &cos, &hole_url);
            let mut second = b["accounts"][0].clone();
            second["keygen"]["session_id"] = "other-session".into();
            b["accounts"].as_array_mut().unwrap().push(second);
            b
        }),
    ];
    for (what, body) in invalid {
        let r = post(body.to_string().into(), "application/json").await?;
        assert_eq!(
            error_code(r).await?,
            (StatusCode::BAD_REQUEST, "invalid_request".into()),
            "{what}"
        );
    }
    assert!(files_under(&agent.data_dir.join("wallets"))?.is_empty());

    // A valid request whose peers never show up: the job runs, a second job for the
    // same wallet is refused, a second wallet hits the job limit (1), and when the
    // session times out the job fails and nothing is written.
    let body = wallet_body("w-hole", &dev, &cos, &hole_url);
    let r = post(body.to_string().into(), "application/json").await?;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job: serde_json::Value = r.json().await?;
    let job_id = job["job_id"].as_str().unwrap().to_string();
    let r = post(body.to_string().into(), "application/json").await?;
    assert_eq!(
        error_code(r).await?,
        (StatusCode::CONFLICT, "wallet_exists".into())
    );
    let other = wallet_body("w-other", &dev, &cos, &hole_url);
    let r = post(other.to_string().into(), "application/json").await?;
    assert_eq!(
        error_code(r).await?,
        (StatusCode::TOO_MANY_REQUESTS, "too_many_jobs".into())
    );
    let (v, _) = wait_job(&url, &job_id, Duration::from_secs(120)).await?;
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["error"]["code"], "timeout", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("aux-info"),
        "{v}"
    );
    assert!(v.get("public_keys").is_none());
    assert!(
        files_under(&agent.data_dir.join("wallets"))?.is_empty(),
        "a failed job left files"
    );
    // The wallet is not held: it may be retried (unreachable gateway this time).
    let dead = e2e_tests::RefusedPort::new()?;
    let body = wallet_body("w-hole", &dev, &cos, &dead.url()?);
    let r = post(body.to_string().into(), "application/json").await?;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job: serde_json::Value = r.json().await?;
    let (v, _) = wait_job(
        &url,
        job["job_id"].as_str().unwrap(),
        Duration::from_secs(120),
    )
    .await?;
    assert_eq!(v["state"], "failed", "{v}");
    assert!(
        ["gateway_unavailable", "timeout"].contains(&v["error"]["code"].as_str().unwrap()),
        "{v}"
    );
    assert!(files_under(&agent.data_dir.join("wallets"))?.is_empty());
    Ok(())
}

/// A chunked request body (no Content-Length).
fn chunked(chunks: Vec<Vec<u8>>) -> reqwest::Body {
    reqwest::Body::wrap_stream(futures_util::stream::iter(
        chunks.into_iter().map(Ok::<_, std::io::Error>),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn startup_refuses_bad_configuration() -> Result<()> {
    let dir = TempDir::new("agent-startup")?;
    let run = |args: &[&str], pass: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_recovery-agent"));
        cmd.arg("--data-dir")
            .arg(dir.0.join("data"))
            .args(["--insecure-fast-kdf", "--insecure-dev-primes"])
            .args(args)
            .env_remove("RECOVERY_AGENT_PASSPHRASE")
            .env_remove("RECOVERY_AGENT_TOKEN")
            .env_remove("RECOVERY_AGENT_ALLOW_ORIGINS");
        if let Some(p) = pass {
            cmd.env("RECOVERY_AGENT_PASSPHRASE", p);
        }
        cmd.output()
    };
    let fails = |out: std::process::Output, needle: &str| {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
    };
    fails(run(&["--listen", "127.0.0.1:0"], None)?, "passphrase");
    fails(run(&["--listen", "0.0.0.0:0"], Some("p"))?, "loopback");
    fails(
        run(
            &["--listen", "127.0.0.1:0", "--allow-origin", "*"],
            Some("p"),
        )?,
        "origin",
    );
    fails(
        run(&["--listen", "127.0.0.1:0", "--token", "short"], Some("p"))?,
        "token",
    );
    // Create the identity with one passphrase, then a wrong one is refused. (Started on
    // port 0: stdout names the address it got, the same as its --port-file.)
    let agent = start_agent(&dir.0, &[])?;
    let out = agent.proc.output();
    assert!(
        out.contains(&format!("recovery-agent listening on {}\n", agent.url)),
        "{out}"
    );
    drop(agent);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_recovery-agent"))
        .arg("--data-dir")
        .arg(dir.0.join("agent-data"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--insecure-fast-kdf",
            "--insecure-dev-primes",
        ])
        .env("RECOVERY_AGENT_PASSPHRASE", "not the passphrase")
        .env_remove("RECOVERY_AGENT_TOKEN")
        .output()?;
    fails(out, "passphrase");
    Ok(())
}
