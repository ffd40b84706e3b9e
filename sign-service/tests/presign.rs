//! Presignatures against a real `sign-service` process (and `sign-gateway`), the device
//! played in-process: unknown and used ids come back as `presignature_unavailable` with
//! their state in google.rpc.ErrorInfo and the probe consumes nothing; a SIGKILL
//! between the take and the answer never hands a presignature out twice (the binary
//! of `cargo test` has the `test-hooks` feature, whose pause makes the kill land there).

use std::time::{Duration, Instant};

use crate::common::*;
use cosigner_api::pb::{self, DigestKind, PayloadKind};
use cosigner_api::{auth, PresignatureState, RemoteError};
use wallet_types::ErrorCode;

const ACCOUNT: &str = "account-0";

fn sign_req(w: &Wallet, id: &str, msg: &str) -> pb::SignWithPresignatureRequest {
    sign_req_at(w, ACCOUNT, "", id, msg)
}

/// [`sign_req`] for `account` at `path` (empty: the root).
fn sign_req_at(
    w: &Wallet,
    account: &str,
    path: &str,
    id: &str,
    msg: &str,
) -> pb::SignWithPresignatureRequest {
    let mut req = pb::SignWithPresignatureRequest {
        auth: None,
        account_id: account.into(),
        presignature_id: id.into(),
        preimage: mpc_core::digest::eip191_preimage(msg.as_bytes()),
        digest: DigestKind::Keccak256 as i32,
        payload_kind: PayloadKind::EthereumMessage as i32,
        derivation_path: path.into(),
        ..Default::default()
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign");
    req
}

fn code(e: &tonic::Status) -> ErrorCode {
    RemoteError::from(e).code
}

/// An HD account presigns at a BIP-44 path; the cosigner refuses to use that
/// presignature at any other path (the attack: a device asking the policy about one
/// address and signing for another) WITHOUT consuming it, then signs at its path once:
/// the signature verifies against the derived key, not the root. Paths that are not
/// BIP-44 style, an independent account at a path, and one path more than
/// `presign_max_paths_per_account` are refused; PresignPoolStatus reports per path.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hd_presignatures_belong_to_their_path() {
    let gw_proc = gateway().await;
    let (svc, wallets) = start_service_with_dev_wallets(
        &gw_proc,
        "presign_pool_cap: 4\npresign_workers: 1\npresign_max_paths_per_account: 2\n",
        &[mpc_core::AccountKind::Hd],
    )
    .await;
    let mut client = svc.client().await;
    let [w] = one(wallets);
    let path = "m/44/60/0/0/3";
    let parsed = mpc_core::hd::DerivationPath::parse(path).unwrap();
    let half = presign_kept_at(&mut client, &w, ACCOUNT, path).await;
    assert_eq!(half.path(), &parsed);
    let id = half.id.clone();
    let pool3 = pool_at(&mut client, &w, ACCOUNT, path).await.expect("pool");
    assert_eq!(pool3.presignature_ids, vec![id.clone()]);
    assert!(
        pool(&mut client, &w, ACCOUNT).await.is_none(),
        "no root pool"
    );

    // The attack: the same presignature at a sibling path and at the root. Refused
    // (invalid_input, not retryable), not consumed.
    for wrong in ["m/44/60/0/0/4", ""] {
        let e = client
            .sign_with_presignature(sign_req_at(&w, ACCOUNT, wrong, &id, "steal"))
            .await
            .expect_err("a presignature at another path");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        let r = RemoteError::from(&e);
        assert_eq!(r.code, ErrorCode::InvalidInput, "{r}");
        assert!(!r.retryable);
        if !wrong.is_empty() {
            // (At the root, the HD account is refused before the id is looked at.)
            assert!(r.message.contains(path), "{r}");
        }
        assert_eq!(
            pool_at(&mut client, &w, ACCOUNT, path)
                .await
                .expect("pool")
                .presignature_ids,
            vec![id.clone()],
            "refused at {wrong:?} and consumed"
        );
    }

    // At its own path: a partial that combines with the device's into a signature of
    // the DERIVED key.
    let msg = "hd fast path";
    let r = client
        .sign_with_presignature(sign_req_at(&w, ACCOUNT, path, &id, msg))
        .await
        .expect("fast path")
        .into_inner();
    let request = mpc_core::SignRequest {
        preimage: mpc_core::digest::eip191_preimage(msg.as_bytes()),
        digest: mpc_core::DigestKind::Keccak256,
    };
    let child = w.device_accounts[0].public_key_at(&parsed).unwrap();
    let root = w.device_accounts[0].master_public_key();
    let mine = half
        .clone()
        .issue_partial(&request, &parsed)
        .expect("device partial");
    let theirs = mpc_core::presign::partial_from_bytes(&r.partial_signature).unwrap();
    let sig = mpc_core::presign::combine_pair(
        &half.public,
        &[0, 1],
        0,
        mine,
        theirs,
        &request,
        &parsed,
        &child,
    )
    .expect("verifies against the derived key");
    let digest = request.digest_bytes();
    mpc_core::signature::verify_digest(&child, &digest, &sig).expect("derived key");
    assert!(mpc_core::signature::verify_digest(&root, &digest, &sig).is_err());
    // Audited as StartSign at that path: the decision and the outcome name the path.
    let audit = svc.audit();
    for event in ["\"sign_request\"", "\"sign_outcome\""] {
        assert!(
            audit.lines().any(|l| l.contains(event)
                && l.contains(&id)
                && l.contains(&format!("\"path\":\"{path}\""))),
            "no {event} record of {id} at {path}:\n{audit}"
        );
    }
    // The refusals at other paths were not audited as decisions (refused before).
    assert_eq!(
        audit
            .lines()
            .filter(|l| l.contains("\"sign_request\"") && l.contains(&id))
            .count(),
        1
    );
    // Used once: the next ask is refused as used.
    let e = client
        .sign_with_presignature(sign_req_at(&w, ACCOUNT, path, &id, "again"))
        .await
        .expect_err("used");
    assert_eq!(unavailable(&e), Some(PresignatureState::Used));

    // Paths an HD account may not presign at; an independent account at a path.
    for bad in ["", "m/1/2", "m/44/60/0/0"] {
        let mut req = pb::StartPresignRequest {
            auth: None,
            account_id: ACCOUNT.into(),
            count: 1,
            release_ids: Vec::new(),
            derivation_path: bad.into(),
        };
        auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign");
        let e = client.start_presign(req).await.expect_err(bad);
        assert_eq!(code(&e), ErrorCode::InvalidInput, "{bad}: {e:?}");
    }

    // Two paths with a pool (the maximum here): a third is pool_full.
    let a = presign_kept_at(&mut client, &w, ACCOUNT, "m/44/60/0/0/0").await;
    let b = presign_kept_at(&mut client, &w, ACCOUNT, "m/44/60/0/0/1").await;
    let mut req = pb::StartPresignRequest {
        auth: None,
        account_id: ACCOUNT.into(),
        count: 1,
        release_ids: Vec::new(),
        derivation_path: "m/44/60/0/0/2".into(),
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign");
    let e = client.start_presign(req).await.expect_err("third path");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert_eq!(code(&e), ErrorCode::PoolFull);
    let p0 = pool_at(&mut client, &w, ACCOUNT, "m/44/60/0/0/0")
        .await
        .expect("pool 0");
    assert_eq!(p0.presignature_ids, vec![a.id.clone()]);
    let p1 = pool_at(&mut client, &w, ACCOUNT, "m/44/60/0/0/1")
        .await
        .expect("pool 1");
    assert_eq!(p1.presignature_ids, vec![b.id.clone()]);
    drop(svc);
    drop(gw_proc);
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
    let (mut svc, wallets) = start_service_with_dev_wallets(
        &gw_proc,
        "presign_pool_cap: 4\npresign_workers: 1\n",
        &[mpc_core::AccountKind::Independent],
    )
    .await;
    let mut client = svc.client().await;
    let [w] = one(wallets);

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
