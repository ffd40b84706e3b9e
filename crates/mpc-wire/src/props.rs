//! Property tests of the envelope decoder: whatever a gateway or a peer sends, opening
//! it never panics, and nothing but an authentic, fresh envelope for us is accepted.
//! Case counts: proptest's defaults here; `PROPTEST_CASES=100000 cargo test -p mpc-wire
//! props` for a long run (docs/SECURITY.md).

use proptest::prelude::*;

use super::*;

fn key(i: u8) -> IdentityKey {
    IdentityKey::from_seed(&[i + 1; 32])
}

fn roster() -> Roster {
    Roster::new((0..3u16).map(|i| (i, key(i as u8).public()))).expect("roster")
}

fn channel(me: u16) -> Channel {
    Channel::new(
        SessionId::new("props-session").expect("session id"),
        me,
        key(me as u8),
        roster(),
    )
    .expect("channel")
}

proptest! {
    #[test]
    fn arbitrary_text_is_rejected_without_panic(text in ".{0,2048}") {
        let mut ch = channel(1);
        prop_assert!(ch.open(&text).is_err());
    }

    #[test]
    fn arbitrary_bytes_are_rejected_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut ch = channel(1);
        prop_assert!(ch.open_bytes(&bytes).is_err());
    }

    #[test]
    fn arbitrary_json_envelopes_are_rejected(
        v in any::<u16>(),
        sender in any::<u16>(),
        recipient in proptest::option::of(any::<u16>()),
        round in any::<u16>(),
        seq in any::<u64>(),
        payload in proptest::collection::vec(any::<u8>(), 0..512),
        sig in proptest::collection::vec(any::<u8>(), 64),
        session in "[a-z0-9-]{1,40}",
    ) {
        let text = serde_json::json!({
            "v": v, "session": session, "sender": sender, "recipient": recipient,
            "round": round, "seq": seq,
            "payload": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &payload),
            "sig": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &sig),
        })
        .to_string();
        let mut ch = channel(1);
        // No valid signature can come out of random bytes: only rejections or
        // "not for me"/"own echo" classifications of unauthenticated headers are
        // acceptable, never a message.
        if let Ok(Opened::Message(m)) = ch.open(&text) {
            prop_assert!(false, "accepted a forged envelope: {m:?}");
        }
    }

    #[test]
    fn sealed_messages_round_trip(
        from in 0u16..3,
        to in proptest::option::of(0u16..3),
        round in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        prop_assume!(to != Some(from));
        prop_assume!(round != crate::STOP_ROUND);
        let mut sender = channel(from);
        let text = sender.seal(to, round, &payload).expect("seal");
        for me in 0..3u16 {
            let got = channel(me).open(&text).expect("open");
            match got {
                Opened::Message(m) => {
                    prop_assert!(me != from && to.is_none_or(|t| t == me));
                    prop_assert_eq!(m.sender, from);
                    prop_assert_eq!(m.round, round);
                    prop_assert_eq!(m.broadcast, to.is_none());
                    prop_assert_eq!(m.payload, payload.clone());
                }
                Opened::OwnEcho { .. } => prop_assert_eq!(me, from),
                Opened::NotForMe { .. } => prop_assert!(me != from && to.is_some_and(|t| t != me)),
                Opened::Stop { .. } => prop_assert!(false, "a protocol message read as a stop"),
            }
        }
    }

    #[test]
    fn a_mutated_envelope_never_yields_another_message(
        to in proptest::option::of(Just(1u16)),
        payload in proptest::collection::vec(any::<u8>(), 1..256),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let text = channel(0).seal(to, 3, &payload).expect("seal");
        let mut bytes = text.into_bytes();
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        // One changed byte: rejected, or (whitespace, escapes) the very same message.
        if let Ok(Opened::Message(m)) = channel(1).open_bytes(&bytes) {
            prop_assert_eq!(m.sender, 0);
            prop_assert_eq!(m.round, 3);
            prop_assert_eq!(m.payload, payload);
        }
    }
}
