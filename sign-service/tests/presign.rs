//! Presignatures against a real `sign-service` process (and `sign-gateway`), the device
//! played in-process: unknown and used ids come back as `presignature_unavailable` with
//! their state in google.rpc.ErrorInfo and the probe consumes nothing; a SIGKILL
//! between the take and the answer never hands a presignature out twice (the binary
//! of `cargo test` has the `test-hooks` feature, whose pause makes the kill land there).

mod common;

use std::time::{Duration, Instant};

use common::*;
use cosigner_api::pb::{self, DigestKind, PayloadKind};
use cosigner_api::{auth, PresignatureState, RemoteError};
use wallet_types::ErrorCode;

const ACCOUNT: &str = "account-0";

fn sign_req(w: &Wallet, id: &str, msg: &str) -> pb::SignWithPresignatureRequest {
    let mut req = pb::SignWithPresignatureRequest {
        auth: None,
        account_id: ACCOUNT.into(),
        presignature_id: id.into(),
        preimage: mpc_core::digest::eip191_preimage(msg.as_bytes()),
        digest: DigestKind::Keccak256 as i32,
        payload_kind: PayloadKind::EthereumMessage as i32,
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign");
    req
}

fn unavailable(e: &tonic::Status) -> Option<PresignatureState> {
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    let r = RemoteError::from(e);
    assert_eq!(r.code, ErrorCode::PresignatureUnavailable, "{r}");
    assert!(!r.retryable);
    r.presignature
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_and_used_presignatures_and_a_crash_after_the_take() {
    let gw_proc = gateway().await;
    let mut svc = start_service(&gw_proc, "presign_pool_cap: 4\npresign_workers: 1\n", false).await;
    let mut client = svc.client().await;
    let w = create_wallet(&mut client, 1, mpc_core::AccountKind::Independent).await;

    let id = presign_one(&mut client, &w, ACCOUNT).await;
    assert_eq!(
        pool_ids(&mut client, &w, ACCOUNT).await.expect("pool"),
        vec![id.clone()]
    );

    // An unknown id, asked twice: refused as unknown, and nothing is consumed.
    let unknown = "0123456789abcdef0123456789abcdef";
    for _ in 0..2 {
        let e = client
            .sign_with_presignature(sign_req(&w, unknown, "unknown"))
            .await
            .expect_err("unknown id");
        assert_eq!(unavailable(&e), Some(PresignatureState::Unknown));
        assert_eq!(
            pool_ids(&mut client, &w, ACCOUNT).await.expect("pool"),
            vec![id.clone()]
        );
    }
    // The real one: a partial signature, once.
    let r = client
        .sign_with_presignature(sign_req(&w, &id, "hello"))
        .await
        .expect("fast path")
        .into_inner();
    assert_eq!(r.partial_signature.len(), 32);
    assert!(pool_ids(&mut client, &w, ACCOUNT)
        .await
        .expect("pool")
        .is_empty());
    // Used now: refused as used, every time (the probe changes nothing).
    for _ in 0..2 {
        let e = client
            .sign_with_presignature(sign_req(&w, &id, "again"))
            .await
            .expect_err("used id");
        assert_eq!(unavailable(&e), Some(PresignatureState::Used));
    }
    // Still unknown (the earlier probes did not record it as used).
    let e = client
        .sign_with_presignature(sign_req(&w, unknown, "unknown"))
        .await
        .expect_err("unknown id");
    assert_eq!(unavailable(&e), Some(PresignatureState::Unknown));

    // SIGKILL between consuming a presignature and answering.
    let victim = presign_one(&mut client, &w, ACCOUNT).await;
    svc.restart(&[("SIGN_SERVICE_TEST_PAUSE_AFTER_PRESIGN_TAKE_MS", "30000")])
        .await;
    let mut client = svc.client().await;
    assert_eq!(
        pool_ids(&mut client, &w, ACCOUNT).await.expect("pool"),
        vec![victim.clone()]
    );
    let mut c = client.clone();
    let req = sign_req(&w, &victim, "crash");
    let call = tokio::spawn(async move { c.sign_with_presignature(req).await.map(|_| ()) });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !svc
        .log()
        .lines()
        .any(|l| l.contains("presignature consumed") && l.contains(&victim))
    {
        assert!(
            Instant::now() < deadline,
            "the cosigner never consumed {victim}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    svc.kill();
    let answered = call.await.expect("join");
    assert!(answered.is_err(), "the cosigner answered despite the kill");
    svc.restart(&[]).await;
    let mut client = svc.client().await;
    assert!(
        !pool_ids(&mut client, &w, ACCOUNT)
            .await
            .expect("pool")
            .contains(&victim),
        "the consumed presignature is back after the restart"
    );
    let e = client
        .sign_with_presignature(sign_req(&w, &victim, "after restart"))
        .await
        .expect_err("consumed before the crash");
    assert_eq!(unavailable(&e), Some(PresignatureState::Used));
    drop(gw_proc);
}
