//! The agent serves HTTPS when given a certificate and key (`--tls-cert-file`,
//! `--tls-key-file`): a client trusting the CA that issued them gets its answers (health,
//! and the token-protected identity); a client that does not is refused in the TLS
//! handshake with a certificate error; plain HTTP to the TLS port gets no answer.

use std::time::Duration;

use crate::common::*;
use anyhow::{Context, Result};
use e2e_tests::TempDir;
use gateway_tests::tls::TestCa;

#[tokio::test]
async fn the_agent_serves_https_with_the_given_certificate() -> Result<()> {
    let dir = TempDir::new("recovery-agent-tls")?;
    let ca = TestCa::new("agent test CA")?;
    let cert = ca.server_cert(&dir.0, "agent")?;
    let agent = start_agent(
        &dir.0,
        &[
            "--tls-cert-file",
            cert.cert_file.to_str().context("path")?,
            "--tls-key-file",
            cert.key_file.to_str().context("path")?,
        ],
    )?;
    let url = agent.url.replace("http://", "https://");
    assert!(
        agent
            .proc
            .output()
            .contains(&format!("recovery-agent listening on {url}")),
        "{}",
        agent.proc.output()
    );

    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes())?)
        .timeout(Duration::from_secs(10))
        .build()?;
    let h: serde_json::Value = trusting
        .get(format!("{url}/v1/health"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(h["status"], "ok", "{h}");
    let id: serde_json::Value = trusting
        .get(format!("{url}/v1/identity"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    assert!(id["identity"].as_str().is_some(), "{id}");

    // Another CA: the handshake fails on the certificate.
    let other = TestCa::new("unrelated CA")?;
    let distrusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(other.pem().as_bytes())?)
        .timeout(Duration::from_secs(10))
        .build()?;
    let e = distrusting
        .get(format!("{url}/v1/health"))
        .send()
        .await
        .expect_err("an untrusted certificate was accepted");
    let chain = format!("{:?}", anyhow::Error::from(e));
    assert!(chain.contains("UnknownIssuer"), "{chain}");

    // Plain HTTP to the TLS port: no HTTP answer.
    let plain = http()
        .get(format!("{}/v1/health", agent.url))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    Ok(())
}
