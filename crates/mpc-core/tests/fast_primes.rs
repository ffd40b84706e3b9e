//! Our safe-prime generator (`PrimeSet::generate_fast`) feeds the library: every prime and
//! (p-1)/2 is checked with an independent primality test (glass_pumpkin's Baillie-PSW), the
//! set goes through `PregeneratedPrimes::try_from`, and an aux-info run with it succeeds
//! (the other parties verify the ZK proofs on the Paillier and Pedersen moduli built from
//! these primes).
//!
//! The aux-info run is slow in pure Rust (over a minute); it runs by default with GMP:
//! `cargo test -p mpc-core --no-default-features --features backend-rug --test fast_primes`
//! and with pure Rust under `--ignored`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use mpc_core::local::run_sessions_threaded;
use mpc_core::primes::{dev_fixture_primes, PrimeSet, FAST_PRIME_BACKEND, PRIME_BITS};
use mpc_core::{Session, SessionOutput, PARTIES};
use safe_primes::BigUint;

fn fresh_set() -> &'static PrimeSet {
    static SET: OnceLock<PrimeSet> = OnceLock::new();
    SET.get_or_init(|| {
        let t = std::time::Instant::now();
        let set = PrimeSet::generate_fast(2, None, &mut |_| {}).expect("generation");
        eprintln!("fast prime set ({FAST_PRIME_BACKEND}) in {:?}", t.elapsed());
        set
    })
}

#[test]
fn fast_set_is_safe_primes_and_accepted_by_the_library() {
    let set = fresh_set();
    for (i, hex) in set.primes.iter().enumerate() {
        let p = BigUint::parse_bytes(hex.as_bytes(), 16).expect("hex");
        assert_eq!(p.bits(), u64::from(PRIME_BITS));
        assert_eq!(&p % 4u32, BigUint::from(3u32), "Blum prime");
        let q = (&p - 1u32) >> 1;
        assert!(
            glass_pumpkin::prime::strong_check(&q),
            "(p-1)/2 of prime {i} is not prime"
        );
        assert!(
            glass_pumpkin::prime::strong_check(&p),
            "prime {i} is not prime"
        );
        assert!(set.primes[..i].iter().all(|o| o != hex), "distinct");
    }
    let pre = set.to_pregenerated().expect("PregeneratedPrimes::try_from");
    assert_eq!(PrimeSet::from_pregenerated(&pre), *set);
    assert!(!set.is_public_fixture());
}

#[test]
#[cfg_attr(
    not(feature = "backend-rug"),
    ignore = "over a minute in pure Rust; runs by default with --features backend-rug"
)]
fn aux_info_runs_with_fast_primes() {
    let fixtures = dev_fixture_primes();
    let mut sets = vec![fresh_set().clone()];
    sets.extend(fixtures.into_iter().skip(1).take(2));
    let factories: Vec<_> = (0..PARTIES)
        .map(|i| {
            let p = sets[usize::from(i)].to_pregenerated().expect("primes");
            move || Session::aux_info(b"fast-primes-aux", i, PARTIES, p)
        })
        .collect();
    let outs = run_sessions_threaded(factories, &|_, _| {}).expect("aux info with our primes");
    assert_eq!(outs.len(), usize::from(PARTIES));
    for o in outs {
        assert!(matches!(o, SessionOutput::AuxInfo(_)), "unexpected {o:?}");
    }
}

#[test]
fn bad_parameters_and_cancellation_are_errors() {
    assert!(PrimeSet::generate_fast(0, None, &mut |_| {}).is_err());
    let cancel = AtomicBool::new(false);
    let r = PrimeSet::generate_fast(1, Some(&cancel), &mut |_| {
        cancel.store(true, Ordering::SeqCst)
    });
    let e = r.expect_err("cancelled");
    assert!(e.to_string().contains("cancelled"), "{e}");
}
