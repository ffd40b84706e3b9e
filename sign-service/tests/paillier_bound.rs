//! Issue 14, item 3, against real processes: a peer whose aux-info decommitment carries
//! a ring-Pedersen modulus N̂ of two million bits (with a matching commitment, an honest
//! echo, and proof numbers that pass the library's domain checks) would keep the
//! cosigner computing for hours (128 exponentiations modulo N̂) and hold its session
//! permit all along. The cosigner refuses the message before its protocol sees it,
//! names the party, and its creation slot is free again at once.

use std::time::{Duration, Instant};

use crate::common::*;
use cosigner_api::pb;
use cosigner_api::RemoteError;
use futures_util::StreamExt;
use gateway_client::GatewayClient;
use mpc_core::hostile::{aux_info_echo, aux_info_round, is_aux_info_round1, oversized_aux_info};
use mpc_core::primes::dev_fixture_primes;
use mpc_core::Session;
use mpc_party::run_session;
use mpc_wire::{IdentityKey, Opened, Roster, SessionId};
use wallet_types::ErrorCode;

/// Party 2 as an attacker: commits to an aux-info decommitment with an N̂ of
/// `hat_n_bits`, sends the honest echo of everyone's commitments, then the decommitment.
async fn hostile_party(
    gw: GatewayClient,
    room: pb::SessionRoom,
    id: IdentityKey,
    roster: Roster,
    hat_n_bits: u64,
) {
    let sid = room.session_id.clone();
    let token = (!room.room_token.is_empty()).then_some(room.room_token.as_str());
    let mut channel =
        mpc_wire::Channel::new(SessionId::new(sid.clone()).expect("sid"), 2, id, roster)
            .expect("channel");
    let hostile =
        oversized_aux_info(sid.as_bytes(), 2, 3, 3072, hat_n_bits, 4096).expect("hostile");
    let post = |channel: &mut mpc_wire::Channel, payload: &[u8]| {
        let round = aux_info_round(payload).expect("round");
        channel.seal(None, round, payload).expect("seal")
    };
    let body = post(&mut channel, &hostile.round1);
    gw.broadcast(&room.room, token, &body)
        .await
        .expect("post round 1");
    let mut round1: [Option<Vec<u8>>; 2] = [None, None];
    let mut stream = Box::pin(gw.subscribe(&room.room, token, None));
    while let Some(item) = stream.next().await {
        let (_, body) = item.expect("gateway");
        if let Ok(Opened::Message(m)) = channel.open(&body) {
            if m.broadcast && m.sender < 2 && is_aux_info_round1(&m.payload) {
                round1[usize::from(m.sender)] = Some(m.payload);
            }
        }
        if let [Some(a), Some(b)] = &round1 {
            let echo = aux_info_echo(
                sid.as_bytes(),
                3,
                &[a.clone(), b.clone(), hostile.round1.clone()],
            )
            .expect("echo");
            let body = post(&mut channel, &echo);
            gw.broadcast(&room.room, token, &body)
                .await
                .expect("post echo");
            let body = post(&mut channel, &hostile.round2);
            assert!(
                body.len() < 1024 * 1024,
                "one gateway message: {}",
                body.len()
            );
            gw.broadcast(&room.room, token, &body)
                .await
                .expect("post round 2");
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_with_an_oversized_ring_pedersen_modulus_is_refused_and_frees_the_slot() {
    let gw_proc = gateway().await;
    // One session slot and one creation slot: the attack must not keep either.
    let svc = start_service(
        &gw_proc,
        "confirm_wait_secs: 5\nmax_concurrent_sessions: 1\nmax_concurrent_creations: 1\n",
        false,
    )
    .await;
    let mut client = svc.client().await;
    let audience = cosigner_identity(&mut client).await;
    let OpenedCreation {
        device,
        recovery,
        created,
        roster,
        gw,
    } = open_creation(&mut client, &audience, "hostile").await;
    let aux_room = created.aux_info.clone().expect("aux room");
    // The honest device runs its aux info (it fails or waits; not awaited).
    let sid = aux_room.session_id.clone().into_bytes();
    let primes = dev_fixture_primes()[0].to_pregenerated().expect("primes");
    let device_side = tokio::spawn(run_session(
        ctx(&gw, &aux_room, 0, &device, &roster),
        move || Session::aux_info(&sid, 0, 3, primes),
        |_| {},
    ));
    let attacker = tokio::spawn(hostile_party(
        gw.clone(),
        aux_room.clone(),
        recovery.clone(),
        roster.clone(),
        2_000_000,
    ));

    let started = Instant::now();
    let within = Duration::from_secs(90);
    let e = creation_outcome(
        &mut client,
        &device,
        &audience,
        &created.wallet_id,
        within,
        &format!(
            "the cosigner still computes {within:?} after party 2's oversized modulus: \
             the attack succeeds"
        ),
    )
    .await;
    let remote = RemoteError::from(&e);
    assert_eq!(remote.code, ErrorCode::SessionFailed, "{remote}");
    assert_eq!(
        remote.party,
        Some(2),
        "the refusal names the attacker: {remote}"
    );
    assert!(
        e.message().contains("ring-Pedersen modulus"),
        "refused for its modulus: {e:?}"
    );
    eprintln!("refused after {:?}", started.elapsed());
    attacker.await.expect("the attacker ran");
    device_side.abort();

    // The slot is free: another creation (which takes the one creation slot once its
    // peers are live) runs to its end.
    let w = create_wallet(&mut client, 1, mpc_core::AccountKind::Independent).await;
    assert_eq!(
        w.device_accounts.len(),
        1,
        "the creation slot is free again"
    );
    let audit = svc.audit();
    assert!(audit.contains("ring-Pedersen modulus"), "{audit}");
    drop(gw_proc);
}
