//! Share repair: the exact lost share, the checks on lying helpers, and the replace-
//! device composition (repair, then refresh).

use crate::common::*;
use generic_ec::{Point, Scalar};
use generic_ec_zkp::polynomial::lagrange_coefficient;
use mpc_lifecycle::{
    Curve, IncompleteKeyShare, MaskSource, Message, MessageKind, Payload, Recipient, Rejection,
    RepairError, RepairHelper, RepairNewParty, RepairOutput, RepairStatus, SessionId,
};
use zeroize::Zeroizing;

/// Runs a repair of `lost` by `helpers`; `tamper` may rewrite what a helper sends to
/// the new party. Returns the new party (finished or aborted) and the contributions.
fn repair(
    shares: &[IncompleteKeyShare],
    lost: u16,
    helpers: [u16; 2],
    exchange: bool,
    expected: bool,
    mut tamper: impl FnMut(u16, &mut Message),
) -> (RepairNewParty, Vec<(u16, Vec<u8>)>) {
    let session = sid(40 + lost as u8);
    let epoch = 3;
    let seed = Zeroizing::new([9u8; 32]);
    let mask = || {
        if exchange {
            MaskSource::Exchange
        } else {
            MaskSource::SharedSecret(seed.clone())
        }
    };
    let pk = expected.then_some(shares[0].shared_public_key);
    let mut new = RepairNewParty::new(session, epoch, lost, helpers, pk).unwrap();
    assert_eq!(
        new.status(),
        RepairStatus::Running {
            waiting_for: {
                let mut h = helpers;
                h.sort();
                h.map(|party| mpc_lifecycle::Waiting {
                    party,
                    kind: MessageKind::RepairContribution,
                })
                .to_vec()
            }
        }
    );
    let mut hs = Vec::new();
    let mut to_new = Vec::new();
    let mut to_helper = Vec::new();
    for (k, &h) in helpers.iter().enumerate() {
        let (helper, out) = RepairHelper::start(
            session,
            epoch,
            &shares[usize::from(h)],
            lost,
            helpers,
            mask(),
            &mut rng(77 + k as u64),
        )
        .unwrap();
        for o in &out {
            match o.to {
                Recipient::Private(to) if to == lost => to_new.push((h, o.bytes.clone())),
                Recipient::Private(to) => to_helper.push((h, to, o.bytes.clone())),
                Recipient::Broadcast => panic!("repair sends nothing in the clear"),
            }
        }
        hs.push(helper);
    }
    for (from, to, bytes) in to_helper {
        assert!(exchange, "a mask travels only in exchange mode");
        let k = helpers.iter().position(|&h| h == to).unwrap();
        for o in hs[k].handle(from, &bytes).unwrap() {
            assert_eq!(o.to, Recipient::Private(lost));
            to_new.push((to, o.bytes.clone()));
        }
    }
    assert!(hs.iter().all(|h| h.is_finished()));
    let mut sent = Vec::new();
    for (from, bytes) in to_new {
        let bytes = rewrite(&bytes, |m| tamper(from, m));
        sent.push((from, bytes.clone()));
        let _ = new.handle(from, &bytes);
    }
    (new, sent)
}

fn honest(
    shares: &[IncompleteKeyShare],
    lost: u16,
    helpers: [u16; 2],
    exchange: bool,
) -> RepairOutput {
    let (new, _) = repair(shares, lost, helpers, exchange, true, |_, _| {});
    new.into_output().expect("repaired")
}

#[test]
fn repair_rebuilds_exactly_the_lost_share_for_every_index_and_mask_mode() {
    let shares = dealt(20);
    for (lost, helpers) in [(0u16, [1u16, 2]), (1, [2, 0]), (2, [0, 1])] {
        for exchange in [true, false] {
            let out = honest(&shares, lost, helpers, exchange);
            let old = &shares[usize::from(lost)];
            assert_eq!(out.epoch, 3);
            assert_eq!(out.share.i, lost);
            assert_eq!(
                Point::generator() * &out.share.x,
                Point::generator() * &old.x
            );
            assert_eq!(
                interpolate(&[&out.share, &shares[usize::from(helpers[0])]]),
                secret(&shares[..2])
            );
            assert_eq!(out.share.key_info.public_shares, old.public_shares);
            assert_eq!(out.share.chain_code, old.chain_code);
            assert_eq!(out.share.vss_setup, old.vss_setup);
            key_share::Validate::is_valid(&*out.share).unwrap();
        }
    }
}

#[test]
fn each_contribution_alone_is_masked() {
    let shares = dealt(21);
    let (_, sent) = repair(&shares, 0, [1, 2], true, true, |_, _| {});
    let vss = shares[0].vss_setup.as_ref().unwrap();
    let pts = [*vss.I[1].as_ref(), *vss.I[2].as_ref()];
    for (k, (from, bytes)) in sent.iter().enumerate() {
        let Payload::RepairContribution { value, .. } = Message::decode(bytes).unwrap().payload
        else {
            panic!()
        };
        let lambda = lagrange_coefficient(*vss.I[0].as_ref(), k, &pts).unwrap();
        let term: Scalar<Curve> = lambda.into_inner() * &shares[usize::from(*from)].x;
        assert_ne!(*value.as_ref(), term, "helper {from}'s term is masked");
    }
}

#[test]
fn a_lying_helper_is_caught_by_the_public_share_check() {
    let shares = dealt(22);
    for liar in [1u16, 2] {
        let (new, _) = repair(&shares, 0, [1, 2], true, true, |from, m| {
            if from == liar {
                if let Payload::RepairContribution { value, .. } = &mut m.payload {
                    bump(value);
                }
            }
        });
        assert_eq!(
            new.status(),
            RepairStatus::Aborted(RepairError::RepairedShareMismatch {
                index: 0,
                helpers: [1, 2]
            })
        );
        assert!(new.output().is_none());
    }
}

#[test]
fn helpers_disagreeing_on_public_data_or_on_the_key_are_caught() {
    let shares = dealt(23);
    // One helper claims another chain code.
    let (new, _) = repair(&shares, 0, [1, 2], false, true, |from, m| {
        if from == 2 {
            if let Payload::RepairContribution { key_info, .. } = &mut m.payload {
                key_info.chain_code = Some([7; 32]);
            }
        }
    });
    assert_eq!(
        new.status(),
        RepairStatus::Aborted(RepairError::PublicDataMismatch { helpers: [1, 2] })
    );
    // Both helpers present another key than the one the new party expects.
    let other = dealt(24);
    let pk = shares[0].shared_public_key;
    let session = sid(50);
    let mut new = RepairNewParty::new(session, 0, 0, [1, 2], Some(pk)).unwrap();
    let mut last = Ok(());
    for h in [1u16, 2] {
        let (_, out) = RepairHelper::start(
            session,
            0,
            &other[usize::from(h)],
            0,
            [1, 2],
            MaskSource::SharedSecret(Zeroizing::new([1; 32])),
            &mut rng(1),
        )
        .unwrap();
        last = new.handle(h, &out[0].bytes);
    }
    assert_eq!(last, Err(RepairError::PublicKeyMismatch));
    // Public data whose public shares do not form the key.
    let (new, _) = repair(&shares, 0, [1, 2], false, false, |_, m| {
        if let Payload::RepairContribution { key_info, .. } = &mut m.payload {
            key_info.public_shares.swap(1, 2);
        }
    });
    assert!(matches!(
        new.status(),
        RepairStatus::Aborted(RepairError::InvalidPublicData(_))
    ));
}

#[test]
fn repair_refuses_foreign_duplicate_and_misrouted_messages() {
    let shares = dealt(25);
    let session = sid(60);
    let mut new = RepairNewParty::new(session, 2, 0, [1, 2], None).unwrap();
    let start = |s: SessionId, epoch: u64, h: u16| {
        RepairHelper::start(
            s,
            epoch,
            &shares[usize::from(h)],
            0,
            [1, 2],
            MaskSource::SharedSecret(Zeroizing::new([3; 32])),
            &mut rng(h.into()),
        )
        .unwrap()
        .1
    };
    let good = start(session, 2, 1);
    assert_eq!(
        new.handle(1, &start(sid(61), 2, 1)[0].bytes),
        Err(Rejection::ForeignSession.into())
    );
    assert_eq!(
        new.handle(1, &start(session, 1, 1)[0].bytes),
        Err(Rejection::ForeignEpoch {
            expected: 2,
            got: 1
        }
        .into())
    );
    assert_eq!(
        new.handle(2, &good[0].bytes),
        Err(Rejection::SenderMismatch {
            authenticated: 2,
            claimed: 1
        }
        .into())
    );
    assert_eq!(
        new.handle(0, &good[0].bytes),
        Err(Rejection::NotParticipant { party: 0 }.into())
    );
    new.handle(1, &good[0].bytes).unwrap();
    assert_eq!(
        new.handle(1, &good[0].bytes),
        Err(Rejection::Duplicate {
            party: 1,
            kind: MessageKind::RepairContribution
        }
        .into())
    );
    assert!(matches!(new.status(), RepairStatus::Running { .. }));
    new.handle(2, &start(session, 2, 2)[0].bytes).unwrap();
    assert_eq!(new.status(), RepairStatus::Finished);

    // The second helper takes a mask only from the first, of this session.
    let (mut h2, out) = RepairHelper::start(
        session,
        2,
        &shares[2],
        0,
        [1, 2],
        MaskSource::Exchange,
        &mut rng(5),
    )
    .unwrap();
    assert!(out.is_empty());
    let (_, out1) = RepairHelper::start(
        sid(62),
        2,
        &shares[1],
        0,
        [1, 2],
        MaskSource::Exchange,
        &mut rng(6),
    )
    .unwrap();
    let mask = out1
        .iter()
        .find(|o| o.kind == MessageKind::RepairMask)
        .unwrap();
    assert_eq!(
        h2.handle(1, &mask.bytes),
        Err(Rejection::ForeignSession.into())
    );
    assert_eq!(
        h2.handle(0, &mask.bytes),
        Err(Rejection::NotParticipant { party: 0 }.into())
    );
    assert!(!h2.is_finished());
    // Bad setups.
    assert!(matches!(
        RepairNewParty::new(session, 0, 1, [1, 2], None),
        Err(RepairError::InvalidSetup(_))
    ));
    assert!(matches!(
        RepairHelper::start(
            session,
            0,
            &shares[0],
            1,
            [1, 2],
            MaskSource::Exchange,
            &mut rng(1)
        ),
        Err(RepairError::InvalidSetup(_))
    ));
}

#[test]
fn replace_device_repair_then_refresh_makes_the_old_device_share_worthless() {
    let shares = dealt(26);
    let sk = secret(&shares[..2]);
    let stolen = shares[0].clone(); // the lost device, in a thief's hands
    let repaired = honest(&shares, 0, [1, 2], true);
    assert_eq!(repaired.epoch, 3);

    let current = [repaired.share.clone(), shares[1].clone(), shares[2].clone()];
    let out = refresh(&current, sid(70), repaired.epoch, 70);
    let new: Vec<_> = out.iter().map(|o| o.share.clone()).collect();
    assert!(out.iter().all(|o| o.epoch == 4));
    // The repaired device's new share works with the others' new shares ...
    assert_eq!(secret(&[new[0].clone(), new[1].clone()]), sk);
    assert_eq!(secret(&[new[0].clone(), new[2].clone()]), sk);
    assert_eq!(new[0].shared_public_key, stolen.shared_public_key);
    // ... and the old device's share no longer combines with them.
    for k in [1usize, 2] {
        assert!(key_share::reconstruct_secret_key(&[stolen.clone(), new[k].clone()]).is_err());
        assert_ne!(interpolate(&[&stolen, &new[k]]), sk, "stolen + new {k}");
    }
    // Nor does the repaired device's pre-refresh share.
    assert_ne!(interpolate(&[&repaired.share, &new[1]]), sk);
}
