//! Refreshed shares sign: the committed dev wallet (aux info from the public dev primes)
//! is refreshed, each party's refreshed share is completed with its unchanged aux info,
//! and the device and the cosigner sign in process (mpc-core's sessions).

use mpc_core::digest::{DigestKind, SignRequest};
use mpc_core::keystore::KeyShareBundle;
use mpc_core::local::run_sessions;
use mpc_core::signature::verify_digest;
use mpc_core::{Session, SessionOutput};
use mpc_lifecycle::{Outgoing, Recipient, Refresh, RefreshStatus, SessionId};
use rand_chacha::rand_core::SeedableRng;

#[derive(serde::Deserialize)]
struct File {
    bundles: Vec<KeyShareBundle>,
}

#[test]
fn refreshed_shares_sign_for_the_same_key() {
    let file: File =
        serde_json::from_str(include_str!("../../../testing/fixtures/dev-wallet.json")).unwrap();
    let accounts: Vec<_> = file
        .bundles
        .iter()
        .map(|b| b.accounts["hd-0"].clone())
        .collect();
    let aux: Vec<_> = file
        .bundles
        .iter()
        .map(|b| b.aux_info.clone().unwrap())
        .collect();

    // Refresh the three shares.
    let session = SessionId([5; 32]);
    let mut parties = Vec::new();
    let mut net: Vec<(u16, u16, Vec<u8>)> = Vec::new();
    let fan = |from: u16, out: &[Outgoing], net: &mut Vec<(u16, u16, Vec<u8>)>| {
        for o in out {
            match o.to {
                Recipient::Broadcast => {
                    for to in (0..3).filter(|&k| k != from) {
                        net.push((from, to, o.bytes.clone()));
                    }
                }
                Recipient::Private(to) => net.push((from, to, o.bytes.clone())),
            }
        }
    };
    for (k, a) in accounts.iter().enumerate() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(k as u64);
        let (p, out) = Refresh::start(session, 0, &a.share, &mut rng).unwrap();
        fan(k as u16, &out, &mut net);
        parties.push(p);
    }
    while !net.is_empty() {
        let mut next = Vec::new();
        for (from, to, bytes) in net {
            let out = parties[usize::from(to)].handle(from, &bytes).unwrap();
            fan(to, &out, &mut next);
        }
        for (k, p) in parties.iter_mut().enumerate() {
            if p.status() == RefreshStatus::PersistPending {
                let out = p.confirm_persisted().unwrap();
                fan(k as u16, &out, &mut next);
            }
        }
        net = next;
    }
    let refreshed: Vec<_> = parties
        .into_iter()
        .map(|p| p.into_output().unwrap().share)
        .collect();

    // The device (0) and the cosigner (1) sign with their refreshed shares.
    let req = SignRequest {
        preimage: b"refreshed shares pay 1 ETH".to_vec(),
        digest: DigestKind::Keccak256,
    };
    let signers = vec![0u16, 1];
    let sessions = signers
        .iter()
        .map(|&k| {
            let mut acct = accounts[usize::from(k)].clone();
            acct.share = refreshed[usize::from(k)].clone();
            let share = acct.complete(&aux[usize::from(k)]).unwrap();
            Session::sign(
                b"refreshed",
                signers.clone(),
                share,
                None,
                req.data_to_sign(),
            )
            .unwrap()
        })
        .collect();
    let outs = run_sessions(sessions, None).expect("signing");
    let SessionOutput::Signature(sig) = &outs[0] else {
        panic!("unexpected output")
    };
    let pk = accounts[0].master_public_key();
    verify_digest(&pk, &req.digest_bytes(), sig).expect("verifies for the unchanged key");
}
