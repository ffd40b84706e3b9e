//! Tests of the envelope layer (in-crate, so they can force decryption with the wrong key
//! and forge correctly signed envelopes).

use super::*;
use ed25519_dalek::Signer as _;

struct Net {
    keys: Vec<IdentityKey>,
    roster: Roster,
    session: SessionId,
    ch: Vec<Channel>,
}

fn key(i: u8) -> IdentityKey {
    IdentityKey::from_seed(&[i + 1; 32])
}

fn net() -> Net {
    let keys: Vec<IdentityKey> = (0..3).map(key).collect();
    let roster = Roster::new((0..3u16).map(|i| (i, keys[i as usize].public()))).unwrap();
    let session = SessionId::new("sess-1").unwrap();
    let ch = (0..3u16)
        .map(|i| {
            Channel::new(session.clone(), i, keys[i as usize].clone(), roster.clone()).unwrap()
        })
        .collect();
    Net {
        keys,
        roster,
        session,
        ch,
    }
}

fn msg(o: Opened) -> Message {
    match o {
        Opened::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Re-signs `env` with `key` (what a party that really holds the key could send).
fn resign(env: &mut Envelope, key: &IdentityKey) {
    env.sig = key.signing_key().sign(&env.signing_input()).to_bytes();
}

fn json(env: &Envelope) -> String {
    env.to_json().unwrap()
}

#[test]
fn broadcast_roundtrip_between_three_parties() {
    let mut n = net();
    let text = n.ch[0].seal(None, 1, b"hello all").unwrap();
    for i in 1..3 {
        let m = msg(n.ch[i].open(&text).unwrap());
        assert_eq!(m.sender, 0);
        assert!(m.broadcast);
        assert_eq!(m.round, 1);
        assert_eq!(m.seq, 0);
        assert_eq!(m.payload, b"hello all");
    }
    assert_eq!(n.ch[0].open(&text).unwrap(), Opened::OwnEcho { seq: 0 });
    // Broadcast payloads are in the clear in the envelope.
    let env = Envelope::from_json(&text).unwrap();
    assert_eq!(env.payload, b"hello all");
    assert!(env.is_broadcast());
    assert_eq!(env.v, VERSION);
}

#[test]
fn p2p_roundtrip_every_pair() {
    let mut n = net();
    for from in 0..3u16 {
        for to in 0..3u16 {
            if from == to {
                continue;
            }
            let body = format!("secret {from}->{to}").into_bytes();
            let text = n.ch[from as usize].seal(Some(to), 2, &body).unwrap();
            let env = Envelope::from_json(&text).unwrap();
            assert_eq!(env.payload.len(), body.len() + P2P_OVERHEAD);
            assert!(!env.payload.windows(6).any(|w| w == b"secret"));
            for i in 0..3u16 {
                let got = n.ch[i as usize].open(&text).unwrap();
                if i == from {
                    assert_eq!(got, Opened::OwnEcho { seq: env.seq });
                } else if i == to {
                    let m = msg(got);
                    assert_eq!((m.sender, m.broadcast, m.round), (from, false, 2));
                    assert_eq!(m.payload, body);
                } else {
                    assert_eq!(
                        got,
                        Opened::NotForMe {
                            sender: from,
                            recipient: to,
                            seq: env.seq
                        }
                    );
                }
            }
        }
    }
}

#[test]
fn third_party_cannot_decrypt_p2p() {
    let mut n = net();
    let env = n.ch[0]
        .seal_envelope(Some(1), 1, b"for party 1 only")
        .unwrap();
    assert!(matches!(
        n.ch[2].open_envelope(&env).unwrap(),
        Opened::NotForMe { .. }
    ));
    // Forcing decryption with party 2's key fails...
    assert_eq!(
        env.decrypt(&n.keys[2]),
        Err(WireError::Decryption { sender: 0 })
    );
    // ...also if party 2 rewrites the recipient to itself (different key derivation).
    let mut redirected = env.clone();
    redirected.recipient = Some(2);
    assert_eq!(
        redirected.decrypt(&n.keys[2]),
        Err(WireError::Decryption { sender: 0 })
    );
    // The intended recipient can.
    assert_eq!(env.decrypt(&n.keys[1]).unwrap(), b"for party 1 only");
}

#[test]
fn sequence_numbers_increase_over_all_envelopes() {
    let mut n = net();
    let a = n.ch[0].seal_envelope(None, 1, b"a").unwrap();
    let b = n.ch[0].seal_envelope(Some(2), 1, b"b").unwrap();
    // A failed seal consumes no sequence number.
    assert!(matches!(
        n.ch[0].seal_envelope(Some(0), 1, b"self"),
        Err(WireError::InvalidRecipient { recipient: 0, .. })
    ));
    assert!(matches!(
        n.ch[0].seal_envelope(Some(9), 1, b"nobody"),
        Err(WireError::InvalidRecipient { recipient: 9, .. })
    ));
    let c = n.ch[0].seal_envelope(Some(1), 2, b"c").unwrap();
    assert_eq!((a.seq, b.seq, c.seq), (0, 1, 2));
    assert_eq!(n.ch[0].next_seq(), 3);
    // Party 1 skips b (not for it): gaps are fine.
    assert_eq!(msg(n.ch[1].open_envelope(&a).unwrap()).seq, 0);
    assert!(matches!(
        n.ch[1].open_envelope(&b).unwrap(),
        Opened::NotForMe { .. }
    ));
    assert_eq!(msg(n.ch[1].open_envelope(&c).unwrap()).seq, 2);
}

#[test]
fn malformed_inputs() {
    let mut n = net();
    let good = n.ch[0].seal(None, 1, b"x").unwrap();
    let c = &mut n.ch[1];
    let malformed = |r: Result<Opened, WireError>, sender: Option<u16>| match r {
        Err(WireError::Malformed { sender: s, reason }) => {
            assert_eq!(s, sender, "{reason}");
            reason
        }
        other => panic!("expected Malformed, got {other:?}"),
    };
    malformed(c.open("not json"), None);
    malformed(c.open("[1,2]"), None);
    malformed(c.open_bytes(&[0xff, 0xfe, b'{']), None);
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["payload"] = "***".into();
    let r = malformed(c.open(&v.to_string()), Some(0));
    assert!(r.contains("base64"), "{r}");
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["sig"] = "AAAA".into();
    let r = malformed(c.open(&v.to_string()), Some(0));
    assert!(r.contains("64 bytes"), "{r}");
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v.as_object_mut().unwrap().remove("seq");
    malformed(c.open(&v.to_string()), Some(0));
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["extra"] = 1.into();
    malformed(c.open(&v.to_string()), Some(0));
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["session"] = "bad session!".into();
    malformed(c.open(&v.to_string()), Some(0));
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["round"] = 70000.into();
    malformed(c.open(&v.to_string()), Some(0));
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v.as_object_mut().unwrap().remove("v");
    malformed(c.open(&v.to_string()), Some(0));
    // The genuine envelope is still accepted afterwards.
    assert_eq!(msg(c.open(&good).unwrap()).payload, b"x");
}

#[test]
fn too_large_is_rejected_before_parsing() {
    let mut n = net();
    let big = " ".repeat(MAX_ENVELOPE_BYTES + 1);
    assert_eq!(
        n.ch[1].open(&big),
        Err(WireError::TooLarge {
            size: MAX_ENVELOPE_BYTES + 1,
            max: MAX_ENVELOPE_BYTES
        })
    );
    assert!(matches!(
        n.ch[1].open_bytes(big.as_bytes()),
        Err(WireError::TooLarge { .. })
    ));
    assert!(matches!(
        n.ch[0].seal(None, 1, &vec![0u8; MAX_ENVELOPE_BYTES]),
        Err(WireError::PayloadTooLarge { .. })
    ));
    // Just above what fits after base64: rejected after encoding, seq not consumed.
    assert!(matches!(
        n.ch[0].seal(None, 1, &vec![0u8; MAX_ENVELOPE_BYTES / 4 * 3]),
        Err(WireError::PayloadTooLarge { .. })
    ));
}

#[test]
fn unsupported_version() {
    let mut n = net();
    let mut env = n.ch[0].seal_envelope(None, 1, b"x").unwrap();
    env.v = 2;
    resign(&mut env, &n.keys[0]);
    let err = n.ch[1].open(&json(&env)).unwrap_err();
    assert_eq!(
        err,
        WireError::UnsupportedVersion {
            sender: Some(0),
            version: 2
        }
    );
    assert!(err.to_string().contains("party 0"), "{err}");
    // A future version with a different shape still reports the version.
    let text = r#"{"v":7,"sender":2,"whatever":true}"#;
    assert_eq!(
        n.ch[1].open(text),
        Err(WireError::UnsupportedVersion {
            sender: Some(2),
            version: 7
        })
    );
    assert_eq!(
        n.ch[1].open_envelope(&env),
        Err(WireError::UnsupportedVersion {
            sender: Some(0),
            version: 2
        })
    );
}

#[test]
fn foreign_session() {
    let n = net();
    let other = SessionId::new("sess-2").unwrap();
    let mut foreign = Channel::new(other.clone(), 0, n.keys[0].clone(), n.roster.clone()).unwrap();
    let text = foreign.seal(None, 1, b"x").unwrap();
    let mut n = n;
    let err = n.ch[1].open(&text).unwrap_err();
    assert_eq!(
        err,
        WireError::ForeignSession {
            sender: 0,
            expected: "sess-1".into(),
            got: "sess-2".into()
        }
    );
    assert!(err.to_string().contains("party 0"), "{err}");
    assert_eq!(n.session.as_str(), "sess-1");
}

#[test]
fn unknown_sender_and_recipient_out_of_range() {
    let mut n = net();
    let mut env = n.ch[0].seal_envelope(None, 1, b"x").unwrap();
    env.sender = 5;
    resign(&mut env, &key(5));
    let err = n.ch[1].open(&json(&env)).unwrap_err();
    assert_eq!(err, WireError::UnknownSender { sender: 5 });
    assert!(err.to_string().contains("party 5"), "{err}");

    let mut env = n.ch[0].seal_envelope(Some(1), 1, b"x").unwrap();
    env.recipient = Some(7);
    resign(&mut env, &n.keys[0]);
    let err = n.ch[1].open(&json(&env)).unwrap_err();
    assert_eq!(
        err,
        WireError::RecipientOutOfRange {
            sender: 0,
            recipient: 7
        }
    );
    assert!(err.to_string().contains("party 0"), "{err}");

    let mut env = n.ch[0].seal_envelope(Some(1), 1, b"x").unwrap();
    env.recipient = Some(0);
    resign(&mut env, &n.keys[0]);
    assert!(matches!(
        n.ch[1].open(&json(&env)),
        Err(WireError::Malformed {
            sender: Some(0),
            ..
        })
    ));
}

#[test]
fn bad_signature_names_claimed_sender() {
    let mut n = net();
    let mut env = n.ch[0].seal_envelope(None, 1, b"x").unwrap();
    env.sig[10] ^= 1;
    let err = n.ch[1].open(&json(&env)).unwrap_err();
    assert_eq!(err, WireError::BadSignature { sender: 0 });
    assert!(err.to_string().contains("party 0"), "{err}");
    assert_eq!(err.sender(), Some(0));
    assert!(err.is_rejected_envelope());
    // Party 2 signing as party 0.
    let mut env = n.ch[0].seal_envelope(None, 1, b"x").unwrap();
    resign(&mut env, &n.keys[2]);
    assert_eq!(
        n.ch[1].open(&json(&env)),
        Err(WireError::BadSignature { sender: 0 })
    );
    // Somebody injecting an "echo" of our own envelope.
    assert_eq!(
        n.ch[0].open(&json(&env)),
        Err(WireError::BadSignature { sender: 0 })
    );
    // And a forged p2p envelope for somebody else is not passed off as NotForMe.
    let mut env = n.ch[0].seal_envelope(Some(2), 1, b"x").unwrap();
    env.payload[40] ^= 1;
    assert_eq!(
        n.ch[1].open(&json(&env)),
        Err(WireError::BadSignature { sender: 0 })
    );
}

#[test]
fn tampering_any_single_field_is_rejected() {
    let n = net();
    let mut sender =
        Channel::new(n.session.clone(), 0, n.keys[0].clone(), n.roster.clone()).unwrap();
    for recipient in [None, Some(1)] {
        let env = sender
            .seal_envelope(recipient, 3, b"payload bytes")
            .unwrap();
        let tampered: Vec<(&str, Envelope)> = vec![
            ("payload", {
                let mut e = env.clone();
                if let Some(b) = e.payload.last_mut() {
                    *b ^= 0x80;
                }
                e
            }),
            ("round", {
                let mut e = env.clone();
                e.round = 4;
                e
            }),
            ("recipient", {
                let mut e = env.clone();
                e.recipient = match recipient {
                    None => Some(1),
                    Some(_) => None,
                };
                e
            }),
            ("seq", {
                let mut e = env.clone();
                e.seq += 1;
                e
            }),
            ("sender", {
                let mut e = env.clone();
                e.sender = 2;
                e
            }),
        ];
        for (field, e) in tampered {
            let mut rx =
                Channel::new(n.session.clone(), 1, n.keys[1].clone(), n.roster.clone()).unwrap();
            let err = rx.open(&json(&e)).unwrap_err();
            assert_eq!(
                err,
                WireError::BadSignature { sender: e.sender },
                "tampered {field} of {recipient:?}"
            );
            // Still accepts the genuine one.
            assert_eq!(msg(rx.open(&json(&env)).unwrap()).payload, b"payload bytes");
        }
        // Session: foreign for a receiver in the original session, bad signature for a
        // receiver in the tampered-to session.
        let mut e = env.clone();
        e.session = SessionId::new("sess-X").unwrap();
        let mut rx =
            Channel::new(n.session.clone(), 1, n.keys[1].clone(), n.roster.clone()).unwrap();
        assert!(matches!(
            rx.open(&json(&e)),
            Err(WireError::ForeignSession { sender: 0, .. })
        ));
        let mut rx_x =
            Channel::new(e.session.clone(), 1, n.keys[1].clone(), n.roster.clone()).unwrap();
        assert_eq!(
            rx_x.open(&json(&e)),
            Err(WireError::BadSignature { sender: 0 })
        );
    }
}

#[test]
fn p2p_ciphertext_bound_to_header_even_if_resigned() {
    // A malicious sender (who can sign) cannot move a ciphertext to another header:
    // the header is part of the key derivation and the associated data.
    let mut n = net();
    let env = n.ch[0].seal_envelope(Some(1), 1, b"x").unwrap();
    for change in 0..3 {
        let mut e = env.clone();
        match change {
            0 => e.round = 9,
            1 => e.seq = 99,
            _ => {
                e.sender = 2;
            }
        }
        let signer = if e.sender == 2 {
            &n.keys[2]
        } else {
            &n.keys[0]
        };
        resign(&mut e, signer);
        assert_eq!(
            n.ch[1].open(&json(&e)),
            Err(WireError::Decryption { sender: e.sender })
        );
    }
    // Garbage and too-short ciphertexts.
    for payload in [vec![], vec![1u8; 47], vec![0u8; 80]] {
        let mut e = env.clone();
        e.payload = payload;
        resign(&mut e, &n.keys[0]);
        let err = n.ch[1].open(&json(&e)).unwrap_err();
        assert_eq!(err, WireError::Decryption { sender: 0 });
        assert!(err.to_string().contains("party 0"), "{err}");
    }
    // None of that changed the state: the genuine envelope is accepted.
    assert_eq!(msg(n.ch[1].open(&json(&env)).unwrap()).payload, b"x");
}

#[test]
fn replay_and_reorder_rejected_then_next_accepted() {
    let mut n = net();
    let e0 = n.ch[0].seal(None, 1, b"0").unwrap();
    let e1 = n.ch[0].seal(Some(1), 1, b"1").unwrap();
    let e2 = n.ch[0].seal(None, 2, b"2").unwrap();
    let e3 = n.ch[0].seal(None, 2, b"3").unwrap();
    let rx = &mut n.ch[1];
    assert_eq!(msg(rx.open(&e0).unwrap()).payload, b"0");
    let err = rx.open(&e0).unwrap_err();
    assert_eq!(err, WireError::Replay { sender: 0, seq: 0 });
    assert!(err.to_string().contains("party 0"), "{err}");
    assert_eq!(msg(rx.open(&e2).unwrap()).payload, b"2");
    let err = rx.open(&e1).unwrap_err();
    assert_eq!(
        err,
        WireError::Reordered {
            sender: 0,
            seq: 1,
            highest: 2
        }
    );
    assert!(err.to_string().contains("party 0"), "{err}");
    assert_eq!(rx.open(&e0), Err(WireError::Replay { sender: 0, seq: 0 }));
    assert_eq!(rx.open(&e2), Err(WireError::Replay { sender: 0, seq: 2 }));
    assert_eq!(msg(rx.open(&e3).unwrap()).payload, b"3");
    // Echoes and not-for-me envelopes are not subject to replay tracking.
    assert!(matches!(n.ch[0].open(&e0), Ok(Opened::OwnEcho { seq: 0 })));
    assert!(matches!(n.ch[0].open(&e0), Ok(Opened::OwnEcho { seq: 0 })));
    assert!(matches!(n.ch[2].open(&e1), Ok(Opened::NotForMe { .. })));
}

#[test]
fn forged_high_seq_does_not_block_genuine() {
    let mut n = net();
    let mut forged = n.ch[0].seal_envelope(None, 1, b"evil").unwrap();
    forged.seq = 1000;
    assert_eq!(
        n.ch[1].open(&json(&forged)),
        Err(WireError::BadSignature { sender: 0 })
    );
    let genuine = n.ch[0].seal(None, 1, b"good").unwrap();
    assert_eq!(msg(n.ch[1].open(&genuine).unwrap()).payload, b"good");
}

/// Small deterministic PRNG for the fuzz-ish tests.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_and_mutated_inputs_never_panic() {
    let mut n = net();
    let p2p = n.ch[0].seal(Some(1), 1, b"p2p payload").unwrap();
    let bc = n.ch[0].seal(None, 1, b"broadcast payload").unwrap();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let rx = &mut n.ch[1];
    // Random bytes.
    for _ in 0..2000 {
        let len = (rng.next() % 300) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(rx.open_bytes(&bytes).is_err());
    }
    for good in [&p2p, &bc] {
        // Every truncation.
        for cut in 0..good.len() {
            assert!(rx.open_bytes(&good.as_bytes()[..cut]).is_err());
        }
        // Random byte flips: either rejected or (if the JSON means the same) identical.
        for _ in 0..3000 {
            let mut bytes = good.as_bytes().to_vec();
            let flips = 1 + rng.next() % 3;
            for _ in 0..flips {
                let i = (rng.next() as usize) % bytes.len();
                bytes[i] ^= 1 << (rng.next() % 8);
            }
            if let Ok(Opened::Message(m)) = rx.open_bytes(&bytes) {
                let orig = Envelope::from_json(good).unwrap();
                assert_eq!(m.seq, orig.seq);
                assert!(m.payload == b"p2p payload" || m.payload == b"broadcast payload");
            }
        }
    }
    // Random JSON-ish envelopes with the right shape but random values.
    for _ in 0..500 {
        let text = format!(
            r#"{{"v":{},"session":"sess-1","sender":{},"recipient":{},"round":{},"seq":{},"payload":"{}","sig":"{}"}}"#,
            rng.next() % 3,
            rng.next() % 4,
            ["null", "0", "1", "2", "3"][(rng.next() % 5) as usize],
            rng.next() % 5,
            rng.next(),
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                (0..rng.next() % 100)
                    .map(|_| rng.next() as u8)
                    .collect::<Vec<_>>()
            ),
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                (0..64).map(|_| rng.next() as u8).collect::<Vec<_>>()
            ),
        );
        assert!(rx.open(&text).is_err());
    }
}

#[test]
fn identity_seed_roundtrip_and_redacted_debug() {
    let k = IdentityKey::generate().unwrap();
    let hex_seed = k.to_seed_hex();
    let k2 = IdentityKey::from_seed_hex(&hex_seed).unwrap();
    assert_eq!(k.public(), k2.public());
    let dbg = format!("{k:?}");
    assert!(!dbg.contains(hex_seed.as_str()), "{dbg}");
    assert!(dbg.contains(&k.public().to_string()));
    assert!(IdentityKey::from_seed_hex("zz").is_err());
    assert!(IdentityKey::from_seed_hex(&"g".repeat(64)).is_err());
    // Signing and DH keys are distinct derivations of the seed.
    let p = k.public();
    assert_ne!(p.sign_key().as_bytes(), p.dh_key().as_bytes());
    // Deterministic.
    assert_eq!(key(1).public(), key(1).public());
    assert_ne!(key(1).public(), key(2).public());
}

#[test]
fn public_identity_string_and_serde() {
    let p = key(0).public();
    let s = p.to_string();
    assert_eq!(s.len(), 128);
    assert_eq!(s.parse::<PublicIdentity>().unwrap(), p);
    let j = serde_json::to_string(&p).unwrap();
    assert_eq!(j, format!("\"{s}\""));
    assert_eq!(serde_json::from_str::<PublicIdentity>(&j).unwrap(), p);
    assert!("abc".parse::<PublicIdentity>().is_err());
    // Small-order x25519 key (all zeros) and identity-point ed25519 key are refused.
    let mut bytes = p.to_bytes();
    bytes[32..].fill(0);
    assert!(matches!(
        PublicIdentity::from_bytes(&bytes),
        Err(WireError::InvalidKey { .. })
    ));
    let mut bytes = p.to_bytes();
    bytes[..32].fill(0);
    bytes[0] = 1; // ed25519 identity point
    assert!(matches!(
        PublicIdentity::from_bytes(&bytes),
        Err(WireError::InvalidKey { .. })
    ));
}

#[test]
fn roster_and_channel_validation() {
    let n = net();
    let j = serde_json::to_string(&n.roster).unwrap();
    assert_eq!(serde_json::from_str::<Roster>(&j).unwrap(), n.roster);
    assert!(Roster::new([(0, key(0).public()), (0, key(1).public())]).is_err());
    assert!(Roster::new([(0, key(0).public()), (1, key(0).public())]).is_err());
    assert!(Roster::new([(0, key(0).public())]).is_err());
    assert!(Channel::new(n.session.clone(), 1, n.keys[0].clone(), n.roster.clone()).is_err());
    assert!(Channel::new(n.session.clone(), 5, n.keys[0].clone(), n.roster.clone()).is_err());
}

#[test]
fn session_id_rules() {
    assert!(SessionId::new("").is_err());
    assert!(SessionId::new("a b").is_err());
    assert!(SessionId::new("é").is_err());
    assert!(SessionId::new("x".repeat(MAX_SESSION_ID_LEN + 1)).is_err());
    assert!(SessionId::new("x".repeat(MAX_SESSION_ID_LEN)).is_ok());
    assert!(SessionId::new("Sign:acct-7_v1.2").is_ok());
    let r = SessionId::random().unwrap();
    assert_eq!(r.as_str().len(), 32);
    assert_ne!(r, SessionId::random().unwrap());
    assert!(serde_json::from_str::<SessionId>("\"no spaces\"").is_err());
}

#[test]
fn envelope_json_shape() {
    let mut n = net();
    let text = n.ch[0].seal(None, 1, b"x").unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(|k| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "payload",
            "recipient",
            "round",
            "sender",
            "seq",
            "session",
            "sig",
            "v"
        ]
    );
    assert_eq!(obj["recipient"], serde_json::Value::Null);
    assert_eq!(obj["payload"], "eA==");
    // Debug of a p2p message / envelope never prints payload bytes.
    let env = n.ch[0].seal_envelope(Some(1), 1, b"topsecret").unwrap();
    let m = msg(n.ch[1].open_envelope(&env).unwrap());
    assert!(!format!("{m:?}").contains("topsecret"));
    assert!(!format!("{env:?}").contains("payload:"));
}

/// A stop notice reaches every peer as `Opened::Stop` with its code; a forged one (not
/// signed by the roster identity, or of another session), a replayed one, a p2p one and
/// one with a bad code are rejected without changing the channel.
#[test]
fn stop_notices_are_authenticated_and_checked() {
    let mut n = net();
    let notice = StopNotice::new("cosigner_unavailable", "shutting down").unwrap();
    let text = n.ch[1].seal_stop(&notice).unwrap();
    for i in [0usize, 2] {
        match n.ch[i].open(&text).unwrap() {
            Opened::Stop {
                sender,
                notice: got,
            } => {
                assert_eq!(sender, 1);
                assert_eq!(got, notice);
            }
            other => panic!("expected a stop, got {other:?}"),
        }
    }
    // Replayed.
    assert!(matches!(
        n.ch[0].open(&text),
        Err(WireError::Replay { sender: 1, .. })
    ));
    // Forged: the gateway (or anyone) re-signs a stop as party 1 with another key.
    let mut forged = Envelope::from_json(&n.ch[1].seal_stop(&notice).unwrap()).unwrap();
    forged.seq = 99;
    resign(&mut forged, &key(7));
    assert!(matches!(
        n.ch[0].open(&json(&forged)),
        Err(WireError::BadSignature { sender: 1 })
    ));
    // Signed by the right key but sent p2p, or with a code that is not a wire code.
    // A protocol message cannot take the stop round.
    assert!(n.ch[1].seal(None, STOP_ROUND, b"x").is_err());
    let p2p = json(
        &n.ch[1]
            .seal_any(Some(0), STOP_ROUND, &notice.to_payload().unwrap())
            .unwrap(),
    );
    assert!(matches!(
        n.ch[0].open(&p2p),
        Err(WireError::Malformed {
            sender: Some(1),
            ..
        })
    ));
    let bad = json(
        &n.ch[1]
            .seal_any(None, STOP_ROUND, br#"{"code":"Not A Code","reason":""}"#)
            .unwrap(),
    );
    assert!(matches!(
        n.ch[0].open(&bad),
        Err(WireError::Malformed {
            sender: Some(1),
            ..
        })
    ));
    let junk = json(&n.ch[1].seal_any(None, STOP_ROUND, b"\xff\x00").unwrap());
    assert!(matches!(
        n.ch[0].open(&junk),
        Err(WireError::Malformed {
            sender: Some(1),
            ..
        })
    ));
    // Rejections change nothing: a later genuine message is still accepted.
    let later = n.ch[1].seal(None, 3, b"still here").unwrap();
    assert_eq!(msg(n.ch[0].open(&later).unwrap()).payload, b"still here");
    // Codes and reasons are bounded on the sending side too.
    assert!(StopNotice::new("", "x").is_err());
    assert!(StopNotice::new("ok_code", &"r".repeat(stop::MAX_STOP_REASON + 1)).is_err());
}
