//! A hostile aux-info peer's messages, for the tests that perform the attack on the
//! bounds of [`MAX_PAILLIER_MODULUS_BITS`](crate::session::MAX_PAILLIER_MODULUS_BITS)
//! (feature `hostile-peer`, enabled only by test builds; never in a product).
//!
//! The messages are built exactly as the library builds them (the same encodings, the
//! same hash commitment and echo hash), so a receiver without the bounds accepts them:
//! the decommitment matches its commitment, the moduli are long enough, and the receiver
//! starts verifying the ring-Pedersen proof of a modulus of millions of bits.

use digest::Digest;

use crate::session::AuxInfoMsg;
use crate::{PartyIndex, SessionKind};

use cggmp24::key_refresh::msg::{Msg, MsgReliabilityCheck, MsgRound1, MsgRound2};

/// The hash commitment of a round-2 decommitment (the library's `HashCom`).
#[derive(udigest::Digestable)]
#[udigest(tag = "dfns.cggmp24.aux_gen.hash_commitment")]
#[udigest(bound = "")]
struct HashCom<'a> {
    sid: cggmp24::ExecutionId<'a>,
    prover: u16,
    decommitment: &'a MsgRound2<crate::SecurityLevel>,
}

/// One party's share of the echo hash (the library's `Echo`).
#[derive(udigest::Digestable)]
#[udigest(tag = "dfns.cggmp24.aux_gen.echo_round")]
#[udigest(bound = "")]
struct Echo<'a, D: Digest> {
    sid: cggmp24::ExecutionId<'a>,
    commitment: &'a MsgRound1<D>,
}

/// Round 1 (the commitment) and round 2 (the decommitment) of a hostile aux-info peer,
/// encoded as [`Outgoing::payload`](crate::Outgoing)s (both are broadcasts).
#[derive(Debug, Clone)]
pub struct HostileAuxInfo {
    /// The round-1 commitment to `round2`.
    pub round1: Vec<u8>,
    /// The round-2 decommitment.
    pub round2: Vec<u8>,
}

/// An odd number of exactly `bits` bits, as the library's JSON encoding of an integer.
fn integer_json(bits: u64) -> serde_json::Value {
    let bits = bits.max(2);
    let digits = bits.div_ceil(4) as usize;
    let mut hex = String::with_capacity(digits);
    hex.push(char::from(b"1248"[((bits - 1) % 4) as usize]));
    hex.extend(std::iter::repeat_n('d', digits.saturating_sub(2)));
    if digits > 1 {
        hex.push('f');
    }
    serde_json::json!({ "radix": 16, "value": hex })
}

/// Party `me`'s round-1 and round-2 aux-info messages for `session_id` (the id given to
/// [`Session::aux_info`](crate::Session::aux_info)) among `n` parties, with a Paillier
/// modulus N of `n_bits` bits and a ring-Pedersen modulus N̂ of `hat_n_bits` bits.
///
/// The moduli are odd numbers of that length, not biprimes, and the ring-Pedersen proof
/// is made of numbers that pass the library's domain checks (each exponent has
/// `exponent_bits` bits, below N̂), so what a receiver without bounds does with a long N̂
/// is 128 exponentiations modulo it before the proof fails.
pub fn oversized_aux_info(
    session_id: &[u8],
    me: PartyIndex,
    n: u16,
    n_bits: u64,
    hat_n_bits: u64,
    exponent_bits: u64,
) -> Result<HostileAuxInfo, String> {
    const M: usize = cggmp24::security_level::M;
    let round2 = serde_json::json!({
        "Round2": {
            "N": integer_json(n_bits),
            "hat_N": integer_json(hat_n_bits),
            "s": { "radix": 16, "value": "2" },
            "t": { "radix": 16, "value": "4" },
            "params_proof": {
                "commitment": vec![serde_json::json!({ "radix": 16, "value": "2" }); M],
                "zs": vec![integer_json(exponent_bits); M],
            },
            "rho_bytes": "11".repeat(32),
            "decommit": "22".repeat(32),
        }
    });
    let msg: AuxInfoMsg = serde_json::from_value(round2).map_err(|e| e.to_string())?;
    let Msg::Round2(decommitment) = &msg else {
        return Err("not a round-2 message".into());
    };
    let eid = execution_id(session_id, n);
    let commitment = udigest::hash::<sha2::Sha256>(&HashCom {
        sid: cggmp24::ExecutionId::new(&eid),
        prover: me,
        decommitment,
    });
    let round1: AuxInfoMsg = Msg::Round1(MsgRound1 { commitment });
    Ok(HostileAuxInfo {
        round1: serde_json::to_vec(&round1).map_err(|e| e.to_string())?,
        round2: serde_json::to_vec(&msg).map_err(|e| e.to_string())?,
    })
}

/// The reliability-check (echo) message of an aux-info session (`session_id`, `n`
/// parties) given every party's round-1 payload in party order, the sender's own
/// included: what every honest party sends after round 1.
pub fn aux_info_echo(session_id: &[u8], n: u16, round1: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let commitments = round1
        .iter()
        .map(|p| match serde_json::from_slice::<AuxInfoMsg>(p) {
            Ok(Msg::Round1(c)) => Ok(c),
            Ok(_) => Err("not a round-1 message".to_string()),
            Err(e) => Err(e.to_string()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let eid = execution_id(session_id, n);
    let sid = cggmp24::ExecutionId::new(&eid);
    let hash = udigest::hash_iter::<sha2::Sha256>(
        commitments
            .iter()
            .map(|commitment| Echo { sid, commitment }),
    );
    let echo: AuxInfoMsg = Msg::ReliabilityCheck(MsgReliabilityCheck(hash));
    serde_json::to_vec(&echo).map_err(|e| e.to_string())
}

/// The protocol round of an aux-info payload (what an envelope carrying it claims).
pub fn aux_info_round(payload: &[u8]) -> Result<u16, String> {
    use cggmp24::round_based::ProtocolMessage;
    serde_json::from_slice::<AuxInfoMsg>(payload)
        .map(|m| m.round())
        .map_err(|e| e.to_string())
}

/// Whether `payload` is an aux-info round-1 commitment.
pub fn is_aux_info_round1(payload: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<AuxInfoMsg>(payload),
        Ok(Msg::Round1(_))
    )
}

fn execution_id(session_id: &[u8], n: u16) -> Vec<u8> {
    let participants: Vec<PartyIndex> = (0..n).collect();
    crate::session::execution_id_bytes(SessionKind::AuxInfo, session_id, &participants)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::primes::dev_fixture_primes;
    use crate::session::{MAX_PAILLIER_MODULUS_BITS, MIN_PAILLIER_MODULUS_BITS};
    use crate::{Incoming, Session, SessionError, Step};

    const SID: &[u8] = b"hostile-aux-info";

    fn honest(me: PartyIndex) -> Session {
        let primes = dev_fixture_primes()[usize::from(me)]
            .to_pregenerated()
            .expect("fixture primes");
        Session::aux_info(SID, me, 3, primes).expect("aux info session")
    }

    /// Honest parties 0 and 1 run aux info with party 2, which commits to and then
    /// broadcasts `hostile` (its echo is the honest one). Returns what happened when the
    /// honest parties were handed party 2's round-2 decommitment.
    fn attack(hostile: HostileAuxInfo) -> Vec<(PartyIndex, Result<(), SessionError>)> {
        let mut parties = [honest(0), honest(1)];
        let mut round1: [Option<Vec<u8>>; 2] = [None, None];
        let to_both = |parties: &mut [Session; 2], payload: &[u8]| {
            parties
                .iter_mut()
                .map(|s| {
                    let me = s.me();
                    let r = s.handle(Incoming {
                        sender: 2,
                        broadcast: true,
                        payload: payload.to_vec(),
                    });
                    (me, r)
                })
                .collect::<Vec<_>>()
        };
        for (_, r) in to_both(&mut parties, &hostile.round1) {
            r.expect("the commitment is an ordinary round-1 message");
        }
        for _ in 0..10_000 {
            for k in 0..2 {
                let step = parties[k].step().expect("honest step");
                assert!(!matches!(step, Step::Finished), "aux info finished");
                for out in parties[k].drain_outgoing() {
                    if is_aux_info_round1(&out.payload) {
                        round1[k] = Some(out.payload.clone());
                    }
                    if out.recipient.is_none() || out.recipient == Some(1 - k as u16) {
                        parties[1 - k]
                            .handle(Incoming {
                                sender: k as u16,
                                broadcast: out.recipient.is_none(),
                                payload: out.payload,
                            })
                            .expect("honest message");
                    }
                }
            }
            if let [Some(a), Some(b)] = &round1 {
                let echo = aux_info_echo(SID, 3, &[a.clone(), b.clone(), hostile.round1.clone()])
                    .expect("echo");
                for (_, r) in to_both(&mut parties, &echo) {
                    r.expect("the echo is an honest one");
                }
                let handed = to_both(&mut parties, &hostile.round2);
                if handed.iter().any(|(_, r)| r.is_err()) {
                    return handed;
                }
                // Accepted (no bound): the honest parties verify its proof now.
                loop {
                    for p in &mut parties {
                        if let Err(e) = p.step() {
                            return vec![(p.me(), Err(e))];
                        }
                    }
                }
            }
        }
        panic!("the honest parties never finished round 1");
    }

    /// Runs `attack` on its own thread; fails if it has not returned within a minute
    /// (without the bounds the honest parties compute for hours: the attack succeeds).
    fn attack_promptly(hostile: HostileAuxInfo) -> Vec<(PartyIndex, Result<(), SessionError>)> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(attack(hostile));
        });
        rx.recv_timeout(Duration::from_secs(60)).expect(
            "the honest parties still compute a minute after party 2's oversized aux-info \
             message: the attack succeeds",
        )
    }

    fn assert_refused(handed: &[(PartyIndex, Result<(), SessionError>)], what: &str) {
        assert_eq!(handed.len(), 2, "{handed:?}");
        for (me, r) in handed {
            match r {
                Err(SessionError::MalformedMessage { from: 2, reason }) => {
                    assert!(reason.contains(what), "party {me}: {reason}");
                    assert!(
                        reason.contains(&MAX_PAILLIER_MODULUS_BITS.to_string()),
                        "{reason}"
                    );
                }
                other => panic!("party {me} did not refuse party 2's message: {other:?}"),
            }
        }
    }

    /// The attack of issue 14: a peer's ring-Pedersen modulus N̂ of 3 million bits (with
    /// a matching commitment and proof numbers that pass the library's domain checks)
    /// would make every honest party compute 128 exponentiations modulo it. Refused
    /// when it is handed to the session, naming the sender.
    #[test]
    fn a_peer_with_an_oversized_ring_pedersen_modulus_is_refused_before_the_protocol() {
        let hostile = oversized_aux_info(SID, 2, 3, 3072, 3_000_000, 4096).expect("hostile");
        assert!(hostile.round2.len() < crate::session::MAX_PAYLOAD);
        assert_refused(&attack_promptly(hostile), "ring-Pedersen modulus");
    }

    /// The same with the Paillier modulus N (every later signing would compute modulo
    /// N²), and the smallest out-of-bounds sizes on both sides.
    #[test]
    fn a_peer_with_an_out_of_bounds_paillier_modulus_is_refused_before_the_protocol() {
        let hostile = oversized_aux_info(SID, 2, 3, 3_000_000, 3072, 64).expect("hostile");
        assert_refused(&attack_promptly(hostile), "Paillier modulus N ");
        for (n, hat_n) in [
            (MAX_PAILLIER_MODULUS_BITS + 1, 3072),
            (3072, MAX_PAILLIER_MODULUS_BITS + 1),
            (MIN_PAILLIER_MODULUS_BITS - 1, 3072),
        ] {
            let h = oversized_aux_info(SID, 2, 3, n, hat_n, 64).expect("hostile");
            let mut s = honest(0);
            let e = s
                .handle(Incoming {
                    sender: 2,
                    broadcast: true,
                    payload: h.round2,
                })
                .expect_err("out of bounds");
            assert!(
                matches!(&e, SessionError::MalformedMessage { from: 2, .. }),
                "{e}"
            );
            assert!(e.to_string().contains("party 2"), "{e}");
        }
        // At the bounds: handed over (the protocol judges the rest).
        for bits in [MIN_PAILLIER_MODULUS_BITS, MAX_PAILLIER_MODULUS_BITS] {
            let h = oversized_aux_info(SID, 2, 3, bits, bits, 64).expect("hostile");
            honest(0)
                .handle(Incoming {
                    sender: 2,
                    broadcast: true,
                    payload: h.round2,
                })
                .expect("within the bounds");
        }
    }
}
