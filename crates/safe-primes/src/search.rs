//! The sequential, chunked, resumable search.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::small_primes::{self, SieveTable};
use crate::{Error, Natural, Params, Progress, SafePrime};

/// A resumable safe-prime search from one random seed.
///
/// The search walks the odd numbers `q = base, base + 2, …` window by window; positions
/// where a small prime divides `q` or `2q + 1` are struck out by the sieve, the rest are
/// tested (Fermat on `q`, Fermat on `p`, then Miller–Rabin on both). After a find it
/// reseeds, so consecutive finds are independent.
#[derive(Debug, Clone)]
pub struct Search<N: Natural> {
    params: Params,
    /// Odd sieve primes, all smaller than the smallest possible `q`.
    table: Arc<SieveTable>,
    /// `q` at position 0 of the current window.
    base: N,
    /// `base mod primes[i]`.
    /// For each sieve prime: the first position in this window where it divides `q`, and
    /// where it divides `2q + 1` (both `< r`; positions `>= window` fall in later windows).
    hits: Vec<[u32; 2]>,
    /// `window mod primes[i]`.
    wmod: Vec<u32>,
    /// Struck-out positions of the current window (valid when `sieved`).
    struck: Vec<bool>,
    sieved: bool,
    /// Next position to look at in the current window.
    next: u32,
    /// Set after a find: the next `run` starts from a fresh seed.
    reseed: bool,
    progress: Progress,
}

/// A serialisable snapshot of a [`Search`] (to resume after a reload).
///
/// **Secret**: it contains the search position, from which the next prime the search
/// would find can be recomputed. Store it like key material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Parameters of the search.
    pub params: Params,
    /// `q` at the start of the current window, lowercase hex.
    pub base: String,
    /// Next position in the window.
    pub next: u32,
    /// Whether the next run must take a fresh seed.
    pub reseed: bool,
    /// Work done so far.
    pub progress: Progress,
}

impl<N: Natural> Search<N> {
    /// A search from a fresh random seed drawn from `rng`.
    pub fn new<R: RngCore + CryptoRng>(params: Params, rng: &mut R) -> Result<Self, Error> {
        let params = params.validated()?;
        let mut s = Self::empty(params, random_start::<N, R>(params.bits(), rng));
        s.progress.seeds = 1;
        s.init_residues();
        Ok(s)
    }

    /// A search from a fresh seed taken from the operating system's CSPRNG.
    pub fn from_os_rng(params: Params) -> Result<Self, Error> {
        Self::new(params, &mut rand_core::OsRng)
    }

    /// A search starting at the given `q` (forced odd and into range: bit `bits - 2` set,
    /// higher bits cleared). For tests and reproducible benchmarks; real searches must
    /// start from a CSPRNG ([`Search::new`]).
    pub fn from_start(params: Params, start: &N) -> Result<Self, Error> {
        let params = params.validated()?;
        let mut bytes = start.to_be_bytes();
        let nbytes = q_bytes(params.bits());
        if bytes.len() > nbytes {
            bytes.drain(..bytes.len() - nbytes);
        }
        while bytes.len() < nbytes {
            bytes.insert(0, 0);
        }
        shape_q(params.bits(), &mut bytes);
        let mut s = Self::empty(params, N::from_be_bytes(&bytes));
        s.progress.seeds = 1;
        s.init_residues();
        Ok(s)
    }

    /// Resumes a search from a [`Checkpoint`].
    pub fn resume(cp: &Checkpoint) -> Result<Self, Error> {
        let params = cp.params.validated()?;
        let base =
            N::from_hex(&cp.base).ok_or_else(|| Error::Checkpoint("base is not hex".into()))?;
        if base.bit_len() != u64::from(params.bits() - 1) || !base.bit(0) {
            return Err(Error::Checkpoint(format!(
                "base is not an odd {}-bit number",
                params.bits() - 1
            )));
        }
        if cp.next > params.window() {
            return Err(Error::Checkpoint("position beyond the window".into()));
        }
        let mut s = Self::empty(params, base);
        s.init_residues();
        s.next = cp.next;
        s.reseed = cp.reseed;
        s.progress = cp.progress;
        Ok(s)
    }

    /// Snapshot for [`Search::resume`].
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            params: self.params,
            base: self.base.to_hex(),
            next: self.next,
            reseed: self.reseed,
            progress: self.progress,
        }
    }

    /// Work done so far.
    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Looks at up to `budget` candidates. Returns `Ok(Some(prime))` on a find (the
    /// search then reseeds from `rng` on the next call), `Ok(None)` when the budget is used
    /// up, and `Err(Error::Cancelled)` when `cancel` was set (checked before every
    /// exponentiation).
    pub fn run<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        budget: u64,
        cancel: Option<&AtomicBool>,
    ) -> Result<Option<SafePrime<N>>, Error> {
        let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
        let mut left = budget;
        while left > 0 {
            if cancelled() {
                return Err(Error::Cancelled);
            }
            if self.reseed {
                self.reseed_from(rng);
            }
            if self.next >= self.params.window() {
                self.advance_window();
            }
            if !self.sieved {
                self.sieve_window();
            }
            let window = self.params.window();
            let end = (u64::from(self.next) + left).min(u64::from(window)) as u32;
            while self.next < end {
                let k = self.next;
                self.next += 1;
                left -= 1;
                self.progress.candidates += 1;
                if self.struck[k as usize] {
                    continue;
                }
                self.progress.survivors += 1;
                if cancelled() {
                    return Err(Error::Cancelled);
                }
                let q = self.base.add_u64(2 * u64::from(k));
                if q.bit_len() >= u64::from(self.params.bits()) {
                    // Ran past the top of the range: start over elsewhere.
                    self.reseed = true;
                    break;
                }
                if let Some(found) = self.test_candidate(q, rng) {
                    self.progress.found += 1;
                    self.reseed = true;
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// Tests one sieve survivor: Fermat(q), Fermat(p), then Miller–Rabin on both.
    fn test_candidate<R: RngCore + CryptoRng>(
        &mut self,
        q: N,
        rng: &mut R,
    ) -> Option<SafePrime<N>> {
        self.progress.fermat_q += 1;
        if !fermat2(&q) {
            return None;
        }
        let p = q.double_plus_one();
        self.progress.fermat_p += 1;
        if !fermat2(&p) {
            return None;
        }
        self.progress.miller_rabin += 1;
        let rounds = self.params.mr_rounds();
        if miller_rabin(&q, rounds, rng) && miller_rabin(&p, rounds, rng) {
            Some(SafePrime::new(p, q))
        } else {
            None
        }
    }

    fn empty(params: Params, base: N) -> Self {
        // Sieve primes must be smaller than every q (q >= 2^(bits-2)), so that r | q or
        // r | 2q+1 really means composite.
        let q_min = 1u64 << (params.bits() - 2).min(40);
        let limit = u64::from(params.sieve_limit()).min(q_min) as u32;
        let table = small_primes::shared(limit);
        let window = params.window() as usize;
        Self {
            params,
            table,
            base,
            hits: Vec::new(),
            wmod: Vec::new(),
            struck: vec![false; window],
            sieved: false,
            next: 0,
            reseed: false,
            progress: Progress::default(),
        }
    }

    /// Computes, from the residues of `base`, the first position in the window where each
    /// sieve prime divides `q` and where it divides `2q + 1`.
    fn init_residues(&mut self) {
        let w = u64::from(self.params.window());
        let residues = self.table.residues(&self.base.to_u32_digits_le());
        self.hits = self
            .table
            .primes
            .iter()
            .zip(&residues)
            .map(|(&r, &s)| first_hits(r, s))
            .collect();
        self.wmod = self
            .table
            .primes
            .iter()
            .map(|&r| {
                if u64::from(r) > w {
                    w as u32
                } else {
                    (w % u64::from(r)) as u32
                }
            })
            .collect();
        self.sieved = false;
        self.next = 0;
    }

    fn reseed_from<R: RngCore + CryptoRng>(&mut self, rng: &mut R) {
        self.base = random_start::<N, R>(self.params.bits(), rng);
        self.progress.seeds += 1;
        self.reseed = false;
        self.init_residues();
    }

    /// Moves to the next window: `base += 2W`; every hit offset moves back by `W mod r`
    /// (an addition modulo `r`, no division).
    fn advance_window(&mut self) {
        let two_w = 2 * u64::from(self.params.window());
        self.base = self.base.add_u64(two_w);
        for ((h, &d), &r) in self.hits.iter_mut().zip(&self.wmod).zip(&self.table.primes) {
            for o in h.iter_mut() {
                *o = if *o >= d { *o - d } else { *o + r - d };
            }
        }
        self.sieved = false;
        self.next = 0;
    }

    /// Strikes the positions `k` (q = base + 2k) where some sieve prime divides q or 2q+1.
    fn sieve_window(&mut self) {
        let w = self.params.window() as usize;
        self.struck.iter_mut().for_each(|b| *b = false);
        for (&r, h) in self.table.primes.iter().zip(&self.hits) {
            let r = r as usize;
            for &o in h {
                let mut k = o as usize;
                while k < w {
                    self.struck[k] = true;
                    k += r;
                }
            }
        }
        self.sieved = true;
    }
}

/// `x / 2 mod r` for odd `r` and `x < r`.
fn half_mod(x: u64, r: u64) -> u64 {
    if x & 1 == 0 {
        x / 2
    } else {
        (x + r) / 2
    }
}

/// For `q = base + 2k` with `base ≡ s (mod r)`: the `k` in `[0, r)` with `r | q`, and the
/// one with `r | 2q + 1`.
fn first_hits(r: u32, s: u32) -> [u32; 2] {
    let (r, s) = (u64::from(r), u64::from(s));
    // r | s + 2k  <=>  k ≡ -s / 2
    let k1 = half_mod((r - s) % r, r);
    // r | 2s + 1 + 4k  <=>  k ≡ -(2s + 1) / 4
    let t = (2 * s + 1) % r;
    let k2 = half_mod(half_mod((r - t) % r, r), r);
    [k1 as u32, k2 as u32]
}

/// Runs a single-threaded search until it finds a safe prime.
pub fn generate<N: Natural, R: RngCore + CryptoRng>(
    params: Params,
    rng: &mut R,
    cancel: Option<&AtomicBool>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<SafePrime<N>, Error> {
    let mut s = Search::<N>::new(params, rng)?;
    let chunk = u64::from(params.window());
    loop {
        let found = s.run(rng, chunk, cancel)?;
        progress(&s.progress());
        if let Some(p) = found {
            return Ok(p);
        }
    }
}

/// Base-2 Fermat test: `2^(n-1) ≡ 1 (mod n)` for odd `n > 2`.
pub(crate) fn fermat2<N: Natural>(n: &N) -> bool {
    n.fermat2()
}

/// Miller–Rabin with `rounds` bases drawn uniformly from `[2, n - 2]` by `rng`
/// (exact answer for `n < 8`; `false` for even `n`).
pub fn miller_rabin<N: Natural, R: RngCore + CryptoRng>(n: &N, rounds: u32, rng: &mut R) -> bool {
    if n.bit_len() <= 3 {
        return matches!(n.mod_u32(8), 2 | 3 | 5 | 7);
    }
    if !n.bit(0) {
        return false;
    }
    let one = N::from_u64(1);
    let n_minus_1 = n.sub_u64(1);
    let s = n_minus_1.trailing_zeros();
    let d = n_minus_1.shr(s);
    let nbytes = n.bit_len().div_ceil(8) as usize + 8;
    let range = n.sub_u64(3); // bases 2 ..= n-2
    let mut buf = vec![0u8; nbytes];
    'bases: for _ in 0..rounds {
        rng.fill_bytes(&mut buf);
        // 64 extra bits make the reduction's bias negligible.
        let a = N::from_be_bytes(&buf).rem(&range).add_u64(2);
        let mut x = a.pow_mod(&d, n);
        if x == one || x == n_minus_1 {
            continue;
        }
        for _ in 1..s {
            x = x.square_mod(n);
            if x == n_minus_1 {
                continue 'bases;
            }
            if x == one {
                return false;
            }
        }
        return false;
    }
    true
}

fn q_bytes(bits: u32) -> usize {
    (bits as usize - 1).div_ceil(8)
}

/// Forces big-endian `bytes` (length `q_bytes(bits)`) into an odd number of exactly
/// `bits - 1` bits.
fn shape_q(bits: u32, bytes: &mut [u8]) {
    let qbits = bits as usize - 1;
    let excess = bytes.len() * 8 - qbits; // 0..=7
    bytes[0] &= 0xffu8 >> excess;
    bytes[0] |= 0x80u8 >> excess;
    if let Some(last) = bytes.last_mut() {
        *last |= 1;
    }
}

fn random_start<N: Natural, R: RngCore + CryptoRng>(bits: u32, rng: &mut R) -> N {
    let mut bytes = vec![0u8; q_bytes(bits)];
    rng.fill_bytes(&mut bytes);
    shape_q(bits, &mut bytes);
    N::from_be_bytes(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BigUint;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Seeded randomness (start points, Miller-Rabin bases): every run of these tests
    /// looks at the same numbers.
    fn rng() -> StdRng {
        StdRng::seed_from_u64(0x5afe_b1e5)
    }

    fn is_prime_u64(n: u64) -> bool {
        if n < 2 {
            return false;
        }
        let mut d = 2;
        while d * d <= n {
            if n.is_multiple_of(d) {
                return false;
            }
            d += 1;
        }
        true
    }

    #[test]
    fn offsets_stay_consistent_across_windows() {
        let params = Params::new(512).unwrap().with_window(1000).unwrap();
        let mut s = Search::<BigUint>::from_os_rng(params).unwrap();
        for _ in 0..7 {
            s.advance_window();
        }
        for (i, &r) in s.table.primes.iter().enumerate() {
            // recomputed from scratch with a division
            let fresh = first_hits(r, s.base.mod_u32(r));
            assert_eq!(s.hits[i], fresh, "prime {r}");
            // and they really are the divisible positions
            let q1 = s.base.add_u64(2 * u64::from(fresh[0]));
            assert_eq!(q1.mod_u32(r), 0);
            let q2 = s.base.add_u64(2 * u64::from(fresh[1])).double_plus_one();
            assert_eq!(q2.mod_u32(r), 0);
        }
    }

    #[test]
    fn sieve_strikes_exactly_the_divisible_positions() {
        // 40-bit q: small enough to check every position by trial division.
        let params = Params::new(41)
            .unwrap()
            .with_window(4096)
            .unwrap()
            .with_sieve_limit(1000)
            .unwrap();
        let mut s = Search::<BigUint>::from_os_rng(params).unwrap();
        s.advance_window();
        s.sieve_window();
        let base: u64 = s.base.to_u64_digits()[0];
        for k in 0..4096u64 {
            let q = base + 2 * k;
            let p = 2 * q + 1;
            let divisible = s
                .table
                .primes
                .iter()
                .any(|&r| q.is_multiple_of(u64::from(r)) || p.is_multiple_of(u64::from(r)));
            assert_eq!(s.struck[k as usize], divisible, "q = {q}");
        }
    }

    #[test]
    fn finds_exactly_the_small_safe_primes() {
        // All safe primes with 16-bit p: q in [2^14, 2^15).
        let params = Params::new(16).unwrap().with_window(64).unwrap();
        let mut s = Search::<BigUint>::from_start(params, &BigUint::from(0u32)).unwrap();
        assert_eq!(s.base, BigUint::from(1u32 << 14 | 1));
        let mut found = Vec::new();
        let mut rng = rng();
        // (2^15 - 2^14) / 2 = 8192 odd candidates; stop when the search would reseed.
        loop {
            let before = s.progress().seeds;
            match s.run(&mut rng, 1, None).unwrap() {
                Some(p) => {
                    let q = p.q().to_u64_digits()[0];
                    found.push(q);
                    // continue the walk right after q instead of reseeding
                    let next = BigUint::from(q + 2);
                    s = Search::from_start(params, &next).unwrap();
                    if q + 2 >= 1 << 15 {
                        break;
                    }
                }
                None => {
                    if s.reseed || s.progress().seeds != before {
                        break;
                    }
                }
            }
        }
        let expected: Vec<u64> = ((1u64 << 14) + 1..1 << 15)
            .step_by(2)
            .filter(|&q| is_prime_u64(q) && is_prime_u64(2 * q + 1))
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(found, expected);
    }

    #[test]
    fn fermat_pseudoprime_is_rejected_by_miller_rabin() {
        // Odd composites q that pass the base-2 Fermat test while 2q+1 is prime:
        // they get through both cheap filters and must be stopped by Miller-Rabin.
        // (561 is also a Carmichael number: it passes Fermat for every coprime base.)
        for q in [341u64, 561, 645, 2465, 8481, 12801, 35333, 60701] {
            assert!(!is_prime_u64(q) && is_prime_u64(2 * q + 1), "{q}");
            let qq = BigUint::from(q);
            assert!(fermat2(&qq), "{q} passes base-2 Fermat");
            let params = Params::new(16).unwrap();
            let mut s = Search::<BigUint>::from_start(params, &BigUint::from(0u32)).unwrap();
            let before = s.progress();
            assert!(
                s.test_candidate(qq.clone(), &mut rng()).is_none(),
                "q = {q}"
            );
            assert_eq!(
                s.progress().fermat_p,
                before.fermat_p + 1,
                "passed Fermat on p"
            );
            assert_eq!(s.progress().miller_rabin, before.miller_rabin + 1);
            assert!(!miller_rabin(&qq, 25, &mut rng()));
        }
    }

    #[test]
    fn miller_rabin_basics() {
        let mut rng = rng();
        for n in [5u64, 7, 11, 13, 101, 65537, 2_147_483_647] {
            assert!(miller_rabin(&BigUint::from(n), 10, &mut rng), "{n}");
        }
        // 561, 1105, 1729: Carmichael numbers
        for n in [9u64, 15, 561, 1105, 1729, 2047, 4_294_967_297] {
            assert!(!miller_rabin(&BigUint::from(n), 10, &mut rng), "{n}");
        }
        assert!(miller_rabin(&BigUint::from(3u32), 10, &mut rng));
        assert!(!miller_rabin(&BigUint::from(4u32), 10, &mut rng));
        assert!(!miller_rabin(&BigUint::from(1u32), 10, &mut rng));
    }

    #[test]
    fn cancellation_stops_the_search() {
        let cancel = AtomicBool::new(true);
        let mut s = Search::<BigUint>::from_os_rng(Params::new(512).unwrap()).unwrap();
        assert_eq!(
            s.run(&mut rng(), 1_000_000, Some(&cancel)),
            Err(Error::Cancelled)
        );
        let r = generate::<BigUint, _>(Params::cggmp(), &mut rng(), Some(&cancel), &mut |_| {});
        assert_eq!(r, Err(Error::Cancelled));
    }

    #[test]
    fn checkpoint_round_trip_and_bad_checkpoints() {
        let params = Params::new(256).unwrap().with_window(512).unwrap();
        let mut rng = rng();
        let mut s = Search::<BigUint>::new(params, &mut rng).unwrap();
        let _ = s.run(&mut rng, 700, None).unwrap();
        let cp = s.checkpoint();
        let json = serde_json::to_string(&cp).unwrap();
        let back: Checkpoint = serde_json::from_str(&json).unwrap();
        let r = Search::<BigUint>::resume(&back).unwrap();
        assert_eq!(r.base, s.base);
        assert_eq!(r.next, s.next);
        assert_eq!(r.hits, s.hits);
        assert_eq!(r.progress(), s.progress());

        let mut bad = cp.clone();
        bad.base = "zz".into();
        assert!(matches!(
            Search::<BigUint>::resume(&bad),
            Err(Error::Checkpoint(_))
        ));
        let mut bad = cp.clone();
        bad.base = "4".into();
        assert!(matches!(
            Search::<BigUint>::resume(&bad),
            Err(Error::Checkpoint(_))
        ));
        let mut bad = cp.clone();
        bad.next = 513;
        assert!(matches!(
            Search::<BigUint>::resume(&bad),
            Err(Error::Checkpoint(_))
        ));
    }
}
