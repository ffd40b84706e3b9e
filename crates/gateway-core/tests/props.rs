//! Property tests of what a client controls at the gateway: paths, room ids, tokens,
//! `Last-Event-ID`, bodies, and any sequence of room operations. Nothing panics, no
//! forged token is accepted, and a room's accounting stays exact. Long run:
//! `PROPTEST_CASES=100000 cargo test -p gateway-core --test props` (docs/SECURITY.md).

use gateway_core::{
    check_access, issue_room_token, parse_last_event_id, paths, validate_body, validate_room_id,
    verify_room_token, Limits, Registry,
};
use proptest::prelude::*;

const SECRET: &[u8] = b"a gateway access secret";
const NOW: u64 = 1_800_000_000;

proptest! {
    #[test]
    fn request_fields_never_panic(
        path in ".{0,300}",
        room in ".{0,300}",
        last in proptest::option::of(".{0,40}"),
        body in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let _ = paths::parse(&path);
        let _ = validate_room_id(&room);
        let _ = parse_last_event_id(last.as_deref());
        let _ = validate_body(&body, &Limits::default());
    }

    #[test]
    fn forged_tokens_are_refused(
        token in ".{0,200}",
        header in proptest::option::of(".{0,200}"),
        room in "[A-Za-z0-9_-]{1,64}",
    ) {
        prop_assert!(verify_room_token(SECRET, &room, &token, NOW).is_err());
        prop_assert!(check_access(Some(SECRET), &room, header.as_deref(), Some(&token), NOW).is_err());
    }

    #[test]
    fn a_token_opens_its_room_only_until_it_expires(
        room in "[A-Za-z0-9_-]{1,64}",
        other in "[A-Za-z0-9_-]{1,64}",
        ttl in 1u64..1_000_000,
        flip in any::<prop::sample::Index>(),
    ) {
        let token = issue_room_token(SECRET, &room, NOW + ttl);
        prop_assert_eq!(verify_room_token(SECRET, &room, &token, NOW), Ok(NOW + ttl));
        prop_assert!(verify_room_token(SECRET, &room, &token, NOW + ttl).is_err());
        prop_assert!(verify_room_token(b"another secret of the right size", &room, &token, NOW).is_err());
        if other != room {
            prop_assert!(verify_room_token(SECRET, &other, &token, NOW).is_err());
        }
        // Any one changed character makes it invalid.
        let mut bytes = token.clone().into_bytes();
        let i = flip.index(bytes.len());
        bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
        let changed = String::from_utf8(bytes).expect("ascii");
        prop_assert!(verify_room_token(SECRET, &room, &changed, NOW).is_err());
    }

    #[test]
    fn room_accounting_stays_exact(ops in proptest::collection::vec((0u8..4, 0usize..300, 0u64..5_000), 1..200)) {
        let limits = Limits {
            max_message_bytes: 256,
            max_messages_per_room: 50,
            max_room_bytes: 4096,
            max_subscribers_per_room: 3,
            room_idle_ttl_secs: 2,
            ..Limits::default()
        };
        let mut reg: Registry = Registry::new(limits.clone());
        let mut now = 1_000_000u64;
        let mut stored: Vec<usize> = Vec::new();
        let mut subs = 0u32;
        let mut expired = false;
        for (op, size, dt) in ops {
            now += dt;
            let room = match reg.get_or_create("room-1", now, || ()) {
                Ok(r) => r,
                Err(_) => { expired = true; break; }
            };
            match op {
                0 => {
                    let body = "x".repeat(size.max(1));
                    match room.append(&body, &limits, now) {
                        Ok(m) => {
                            stored.push(body.len());
                            prop_assert_eq!(m.seq, stored.len() as u64);
                        }
                        Err(_) => {
                            prop_assert!(
                                body.len() as u64 > limits.max_message_bytes
                                    || stored.len() as u64 >= limits.max_messages_per_room
                                    || (stored.iter().sum::<usize>() + body.len()) as u64 > limits.max_room_bytes
                            );
                        }
                    }
                }
                1 => if room.subscribe(&limits, now).is_ok() { subs += 1 } else { prop_assert_eq!(subs, limits.max_subscribers_per_room) },
                2 => if subs > 0 { room.unsubscribe(now); subs -= 1 },
                _ => {
                    let after = (size as u64) % (stored.len() as u64 + 2);
                    if room.check_resume(after).is_ok() {
                        let got = room.messages_after(after, usize::MAX);
                        prop_assert_eq!(got.len() as u64, stored.len() as u64 - after);
                        for (k, m) in got.iter().enumerate() {
                            prop_assert_eq!(m.seq, after + 1 + k as u64);
                        }
                    } else {
                        prop_assert!(after > stored.len() as u64);
                    }
                }
            }
            let room = reg.get_or_create("room-1", now, || ());
            if let Ok(room) = room {
                prop_assert_eq!(room.bytes(), stored.iter().sum::<usize>() as u64);
                prop_assert_eq!(room.len(), stored.len());
                prop_assert_eq!(room.subscribers(), subs);
            } else {
                expired = true;
                break;
            }
        }
        // Once expired, a room stays gone (410), it never silently reopens empty.
        if expired {
            prop_assert!(reg.get_or_create("room-1", now + 10_000_000, || ()).is_err());
        }
    }
}
