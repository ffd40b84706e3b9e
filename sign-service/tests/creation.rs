//! Wallet creation against a real `sign-service` in production mode
//! (`insecure_dev_primes: false`, a prime set stocked in its pool): peers whose Paillier
//! moduli are built from the repository's PUBLIC test primes (anyone can factor them,
//! so their Paillier layer protects nothing) are refused before anything is committed.

use std::time::Duration;

use crate::common::*;
use cosigner_api::auth;
use cosigner_api::pb;
use cosigner_api::RemoteError;
use gateway_client::GatewayClient;
use mpc_core::primes::dev_fixture_primes;
use mpc_core::{Session, SessionOutput};
use mpc_party::run_session;
use mpc_wire::{IdentityKey, Roster};
use wallet_types::ErrorCode;

/// One party's side of the whole creation (aux info with the public fixture primes,
/// then the keygen), as a device built with them would run it.
async fn party(
    gw: GatewayClient,
    created: pb::CreateWalletResponse,
    me: u16,
    id: IdentityKey,
    roster: Roster,
) {
    let aux_room = created.aux_info.clone().expect("aux room");
    let sid = aux_room.session_id.clone().into_bytes();
    let primes = dev_fixture_primes()[usize::from(me)]
        .to_pregenerated()
        .expect("primes");
    let out = run_session(
        ctx(&gw, &aux_room, me, &id, &roster),
        move || Session::aux_info(&sid, me, 3, primes),
        |_| {},
    )
    .await;
    assert!(matches!(out, Ok(SessionOutput::AuxInfo(_))), "aux info");
    for a in &created.accounts {
        let room = a.keygen.clone().expect("keygen room");
        let sid = room.session_id.clone().into_bytes();
        let _ = run_session(
            ctx(&gw, &room, me, &id, &roster),
            move || Session::keygen(&sid, me, 3, 2),
            |_| {},
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wallet_creation_refuses_peers_with_public_dev_primes() {
    let gw_proc = gateway().await;
    // Production mode: the cosigner's own primes come from its pool.
    let svc = start_service(&gw_proc, "confirm_wait_secs: 5\n", true).await;
    let mut client = svc.client().await;
    let me = cosigner_identity(&mut client).await;
    let OpenedCreation {
        device,
        recovery,
        created,
        roster,
        gw,
    } = open_creation(&mut client, &me, "dev primes").await;
    // The peers run everything; they are not awaited (a refused creation leaves their
    // keygen waiting for the cosigner).
    let peers = [
        tokio::spawn(party(
            gw.clone(),
            created.clone(),
            0,
            device.clone(),
            roster.clone(),
        )),
        tokio::spawn(party(gw, created.clone(), 2, recovery, roster)),
    ];

    // The cosigner must refuse before it compares the keys.
    let e = creation_outcome(
        &mut client,
        &device,
        &me,
        &created.wallet_id,
        Duration::from_secs(180),
        "the creation never finished",
    )
    .await;
    assert!(
        e.message().contains("public test primes"),
        "the creation was not refused for its public primes: {e:?}"
    );
    let remote = RemoteError::from(&e);
    assert_eq!(remote.code, ErrorCode::SessionFailed, "{remote}");
    assert!(
        matches!(remote.party, Some(0) | Some(2)),
        "the refusal names the peer: {remote}"
    );
    // Nothing was committed: the wallet is unknown now.
    let mut list = pb::ListAccountsRequest { auth: None };
    auth::sign_request(&mut list, &device, &me, &created.wallet_id, 0).expect("sign");
    let e = client.list_accounts(list).await.expect_err("not committed");
    assert_eq!(RemoteError::from(&e).code, ErrorCode::NotFound);
    let audit = svc.audit();
    assert!(audit.contains("public test primes"), "{audit}");
    for p in peers {
        p.abort();
    }
    drop(gw_proc);
}
