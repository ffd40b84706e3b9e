//! Property tests: nothing a peer sends makes a state machine panic, whether arbitrary
//! bytes or mutations of genuine messages; rejected messages leave the state as it was.

use crate::common::*;
use mpc_lifecycle::{MaskSource, Message, RefreshError, RepairError, RepairHelper, RepairNewParty};
use proptest::prelude::*;
use zeroize::Zeroizing;

fn mutate(bytes: &[u8], pos: usize, xor: u8, cut: usize, extra: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    if !b.is_empty() {
        let p = pos % b.len();
        b[p] ^= xor;
    }
    b.truncate(b.len().saturating_sub(cut));
    b.extend_from_slice(extra);
    b
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(m) = Message::decode(&bytes) {
            // Whatever decodes re-encodes to the same bytes (the encoding is canonical).
            prop_assert_eq!(m.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn refresh_survives_arbitrary_and_mutated_messages(
        seed in any::<u64>(),
        from in 0u16..5,
        junk in proptest::collection::vec(any::<u8>(), 0..300),
        pick in any::<usize>(),
        pos in any::<usize>(),
        xor in 1u8..=255,
        cut in 0usize..40,
        extra in proptest::collection::vec(any::<u8>(), 0..4),
    ) {
        let shares = dealt(seed % 4);
        let (mut parties, net) = start_all(&shares, sid(1), 0, seed);
        let before = parties[0].status();
        match parties[0].handle(from, &junk) {
            Err(RefreshError::Rejected(_)) => prop_assert_eq!(parties[0].status(), before.clone()),
            Err(e) => prop_assert!(e.is_fatal()),
            Ok(_) => {}
        }
        // A genuine message to party 0, mutated.
        let to0: Vec<&Flight> = net.iter().filter(|f| f.to == 0).collect();
        let f = to0[pick % to0.len()];
        let bad = mutate(&f.bytes, pos, xor, cut, &extra);
        let mut p = start_all(&shares, sid(1), 0, seed).0.remove(0);
        let before = p.status();
        match p.handle(f.from, &bad) {
            Err(RefreshError::Rejected(_)) => prop_assert_eq!(p.status(), before),
            Err(e) => prop_assert!(e.is_fatal() && e.culprit().is_some()),
            Ok(_) => {}
        }
    }

    #[test]
    fn repair_survives_arbitrary_and_mutated_messages(
        seed in any::<u64>(),
        from in 0u16..5,
        junk in proptest::collection::vec(any::<u8>(), 0..400),
        pos in any::<usize>(),
        xor in 1u8..=255,
        cut in 0usize..40,
        extra in proptest::collection::vec(any::<u8>(), 0..4),
    ) {
        let shares = dealt(seed % 4);
        let session = sid(2);
        let mut new = RepairNewParty::new(session, 0, 0, [1, 2], None).unwrap();
        let (mut h2, _) = RepairHelper::start(session, 0, &shares[2], 0, [1, 2], MaskSource::Exchange, &mut rng(seed)).unwrap();
        let _ = new.handle(from, &junk);
        let _ = h2.handle(from, &junk);
        let (_, out) = RepairHelper::start(session, 0, &shares[1], 0, [1, 2], MaskSource::Exchange, &mut rng(seed)).unwrap();
        for o in &out {
            let bad = mutate(&o.bytes, pos, xor, cut, &extra);
            let mut fresh = RepairNewParty::new(session, 0, 0, [1, 2], None).unwrap();
            let before = fresh.status();
            match fresh.handle(1, &bad) {
                Err(RepairError::Rejected(_)) => prop_assert_eq!(fresh.status(), before),
                Err(e) => prop_assert!(e.is_fatal()),
                Ok(()) => {}
            }
            let _ = h2.handle(1, &bad);
        }
        // A mutated contribution never yields a share that fails its public share.
        let (_, out2) = RepairHelper::start(session, 0, &shares[2], 0, [1, 2],
            MaskSource::SharedSecret(Zeroizing::new([seed as u8; 32])), &mut rng(seed)).unwrap();
        let (_, out1) = RepairHelper::start(session, 0, &shares[1], 0, [1, 2],
            MaskSource::SharedSecret(Zeroizing::new([seed as u8; 32])), &mut rng(seed)).unwrap();
        let mut fresh = RepairNewParty::new(session, 0, 0, [1, 2], None).unwrap();
        let _ = fresh.handle(1, &out1[0].bytes);
        let _ = fresh.handle(2, &mutate(&out2[0].bytes, pos, xor, cut, &extra));
        if let Some(o) = fresh.output() {
            prop_assert_eq!(generic_ec::Point::generator() * &o.share.x, *o.share.public_shares[0]);
        }
    }
}
