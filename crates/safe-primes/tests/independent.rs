//! Every generated `p` and `q = (p - 1) / 2` is checked with an independent primality test
//! (glass_pumpkin's Baillie–PSW and its safe-prime check; not our code), since a weak
//! prime would fail silently.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;
use safe_primes::{generate, generate_many, BigUint, Natural, Params, SafePrime};

/// Seeded randomness for the generators that take an RNG: every run checks the same
/// primes. (`generate_many` draws its own seeds from the OS.)
fn rng() -> StdRng {
    StdRng::seed_from_u64(0x1d3e_9e4d)
}

fn to_biguint<N: Natural>(x: &N) -> BigUint {
    BigUint::from_bytes_be(&x.to_be_bytes())
}

fn check_independently<N: Natural>(sp: &SafePrime<N>, bits: u64) {
    let p = to_biguint(sp.p());
    let q = to_biguint(sp.q());
    assert_eq!(p.bits(), bits, "p has exactly {bits} bits");
    assert_eq!(&q * 2u32 + 1u32, p, "p = 2q + 1");
    assert_eq!(
        &p % 4u32,
        BigUint::from(3u32),
        "p is a Blum prime (3 mod 4)"
    );
    assert!(
        glass_pumpkin::prime::strong_check(&q),
        "q fails Baillie-PSW: {q:x}"
    );
    assert!(
        glass_pumpkin::prime::strong_check(&p),
        "p fails Baillie-PSW: {p:x}"
    );
    assert!(
        glass_pumpkin::safe_prime::strong_check(&p),
        "p is not a safe prime: {p:x}"
    );
}

#[test]
fn primes_of_512_bits_pass_independent_tests() {
    let params = Params::new(512).unwrap();
    let mut rng = rng();
    for _ in 0..4 {
        let sp = generate::<BigUint, _>(params, &mut rng, None, &mut |_| {}).unwrap();
        check_independently(&sp, 512);
    }
    let many = generate_many::<BigUint>(params, 4, 2, None, &mut |_| {}).unwrap();
    assert_eq!(many.len(), 4);
    for sp in &many {
        check_independently(sp, 512);
    }
}

#[test]
fn sizes_between_are_exact() {
    let mut rng = rng();
    for bits in [64u32, 100, 255, 256, 257] {
        let params = Params::new(bits).unwrap();
        let sp = generate::<BigUint, _>(params, &mut rng, None, &mut |_| {}).unwrap();
        check_independently(&sp, u64::from(bits));
    }
}

/// A full CGGMP set: four 1536-bit safe primes, two threads.
#[test]
fn full_1536_bit_set_passes_independent_tests() {
    let t = Instant::now();
    let mut last = Default::default();
    let never = AtomicBool::new(false);
    #[cfg(feature = "rug")]
    let set =
        generate_many::<rug::Integer>(Params::cggmp(), 4, 2, Some(&never), &mut |p| last = *p)
            .unwrap();
    #[cfg(not(feature = "rug"))]
    let set =
        generate_many::<BigUint>(Params::cggmp(), 4, 2, Some(&never), &mut |p| last = *p).unwrap();
    eprintln!("4 x 1536-bit safe primes in {:.1?}: {last:?}", t.elapsed());
    assert_eq!(set.len(), 4);
    for (i, sp) in set.iter().enumerate() {
        check_independently(sp, 1536);
        for other in &set[..i] {
            assert_ne!(other.p(), sp.p());
            assert!(!safe_primes::too_close(other.p(), sp.p()));
        }
    }
    assert!(last.found >= 4);
}

#[cfg(feature = "rug")]
#[test]
fn rug_backend_primes_pass_independent_tests() {
    let params = Params::new(512).unwrap();
    let mut rng = rng();
    for _ in 0..3 {
        let sp = generate::<rug::Integer, _>(params, &mut rng, None, &mut |_| {}).unwrap();
        check_independently(&sp, 512);
        // and GMP's own test
        assert_ne!(sp.p().is_probably_prime(30), rug::integer::IsPrime::No);
    }
}
