//! The odd small primes the sieve divides by, computed once per bound and shared.

use std::sync::{Arc, Mutex};

/// Odd primes `3 <= r < limit`, ascending (sieve of Eratosthenes over odd numbers).
pub fn odd_primes_below(limit: u32) -> Vec<u32> {
    if limit <= 3 {
        return Vec::new();
    }
    // index i stands for 2i + 1
    let n = (limit as usize).div_ceil(2);
    let mut composite = vec![false; n];
    let mut out = Vec::new();
    let mut i = 1;
    while i < n {
        if !composite[i] {
            let r = 2 * i + 1;
            if (r as u32) < limit {
                out.push(r as u32);
            }
            // mark r*r, r*r + 2r, ... (indices advance by r)
            let mut j = (r * r) / 2;
            while j < n {
                composite[j] = true;
                j += r;
            }
        }
        i += 1;
    }
    out
}

/// The sieve primes with what is needed to reduce big numbers modulo them fast.
#[derive(Debug)]
pub struct SieveTable {
    /// Odd primes below the bound, ascending.
    pub primes: Vec<u32>,
    /// `floor((2^64 - 1) / r)` for each prime (division-free reduction).
    magic: Vec<u64>,
}

impl SieveTable {
    fn new(limit: u32) -> Self {
        let primes = odd_primes_below(limit);
        let magic = primes.iter().map(|&r| u64::MAX / u64::from(r)).collect();
        Self { primes, magic }
    }

    /// `x mod r` for every sieve prime `r`, where `digits` are `x`'s little-endian 32-bit
    /// digits. Horner's rule with a multiply-high reduction instead of a division.
    pub fn residues(&self, digits: &[u32]) -> Vec<u32> {
        self.primes
            .iter()
            .zip(&self.magic)
            .map(|(&r, &m)| {
                let r = u64::from(r);
                let mut acc: u64 = 0;
                for &d in digits.iter().rev() {
                    // acc < r < 2^32, so a < 2^64
                    let a = (acc << 32) | u64::from(d);
                    let q = ((u128::from(a) * u128::from(m)) >> 64) as u64;
                    // q is floor(a / r) or up to 2 less
                    let mut rem = a - q * r;
                    while rem >= r {
                        rem -= r;
                    }
                    acc = rem;
                }
                acc as u32
            })
            .collect()
    }
}

static CACHE: Mutex<Option<(u32, Arc<SieveTable>)>> = Mutex::new(None);

/// Shared sieve table for odd primes below `limit` (rebuilt only when the bound changes).
pub fn shared(limit: u32) -> Arc<SieveTable> {
    let mut guard = match CACHE.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some((l, table)) = guard.as_ref() {
        if *l == limit {
            return Arc::clone(table);
        }
    }
    let table = Arc::new(SieveTable::new(limit));
    *guard = Some((limit, Arc::clone(&table)));
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_primes_and_counts() {
        assert_eq!(odd_primes_below(30), vec![3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert_eq!(odd_primes_below(3), Vec::<u32>::new());
        assert_eq!(odd_primes_below(4), vec![3]);
        // pi(2^16) = 6542, minus the prime 2
        assert_eq!(odd_primes_below(1 << 16).len(), 6541);
        // pi(10^6) = 78498
        assert_eq!(odd_primes_below(1_000_000).len(), 78497);
        assert_eq!(shared(1000).primes.len(), 167);
    }

    #[test]
    fn fast_residues_match_division() {
        let t = SieveTable::new(1 << 20);
        let digits = [0xffff_ffffu32, 0x1234_5678, 0, 0xdead_beef, 0xffff_ffff, 7];
        let res = t.residues(&digits);
        for (&r, &got) in t.primes.iter().zip(&res) {
            let mut acc = 0u64;
            for &d in digits.iter().rev() {
                acc = ((acc << 32) | u64::from(d)) % u64::from(r);
            }
            assert_eq!(u64::from(got), acc, "r = {r}");
        }
    }
}
