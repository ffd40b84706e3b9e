//! Presignature workers against a caller that asks for the most sessions and never
//! joins them (real `sign-gateway` and `sign-service` processes; the devices played
//! in-process): another wallet's presignatures still start and finish at once (at most
//! `presign_workers_per_wallet` workers per wallet, round-robin between wallets), and
//! the silent caller's worker comes back after `presign_join_deadline_secs`, long
//! before the session timeout (120 s here).

use std::time::{Duration, Instant};

use crate::common::*;
use cosigner_api::pb::cosigner_client::CosignerClient;
use tonic::transport::Channel;

const ACCOUNT: &str = "account-0";
/// StartPresign's per-request maximum (the default) and the pool cap above it.
const MAX: u32 = 16;
/// How long the honest wallet's device waits for each of its sessions: far below what
/// the silent wallet holds the workers for without the protections (120 s per session).
const HONEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The honest wallet asks for `count` presignatures and runs the device's side of
/// each; returns once the cosigner has stored every one.
async fn honest_refill(client: &mut CosignerClient<Channel>, w: &Wallet, count: u32) {
    let started = Instant::now();
    let granted = start_presign(client, w, ACCOUNT, count)
        .await
        .expect("StartPresign of the honest wallet");
    assert_eq!(granted.sessions.len(), count as usize);
    for s in &granted.sessions {
        if let Err(e) = device_presign(w, s, HONEST_TIMEOUT).await {
            panic!(
                "the honest wallet's presignature {} did not run ({:?} after its StartPresign): {e}",
                s.presignature_id,
                started.elapsed()
            );
        }
    }
    let ids: Vec<String> = granted
        .sessions
        .iter()
        .map(|s| s.presignature_id.clone())
        .collect();
    eventually(
        "the honest wallet's presignatures stored by the cosigner",
        HONEST_TIMEOUT,
        || {
            let (mut c, ids) = (client.clone(), &ids);
            async move {
                let have = pool_ids(&mut c, w, ACCOUNT).await.unwrap_or_default();
                ids.iter().all(|id| have.contains(id))
            }
        },
    )
    .await;
}

/// Wallet A takes the most sessions it may and never joins them; its join deadline is
/// as long as the session timeout, so only the per-wallet share protects wallet B.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_wallet_cannot_hold_every_presignature_worker() {
    let gw = gateway().await;
    let (svc, wallets) = start_service_with_dev_wallets(
        &gw,
        &format!(
            "presign_pool_cap: 32\npresign_max_per_request: {MAX}\npresign_workers: 2\n\
             presign_workers_per_wallet: 1\npresign_join_deadline_secs: 120\n"
        ),
        &[mpc_core::AccountKind::Independent; 2],
    )
    .await;
    let mut client = svc.client().await;
    let [a, b] = two(wallets);

    let attack = start_presign(&mut client, &a, ACCOUNT, 1000)
        .await
        .expect("StartPresign of the silent wallet");
    assert_eq!(attack.sessions.len(), MAX as usize);

    let t = Instant::now();
    honest_refill(&mut client, &b, 2).await;
    eprintln!("wallet B: 2 presignatures in {:?}", t.elapsed());
    // A's sessions are all still there (granted, not finished): B did not get through
    // because A's went away.
    let a_pool = pool(&mut client, &a, ACCOUNT).await.expect("A's pool");
    assert_eq!(a_pool.running, MAX, "{a_pool:?}");
    drop(gw);
}

/// One worker in all; wallet A takes it with the most sessions and never joins. After
/// A's join deadline (5 s) its sessions end (the unjoined one and the ones queued
/// behind it) and the worker serves wallet B.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_that_never_joins_frees_its_worker() {
    let gw = gateway().await;
    let (svc, wallets) = start_service_with_dev_wallets(
        &gw,
        &format!(
            "presign_pool_cap: 32\npresign_max_per_request: {MAX}\npresign_workers: 1\n\
             presign_join_deadline_secs: 5\n"
        ),
        &[mpc_core::AccountKind::Independent; 2],
    )
    .await;
    let mut client = svc.client().await;
    let [a, b] = two(wallets);

    let t = Instant::now();
    let attack = start_presign(&mut client, &a, ACCOUNT, MAX)
        .await
        .expect("StartPresign of the silent wallet");
    assert_eq!(attack.sessions.len(), MAX as usize);
    assert_eq!(attack.running, MAX);
    // Generous against the 5 s deadline (a loaded CI box), still far below the 120 s
    // session timeout that held the worker before. The deadline also leaves wallet B's
    // honest in-process device room to send its first round on a busy machine.
    eventually(
        "the silent wallet's sessions to end",
        Duration::from_secs(40),
        || {
            let (mut c, a) = (client.clone(), &a);
            async move { pool(&mut c, a, ACCOUNT).await.map(|p| p.running) == Some(0) }
        },
    )
    .await;
    eprintln!("wallet A's {MAX} sessions ended after {:?}", t.elapsed());
    assert!(
        pool_ids(&mut client, &a, ACCOUNT)
            .await
            .unwrap_or_default()
            .is_empty(),
        "the silent wallet got presignatures"
    );
    let audit = svc.audit();
    assert!(
        audit.contains("did not join"),
        "no presign_outcome names the silent caller:\n{audit}"
    );

    let t = Instant::now();
    honest_refill(&mut client, &b, 1).await;
    eprintln!("wallet B: 1 presignature in {:?}", t.elapsed());
    drop(gw);
}
