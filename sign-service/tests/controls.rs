//! Issue 17 item 3, "Revoke and freeze", as attacks with real processes (gateway +
//! cosigner; the device and recovery parties in-process):
//!
//! (a) a stolen device after RevokeDevice (signed by the recovery identity): every
//!     request it signs is refused at once (`unauthorized`, `identity: revoked`), its
//!     presignature on the cosigner is gone (its kept half cannot sign), across a
//!     restart; the recovery identity still works; a replayed revocation is refused;
//! (b) FreezeWallet by the device: nothing signs or presigns (`wallet_not_ready`,
//!     `wallet: frozen`) while reads answer; the device cannot unfreeze; the recovery
//!     identity's unfreeze takes effect only after `unfreeze_delay_secs`, and a freeze
//!     in that window cancels it; then signing works again. Every change is audited.

use std::time::Duration;

use crate::common::*;
use cosigner_api::auth::{self, AuthenticatedRequest};
use cosigner_api::pb::{self, DigestKind, PayloadKind};
use cosigner_api::{RemoteError, WalletRefusal};
use mpc_core::AccountKind;
use mpc_wire::IdentityKey;
use tonic::transport::Channel;
use wallet_types::ErrorCode;

type Client = cosigner_api::pb::cosigner_client::CosignerClient<Channel>;

fn signed<R: AuthenticatedRequest>(mut req: R, w: &Wallet, key: &IdentityKey, party: u16) -> R {
    auth::sign_request(&mut req, key, &w.cosigner, &w.id, party).expect("sign");
    req
}

fn revoke(w: &Wallet, key: &IdentityKey, party: u16, reason: &str) -> pb::RevokeDeviceRequest {
    signed(
        pb::RevokeDeviceRequest {
            auth: None,
            reason: reason.into(),
        },
        w,
        key,
        party,
    )
}

fn freeze(w: &Wallet, key: &IdentityKey, party: u16) -> pb::FreezeWalletRequest {
    signed(
        pb::FreezeWalletRequest {
            auth: None,
            reason: "phone lost on the train".into(),
        },
        w,
        key,
        party,
    )
}

fn unfreeze(w: &Wallet, key: &IdentityKey, party: u16) -> pb::UnfreezeWalletRequest {
    signed(pb::UnfreezeWalletRequest { auth: None }, w, key, party)
}

fn list(w: &Wallet, key: &IdentityKey, party: u16) -> pb::ListAccountsRequest {
    signed(pb::ListAccountsRequest { auth: None }, w, key, party)
}

fn presign_req(w: &Wallet, key: &IdentityKey, party: u16) -> pb::StartPresignRequest {
    signed(
        pb::StartPresignRequest {
            auth: None,
            account_id: "account-0".into(),
            count: 1,
            ..Default::default()
        },
        w,
        key,
        party,
    )
}

/// A refusal: its gRPC code and decoded error.
fn refusal(s: tonic::Status) -> (tonic::Code, RemoteError) {
    (s.code(), RemoteError::from(&s))
}

/// The device's refusals once revoked: every RPC, by code and metadata.
async fn assert_revoked(client: &mut Client, w: &Wallet, pool_id: &str) {
    let mut checks: Vec<(&str, tonic::Status)> = Vec::new();
    checks.push((
        "StartSign",
        client
            .start_sign(message_sign_request(w, b"a stolen device signs"))
            .await
            .expect_err("StartSign by a revoked device"),
    ));
    let mut pooled = pb::SignWithPresignatureRequest {
        auth: None,
        account_id: "account-0".into(),
        presignature_id: pool_id.into(),
        preimage: mpc_core::digest::eip191_preimage(b"with the kept half"),
        digest: DigestKind::Keccak256 as i32,
        payload_kind: PayloadKind::EthereumMessage as i32,
        ..Default::default()
    };
    auth::sign_request(&mut pooled, &w.device, &w.cosigner, &w.id, 0).expect("sign");
    checks.push((
        "SignWithPresignature",
        client
            .sign_with_presignature(pooled)
            .await
            .expect_err("SignWithPresignature by a revoked device"),
    ));
    checks.push((
        "StartPresign",
        client
            .start_presign(presign_req(w, &w.device, 0))
            .await
            .expect_err("StartPresign"),
    ));
    checks.push((
        "ListAccounts",
        client
            .list_accounts(list(w, &w.device, 0))
            .await
            .expect_err("ListAccounts"),
    ));
    checks.push((
        "FreezeWallet",
        client
            .freeze_wallet(freeze(w, &w.device, 0))
            .await
            .expect_err("FreezeWallet"),
    ));
    checks.push((
        "RevokeDevice",
        client
            .revoke_device(revoke(w, &w.device, 0, ""))
            .await
            .expect_err("RevokeDevice"),
    ));
    for (rpc, status) in checks {
        let (grpc, e) = refusal(status);
        assert_eq!(grpc, tonic::Code::PermissionDenied, "{rpc}: {e}");
        assert_eq!(e.code, ErrorCode::Unauthorized, "{rpc}: {e}");
        assert_eq!(
            e.wallet_refusal,
            Some(WalletRefusal::IdentityRevoked),
            "{rpc}: {e}"
        );
        assert_eq!(e.party, Some(0), "{rpc}");
        assert!(!e.retryable, "{rpc}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_device_is_refused_at_once_and_its_presignatures_are_gone() {
    let gw = gateway().await;
    let (mut svc, wallets) =
        start_service_with_dev_wallets(&gw, "", &[AccountKind::Independent]).await;
    let [w] = one(wallets);
    let mut client = svc.client().await;
    // The thief's device holds a presignature with the cosigner.
    let kept = presign_one(&mut client, &w, "account-0").await;

    // Bad input first: a reason too long, or with control characters; nothing changes.
    for bad in ["x".repeat(201), "line\nbreak".to_string()] {
        let e = client
            .revoke_device(revoke(&w, &w.recovery, 2, &bad))
            .await
            .expect_err("a bad reason");
        assert_eq!(RemoteError::from(&e).code, ErrorCode::InvalidInput, "{e:?}");
    }
    // A stranger's signature (not a party of the wallet) revokes nothing.
    let stranger = IdentityKey::generate().expect("id");
    let e = client
        .revoke_device(revoke(&w, &stranger, 2, "hostile"))
        .await
        .expect_err("a stranger");
    assert_eq!(RemoteError::from(&e).code, ErrorCode::Unauthorized);
    assert_eq!(RemoteError::from(&e).wallet_refusal, None);

    // The owner revokes the lost device with the recovery identity.
    let req = revoke(&w, &w.recovery, 2, "phone stolen");
    let out = client
        .revoke_device(req.clone())
        .await
        .expect("RevokeDevice by the recovery identity")
        .into_inner()
        .controls
        .expect("controls");
    assert_eq!(out.revoked_parties, vec![0]);
    assert!(!out.frozen);
    // The same request again (a replay): refused, nothing changes.
    let e = client.revoke_device(req).await.expect_err("a replay");
    assert_eq!(RemoteError::from(&e).code, ErrorCode::Unauthorized);

    assert_revoked(&mut client, &w, &kept).await;

    // The recovery identity still acts: reads, and the revocation again is a no-op.
    let listed = client
        .list_accounts(list(&w, &w.recovery, 2))
        .await
        .expect("ListAccounts by the recovery identity")
        .into_inner();
    assert_eq!(listed.controls.expect("controls").revoked_parties, vec![0]);
    client
        .revoke_device(revoke(&w, &w.recovery, 2, "again"))
        .await
        .expect("revoking a revoked device again");

    // Audited: the revocation with its reason and the deleted presignature.
    let audit = svc.audit();
    let line = audit
        .lines()
        .find(|l| l.contains("\"event\":\"device_revoked\""))
        .expect("a device_revoked record");
    assert!(line.contains("\"party\":2"), "{line}");
    assert!(line.contains("phone stolen"), "{line}");
    assert!(line.contains("1 presignatures deleted"), "{line}");
    assert!(
        audit.contains("\"outcome\":\"unchanged\""),
        "the second revocation is audited as unchanged"
    );

    // Persistent: after a restart the device is still refused, the presignature gone.
    svc.restart(&[]).await;
    let mut client = svc.client().await;
    assert_revoked(&mut client, &w, &kept).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_wallet_signs_nothing_until_the_recovery_unfreeze_takes_effect() {
    const DELAY_MS: u64 = 3_000;
    let gw = gateway().await;
    let (svc, wallets) = start_service_with_dev_wallets(
        &gw,
        &format!("unfreeze_delay_secs: {}\n", DELAY_MS / 1000),
        &[AccountKind::Independent],
    )
    .await;
    let [w] = one(wallets);
    let mut client = svc.client().await;

    // Unfreezing a wallet that is not frozen changes nothing.
    let c = client
        .unfreeze_wallet(unfreeze(&w, &w.recovery, 2))
        .await
        .expect("unfreeze of a wallet not frozen")
        .into_inner()
        .controls
        .expect("controls");
    assert!(!c.frozen && c.unfreeze_at_ms == 0);

    // The device freezes the wallet.
    let c = client
        .freeze_wallet(freeze(&w, &w.device, 0))
        .await
        .expect("FreezeWallet by the device")
        .into_inner()
        .controls
        .expect("controls");
    assert!(c.frozen && c.frozen_at_ms > 0 && c.unfreeze_at_ms == 0);

    let frozen = |s: tonic::Status, want_at: Option<u64>| {
        let (grpc, e) = refusal(s);
        assert_eq!(grpc, tonic::Code::FailedPrecondition, "{e}");
        assert_eq!(e.code, ErrorCode::WalletNotReady, "{e}");
        assert_eq!(
            e.wallet_refusal,
            Some(WalletRefusal::Frozen {
                unfreeze_at_ms: want_at
            }),
            "{e}"
        );
    };
    // Nothing signs or presigns, for either party.
    frozen(
        client
            .start_sign(message_sign_request(&w, b"while frozen"))
            .await
            .expect_err("StartSign while frozen"),
        None,
    );
    frozen(
        client
            .start_presign(presign_req(&w, &w.device, 0))
            .await
            .expect_err("StartPresign while frozen"),
        None,
    );
    frozen(
        client
            .start_presign(presign_req(&w, &w.recovery, 2))
            .await
            .expect_err("StartPresign by the recovery party while frozen"),
        None,
    );
    // Reads answer, with the controls.
    let listed = client
        .list_accounts(list(&w, &w.device, 0))
        .await
        .expect("ListAccounts while frozen")
        .into_inner();
    assert!(listed.controls.expect("controls").frozen);

    // The device (perhaps in a thief's hands) cannot unfreeze.
    let (grpc, e) = refusal(
        client
            .unfreeze_wallet(unfreeze(&w, &w.device, 0))
            .await
            .expect_err("UnfreezeWallet by the device"),
    );
    assert_eq!(grpc, tonic::Code::PermissionDenied, "{e}");
    assert_eq!(e.code, ErrorCode::Unauthorized, "{e}");

    // The recovery identity asks; the freeze holds until the delay passed...
    let c = client
        .unfreeze_wallet(unfreeze(&w, &w.recovery, 2))
        .await
        .expect("UnfreezeWallet by the recovery identity")
        .into_inner()
        .controls
        .expect("controls");
    assert!(c.frozen);
    let at = c.unfreeze_at_ms;
    assert!(at >= c.frozen_at_ms + DELAY_MS, "{c:?}");
    frozen(
        client
            .start_sign(message_sign_request(&w, b"before the delay"))
            .await
            .expect_err("StartSign before the unfreeze takes effect"),
        Some(at),
    );
    // ...and the owner's freeze in that window cancels it.
    let c = client
        .freeze_wallet(freeze(&w, &w.device, 0))
        .await
        .expect("freeze again")
        .into_inner()
        .controls
        .expect("controls");
    assert!(c.frozen && c.unfreeze_at_ms == 0, "{c:?}");
    tokio::time::sleep(Duration::from_millis(DELAY_MS + 300)).await;
    frozen(
        client
            .start_sign(message_sign_request(&w, b"the unfreeze was cancelled"))
            .await
            .expect_err("still frozen"),
        None,
    );

    // A new unfreeze, past its delay: the wallet signs again.
    let at = client
        .unfreeze_wallet(unfreeze(&w, &w.recovery, 2))
        .await
        .expect("unfreeze")
        .into_inner()
        .controls
        .expect("controls")
        .unfreeze_at_ms;
    eventually("the unfreeze takes effect", Duration::from_secs(30), || {
        let mut c = client.clone();
        let req = list(&w, &w.device, 0);
        async move {
            !c.list_accounts(req)
                .await
                .map(|r| r.into_inner().controls.is_some_and(|c| c.frozen))
                .unwrap_or(true)
        }
    })
    .await;
    assert!(cosigner_api::auth::now_ms() >= at);
    full_sign(&mut client, &w, "thawed").await;

    // Audited, each with its party.
    let audit = svc.audit();
    for (event, party) in [("wallet_frozen", 0), ("wallet_unfreeze_requested", 2)] {
        assert!(
            audit
                .lines()
                .any(|l| l.contains(&format!("\"event\":\"{event}\""))
                    && l.contains(&format!("\"party\":{party}"))),
            "{event} by {party}: {audit}"
        );
    }
}
