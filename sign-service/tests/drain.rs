//! Graceful drain of a real `sign-service` process on SIGTERM: new work is refused with
//! the retryable `cosigner_unavailable` and `grpc.health.v1` says `NOT_SERVING` while the
//! API keeps answering; a session still running at `drain_deadline_secs` is stopped with
//! a signed stop notice, which the device's own session code (`mpc_party::PartySession`)
//! turns into `PeerStopped { party: 1, code: "cosigner_unavailable" }` at once, instead
//! of waiting for its deadline; then the process exits cleanly.

use std::time::{Duration, Instant};

use crate::common::*;
use cosigner_api::RemoteError;
use futures_util::StreamExt;
use mpc_party::{PartyError, PartySession};
use mpc_wire::{Roster, SessionId};
use tonic_health::ServingStatus;
use wallet_types::ErrorCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_stops_the_sessions_left_with_a_retryable_notice() {
    let gw = gateway().await;
    let (mut svc, wallets) = start_service_with_dev_wallets(
        &gw,
        "drain_deadline_secs: 3\nhealth_check_interval_secs: 1\nsession_timeout_secs: 120\n",
        &[mpc_core::AccountKind::Independent],
    )
    .await;
    let [w] = one(wallets);
    let mut client = svc.client().await;

    // A signing session the device never takes part in: the cosigner's side waits.
    let req = message_sign_request(&w, b"drained");
    let preimage = req.preimage.clone();
    let started = client
        .start_sign(req)
        .await
        .expect("StartSign")
        .into_inner();
    let room = started.session.expect("room");
    // The device's own session, fed the room's events (it never posts: a device that
    // has not got round to it yet).
    let share = w.device_accounts[0]
        .complete(&w.device_aux)
        .expect("complete");
    let sid = SessionId::new(room.session_id.clone()).expect("sid");
    let sid_bytes = room.session_id.clone().into_bytes();
    let roster = Roster::new([(0, w.device.public()), (1, w.cosigner)]).expect("roster");
    let data = mpc_core::DigestKind::Keccak256.data_to_sign(&preimage);
    let mut device = PartySession::open(sid, 0, w.device.clone(), roster, move || {
        mpc_core::Session::sign(&sid_bytes, vec![0, 1], share, None, data)
    })
    .expect("device session");
    let token = (!room.room_token.is_empty()).then(|| room.room_token.clone());
    let mut events = Box::pin(w.gw.subscribe(&room.room, token.as_deref(), None));

    let pid = svc.child.id().to_string();
    let term = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());

    // Draining: the API answers, new work is refused as retryable, health is
    // NOT_SERVING.
    let mut refused = None;
    for _ in 0..40 {
        match client.start_sign(message_sign_request(&w, b"late")).await {
            Err(e) => {
                refused = Some(e);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let refused = refused.expect("new work was still accepted while draining");
    let remote = RemoteError::from(&refused);
    assert_eq!(remote.code, ErrorCode::CosignerUnavailable, "{refused:?}");
    assert!(remote.retryable);
    assert_eq!(
        grpc_health(&svc.url, "wallet.cosigner.v1.Cosigner").await,
        ServingStatus::NotServing,
        "the API answers while draining, NOT_SERVING"
    );

    // The stop notice reaches the device's session code.
    let stopped = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(item) = events.next().await {
            let (seq, body) = item.expect("room stream");
            if let Err(e) = device.deliver(seq, &body) {
                return e;
            }
        }
        panic!("the room stream ended without a stop notice");
    })
    .await
    .expect("no stop notice: the device would wait for its own deadline");
    match stopped {
        PartyError::PeerStopped { party, code, .. } => {
            assert_eq!(party, 1);
            assert_eq!(code, "cosigner_unavailable");
        }
        other => panic!("expected PeerStopped, got {other:?}"),
    }
    assert!(
        term.elapsed() >= Duration::from_millis(2_500),
        "stopped after {:?}, before the drain deadline (3 s)",
        term.elapsed()
    );

    // Then the process exits, cleanly.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = svc.child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "still running after the drain:\n{}",
            svc.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit {status}:\n{}", svc.log());
    let log = svc.log();
    assert!(log.contains("drain deadline reached"), "{log}");
    assert!(svc.audit().contains("\"sign_outcome\""), "{}", svc.audit());
}
