//! Integration tests with real processes on loopback: `sign-gateway` (room tokens on)
//! and `sign-service` (insecure dev primes and store key), called over gRPC and
//! gRPC-web. The full-flow test plays the device and recovery parties in-process with
//! `mpc-party`.
//!
//! Needs the `sign-gateway` binary next to this test's target directory (built on
//! demand with `cargo build -p sign-gateway`), or `SIGN_GATEWAY_BIN`.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use cosigner_api::auth;
use cosigner_api::pb::cosigner_client::CosignerClient;
use cosigner_api::pb::{self, AccountKind, DigestKind, PayloadKind};
use cosigner_api::RemoteError;
use gateway_client::GatewayClient;
use gateway_tests::process::TempDir;
use mpc_core::{Session, SessionOutput};
use mpc_party::run_session;
use mpc_wire::{IdentityKey, PublicIdentity, Roster};
use prost::Message;
use tonic::transport::Channel;
use wallet_types::ErrorCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_over_grpc_and_grpc_web() {
    let gw = gateway().await;
    let svc = start_service(&gw, "", false).await;

    // gRPC (HTTP/2).
    let mut client = CosignerClient::connect(svc.url.clone())
        .await
        .expect("connect");
    let h = client
        .health(pb::HealthRequest {})
        .await
        .expect("health")
        .into_inner();
    assert_eq!(h.status, "ok");
    assert_eq!((h.party_index, h.threshold, h.parties), (1, 2, 3));
    // `cargo test -p sign-service` builds GMP only; a workspace-wide build unifies
    // features and mpc-core then falls back to num-bigint. Either way the binary built
    // in this cargo invocation reports the backend this test links.
    assert_eq!(h.backend, mpc_core::BACKEND);
    eprintln!("sign-service backend: {}", h.backend);
    assert_eq!(h.identity.len(), 128);

    // gRPC-web (HTTP/1.1 POST), as a browser sends it.
    let http = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("reqwest");
    let mut body = vec![0u8];
    body.extend_from_slice(&0u32.to_be_bytes()); // empty HealthRequest
    let resp = http
        .post(format!("{}/wallet.cosigner.v1.Cosigner/Health", svc.url))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", "http://localhost:5173")
        .body(body)
        .send()
        .await
        .expect("grpc-web request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(
        resp.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap_or("")),
        Some("http://localhost:5173")
    );
    let expose = resp
        .headers()
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(
        expose.contains("grpc-status")
            && expose.contains("grpc-message")
            && expose.contains("grpc-status-details-bin"),
        "{expose}"
    );
    assert!(!expose.contains("x-presignature-error"), "{expose}");
    assert!(resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .starts_with("application/grpc-web"));
    let bytes = resp.bytes().await.expect("body");
    // Frames: [flag][len BE][payload]; data frame first, then the trailers frame (0x80).
    assert_eq!(bytes[0], 0, "first frame is data");
    let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    let health = pb::HealthResponse::decode(&bytes[5..5 + len]).expect("decode HealthResponse");
    assert_eq!(health.identity, h.identity);
    let trailers = &bytes[5 + len..];
    assert_eq!(trailers[0], 0x80, "trailer frame");
    let text = String::from_utf8_lossy(&trailers[5..]).to_ascii_lowercase();
    assert!(text.contains("grpc-status:0"), "{text}");

    // CORS preflight from an allowed origin, and none for others.
    let pre = http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/wallet.cosigner.v1.Cosigner/Health", svc.url),
        )
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web")
        .send()
        .await
        .expect("preflight");
    assert!(pre.status().is_success());
    assert_eq!(
        pre.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap_or("")),
        Some("http://localhost:5173")
    );
    let pre = http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/wallet.cosigner.v1.Cosigner/Health", svc.url),
        )
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert!(pre.headers().get("access-control-allow-origin").is_none());
    // A browser extension listed by its exact origin (an MV3 wallet's service worker),
    // and not another one.
    for (origin, allowed) in [
        ("chrome-extension://abcdefghijklmnopabcdefghijklmnop", true),
        ("chrome-extension://ponmlkjihgfedcbaponmlkjihgfedcba", false),
    ] {
        let pre = http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/wallet.cosigner.v1.Cosigner/Health", svc.url),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-grpc-web")
            .send()
            .await
            .expect("preflight");
        let got = pre
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok());
        assert_eq!(got == Some(origin), allowed, "{origin}: {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_start_without_store_key_and_on_busy_port() {
    let dir = TempDir::new("sign-service-nokey").expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_sign-service"))
        .env("SIGN_SERVICE_KEY_STORE", dir.0.join("s.redb"))
        .env("SIGN_SERVICE_AUDIT_LOG", dir.0.join("a.jsonl"))
        .env_remove("SIGN_SERVICE_STORE_KEY")
        .env_remove("SIGN_SERVICE_STORE_PASSPHRASE")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SIGN_SERVICE_STORE_KEY"), "{err}");

    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let out = Command::new(env!("CARGO_BIN_EXE_sign-service"))
        .arg("--insecure-dev-store-key")
        .env("SIGN_SERVICE_PORT", port.to_string())
        .env("SIGN_SERVICE_KEY_STORE", dir.0.join("s.redb"))
        .env("SIGN_SERVICE_AUDIT_LOG", dir.0.join("a.jsonl"))
        .env_remove("SIGN_SERVICE_STORE_KEY")
        .env_remove("SIGN_SERVICE_STORE_PASSPHRASE")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port is busy"), "{err}");

    let bad = dir.0.join("bad.yaml");
    std::fs::write(&bad, "port: 1\nthreshold: 3\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_sign-service"))
        .arg("--config")
        .arg(&bad)
        .arg("--insecure-dev-store-key")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2-of-3"), "{err}");
}

fn eip1559(to: [u8; 20], value: u128) -> Vec<u8> {
    use alloy_rlp::Encodable;
    let mut payload = Vec::new();
    Encodable::encode(&1u64, &mut payload);
    Encodable::encode(&0u64, &mut payload);
    Encodable::encode(&1u64, &mut payload);
    Encodable::encode(&2u64, &mut payload);
    Encodable::encode(&21_000u64, &mut payload);
    Encodable::encode(&alloy_rlp::Bytes::from(to.to_vec()), &mut payload);
    Encodable::encode(&value, &mut payload);
    Encodable::encode(&alloy_rlp::Bytes::new(), &mut payload);
    Encodable::encode(&Vec::<alloy_rlp::Bytes>::new(), &mut payload);
    let mut out = vec![2u8];
    alloy_rlp::Header {
        list: true,
        payload_length: payload.len(),
    }
    .encode(&mut out);
    out.extend(payload);
    out
}

async fn start_sign(
    client: &mut CosignerClient<Channel>,
    key: &IdentityKey,
    wallet: &str,
    party: u16,
    preimage: Vec<u8>,
    kind: PayloadKind,
) -> Result<pb::StartSignResponse, tonic::Status> {
    let mut req = pb::StartSignRequest {
        auth: None,
        account_id: "account-0".into(),
        derivation_path: "m/44/60/0/0/1".into(),
        preimage,
        digest: DigestKind::Keccak256 as i32,
        payload_kind: kind as i32,
        ..Default::default()
    };
    let me = cosigner_identity(client).await;
    auth::sign_request(&mut req, key, &me, wallet, party).expect("sign request");
    client.start_sign(req).await.map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_confirm_sign_policy_and_auth() {
    let gw_proc = gateway().await;
    // Dev primes: peers built from the public fixture primes are refused in production
    // mode (tests/creation.rs runs the production prime pool).
    let svc = start_service(
        &gw_proc,
        // value + maximum fee: the transactions below pay at most 21000 × 2 wei.
        "policy:\n  ethereum:\n    max_value_per_tx_wei: \"43000\"\n",
        false,
    )
    .await;
    let mut client = CosignerClient::connect(svc.url.clone())
        .await
        .expect("connect");
    let me = cosigner_identity(&mut client).await;
    let (device, recovery, req) = signed_create_request(&me, 1, AccountKind::Hd, "test");
    // A forged CreateWallet (signed by another key) is refused.
    let mut forged = req.clone();
    forged.device_identity = recovery.public().to_string();
    assert_eq!(
        client
            .create_wallet(forged)
            .await
            .expect_err("forged")
            .code(),
        tonic::Code::Unauthenticated
    );
    let created = client
        .create_wallet(req.clone())
        .await
        .expect("create")
        .into_inner();
    // Replaying the same request is refused.
    assert_eq!(
        client.create_wallet(req).await.expect_err("replay").code(),
        tonic::Code::Unauthenticated
    );
    let aux_room = created.aux_info.clone().expect("aux");
    assert!(!aux_room.room_token.is_empty());
    let cosigner: PublicIdentity = created.cosigner_identity.parse().expect("identity");
    assert_eq!(cosigner.to_string(), created.cosigner_identity);
    let roster =
        Roster::new([(0, device.public()), (1, cosigner), (2, recovery.public())]).expect("roster");
    let gw = GatewayClient::new(&aux_room.gateway_url).expect("gateway client");
    let wallet = created.wallet_id.clone();

    let (d, r) = tokio::join!(
        run_party_dkg(
            gw.clone(),
            created.clone(),
            0,
            device.clone(),
            roster.clone(),
            mpc_core::AccountKind::Hd,
        ),
        run_party_dkg(
            gw.clone(),
            created.clone(),
            2,
            recovery.clone(),
            roster.clone(),
            mpc_core::AccountKind::Hd,
        ),
    );
    let (dev_aux, dev_accounts) = d;
    let (rec_aux, rec_accounts) = r.clone();
    assert_eq!(dev_accounts[0].public_key, r.1[0].public_key);

    // Sign before confirming: the wallet is not ready (and no retry makes it so).
    let e = start_sign(
        &mut client,
        &device,
        &wallet,
        0,
        b"x".to_vec(),
        PayloadKind::Raw,
    )
    .await
    .expect_err("unconfirmed");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    let remote = RemoteError::from(&e);
    assert_eq!(remote.code, ErrorCode::WalletNotReady, "{remote}");
    assert!(!remote.retryable);
    // Not to a stranger: a request for the pending wallet signed by another key.
    let stranger = IdentityKey::generate().expect("id");
    let e = start_sign(
        &mut client,
        &stranger,
        &wallet,
        0,
        b"x".to_vec(),
        PayloadKind::Raw,
    )
    .await
    .expect_err("stranger");
    assert_eq!(RemoteError::from(&e).code, ErrorCode::Unauthorized);

    // A confirmation signed with the wrong identity key is refused.
    let keys: HashMap<String, String> = dev_accounts
        .iter()
        .map(|a| (a.id.clone(), a.public_key.clone()))
        .collect();
    let mut bad = pb::ConfirmWalletRequest {
        auth: None,
        public_keys: keys.clone(),
    };
    auth::sign_request(&mut bad, &recovery, &me, &wallet, 0).expect("sign"); // wrong key for party 0
    assert_eq!(
        client
            .confirm_wallet(bad)
            .await
            .expect_err("wrong key")
            .code(),
        tonic::Code::Unauthenticated
    );
    let confirmed = confirm_wallet(&mut client, &device, &me, &wallet, keys.clone()).await;
    assert!(confirmed.committed);
    assert_eq!(confirmed.accounts[0].public_key, dev_accounts[0].public_key);

    // ListAccounts / GetPublicKey.
    let mut list = pb::ListAccountsRequest { auth: None };
    auth::sign_request(&mut list, &recovery, &me, &wallet, 2).expect("sign");
    let listed = client.list_accounts(list).await.expect("list").into_inner();
    assert_eq!(listed.accounts.len(), 1);
    let mut gpk = pb::GetPublicKeyRequest {
        auth: None,
        account_id: "account-0".into(),
        derivation_path: "m/44/60/0/0/1".into(),
    };
    auth::sign_request(&mut gpk, &device, &me, &wallet, 0).expect("sign");
    let pk = client.get_public_key(gpk).await.expect("gpk").into_inner();
    let path = mpc_core::hd::DerivationPath::parse("m/44/60/0/0/1").expect("path");
    let child = dev_accounts[0].public_key_at(&path).expect("child");
    assert_eq!(pk.public_key, hex::encode(child.to_bytes(true)));

    // Sign an EIP-1559 transaction with device + cosigner.
    let tx = eip1559([0x11; 20], 1000);
    let started = start_sign(
        &mut client,
        &device,
        &wallet,
        0,
        tx.clone(),
        PayloadKind::EthereumTransaction,
    )
    .await
    .expect("start sign");
    assert_eq!(started.signers, vec![0, 1]);
    let digest = mpc_core::DigestKind::Keccak256.digest(&tx);
    assert_eq!(started.digest, hex::encode(digest));
    let room = started.session.clone().expect("room");
    let share = dev_accounts[0].complete(&dev_aux).expect("complete");
    let sid = room.session_id.clone().into_bytes();
    let sign_roster = Roster::new([(0, device.public()), (1, cosigner)]).expect("roster");
    let t0 = std::time::Instant::now();
    let tx2 = tx.clone();
    let out = run_session(
        ctx(&gw, &room, 0, &device, &sign_roster),
        move || {
            Session::sign(
                &sid,
                vec![0, 1],
                share,
                Some(vec![44, 60, 0, 0, 1]),
                mpc_core::DigestKind::Keccak256.data_to_sign(&tx2),
            )
        },
        |_| {},
    )
    .await
    .expect("sign session");
    eprintln!("device+cosigner signing took {:?}", t0.elapsed());
    let SessionOutput::Signature(sig) = out else {
        panic!("signature")
    };
    mpc_core::signature::verify_digest(&child, &digest, &sig).expect("signature verifies");

    // Recovery + cosigner (lost device), at the root path.
    let msg = mpc_core::digest::eip191_preimage(b"recovery signs");
    let mut req = pb::StartSignRequest {
        auth: None,
        account_id: "account-0".into(),
        derivation_path: String::new(),
        preimage: msg.clone(),
        digest: DigestKind::Keccak256 as i32,
        payload_kind: PayloadKind::EthereumMessage as i32,
        ..Default::default()
    };
    auth::sign_request(&mut req, &recovery, &me, &wallet, 2).expect("sign");
    let started = client
        .start_sign(req)
        .await
        .expect("start sign")
        .into_inner();
    assert_eq!(started.signers, vec![1, 2]);
    let room = started.session.clone().expect("room");
    let share = rec_accounts[0].complete(&rec_aux).expect("complete");
    let sid = room.session_id.clone().into_bytes();
    let sign_roster = Roster::new([(1, cosigner), (2, recovery.public())]).expect("roster");
    let msg2 = msg.clone();
    let out = run_session(
        ctx(&gw, &room, 2, &recovery, &sign_roster),
        move || {
            Session::sign(
                &sid,
                vec![1, 2],
                share,
                None,
                mpc_core::DigestKind::Keccak256.data_to_sign(&msg2),
            )
        },
        |_| {},
    )
    .await
    .expect("recovery sign session");
    let SessionOutput::Signature(sig) = out else {
        panic!("signature")
    };
    let root = rec_accounts[0].master_public_key();
    mpc_core::signature::verify_digest(&root, &mpc_core::DigestKind::Keccak256.digest(&msg), &sig)
        .expect("recovery signature verifies");

    // Policy refusal names the rule, and is audited.
    let e = start_sign(
        &mut client,
        &device,
        &wallet,
        0,
        eip1559([0x11; 20], 1001),
        PayloadKind::EthereumTransaction,
    )
    .await
    .expect_err("policy");
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(
        e.message().contains("max_value_per_tx_wei"),
        "{}",
        e.message()
    );
    // The code and the rule travel in google.rpc.ErrorInfo, not in the text.
    let remote = RemoteError::from(&e);
    assert_eq!(remote.code, ErrorCode::PolicyDenied, "{remote}");
    assert_eq!(remote.rule.as_deref(), Some("max_value_per_tx_wei"));
    assert!(!remote.retryable);
    assert!(e.metadata().get("x-presignature-error").is_none());

    // Wrong credential: recovery's key claiming to be the device.
    let e = start_sign(
        &mut client,
        &recovery,
        &wallet,
        0,
        b"x".to_vec(),
        PayloadKind::Raw,
    )
    .await
    .expect_err("wrong key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let remote = RemoteError::from(&e);
    assert_eq!(
        (remote.code, remote.party),
        (ErrorCode::Unauthorized, Some(0))
    );

    // Replayed StartSign.
    let mut req = pb::StartSignRequest {
        auth: None,
        account_id: "account-0".into(),
        derivation_path: String::new(),
        preimage: mpc_core::digest::eip191_preimage(b"hello"),
        digest: DigestKind::Keccak256 as i32,
        payload_kind: PayloadKind::EthereumMessage as i32,
        ..Default::default()
    };
    auth::sign_request(&mut req, &device, &me, &wallet, 0).expect("sign");
    client.start_sign(req.clone()).await.expect("first");
    assert_eq!(
        client.start_sign(req).await.expect_err("replay").code(),
        tonic::Code::Unauthenticated
    );

    // Audit log has the decisions and the outcome (written when the cosigner's side of
    // the session ends, after ours).
    eventually(
        "the signed outcome in the audit log",
        Duration::from_secs(30),
        || async { svc.audit().contains("\"outcome\":\"signed\"") },
    )
    .await;
    let audit = svc.audit();
    assert!(audit.contains("\"decision\":\"deny\""), "{audit}");
    assert!(audit.contains("max_value_per_tx_wei"), "{audit}");
    assert!(
        audit.contains("\"outcome\":\"signed\""),
        "{audit}\n{}",
        svc.log()
    );
    drop(gw_proc);
}

/// The gRPC-web trailers of a response body: `name: value` lines of the 0x80 frame.
fn grpc_web_trailers(bytes: &[u8]) -> HashMap<String, String> {
    let mut rest = bytes;
    while rest.len() >= 5 {
        let flag = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let frame = &rest[5..(5 + len).min(rest.len())];
        if flag & 0x80 != 0 {
            return String::from_utf8_lossy(frame)
                .split("\r\n")
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
        }
        rest = &rest[(5 + len).min(rest.len())..];
    }
    HashMap::new()
}

/// Every refusal carries google.rpc.ErrorInfo: over gRPC (tonic) and over gRPC-web (as
/// a browser reads the `grpc-status-details-bin` trailer, in base64). A wallet whose
/// DKG is still running answers ConfirmWallet with `wallet_not_ready`, retryable, and
/// StartSign with `wallet_not_ready`, not retryable; unknown wallets are `not_found`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_error_info_over_grpc_and_grpc_web() {
    let gw = gateway().await;
    // No party ever joins the DKG below; ConfirmWallet does not wait for it.
    let svc = start_service(&gw, "confirm_wait_secs: 0\n", false).await;
    let mut client = svc.client().await;
    let me = cosigner_identity(&mut client).await;
    let (device, recovery, req) = signed_create_request(&me, 1, AccountKind::Hd, "");
    let created = client
        .create_wallet(req)
        .await
        .expect("create")
        .into_inner();
    let wallet = created.wallet_id.clone();

    // ConfirmWallet while the cosigner's DKG runs: retry later.
    for _ in 0..2 {
        let mut confirm = pb::ConfirmWalletRequest {
            auth: None,
            public_keys: HashMap::from([("account-0".to_string(), "02ab".to_string())]),
        };
        auth::sign_request(&mut confirm, &device, &me, &wallet, 0).expect("sign");
        let e = client.confirm_wallet(confirm).await.expect_err("running");
        assert_eq!(e.code(), tonic::Code::Unavailable);
        let remote = RemoteError::from(&e);
        assert_eq!(remote.code, ErrorCode::WalletNotReady, "{remote}");
        assert!(remote.retryable, "a DKG still running is worth a retry");
    }
    // StartSign on it: not ready, and retrying alone does not help.
    let e = start_sign(
        &mut client,
        &recovery,
        &wallet,
        2,
        b"x".to_vec(),
        PayloadKind::Raw,
    )
    .await
    .expect_err("pending");
    let remote = RemoteError::from(&e);
    assert_eq!(
        (remote.code, remote.retryable),
        (ErrorCode::WalletNotReady, false)
    );
    // An unknown wallet.
    let e = start_sign(
        &mut client,
        &device,
        "no-such-wallet",
        0,
        b"x".to_vec(),
        PayloadKind::Raw,
    )
    .await
    .expect_err("unknown");
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert_eq!(RemoteError::from(&e).code, ErrorCode::NotFound);
    // A bad field.
    let mut bad = pb::CreateWalletRequest {
        recovery_identity: recovery.public().to_string(),
        accounts: 0,
        kind: AccountKind::Hd as i32,
        ..Default::default()
    };
    auth::sign_device_request(&mut bad, &device, &me).expect("sign");
    let e = client.create_wallet(bad).await.expect_err("0 accounts");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(RemoteError::from(&e).code, ErrorCode::InvalidInput);

    // The same over gRPC-web, as a browser sees it: the trailers frame holds
    // grpc-status, grpc-message and grpc-status-details-bin (base64).
    let mut list = pb::ListAccountsRequest { auth: None };
    auth::sign_request(&mut list, &device, &me, "no-such-wallet", 0).expect("sign");
    let body = list.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    let http = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("reqwest");
    let resp = http
        .post(format!(
            "{}/wallet.cosigner.v1.Cosigner/ListAccounts",
            svc.url
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", "http://localhost:5173")
        .body(frame)
        .send()
        .await
        .expect("grpc-web request");
    // A trailers-only response carries the trailers as headers; otherwise they come in
    // the body's trailer frame.
    let mut trailers: HashMap<String, String> = resp
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("grpc-"))
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let bytes = resp.bytes().await.expect("body");
    trailers.extend(grpc_web_trailers(&bytes));
    let status: i32 = trailers["grpc-status"].parse().expect("grpc-status");
    assert_eq!(status, tonic::Code::NotFound as i32);
    let details = trailers
        .get("grpc-status-details-bin")
        .expect("grpc-status-details-bin trailer");
    let remote = RemoteError::from_grpc(
        status,
        trailers.get("grpc-message").map_or("", String::as_str),
        details.as_bytes(),
    );
    assert_eq!(remote.code, ErrorCode::NotFound, "{remote}");
}
