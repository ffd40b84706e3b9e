//! Property tests of the protocol payload decoders: whatever an authenticated peer
//! sends (garbage, truncated or altered real messages, wrong broadcast flag), a session
//! answers with an error or keeps waiting; it never panics. Sessions are built from the
//! committed test wallet, so no aux info runs here. Long run:
//! `PROPTEST_CASES=20000 cargo test -p mpc-core --test payload_props` (docs/SECURITY.md).

mod common;

use mpc_core::digest::{DigestKind, SignRequest};
use mpc_core::primes::dev_fixture_primes;
use mpc_core::{Incoming, Session, PARTIES, THRESHOLD};
use proptest::prelude::*;

use common::wallet;

/// A fresh session of `kind` for party `me` (0..=2).
fn session(kind: u8, me: u16) -> Session {
    let w = wallet();
    let req = SignRequest {
        preimage: b"payload props".to_vec(),
        digest: DigestKind::Keccak256,
    };
    let signers = if me == 2 { vec![0, 2] } else { vec![0, 1] };
    let signers = if signers.contains(&me) {
        signers
    } else {
        vec![me, 2]
    };
    match kind % 4 {
        0 => Session::keygen(b"props-keygen", me, PARTIES, THRESHOLD).expect("keygen"),
        1 => {
            let primes = dev_fixture_primes()[usize::from(me)]
                .to_pregenerated()
                .expect("dev primes");
            Session::aux_info(b"props-aux", me, PARTIES, primes).expect("aux info")
        }
        2 => Session::sign(
            b"props-sign",
            signers,
            w.shares[usize::from(me)].clone(),
            None,
            req.data_to_sign(),
        )
        .expect("sign"),
        _ => Session::presign(
            b"props-presign",
            signers,
            w.shares[usize::from(me)].clone(),
            None,
        )
        .expect("presign"),
    }
}

/// A peer's first messages: (is a broadcast, payload).
type Seeds = Vec<(bool, Vec<u8>)>;

thread_local! {
    /// Party 0's session of each kind after its first step, built once per thread (an
    /// aux-info session's first step generates Paillier keys and proofs: seconds). The
    /// cases share it: whatever a case leaves behind (a stored message, a refused one)
    /// is one more state the next case starts from.
    static SESSIONS: std::cell::RefCell<Vec<Option<Session>>> =
        std::cell::RefCell::new((0..4).map(|_| None).collect());
    /// The first messages real peers send in each kind (mutation seeds).
    static SEEDS: std::cell::RefCell<Vec<Option<Seeds>>> =
        std::cell::RefCell::new((0..4).map(|_| None).collect());
}

/// Sender of the seed messages: a peer that takes part in every kind with party 0.
fn peer(kind: u8) -> u16 {
    if kind >= 2 {
        1
    } else {
        2
    }
}

/// The first messages a real peer sends in `kind`.
fn first_messages(kind: u8) -> Seeds {
    SEEDS.with(|seeds| {
        seeds.borrow_mut()[usize::from(kind)]
            .get_or_insert_with(|| {
                let mut s = session(kind, peer(kind));
                let _ = s.run();
                s.drain_outgoing()
                    .into_iter()
                    .map(|m| (m.recipient.is_none(), m.payload))
                    .collect()
            })
            .clone()
    })
}

fn feed(kind: u8, from: u16, broadcast: bool, payload: Vec<u8>) {
    SESSIONS.with(|sessions| {
        let mut sessions = sessions.borrow_mut();
        let s = sessions[usize::from(kind)].get_or_insert_with(|| {
            let mut s = session(kind, 0);
            let _ = s.run();
            let _ = s.drain_outgoing();
            s
        });
        // Ok (stored, or waiting) or Err (refused): both fine; a panic fails the test.
        if s.handle(Incoming {
            sender: from,
            broadcast,
            payload,
        })
        .is_ok()
        {
            let _ = s.run();
            let _ = s.drain_outgoing();
        }
    })
}

proptest! {
    // 256 cases by default (sessions are costly to build); PROPTEST_CASES for long runs.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn garbage_payloads_never_panic(
        kind in 0u8..4,
        from in prop_oneof![Just(1u16), Just(2u16), any::<u16>()],
        broadcast in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        feed(kind, from, broadcast, payload);
    }

    #[test]
    fn altered_real_messages_never_panic(
        kind in 0u8..4,
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        truncate in any::<bool>(),
        flip_broadcast in any::<bool>(),
    ) {
        let from = peer(kind);
        let msgs = first_messages(kind);
        prop_assume!(!msgs.is_empty());
        let (broadcast, mut payload) = msgs[pick.index(msgs.len())].clone();
        prop_assume!(!payload.is_empty());
        let i = at.index(payload.len());
        if truncate {
            payload.truncate(i);
        } else {
            payload[i] = byte;
        }
        feed(kind, from, broadcast ^ flip_broadcast, payload);
    }
}
