//! The lifecycle protocols run as `mpc_core::Session`s (what every driver runs over the
//! gateway): a refresh, the replace-device sequence (repair index 0 for a new holder,
//! then refresh), signing with the results, and misbehaving peers seen through the
//! session interface.

use mpc_core::digest::{DigestKind, SignRequest};
use mpc_core::keystore::KeyShareBundle;
use mpc_core::lifecycle::public_data_digest;
use mpc_core::local::run_sessions;
use mpc_core::signature::verify_digest;
use mpc_core::{Account, AuxInfo, Incoming, Session, SessionError, SessionOutput};

use crate::common::{dealt, interpolate, secret};

#[derive(serde::Deserialize)]
struct File {
    bundles: Vec<KeyShareBundle>,
}

fn dev_wallet() -> (Vec<Account>, Vec<AuxInfo>) {
    let file: File =
        serde_json::from_str(include_str!("../../../testing/fixtures/dev-wallet.json")).unwrap();
    let accounts = file
        .bundles
        .iter()
        .map(|b| b.accounts["hd-0"].clone())
        .collect();
    let aux = file
        .bundles
        .iter()
        .map(|b| b.aux_info.clone().unwrap())
        .collect();
    (accounts, aux)
}

fn refreshed(out: SessionOutput) -> mpc_core::EpochShare {
    match out {
        SessionOutput::Refreshed(s) => *s,
        other => panic!("expected a refreshed share, got {other:?}"),
    }
}

/// Device (0) and cosigner (1) sign with `shares` completed by `aux`; whether the
/// signature verifies for `account`'s unchanged key.
fn signs(account: &Account, shares: &[mpc_core::IncompleteKeyShare], aux: &[AuxInfo]) -> bool {
    let req = SignRequest {
        preimage: b"lifecycle sessions pay 1 ETH".to_vec(),
        digest: DigestKind::Keccak256,
    };
    let signers = vec![0u16, 1];
    let sessions = signers
        .iter()
        .map(|&k| {
            let mut acct = account.clone();
            acct.share = shares[usize::from(k)].clone();
            let share = acct.complete(&aux[usize::from(k)]).unwrap();
            Session::sign(b"after", signers.clone(), share, None, req.data_to_sign()).unwrap()
        })
        .collect();
    match run_sessions(sessions, None) {
        Ok(outs) => match &outs[0] {
            SessionOutput::Signature(sig) => {
                verify_digest(&account.master_public_key(), &req.digest_bytes(), sig).is_ok()
            }
            _ => false,
        },
        Err(_) => false,
    }
}

#[test]
fn refresh_sessions_keep_the_key_and_sign() {
    let (accounts, aux) = dev_wallet();
    let sessions = accounts
        .iter()
        .map(|a| Session::refresh(b"refresh-1", &a.share, 0).unwrap())
        .collect();
    let outs = run_sessions(sessions, None).expect("refresh");
    let new: Vec<_> = outs.into_iter().map(refreshed).collect();
    assert!(new.iter().all(|s| s.epoch == 1));
    let digests: Vec<_> = new
        .iter()
        .map(|s| public_data_digest(&s.share, s.epoch).unwrap())
        .collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "same public data");
    assert_ne!(
        digests[0],
        public_data_digest(&accounts[0].share, 0).unwrap(),
        "the public shares changed"
    );
    for (old, new) in accounts.iter().zip(&new) {
        assert_eq!(old.share.shared_public_key, new.share.shared_public_key);
        assert_eq!(old.share.chain_code, new.share.chain_code);
        assert_ne!(
            old.share.public_shares, new.share.public_shares,
            "every share changed"
        );
    }
    let shares: Vec<_> = new.iter().map(|s| s.share.clone()).collect();
    assert!(signs(&accounts[0], &shares, &aux), "refreshed shares sign");
    // An old device share with a new cosigner share does not.
    let mixed = vec![
        accounts[0].share.clone(),
        shares[1].clone(),
        shares[2].clone(),
    ];
    assert!(
        !signs(&accounts[0], &mixed, &aux),
        "old + new must not sign"
    );
}

#[test]
fn replace_device_sequence_repairs_then_refreshes() {
    let (accounts, aux) = dev_wallet();
    let pk = accounts[0].master_public_key();
    // Repair: the cosigner (1) and recovery (2) help a new holder of index 0.
    let sessions = vec![
        Session::repair_new(b"repair-1", 0, 0, pk).unwrap(),
        Session::repair_helper(b"repair-1", &accounts[1].share, 0, 0).unwrap(),
        Session::repair_helper(b"repair-1", &accounts[2].share, 0, 0).unwrap(),
    ];
    let outs = run_sessions(sessions, None).expect("repair");
    let SessionOutput::Repaired(repaired) = &outs[0] else {
        panic!("expected the repaired share, got {:?}", outs[0]);
    };
    assert!(matches!(outs[1], SessionOutput::RepairHelped));
    assert_eq!(repaired.epoch, 0);
    assert_eq!(repaired.share.i, 0);
    assert_eq!(
        repaired.share.public_shares, accounts[0].share.public_shares,
        "index 0's public share is the one it always had"
    );
    // Then the refresh among the new device and the two helpers.
    let starts = [&repaired.share, &accounts[1].share, &accounts[2].share];
    let sessions = starts
        .iter()
        .map(|s| Session::refresh(b"refresh-2", s, 0).unwrap())
        .collect();
    let new: Vec<_> = run_sessions(sessions, None)
        .expect("refresh")
        .into_iter()
        .map(refreshed)
        .collect();
    let shares: Vec<_> = new.iter().map(|s| s.share.clone()).collect();
    assert!(
        signs(&accounts[0], &shares, &aux),
        "new device + cosigner sign"
    );
    // The lost device's share is worthless with any new share.
    assert_eq!(
        secret(&shares[..2]),
        secret(&[accounts[1].share.clone(), accounts[2].share.clone()])
    );
    for k in 1..3 {
        assert_ne!(
            interpolate(&[&accounts[0].share, &shares[k]]),
            secret(&shares[..2]),
            "old device share + new share {k} must not give the key"
        );
    }
}

#[test]
fn parameters_are_checked() {
    let shares = dealt(7);
    let pk = *shares[0].shared_public_key;
    // A party cannot help repair its own index; an index out of range; the identity key.
    assert!(matches!(
        Session::repair_helper(b"s", &shares[0], 0, 0),
        Err(SessionError::InvalidParams(_))
    ));
    assert!(Session::repair_helper(b"s", &shares[1], 0, 3).is_err());
    assert!(Session::repair_new(b"s", 3, 0, pk).is_err());
    assert!(Session::repair_new(b"s", 0, 0, mpc_core::Point::zero()).is_err());
}

/// The first message `session` sends, and whether it is a broadcast.
fn first_messages(session: &mut Session) -> Vec<mpc_core::Outgoing> {
    session.run().unwrap();
    session.drain_outgoing()
}

#[test]
fn a_private_message_sent_as_a_broadcast_is_refused() {
    let shares = dealt(8);
    let mut alice = Session::refresh(b"s", &shares[0], 0).unwrap();
    let mut bob = Session::refresh(b"s", &shares[1], 0).unwrap();
    let out = first_messages(&mut alice);
    let sub_share = out
        .iter()
        .find(|m| m.recipient == Some(1))
        .expect("alice's sub-share for bob");
    // Relayed in the clear to everyone: bob refuses it, naming alice.
    bob.handle(Incoming {
        sender: 0,
        broadcast: true,
        payload: sub_share.payload.clone(),
    })
    .unwrap();
    match bob.run() {
        Err(SessionError::MalformedMessage { from: 0, reason }) => {
            assert!(reason.contains("point-to-point"), "{reason}")
        }
        other => panic!("expected a refusal naming party 0, got {other:?}"),
    }
}

#[test]
fn messages_of_another_protocol_or_role_are_refused() {
    let shares = dealt(9);
    let mut helper = Session::repair_helper(b"s", &shares[1], 0, 0).unwrap();
    let mask = first_messages(&mut helper);
    assert!(!mask.is_empty(), "the first helper sends its mask");
    // A refresh session takes no repair message.
    let mut refresh = Session::refresh(b"s", &shares[2], 0).unwrap();
    let err = refresh
        .handle(Incoming {
            sender: 1,
            broadcast: false,
            payload: mask[0].payload.clone(),
        })
        .unwrap_err();
    assert!(
        matches!(err, SessionError::MalformedMessage { from: 1, .. }),
        "{err:?}"
    );
    // Garbage is refused, naming the sender.
    let err = refresh
        .handle(Incoming {
            sender: 0,
            broadcast: true,
            payload: vec![0xff; 40],
        })
        .unwrap_err();
    assert!(
        matches!(err, SessionError::MalformedMessage { from: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn a_tampered_sub_share_aborts_naming_the_dealer() {
    let shares = dealt(10);
    let sessions = shares
        .iter()
        .map(|s| Session::refresh(b"tamper", s, 0).unwrap())
        .collect();
    // Party 2 alters the sub-share it sends to party 0 (re-encoded with another value:
    // flip a bit of the scalar, the last 32 bytes).
    let mut tamper = |from: u16, msg: &mut mpc_core::Outgoing| {
        if from == 2 && msg.recipient == Some(0) {
            let n = msg.payload.len();
            msg.payload[n - 1] ^= 1;
        }
    };
    let err = run_sessions(sessions, Some(&mut tamper)).expect_err("must abort");
    match err {
        (0, SessionError::Aborted { blamed, .. }) => assert_eq!(blamed, vec![2]),
        other => panic!("expected party 0 to abort blaming 2, got {other:?}"),
    }
}
