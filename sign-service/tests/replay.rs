//! Issue 14 item 5, "Replay cache can be filled": attacks on the cosigner's request
//! replay protection with real processes (gateway + cosigner).
//!
//! (a) a flood of CreateWallet requests that are refused (badly signed, or validly
//!     signed by throwaway identities with invalid fields) with fresh nonces does not
//!     make another identity's valid request fail;
//! (b) one identity at its bound (`replay_nonces_per_identity`) does not affect
//!     another identity;
//! (c) a valid request captured before a cosigner restart is refused after it (same
//!     store);
//! (d) a request signed for another cosigner identity is refused (`unauthorized`).

use crate::common::*;
use cosigner_api::auth;
use cosigner_api::pb::{self, AccountKind};
use cosigner_api::RemoteError;
use mpc_wire::IdentityKey;
use wallet_types::ErrorCode;

/// The bound of these tests (small: the attack is affordable in a test).
const BOUND: usize = 8;

fn yaml() -> String {
    format!("replay_nonces_per_identity: {BOUND}\n")
}

fn list(w: &Wallet, key: &IdentityKey, party: u16) -> pb::ListAccountsRequest {
    let mut req = pb::ListAccountsRequest { auth: None };
    auth::sign_request(&mut req, key, &w.cosigner, &w.id, party).expect("sign");
    req
}

fn code(e: &tonic::Status) -> ErrorCode {
    RemoteError::from(e).code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_create_wallet_requests_do_not_fill_the_replay_cache() {
    let gw = gateway().await;
    let svc = start_service(&gw, &yaml(), false).await;
    let mut client = svc.client().await;
    let me = cosigner_identity(&mut client).await;
    // Ten times the bound of requests that are refused, each with a fresh nonce, from
    // a few throwaway identities (so a per-identity bound alone would not explain the
    // outcome) and from one identity.
    let flooder = IdentityKey::generate().expect("id");
    for i in 0..(10 * BOUND) {
        let (_, recovery, mut req) = signed_create_request(&me, 1, AccountKind::Hd, "");
        if i % 2 == 0 {
            // Validly signed, invalid field (0 accounts): refused after the signature.
            req.accounts = 0;
            let key = if i % 4 == 0 {
                flooder.clone()
            } else {
                IdentityKey::generate().expect("id")
            };
            auth::sign_device_request(&mut req, &key, &me).expect("sign");
            let e = client.create_wallet(req).await.expect_err("0 accounts");
            assert_eq!(code(&e), ErrorCode::InvalidInput, "{e:?}");
        } else {
            // Badly signed.
            req.recovery_identity = recovery.public().to_string();
            req.signature[0] ^= 1;
            let e = client.create_wallet(req).await.expect_err("bad signature");
            assert_eq!(code(&e), ErrorCode::Unauthorized, "{e:?}");
        }
    }
    // The flooder itself is not locked out either: its refused requests took no space.
    let mut req = pb::CreateWalletRequest {
        recovery_identity: IdentityKey::generate().expect("id").public().to_string(),
        accounts: 1,
        kind: AccountKind::Hd as i32,
        ..Default::default()
    };
    auth::sign_device_request(&mut req, &flooder, &me).expect("sign");
    client
        .create_wallet(req)
        .await
        .expect("the flooder's valid request");
    // Another identity: a whole wallet (CreateWallet, ConfirmWallet) and requests.
    let w = create_wallet(&mut client, 1, mpc_core::AccountKind::Hd).await;
    client
        .list_accounts(list(&w, &w.device, 0))
        .await
        .expect("another identity's request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_identity_at_its_bound_does_not_affect_another() {
    let gw = gateway().await;
    let (svc, wallets) =
        start_service_with_dev_wallets(&gw, &yaml(), &[mpc_core::AccountKind::Hd; 2]).await;
    let mut client = svc.client().await;
    let [w, other] = two(wallets);
    // The recovery party (wallet/2) spends its bound...
    for _ in 0..BOUND {
        client
            .list_accounts(list(&w, &w.recovery, 2))
            .await
            .expect("within the bound");
    }
    // ...and is refused one more (rate_limited, retryable) within the window.
    let e = client
        .list_accounts(list(&w, &w.recovery, 2))
        .await
        .expect_err("over the bound");
    assert_eq!(code(&e), ErrorCode::RateLimited, "{e:?}");
    // The device (wallet/0) and a new wallet are not affected.
    for _ in 0..3 {
        client
            .list_accounts(list(&w, &w.device, 0))
            .await
            .expect("the device is not affected");
    }
    client
        .list_accounts(list(&other, &other.recovery, 2))
        .await
        .expect("another wallet is not affected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_accepted_before_a_restart_is_refused_after_it() {
    let gw = gateway().await;
    let (mut svc, wallets) =
        start_service_with_dev_wallets(&gw, &yaml(), &[mpc_core::AccountKind::Hd]).await;
    let mut client = svc.client().await;
    let [w] = one(wallets);
    // Captured on the wire: a ListAccounts and a CreateWallet.
    let captured = list(&w, &w.device, 0);
    let me = cosigner_identity(&mut client).await;
    let (_, _, create) = signed_create_request(&me, 1, AccountKind::Hd, "captured");
    client
        .list_accounts(captured.clone())
        .await
        .expect("the original request");
    client
        .create_wallet(create.clone())
        .await
        .expect("the original CreateWallet");
    let e = client
        .list_accounts(captured.clone())
        .await
        .expect_err("replay before the restart");
    assert_eq!(code(&e), ErrorCode::Unauthorized, "{e:?}");

    // A crash and a restart on the same store, well inside the skew window.
    svc.restart(&[]).await;
    let mut client = svc.client().await;
    let e = client
        .list_accounts(captured)
        .await
        .expect_err("replay after the restart");
    assert_eq!(code(&e), ErrorCode::Unauthorized, "{e:?}");
    assert!(e.message().contains("replayed"), "{}", e.message());
    let e = client
        .create_wallet(create)
        .await
        .expect_err("CreateWallet replayed after the restart");
    assert_eq!(code(&e), ErrorCode::Unauthorized, "{e:?}");
    // Fresh requests still pass.
    client
        .list_accounts(list(&w, &w.device, 0))
        .await
        .expect("a fresh request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_signed_for_another_cosigner_is_refused() {
    let gw = gateway().await;
    let (svc, wallets) =
        start_service_with_dev_wallets(&gw, &yaml(), &[mpc_core::AccountKind::Hd]).await;
    let mut client = svc.client().await;
    let [w] = one(wallets);
    // Another deployment (staging, another operator): another cosigner identity.
    let elsewhere = IdentityKey::generate().expect("id").public();
    let (_, _, create) = signed_create_request(&elsewhere, 1, AccountKind::Hd, "elsewhere");
    let e = client
        .create_wallet(create)
        .await
        .expect_err("a CreateWallet for another cosigner");
    assert_eq!(code(&e), ErrorCode::Unauthorized, "{e:?}");
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert!(
        e.message().contains("signed for cosigner"),
        "{}",
        e.message()
    );
    let mut req = pb::ListAccountsRequest { auth: None };
    auth::sign_request(&mut req, &w.device, &elsewhere, &w.id, 0).expect("sign");
    let e = client
        .list_accounts(req)
        .await
        .expect_err("a ListAccounts for another cosigner");
    assert_eq!(code(&e), ErrorCode::Unauthorized, "{e:?}");
    assert!(
        e.message().contains("signed for cosigner"),
        "{}",
        e.message()
    );
    // The same request for this cosigner passes.
    client
        .list_accounts(list(&w, &w.device, 0))
        .await
        .expect("signed for this cosigner");
}
