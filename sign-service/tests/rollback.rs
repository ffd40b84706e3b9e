//! The restore attack on presignatures, with real processes (`sign-gateway`,
//! `sign-service`; the device played in-process): the used-id table lives in the key
//! store, so restoring an older copy of it makes a used presignature available again,
//! and two partial signatures from one presignature on different messages give the
//! device the whole private key. The rollback anchor (a file outside the store) stops
//! the second partial; `sign-service store purge-presignatures` is the way back.
//!
//! The guard can be switched off only in builds with the `test-hooks` feature (the
//! binary `cargo test` starts); that run shows the attack is real: the test recovers
//! the private key from the two signatures and checks it against the account key.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use cosigner_api::pb::cosigner_client::CosignerClient;
use cosigner_api::pb::{self, DigestKind, PayloadKind};
use cosigner_api::{auth, RemoteError};
use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::sec1::ToEncodedPoint;
use k256::{ProjectivePoint, Scalar};
use mpc_core::presign::StoredPresignature;
use tonic::transport::Channel;
use wallet_types::ErrorCode;

const ACCOUNT: &str = "account-0";
const GUARD_OFF: (&str, &str) = ("SIGN_SERVICE_TEST_DISABLE_ROLLBACK_GUARD", "1");

/// SignWithPresignature for an EIP-191 message: the cosigner's partial signature.
async fn cosigner_partial(
    client: &mut CosignerClient<Channel>,
    w: &Wallet,
    id: &str,
    preimage: &[u8],
) -> Result<Vec<u8>, tonic::Status> {
    let mut req = pb::SignWithPresignatureRequest {
        auth: None,
        account_id: ACCOUNT.into(),
        presignature_id: id.into(),
        preimage: preimage.to_vec(),
        digest: DigestKind::Keccak256 as i32,
        payload_kind: PayloadKind::EthereumMessage as i32,
        derivation_path: String::new(),
        ..Default::default()
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign");
    client
        .sign_with_presignature(req)
        .await
        .map(|r| r.into_inner().partial_signature)
}

/// The device's side, as the client does: its own partial from its half, combined
/// with the cosigner's (each checked against its commitment), verified against the
/// account key. Returns (r, s) and the digest as scalars.
fn combine(
    w: &Wallet,
    half: &StoredPresignature,
    theirs: &[u8],
    preimage: &[u8],
) -> (Scalar, Scalar, Scalar) {
    let request = mpc_core::SignRequest {
        preimage: preimage.to_vec(),
        digest: mpc_core::DigestKind::Keccak256,
    };
    let root = mpc_core::hd::DerivationPath::root();
    let mine = half
        .clone()
        .issue_partial(&request, &root)
        .expect("root presignature");
    let theirs = mpc_core::presign::partial_from_bytes(theirs).expect("partial");
    let pk = w.device_accounts[0].master_public_key();
    let sig = mpc_core::presign::combine_pair(
        &half.public,
        &[0, 1],
        0,
        mine,
        theirs,
        &request,
        &root,
        &pk,
    )
    .expect("the combined signature verifies");
    let (r, s) = mpc_core::signature::to_k256(&sig)
        .expect("k256 signature")
        .split_scalars();
    let digest = mpc_core::DigestKind::Keccak256.digest(preimage);
    let z = <Scalar as Reduce<k256::U256>>::reduce_bytes(k256::FieldBytes::from_slice(&digest));
    (*r, *s, z)
}

/// x from two ECDSA signatures sharing their nonce (s normalised to low-s, so each
/// sign of s2 relative to s1 is tried): k = (z1 − z2)/(s1 − s2), x = (s1·k − z1)/r.
/// Returns x only if x·G is the account's public key.
fn recover_key(w: &Wallet, a: (Scalar, Scalar, Scalar), b: (Scalar, Scalar, Scalar)) -> Scalar {
    let (r1, s1, z1) = a;
    let (r2, s2, z2) = b;
    assert_eq!(r1, r2, "one presignature, one nonce: the same r");
    let pk = w.device_accounts[0].master_public_key().to_bytes(true);
    for s2 in [s2, -s2] {
        let Some(inv) = Option::<Scalar>::from((s1 - s2).invert()) else {
            continue;
        };
        let k = (z1 - z2) * inv;
        let x = (s1 * k - z1) * Option::<Scalar>::from(r1.invert()).expect("r ≠ 0");
        let point = (ProjectivePoint::GENERATOR * x).to_affine();
        if point.to_encoded_point(true).as_bytes() == pk.as_ref() {
            return x;
        }
    }
    panic!("no private key recovered")
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} → {}: {e}", from.display(), to.display()));
}

fn purge(svc: &Service) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sign-service"))
        .arg("--config")
        .arg(&svc.cfg)
        .arg("--insecure-dev-store-key")
        .args(["store", "purge-presignatures"])
        .env_remove("SIGN_SERVICE_STORE_KEY")
        .env_remove("SIGN_SERVICE_STORE_PASSPHRASE")
        .output()
        .expect("run sign-service store purge-presignatures")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restoring_a_store_backup_cannot_reuse_a_presignature() {
    let gw = gateway().await;
    let (mut svc, wallets) = start_service_with_dev_wallets(
        &gw,
        "presign_pool_cap: 4\npresign_workers: 1\n",
        &[mpc_core::AccountKind::Independent],
    )
    .await;
    let mut client = svc.client().await;
    let [w] = one(wallets);
    let half = presign_kept(&mut client, &w, ACCOUNT).await;
    let id = half.id.clone();

    // The operator's backup, taken with the service stopped.
    let store = svc.dir.0.join("store.redb");
    let backup = svc.dir.0.join("store.redb.backup");
    svc.kill();
    copy(&store, &backup);
    svc.restart(&[]).await;
    let mut client = svc.client().await;

    // The presignature is used once, legitimately.
    let m1 = mpc_core::digest::eip191_preimage(b"pay alice 1 ETH");
    let p1 = cosigner_partial(&mut client, &w, &id, &m1)
        .await
        .expect("first use");
    let sig1 = combine(&w, &half, &p1, &m1);

    // The attack, with the guard switched off (test builds only): the backup is
    // restored and the device asks again with the same presignature.
    let m2 = mpc_core::digest::eip191_preimage(b"pay mallory everything");
    svc.kill();
    copy(&backup, &store);
    svc.restart(&[GUARD_OFF]).await;
    let mut client = svc.client().await;
    let p2 = cosigner_partial(&mut client, &w, &id, &m2)
        .await
        .expect("second use of the restored presignature (guard off)");
    let sig2 = combine(&w, &half, &p2, &m2);
    let x = recover_key(&w, sig1, sig2);
    eprintln!(
        "guard off: the device recovered the account's private key ({}…) from two signatures",
        &hex::encode(x.to_bytes())[..8]
    );

    // The same restore with the guard on (every build): the anchor is ahead of the
    // store, presignature signing is refused and the second partial never leaves.
    svc.kill();
    copy(&backup, &store);
    svc.restart(&[]).await;
    let mut client = svc.client().await;
    let e = cosigner_partial(&mut client, &w, &id, &m2)
        .await
        .expect_err("a presignature from a restored store was used again");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    let remote = RemoteError::from(&e);
    assert_eq!(remote.code, ErrorCode::PresignatureUnavailable, "{remote}");
    assert!(!remote.retryable);
    assert!(e.message().contains("purge-presignatures"), "{e:?}");
    let log = svc.log();
    assert!(
        log.lines()
            .any(|l| l.contains("rollback") && l.contains("older than")),
        "no rollback error in the log:\n{log}"
    );
    // Refilling is refused too (the pool would only fill with unusable halves).
    let mut req = pb::StartPresignRequest {
        auth: None,
        account_id: ACCOUNT.into(),
        count: 1,
        release_ids: Vec::new(),
        derivation_path: String::new(),
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign");
    let e = client.start_presign(req).await.expect_err("refill");
    assert_eq!(
        RemoteError::from(&e).code,
        ErrorCode::PresignatureUnavailable
    );

    // The runbook: stop, purge, start. Every old presignature is gone; new ones work.
    svc.kill();
    let out = purge(&svc);
    assert!(
        out.status.success(),
        "purge failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("purge prints one JSON line");
    assert_eq!(report["purged"], 1, "{report}");
    svc.restart(&[]).await;
    let mut client = svc.client().await;
    let e = cosigner_partial(&mut client, &w, &id, &m2)
        .await
        .expect_err("purged");
    assert_eq!(
        RemoteError::from(&e).presignature,
        Some(cosigner_api::PresignatureState::Used)
    );
    let fresh = presign_kept(&mut client, &w, ACCOUNT).await;
    let m3 = mpc_core::digest::eip191_preimage(b"after the purge");
    let p3 = cosigner_partial(&mut client, &w, &fresh.id, &m3)
        .await
        .expect("a fresh presignature after the purge");
    combine(&w, &fresh, &p3, &m3);
    assert!(svc.audit().contains("presign_purge"));
}
