//! Proactive refresh: what it keeps, what it changes, and the attacks it detects.

use crate::common::*;
use generic_ec::Point;
use mpc_lifecycle::{
    Header, Message, MessageKind, Payload, RefreshError, RefreshStatus, Rejection, Waiting,
};

#[test]
fn refresh_keeps_the_key_chain_code_and_hd_keys_and_changes_every_share() {
    let old = dealt(1);
    let sk = secret(&old[..2]);
    let out = refresh(&old, sid(1), 7, 1);
    let new: Vec<_> = out.iter().map(|o| o.share.clone()).collect();

    for o in &out {
        assert_eq!(o.epoch, 8, "epoch advances by one");
    }
    // Every pair reconstructs the same secret key as before.
    for pair in [[0, 1], [0, 2], [1, 2]] {
        let two = [new[pair[0]].clone(), new[pair[1]].clone()];
        assert_eq!(secret(&two), sk, "pair {pair:?}");
    }
    for (o, n) in old.iter().zip(&new) {
        assert_eq!(n.i, o.i);
        assert_eq!(n.shared_public_key, o.shared_public_key);
        assert_eq!(n.chain_code, o.chain_code);
        assert!(n.chain_code.is_some());
        assert_eq!(n.vss_setup, o.vss_setup);
        assert_ne!(
            Point::generator() * &n.x,
            Point::generator() * &o.x,
            "share {} changed",
            o.i
        );
        assert_ne!(n.public_shares, o.public_shares);
        assert_eq!(
            n.public_shares, new[0].public_shares,
            "all agree on the new public shares"
        );
        // The library's own validation of the result.
        key_share::Validate::is_valid(&**n).expect("valid share");
    }
    // Derived HD public keys are unchanged.
    for path in [vec![0u32], vec![44, 60, 0, 0, 0], vec![7, 1 << 30]] {
        let a = old[0]
            .derive_child_public_key::<hd_wallet::Slip10, _>(path.clone())
            .unwrap();
        let b = new[1]
            .derive_child_public_key::<hd_wallet::Slip10, _>(path.clone())
            .unwrap();
        assert_eq!(a.public_key, b.public_key, "path {path:?}");
        assert_eq!(a.chain_code, b.chain_code);
    }
    // A second refresh changes them again and keeps the key.
    let again = refresh(&new, sid(2), 8, 2);
    assert_eq!(again[0].epoch, 9);
    assert_eq!(
        secret(&[again[2].share.clone(), again[0].share.clone()]),
        sk
    );
}

#[test]
fn shares_of_different_epochs_do_not_reconstruct() {
    let old = dealt(2);
    let sk = secret(&old[..2]);
    let new: Vec<_> = refresh(&old, sid(3), 0, 3)
        .into_iter()
        .map(|o| o.share)
        .collect();
    for (a, b) in [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)] {
        // The library refuses to combine them ...
        assert!(key_share::reconstruct_secret_key(&[old[a].clone(), new[b].clone()]).is_err());
        // ... and interpolating them anyway gives a wrong key.
        let mixed = interpolate(&[&old[a], &new[b]]);
        assert_ne!(mixed, sk, "old {a} + new {b}");
        assert_ne!(Point::generator() * mixed, *old[0].shared_public_key);
        // Same-epoch pairs are fine.
        assert_eq!(interpolate(&[&new[a], &new[b]]), sk);
        assert_eq!(interpolate(&[&old[a], &old[b]]), sk);
    }
}

#[test]
fn a_wrong_sub_share_is_detected_and_the_dealer_named() {
    let old = dealt(3);
    let (mut parties, net) = start_all(&old, sid(4), 0, 4);
    deliver(&mut parties, net, |mut f| {
        if f.from == 2 && f.to == 0 && kind_of(&f.bytes) == MessageKind::RefreshSubShare {
            f.bytes = rewrite(&f.bytes, |m| {
                if let Payload::RefreshSubShare { value } = &mut m.payload {
                    bump(value);
                }
            });
        }
        Some(f)
    });
    match parties[0].status() {
        RefreshStatus::Aborted(e) => {
            assert_eq!(e, RefreshError::InvalidSubShare { dealer: 2 });
            assert_eq!(e.culprit(), Some(2));
            assert!(e.is_fatal());
        }
        s => panic!("party 0 should abort, is {s:?}"),
    }
    assert!(parties[0].pending_output().is_none());
    // Party 0 never echoed... so the others wait: nobody finishes.
    assert!(parties.iter().all(|p| !p.is_finished()));
    // An aborted session refuses everything after.
    let (_, again) = start_all(&old, sid(4), 0, 4);
    let f = again.iter().find(|f| f.to == 0).unwrap();
    assert!(matches!(
        parties[0].handle(f.from, &f.bytes),
        Err(RefreshError::Aborted(_))
    ));
}

#[test]
fn a_commitment_that_would_change_the_key_is_refused() {
    let old = dealt(4);
    let (mut parties, net) = start_all(&old, sid(5), 0, 5);
    deliver(&mut parties, net, |mut f| {
        if f.from == 1 && kind_of(&f.bytes) == MessageKind::RefreshCommit {
            f.bytes = rewrite(&f.bytes, |m| {
                if let Payload::RefreshCommit { coefficients } = &mut m.payload {
                    coefficients[0] = Point::generator().to_point();
                }
            });
        }
        Some(f)
    });
    for k in [0, 2] {
        match parties[k].status() {
            RefreshStatus::Aborted(RefreshError::InvalidCommitment { dealer: 1, .. }) => {}
            s => panic!("party {k}: {s:?}"),
        }
    }
}

#[test]
fn an_equivocating_dealer_is_caught_by_the_echo_round() {
    let old = dealt(5);
    let session = sid(6);
    let (mut parties, net) = start_all(&old, session, 0, 6);
    // Dealer 2 runs two consistent dealings and shows each to a different party: every
    // sub-share matches the commitment its recipient saw.
    let (_, other) = mpc_lifecycle::Refresh::start(session, 0, &old[2], &mut rng(999)).unwrap();
    let other = route(2, &other, 3);
    let net: Vec<Flight> = net
        .into_iter()
        .filter(|f| !(f.from == 2 && f.to == 1))
        .chain(other.into_iter().filter(|f| f.to == 1))
        .collect();
    deliver(&mut parties, net, Some);
    for k in [0u16, 1] {
        match parties[usize::from(k)].status() {
            // Whichever echo arrives first shows it: the other victim's, or the dealer's
            // own (which reflects the dealing it did not show to this party).
            RefreshStatus::Aborted(RefreshError::Equivocation {
                dealer,
                reported_by,
            }) => {
                assert_eq!(dealer, 2, "party {k}");
                assert_ne!(reported_by, k);
            }
            s => panic!("party {k} should abort, is {s:?}"),
        }
    }
    assert!(parties.iter().all(|p| !p.is_finished()));
}

#[test]
fn two_different_messages_for_one_slot_abort_naming_the_sender() {
    let old = dealt(6);
    let session = sid(7);
    let (mut parties, net) = start_all(&old, session, 0, 7);
    let (_, other) = mpc_lifecycle::Refresh::start(session, 0, &old[1], &mut rng(4242)).unwrap();
    let commit0 = net
        .iter()
        .find(|f| f.from == 1 && f.to == 0 && kind_of(&f.bytes) == MessageKind::RefreshCommit)
        .unwrap();
    parties[0].handle(1, &commit0.bytes).unwrap();
    let second = other
        .iter()
        .find(|o| o.kind == MessageKind::RefreshCommit)
        .unwrap();
    assert_eq!(
        parties[0].handle(1, &second.bytes).unwrap_err(),
        RefreshError::Conflicting {
            party: 1,
            kind: MessageKind::RefreshCommit
        }
    );
    assert!(matches!(parties[0].status(), RefreshStatus::Aborted(_)));
}

#[test]
fn replayed_foreign_and_misaddressed_messages_are_refused_without_effect() {
    let old = dealt(7);
    let session = sid(8);
    let (mut parties, net) = start_all(&old, session, 3, 8);
    // Messages of another session, and of this session id at another epoch.
    let (_, foreign_session) = start_all(&old, sid(9), 3, 9);
    let (_, foreign_epoch) = start_all(&old, session, 4, 10);

    let to0: Vec<&Flight> = net.iter().filter(|f| f.to == 0).collect();
    let before = parties[0].status();
    for f in foreign_session.iter().filter(|f| f.to == 0) {
        assert_eq!(
            parties[0].handle(f.from, &f.bytes).unwrap_err(),
            Rejection::ForeignSession.into()
        );
    }
    for f in foreign_epoch.iter().filter(|f| f.to == 0) {
        assert_eq!(
            parties[0].handle(f.from, &f.bytes).unwrap_err(),
            Rejection::ForeignEpoch {
                expected: 3,
                got: 4
            }
            .into()
        );
    }
    let commit = to0
        .iter()
        .find(|f| f.from == 1 && kind_of(&f.bytes) == MessageKind::RefreshCommit)
        .map(|f| Flight {
            from: f.from,
            to: f.to,
            bytes: f.bytes.clone(),
        })
        .unwrap();
    // A non-participant, a sender other than the authenticated one, our own index.
    assert_eq!(
        parties[0].handle(5, &commit.bytes).unwrap_err(),
        Rejection::NotParticipant { party: 5 }.into()
    );
    assert_eq!(
        parties[0].handle(2, &commit.bytes).unwrap_err(),
        Rejection::SenderMismatch {
            authenticated: 2,
            claimed: 1
        }
        .into()
    );
    assert_eq!(
        parties[0].handle(0, &commit.bytes).unwrap_err(),
        Rejection::NotParticipant { party: 0 }.into()
    );
    // A sub-share addressed to party 2 delivered to party 0.
    let misaddressed = net
        .iter()
        .find(|f| f.from == 1 && f.to == 2 && kind_of(&f.bytes) == MessageKind::RefreshSubShare)
        .unwrap();
    assert_eq!(
        parties[0].handle(1, &misaddressed.bytes).unwrap_err(),
        Rejection::WrongRecipient { recipient: Some(2) }.into()
    );
    // A message of the other protocol.
    let repair = Message {
        header: Header {
            session,
            epoch: 3,
            sender: 1,
            recipient: Some(0),
        },
        payload: Payload::RepairMask {
            mask: generic_ec::SecretScalar::zero(),
        },
    }
    .encode()
    .unwrap();
    assert_eq!(
        parties[0].handle(1, &repair).unwrap_err(),
        Rejection::UnexpectedKind {
            kind: MessageKind::RepairMask
        }
        .into()
    );
    // Garbage.
    assert!(matches!(
        parties[0].handle(1, b"garbage").unwrap_err(),
        RefreshError::Rejected(Rejection::Malformed(_))
    ));
    assert_eq!(
        parties[0].status(),
        before,
        "nothing above changed the state"
    );

    // The genuine message, then its replay.
    parties[0].handle(1, &commit.bytes).unwrap();
    let err = parties[0].handle(1, &commit.bytes).unwrap_err();
    assert_eq!(
        err,
        Rejection::Duplicate {
            party: 1,
            kind: MessageKind::RefreshCommit
        }
        .into()
    );
    assert!(!err.is_fatal());

    // The session still completes with the genuine messages (the duplicate is refused
    // again, harmlessly).
    deliver(&mut parties, net, Some);
    let out: Vec<_> = parties
        .into_iter()
        .map(|p| p.into_output().unwrap())
        .collect();
    assert_eq!(out[0].epoch, 4);
    assert_eq!(
        secret(&[out[0].share.clone(), out[1].share.clone()]),
        secret(&old[..2])
    );
    // A replay into a finished session.
    let (mut done, net2) = start_all(&old, session, 3, 8);
    deliver(&mut done, net2, Some);
    assert_eq!(
        done[0].handle(1, &commit.bytes).unwrap_err(),
        Rejection::AlreadyFinished.into()
    );
}

#[test]
fn an_offline_party_leaves_the_others_waiting_and_a_late_return_completes() {
    let old = dealt(8);
    let sk = secret(&old[..2]);
    let (mut parties, net) = start_all(&old, sid(10), 0, 11);
    // Party 2 is offline: what it sends and what is sent to it is held by the transport.
    let mut held = Vec::new();
    deliver(&mut parties, net, |f| {
        if f.from == 2 || f.to == 2 {
            held.push(f);
            None
        } else {
            Some(f)
        }
    });
    for k in [0u16, 1] {
        let p = &parties[usize::from(k)];
        let RefreshStatus::Running { waiting_for } = p.status() else {
            panic!("party {k}: {:?}", p.status());
        };
        // Party 2's dealing and echo, and the other's echo (it cannot echo without 2's
        // commitment either).
        let mut want = vec![Waiting {
            party: 1 - k,
            kind: MessageKind::RefreshEcho,
        }];
        want.extend(
            [
                MessageKind::RefreshCommit,
                MessageKind::RefreshSubShare,
                MessageKind::RefreshEcho,
            ]
            .map(|kind| Waiting { party: 2, kind }),
        );
        assert_eq!(waiting_for, want, "party {k}");
        assert!(p.pending_output().is_none());
        assert!(!p.is_finished());
    }
    // Giving up is the caller's timeout: the old shares were only borrowed and still
    // sign (reconstruct) as before.
    assert_eq!(secret(&old[..2]), sk);
    // If party 2 comes back in time instead, the held messages complete the session.
    deliver(&mut parties, held, Some);
    let out: Vec<_> = parties
        .into_iter()
        .map(|p| p.into_output().unwrap())
        .collect();
    assert_eq!(secret(&[out[2].share.clone(), out[0].share.clone()]), sk);
}

#[test]
fn the_new_share_is_final_only_after_every_confirmation() {
    let old = dealt(9);
    let (mut parties, net) = start_all(&old, sid(11), 5, 12);
    // Deliver rounds 1-2 but no confirmations.
    let mut confirms = Vec::new();
    deliver(&mut parties, net, |f| {
        if kind_of(&f.bytes) == MessageKind::RefreshConfirm {
            confirms.push(f);
            None
        } else {
            Some(f)
        }
    });
    for p in &parties {
        let RefreshStatus::AwaitingConfirmations { waiting_for } = p.status() else {
            panic!("{:?}", p.status());
        };
        assert_eq!(waiting_for.len(), 2);
        assert_eq!(p.pending_output().unwrap().epoch, 6);
        assert!(!p.is_finished());
    }
    // Confirming twice is refused.
    assert!(matches!(
        parties[0].confirm_persisted(),
        Err(RefreshError::WrongState(_))
    ));
    // A confirmation of different public data aborts, naming the sender.
    let bad = rewrite(&confirms[0].bytes, |m| {
        if let Payload::RefreshConfirm { digest } = &mut m.payload {
            digest[0] ^= 1;
        }
    });
    let to = confirms[0].to;
    let from = confirms[0].from;
    let mut spare = start_all(&old, sid(11), 5, 12).0;
    deliver(&mut spare, start_all(&old, sid(11), 5, 12).1, |f| {
        (kind_of(&f.bytes) != MessageKind::RefreshConfirm).then_some(f)
    });
    assert_eq!(
        spare[usize::from(to)].handle(from, &bad).unwrap_err(),
        RefreshError::ConfirmationMismatch { party: from }
    );
    // The genuine confirmations finish everyone.
    deliver(&mut parties, confirms, Some);
    assert!(parties.iter().all(|p| p.is_finished()));
}

#[test]
fn malformed_points_and_scalars_get_typed_errors() {
    use mpc_lifecycle::WireError;
    let old = dealt(10);
    let (mut parties, net) = start_all(&old, sid(12), 0, 13);
    let sub = net
        .iter()
        .find(|f| f.from == 1 && f.to == 0 && kind_of(&f.bytes) == MessageKind::RefreshSubShare)
        .unwrap();
    // A scalar not below the group order.
    let mut bad = sub.bytes.clone();
    let len = bad.len();
    bad[len - 32..].fill(0xff);
    assert_eq!(
        parties[0].handle(1, &bad).unwrap_err(),
        Rejection::Malformed(WireError::InvalidScalar).into()
    );
    // A point that is not on the curve (x = 5 has no point on secp256k1) ...
    let commit = net
        .iter()
        .find(|f| f.from == 1 && f.to == 0 && kind_of(&f.bytes) == MessageKind::RefreshCommit)
        .unwrap();
    let mut bad = commit.bytes.clone();
    let len = bad.len();
    bad[len - 32..].fill(0);
    bad[len - 1] = 5;
    assert_eq!(
        parties[0].handle(1, &bad).unwrap_err(),
        Rejection::Malformed(WireError::InvalidPoint).into()
    );
    // ... a bad tag, a truncated and an extended message.
    let mut bad = commit.bytes.clone();
    let len = bad.len();
    bad[len - 34] = 7;
    assert_eq!(
        parties[0].handle(1, &bad).unwrap_err(),
        Rejection::Malformed(WireError::BadTag(7)).into()
    );
    assert_eq!(
        parties[0].handle(1, &commit.bytes[..len - 1]).unwrap_err(),
        Rejection::Malformed(WireError::Truncated).into()
    );
    let mut long = commit.bytes.clone();
    long.push(0);
    assert_eq!(
        parties[0].handle(1, &long).unwrap_err(),
        Rejection::Malformed(WireError::TrailingBytes).into()
    );
    assert!(matches!(parties[0].status(), RefreshStatus::Running { .. }));
}
