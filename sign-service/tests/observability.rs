//! What an operator's probes and scraper see of a real `sign-service` process (with a
//! real `sign-gateway`): `grpc.health.v1` on the API port, `/healthz`, `/readyz` and
//! `/metrics` on the admin port. The metrics are scraped and parsed after real work
//! (a presignature and a pool signature, a full signing, a policy refusal), and
//! readiness follows the cosigner's dependencies: the gateway going away and the audit
//! log being moved away both make it not ready, naming the check.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::*;
use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_primitives::{Address, TxKind, U256};
use cosigner_api::auth;
use cosigner_api::pb::{self, DigestKind, PayloadKind};
use tonic_health::ServingStatus;

const ALLOWED: Address = Address::repeat_byte(0x11);
const ELSEWHERE: Address = Address::repeat_byte(0x22);

/// The samples of an OpenMetrics text: `name{labels}` → value. Panics on a line that is
/// neither a comment nor `SAMPLE VALUE`, and unless the text ends with `# EOF`.
fn parse(text: &str) -> HashMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "not OpenMetrics text:\n{text}");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let v: f64 = v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (k.to_string(), v)
        })
        .collect()
}

async fn scrape(http: &reqwest::Client, admin: &str) -> HashMap<String, f64> {
    let r = http
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(r.status(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    parse(&r.text().await.expect("body"))
}

fn sample(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

fn failing(body: &serde_json::Value) -> Vec<String> {
    body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["ok"] == false && c["required"] == true)
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_metrics_follow_what_the_cosigner_does() {
    let gw = gateway().await;
    let yaml = format!(
        "admin_listen: 127.0.0.1:0\nhealth_check_interval_secs: 1\nsession_timeout_secs: 30\n\
         policy:\n  ethereum:\n    allowed_destinations: [\"{ALLOWED}\"]\n"
    );
    let (svc, wallets) =
        start_service_with_dev_wallets(&gw, &yaml, &[mpc_core::AccountKind::Independent]).await;
    let [w] = one(wallets);
    let admin = svc.admin_url();
    let http = reqwest::Client::new();

    // Liveness, readiness (every check named), gRPC health.
    let live = http
        .get(format!("{admin}/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(live.status(), 200);
    let (status, body) = readyz(&http, &admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    let names: Vec<&str> = body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["serving", "key_store", "audit_log", "gateway", "prime_pool"]
    );
    let mut serving = false;
    for _ in 0..100 {
        if grpc_health(&svc.url, "").await == ServingStatus::Serving
            && grpc_health(&svc.url, "wallet.cosigner.v1.Cosigner").await == ServingStatus::Serving
        {
            serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(serving, "grpc.health.v1 never said SERVING");

    // Real work: a presignature, then a signature from it; a full signing; a refusal.
    let mut client = svc.client().await;
    let id = presign_one(&mut client, &w, "account-0").await;
    let mut req = pb::SignWithPresignatureRequest {
        auth: None,
        account_id: "account-0".into(),
        presignature_id: id,
        preimage: mpc_core::digest::eip191_preimage(b"observed"),
        digest: DigestKind::Keccak256 as i32,
        payload_kind: PayloadKind::EthereumMessage as i32,
        ..Default::default()
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign");
    client
        .sign_with_presignature(req)
        .await
        .expect("pool signature");

    full_sign(&mut client, &w, "observed in full").await;

    let tx = TxEip1559 {
        chain_id: 1,
        nonce: 3,
        gas_limit: 21_000,
        max_fee_per_gas: 1,
        max_priority_fee_per_gas: 1,
        to: TxKind::Call(ELSEWHERE),
        value: U256::from(1),
        access_list: Default::default(),
        input: Default::default(),
    }
    .encoded_for_signing();
    let mut req = pb::StartSignRequest {
        auth: None,
        account_id: "account-0".into(),
        preimage: tx,
        digest: DigestKind::Keccak256 as i32,
        payload_kind: PayloadKind::EthereumTransaction as i32,
        ..Default::default()
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign");
    let refused = client
        .start_sign(req)
        .await
        .expect_err("a transaction to a destination not allowed");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    // The cosigner's side of the full signing ends just after the device's: its
    // duration is recorded, then its session slot is given back.
    let mut m = scrape(&http, &admin).await;
    for _ in 0..100 {
        if sample(&m, "cosigner_sign_duration_seconds_count{path=\"full\"}") >= 1.0
            && sample(&m, "cosigner_active_sessions") == 0.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        m = scrape(&http, &admin).await;
    }
    for (key, want) in [
        (
            "cosigner_sessions_total{kind=\"presign\",outcome=\"ok\"}",
            1.0,
        ),
        ("cosigner_sessions_total{kind=\"sign\",outcome=\"ok\"}", 1.0),
        ("cosigner_sign_duration_seconds_count{path=\"pool\"}", 1.0),
        ("cosigner_sign_duration_seconds_count{path=\"full\"}", 1.0),
        (
            "cosigner_policy_refusals_total{rule=\"allowed_destinations\"}",
            1.0,
        ),
        ("cosigner_errors_total{code=\"policy_denied\"}", 1.0),
        ("cosigner_wallets", 1.0),
        ("cosigner_presignatures", 0.0),
        ("cosigner_active_sessions", 0.0),
        ("cosigner_ready", 1.0),
        ("cosigner_draining", 0.0),
    ] {
        assert_eq!(sample(&m, key), want, "{key}");
    }
    // The pool signature's time is in a bucket (milliseconds, not seconds).
    assert_eq!(
        sample(
            &m,
            "cosigner_sign_duration_seconds_bucket{le=\"+Inf\",path=\"pool\"}"
        ),
        1.0,
        "{m:?}"
    );

    // The audit log moved away (a careless rotation): not ready, named; gRPC follows.
    let audit = svc.dir.0.join("audit.jsonl");
    let moved = svc.dir.0.join("audit.jsonl.1");
    std::fs::rename(&audit, &moved).expect("move the log");
    let (status, body) = readyz(&http, &admin).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(failing(&body), ["audit_log"], "{body}");
    std::fs::rename(&moved, &audit).expect("move it back");
    let (status, body) = readyz(&http, &admin).await;
    assert_eq!(status, 200, "{body}");

    // The gateway goes away: not ready, named; gRPC health says NOT_SERVING.
    drop(gw);
    let (status, body) = readyz(&http, &admin).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(failing(&body), ["gateway"], "{body}");
    let mut not_serving = false;
    for _ in 0..100 {
        if grpc_health(&svc.url, "wallet.cosigner.v1.Cosigner").await == ServingStatus::NotServing {
            not_serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        not_serving,
        "grpc.health.v1 still SERVING without a gateway"
    );
    let m = scrape(&http, &admin).await;
    assert_eq!(sample(&m, "cosigner_ready"), 0.0);
}

/// A bad `admin_listen` stops the start-up with the key named.
#[test]
fn a_bad_admin_listen_is_refused_at_start() {
    let e = sign_service::config::Config::from_yaml("admin_listen: localhost\n")
        .expect("parses")
        .validate()
        .expect_err("no port");
    assert!(e.to_string().contains("admin_listen"), "{e}");
}
