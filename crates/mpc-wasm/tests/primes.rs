//! Browser tests of the safe-prime search bindings (`PrimeSearch`, `assemblePrimeSet`),
//! run in headless Chromium by `crates/mpc-wasm/test.sh`. Found primes are checked with
//! independent tests that are not our code: exact trial division for small sizes, and
//! glass_pumpkin's Baillie–PSW (`prime::strong_check`) on `p` and `q = (p - 1) / 2`.
#![cfg(target_arch = "wasm32")]

use js_sys::Reflect;
use mpc_wasm::js::{self, PrimeSearch};
use safe_primes::BigUint;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn code_of(e: &JsValue) -> String {
    Reflect::get(e, &"code".into())
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default()
}

fn counter(search: &PrimeSearch, k: &str) -> f64 {
    let p = search.progress().unwrap();
    Reflect::get(&p, &k.into()).unwrap().as_f64().unwrap()
}

fn is_prime_u64(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// Runs chunks until a prime turns up (bounded).
fn find(search: &mut PrimeSearch, budget: u32, max_chunks: usize) -> String {
    for _ in 0..max_chunks {
        if let Some(p) = search.run(budget).unwrap() {
            return p;
        }
    }
    panic!("no safe prime after {max_chunks} chunks of {budget}");
}

#[wasm_bindgen_test]
fn small_search_finds_safe_primes_checked_by_trial_division() {
    let mut s = PrimeSearch::new(Some(40)).unwrap();
    assert_eq!(s.bits(), 40);
    for _ in 0..3 {
        let hex = find(&mut s, 4096, 10_000);
        let p = u64::from_str_radix(&hex, 16).unwrap();
        assert_eq!(64 - p.leading_zeros(), 40, "p = {p} has 40 bits");
        assert!(is_prime_u64(p), "p = {p} is prime");
        assert!(is_prime_u64((p - 1) / 2), "q = {} is prime", (p - 1) / 2);
    }
    assert_eq!(counter(&s, "found"), 3.0);
}

#[wasm_bindgen_test]
fn search_256_bit_prime_checked_by_glass_pumpkin() {
    let mut s = PrimeSearch::new(Some(256)).unwrap();
    let hex = find(&mut s, 8192, 10_000);
    let p = BigUint::parse_bytes(hex.as_bytes(), 16).unwrap();
    assert_eq!(p.bits(), 256);
    let q: BigUint = (&p - 1u32) >> 1;
    assert!(glass_pumpkin::prime::strong_check(&p), "p = {hex}");
    assert!(glass_pumpkin::prime::strong_check(&q), "q of {hex}");
    assert!(glass_pumpkin::safe_prime::strong_check(&p), "p = {hex}");
}

/// A full-size (1536-bit) search resumed at a fixed start, `q = 2^1534 + 1`, instead of an
/// OS-random one: no safe prime is among its first 4,000 candidates (no `q` there passes
/// base-2 Fermat tests on both `q` and `2q + 1`), so every run below uses its whole
/// budget. From a random start a run may find a prime early (and reseed), which made the
/// candidate counts a matter of chance.
fn search_from_fixed_start() -> PrimeSearch {
    let fresh = PrimeSearch::new(None).unwrap();
    assert_eq!(fresh.bits(), 1536);
    let mut cp: serde_json::Value = serde_json::from_slice(&fresh.checkpoint().unwrap()).unwrap();
    cp["base"] = format!("4{}1", "0".repeat(382)).into();
    PrimeSearch::resume(&serde_json::to_vec(&cp).unwrap(), Some(1536)).unwrap()
}

#[wasm_bindgen_test]
fn checkpoint_resume_round_trip_continues_counters() {
    // Full aux-info size, but only a few chunks: sieve + a handful of Fermat tests.
    let mut s = search_from_fixed_start();
    assert_eq!(s.bits(), 1536);
    assert_eq!(s.run(2000).unwrap(), None);
    let cp = s.checkpoint().unwrap();
    let before = counter(&s, "candidates");
    assert_eq!(before, 2000.0);

    let mut r = PrimeSearch::resume(&cp, Some(1536)).unwrap();
    assert_eq!(counter(&r, "candidates"), before);
    assert_eq!(
        r.checkpoint().unwrap(),
        cp,
        "resume reproduces the same state"
    );
    // The original and the resumed search walk the same candidates from here.
    assert_eq!(s.run(1000).unwrap(), None);
    assert_eq!(r.run(1000).unwrap(), None);
    assert_eq!(s.checkpoint().unwrap(), r.checkpoint().unwrap());
    assert_eq!(counter(&r, "candidates"), before + 1000.0);
}

#[wasm_bindgen_test]
fn garbage_checkpoints_are_rejected_with_a_typed_error() {
    let good = PrimeSearch::new(Some(64)).unwrap().checkpoint().unwrap();
    let mut altered = String::from_utf8(good.clone()).unwrap();
    altered = altered.replacen("\"base\":\"", "\"base\":\"zz", 1);
    for junk in [
        b"".to_vec(),
        b"not json".to_vec(),
        vec![0xff, 0x00, 0x13],
        b"{\"params\":{}}".to_vec(),
        altered.into_bytes(),
    ] {
        let e = PrimeSearch::resume(&junk, None).err().expect("rejected");
        assert_eq!(code_of(&e), "invalid_input");
    }
    // Right format, wrong size.
    let e = PrimeSearch::resume(&good, Some(1536))
        .err()
        .expect("rejected");
    assert_eq!(code_of(&e), "invalid_input");
    // Bad budgets and sizes are invalid input.
    let mut s = PrimeSearch::resume(&good, Some(64)).unwrap();
    assert_eq!(code_of(&s.run(0).err().unwrap()), "invalid_input");
    assert_eq!(
        code_of(&PrimeSearch::new(Some(4)).err().unwrap()),
        "invalid_input"
    );
}

#[wasm_bindgen_test]
fn assemble_prime_set_validates() {
    let fixture = mpc_core::primes::dev_fixture_primes();
    let primes: Vec<String> = fixture[0].primes.to_vec();
    let set = js::assemble_prime_set(primes.clone()).unwrap();
    js::validate_primes(set).unwrap();
    let mut dup = primes.clone();
    dup[2] = dup[1].clone();
    assert_eq!(
        code_of(&js::assemble_prime_set(dup).err().unwrap()),
        "invalid_input"
    );
    assert_eq!(
        code_of(&js::assemble_prime_set(primes[..3].to_vec()).err().unwrap()),
        "invalid_input"
    );
    assert!(js::primes_conflict(&primes[0], &primes[0]).unwrap());
    assert!(!js::primes_conflict(&primes[0], &primes[3]).unwrap());
}
