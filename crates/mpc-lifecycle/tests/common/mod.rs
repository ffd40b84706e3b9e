//! Test support: dealt key shares (cggmp24's trusted dealer, `spof`: tests only), an
//! in-memory network for the state machines, reconstruction helpers.
#![allow(dead_code)]

use generic_ec::{Scalar, SecretScalar};
use generic_ec_zkp::polynomial::lagrange_coefficient_at_zero;
use mpc_lifecycle::{
    Curve, IncompleteKeyShare, Message, Outgoing, Payload, Recipient, Refresh, RefreshOutput,
    RefreshStatus, SessionId,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn sid(tag: u8) -> SessionId {
    SessionId([tag; 32])
}

/// A fresh 2-of-3 HD key, dealt (the library's trusted dealer; tests only).
pub fn dealt(seed: u64) -> Vec<IncompleteKeyShare> {
    key_share::trusted_dealer::builder::<Curve>(3)
        .set_threshold(Some(2))
        .hd_wallet(true)
        .generate_shares(&mut rng(seed))
        .expect("trusted dealer")
}

/// The secret key from two shares of the same epoch (the library's reconstruction).
pub fn secret(shares: &[IncompleteKeyShare]) -> Scalar<Curve> {
    *key_share::reconstruct_secret_key(shares)
        .expect("reconstruct")
        .as_ref()
}

/// Lagrange interpolation at 0 of the given shares' `x`, whatever their epochs: what a
/// thief holding these shares would compute.
pub fn interpolate(shares: &[&IncompleteKeyShare]) -> Scalar<Curve> {
    let points: Vec<Scalar<Curve>> = shares
        .iter()
        .map(|s| *s.vss_setup.as_ref().unwrap().I[usize::from(s.i)].as_ref())
        .collect();
    shares
        .iter()
        .enumerate()
        .map(|(j, s)| {
            let l = lagrange_coefficient_at_zero(j, &points).unwrap();
            l.into_inner() * &s.x
        })
        .sum()
}

/// One message in flight.
pub struct Flight {
    pub from: u16,
    pub to: u16,
    pub bytes: Vec<u8>,
}

/// Fans outgoing messages out to their recipients among `n` parties.
pub fn route(from: u16, out: &[Outgoing], n: u16) -> Vec<Flight> {
    let mut v = Vec::new();
    for o in out {
        match o.to {
            Recipient::Broadcast => {
                for to in (0..n).filter(|&k| k != from) {
                    v.push(Flight {
                        from,
                        to,
                        bytes: o.bytes.clone(),
                    });
                }
            }
            Recipient::Private(to) => v.push(Flight {
                from,
                to,
                bytes: o.bytes.clone(),
            }),
        }
    }
    v
}

/// Starts a refresh at every party.
pub fn start_all(
    shares: &[IncompleteKeyShare],
    session: SessionId,
    epoch: u64,
    seed: u64,
) -> (Vec<Refresh>, Vec<Flight>) {
    let n = shares.len() as u16;
    let mut parties = Vec::new();
    let mut net = Vec::new();
    for (k, s) in shares.iter().enumerate() {
        let (p, out) = Refresh::start(
            session,
            epoch,
            s,
            &mut rng(seed.wrapping_mul(10).wrapping_add(k as u64)),
        )
        .unwrap();
        net.extend(route(k as u16, &out, n));
        parties.push(p);
    }
    (parties, net)
}

/// Delivers everything in flight (and what it causes) until the network is quiet,
/// confirming persistence as soon as a party asks for it. `filter` may drop or rewrite
/// a message (return `None` to drop it).
pub fn deliver(
    parties: &mut [Refresh],
    mut net: Vec<Flight>,
    mut filter: impl FnMut(Flight) -> Option<Flight>,
) -> Vec<Flight> {
    let n = parties.len() as u16;
    let mut dropped = Vec::new();
    while !net.is_empty() {
        let mut next = Vec::new();
        for f in net {
            let (from, to) = (f.from, f.to);
            let Some(f) = filter(f) else {
                dropped.push(Flight {
                    from,
                    to,
                    bytes: Vec::new(),
                });
                continue;
            };
            let p = &mut parties[usize::from(f.to)];
            if let Ok(out) = p.handle(f.from, &f.bytes) {
                next.extend(route(f.to, &out, n));
            }
        }
        for (k, p) in parties.iter_mut().enumerate() {
            if p.status() == RefreshStatus::PersistPending {
                let out = p.confirm_persisted().unwrap();
                next.extend(route(k as u16, &out, n));
            }
        }
        net = next;
    }
    dropped
}

/// A complete honest refresh.
pub fn refresh(
    shares: &[IncompleteKeyShare],
    session: SessionId,
    epoch: u64,
    seed: u64,
) -> Vec<RefreshOutput> {
    let (mut parties, net) = start_all(shares, session, epoch, seed);
    deliver(&mut parties, net, Some);
    parties
        .into_iter()
        .map(|p| p.into_output().expect("refresh finished"))
        .collect()
}

/// Rewrites a message's payload (what a misbehaving sender does).
pub fn rewrite(bytes: &[u8], f: impl FnOnce(&mut Message)) -> Vec<u8> {
    let mut m = Message::decode(bytes).unwrap();
    f(&mut m);
    m.encode().unwrap()
}

/// Adds one to a secret scalar payload.
pub fn bump(value: &mut SecretScalar<Curve>) {
    let mut v = Scalar::<Curve>::one() + &*value;
    *value = SecretScalar::new(&mut v);
}

pub fn kind_of(bytes: &[u8]) -> mpc_lifecycle::MessageKind {
    Message::decode(bytes).unwrap().kind()
}

pub fn is_subshare(p: &Payload) -> bool {
    matches!(p, Payload::RefreshSubShare { .. })
}
