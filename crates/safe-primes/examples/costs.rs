//! Measures the search's unit costs on this machine: one base-2 Fermat test per backend,
//! setting up a search (sieve residues), and sieving a window.
//! `cargo run --release -p safe-primes --features rug --example costs`
use std::time::Instant;

use rand_core::{OsRng, RngCore};
use safe_primes::{BigUint, Natural, Params, Search};

fn random_odd(bits: usize) -> BigUint {
    let mut buf = vec![0u8; bits.div_ceil(8)];
    OsRng.fill_bytes(&mut buf);
    let mut n = BigUint::from_bytes_be(&buf);
    n.set_bit(bits as u64 - 1, true);
    n.set_bit(0, true);
    n
}

fn per_op(name: &str, n: usize, mut f: impl FnMut(usize)) {
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    println!(
        "{name:<48} {:>9.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / n as f64
    );
}

fn main() {
    let xs: Vec<BigUint> = (0..20).map(|_| random_odd(1535)).collect();
    let mut sink = 0u32;
    per_op("fermat2 num-bigint own Montgomery (1535 bit)", 40, |i| {
        sink += u32::from(xs[i % xs.len()].fermat2())
    });
    per_op("fermat2 num-bigint modpow (1535 bit)", 40, |i| {
        let n = &xs[i % xs.len()];
        sink += u32::from(BigUint::from(2u32).modpow(&(n - 1u32), n) == BigUint::from(1u32))
    });
    #[cfg(feature = "rug")]
    {
        let rs: Vec<rug::Integer> = xs
            .iter()
            .map(|x| rug::Integer::from_digits(&x.to_bytes_be(), rug::integer::Order::Msf))
            .collect();
        per_op("fermat2 rug powm (1535 bit)", 200, |i| {
            sink += u32::from(rs[i % rs.len()].fermat2())
        });
    }
    for limit in [1u32 << 18, 1 << 22, 1 << 23, 1 << 24] {
        let p = Params::cggmp().with_sieve_limit(limit).unwrap();
        let _ = Search::<BigUint>::from_os_rng(p).unwrap(); // builds the table
        per_op(
            &format!("new search (residues), limit 2^{}", limit.ilog2()),
            5,
            |_| {
                let _ = Search::<BigUint>::from_os_rng(p).unwrap();
            },
        );
        let mut s = Search::<BigUint>::from_os_rng(p).unwrap();
        let t = Instant::now();
        // one window; stop before any survivor is tested by running with budget 1
        let _ = s.run(&mut OsRng, 1, None);
        println!(
            "{:<48} {:>9.3} ms",
            format!("first window sieve, limit 2^{}", limit.ilog2()),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    println!("(sink {sink})");
}
