//! Fast generation of safe primes `p = 2q + 1` (both `p` and `q` prime), as CGGMP aux info
//! needs them (four 1536-bit safe primes per party, handed to the library through
//! `cggmp24::PregeneratedPrimes::try_from`).
//!
//! # Method
//!
//! * **Candidates.** A random odd `q` of exactly `bits - 1` bits (top bit set, like the
//!   library's generator, so `p` has exactly `bits` bits and `p ≡ 3 (mod 4)`: a Blum prime),
//!   drawn from a CSPRNG, then the odd numbers after it, `q, q + 2, q + 4, …`.
//! * **Joint sieve.** The candidates are sieved in windows: for every odd small prime `r`
//!   below the sieve bound, the residue `q mod r` gives the two positions per period that
//!   make `r | q` or `r | 2q + 1`, and every `r`-th position from there is struck out. The
//!   residues are computed once per seed (division-free, multiply-high reduction); from
//!   them the first struck position of each prime, which then moves from window to window
//!   by one subtraction modulo `r`. With the default bound (odd primes below 2^23) about
//!   one candidate in 290 survives, and a 1536-bit safe prime costs ~1,500–1,700 modular
//!   exponentiations on average (the library's generator, which draws a fresh random
//!   candidate each time and sieves only `2q + 1` by 135 primes, needs several times
//!   more).
//! * **Cheap filters first.** A survivor gets a base-2 Fermat test on `q` (one modular
//!   exponentiation); only if it passes, a base-2 Fermat test on `p`. In pure Rust the
//!   base-2 test uses our own allocation-free Montgomery squaring-and-doubling loop
//!   (`montgomery.rs`, ~1.6x faster than num-bigint's `modpow`); with GMP, `mpz_powm`.
//! * **Then full Miller–Rabin** with [`Params::mr_rounds`] random bases (default 25, the
//!   library's own count, stricter than FIPS 186-5 Table B.1's 4–5 rounds at this size) on
//!   both `q` and `p`. (Once `q` is prime, the base-2 Fermat test on `p` is already a
//!   Pocklington proof that `p` is prime; the extra rounds on `p` cost ~1% and are kept.)
//! * **Fresh seed per prime.** After a find, the search restarts from a new random seed, so
//!   two primes from one search are never close (close factors make `N = p·p'` easy to
//!   factor).
//!
//! # Parallelism
//!
//! * Native: [`generate_parallel`] / [`generate_many`] run one independent search per
//!   thread (`std::thread`); the first find wins, the rest stop (cancellation is a shared
//!   flag, which callers can also set).
//! * Browser: [`Search`] is a chunked, resumable, cancellable search. A Web Worker makes a
//!   `Search` with its own random seed, calls [`Search::run`] with a bounded candidate
//!   budget, posts [`Search::progress`] after each chunk, and stops when one worker has a
//!   prime. [`Search::checkpoint`] / [`Search::resume`] persist a search across a reload.
//!
//! # Backends
//!
//! Generic over [`Natural`]: `num_bigint::BigUint` (pure Rust, builds for
//! `wasm32-unknown-unknown`) and, with the `rug` feature, `rug::Integer` (GMP).

#![deny(missing_docs)]

mod montgomery;
mod natural;
#[cfg(not(target_arch = "wasm32"))]
mod parallel;
mod search;
pub mod small_primes;

use serde::{Deserialize, Serialize};

pub use natural::Natural;
#[cfg(not(target_arch = "wasm32"))]
pub use parallel::{generate_many, generate_parallel};
pub use search::{generate, miller_rabin, Checkpoint, Search};

pub use num_bigint::BigUint;
#[cfg(feature = "rug")]
pub use rug;

/// Bit length of the CGGMP24 Paillier primes (`SecurityLevel128::RSA_PRIME_BITLEN`).
pub const CGGMP_PRIME_BITS: u32 = 1536;
/// Smallest supported size of `p` in bits.
pub const MIN_BITS: u32 = 16;
/// Largest supported size of `p` in bits.
pub const MAX_BITS: u32 = 16384;
/// Default Miller–Rabin rounds per number (the library's count).
pub const DEFAULT_MR_ROUNDS: u32 = 25;
/// Fewest Miller–Rabin rounds accepted (FIPS 186-5 Table B.1 asks 4–5 for random
/// candidates of 1024–2048 bits; we never go below 5).
pub const MIN_MR_ROUNDS: u32 = 5;
/// Default sieve bound: odd primes below this divide-check `q` and `2q + 1`.
pub const DEFAULT_SIEVE_LIMIT: u32 = 1 << 23;
/// Largest sieve bound accepted.
pub const MAX_SIEVE_LIMIT: u32 = 1 << 26;
/// Default number of candidates per sieve window.
pub const DEFAULT_WINDOW: u32 = 1 << 18;

/// Why a search could not run or did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `bits` outside `MIN_BITS..=MAX_BITS`.
    #[error("safe-prime size {0} bits is outside {MIN_BITS}..={MAX_BITS}")]
    BitSize(u32),
    /// Too few Miller–Rabin rounds.
    #[error("{0} Miller-Rabin rounds is below the minimum of {MIN_MR_ROUNDS}")]
    TooFewRounds(u32),
    /// Sieve bound outside `3..=MAX_SIEVE_LIMIT`.
    #[error("sieve limit {0} is outside 3..={MAX_SIEVE_LIMIT}")]
    SieveLimit(u32),
    /// Window size outside `64..=2^24`.
    #[error("sieve window {0} is outside 64..=16777216 candidates")]
    Window(u32),
    /// Zero threads, or a zero count.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// The search was cancelled.
    #[error("safe-prime search cancelled")]
    Cancelled,
    /// A checkpoint could not be resumed.
    #[error("invalid search checkpoint: {0}")]
    Checkpoint(String),
    /// A worker thread could not be started or died.
    #[error("safe-prime worker failed: {0}")]
    Worker(String),
}

/// Search parameters. Build with [`Params::new`] and the `with_*` methods; all
/// constructors validate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    bits: u32,
    mr_rounds: u32,
    sieve_limit: u32,
    window: u32,
}

impl Params {
    /// Safe primes of exactly `bits` bits, default rounds, sieve and window.
    pub fn new(bits: u32) -> Result<Self, Error> {
        Self {
            bits,
            mr_rounds: DEFAULT_MR_ROUNDS,
            sieve_limit: DEFAULT_SIEVE_LIMIT,
            window: DEFAULT_WINDOW,
        }
        .validated()
    }

    /// The CGGMP24 size (1536 bits) with defaults.
    pub fn cggmp() -> Self {
        Self {
            bits: CGGMP_PRIME_BITS,
            mr_rounds: DEFAULT_MR_ROUNDS,
            sieve_limit: DEFAULT_SIEVE_LIMIT,
            window: DEFAULT_WINDOW,
        }
    }

    /// Sets the Miller–Rabin rounds per number.
    pub fn with_mr_rounds(mut self, rounds: u32) -> Result<Self, Error> {
        self.mr_rounds = rounds;
        self.validated()
    }

    /// Sets the sieve bound (odd primes below it are sieved out).
    pub fn with_sieve_limit(mut self, limit: u32) -> Result<Self, Error> {
        self.sieve_limit = limit;
        self.validated()
    }

    /// Sets the number of candidates per sieve window.
    pub fn with_window(mut self, window: u32) -> Result<Self, Error> {
        self.window = window;
        self.validated()
    }

    /// Checks every field.
    pub fn validated(self) -> Result<Self, Error> {
        if !(MIN_BITS..=MAX_BITS).contains(&self.bits) {
            return Err(Error::BitSize(self.bits));
        }
        if self.mr_rounds < MIN_MR_ROUNDS {
            return Err(Error::TooFewRounds(self.mr_rounds));
        }
        if !(3..=MAX_SIEVE_LIMIT).contains(&self.sieve_limit) {
            return Err(Error::SieveLimit(self.sieve_limit));
        }
        if !(64..=1 << 24).contains(&self.window) {
            return Err(Error::Window(self.window));
        }
        Ok(self)
    }

    /// Size of `p` in bits.
    pub fn bits(&self) -> u32 {
        self.bits
    }
    /// Miller–Rabin rounds per number.
    pub fn mr_rounds(&self) -> u32 {
        self.mr_rounds
    }
    /// Sieve bound.
    pub fn sieve_limit(&self) -> u32 {
        self.sieve_limit
    }
    /// Candidates per window.
    pub fn window(&self) -> u32 {
        self.window
    }
}

/// Work done so far (all counters are cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Candidates `q` looked at (sieved out or tested).
    pub candidates: u64,
    /// Candidates that passed the joint sieve.
    pub survivors: u64,
    /// Base-2 Fermat tests on `q`.
    pub fermat_q: u64,
    /// Base-2 Fermat tests on `p` (after `q` passed).
    pub fermat_p: u64,
    /// Pairs that got the full Miller–Rabin tests.
    pub miller_rabin: u64,
    /// Fresh random seeds taken.
    pub seeds: u64,
    /// Safe primes found.
    pub found: u64,
}

impl Progress {
    /// Adds another counter set (for aggregating workers).
    pub fn add(&mut self, o: &Progress) {
        self.candidates += o.candidates;
        self.survivors += o.survivors;
        self.fermat_q += o.fermat_q;
        self.fermat_p += o.fermat_p;
        self.miller_rabin += o.miller_rabin;
        self.seeds += o.seeds;
        self.found += o.found;
    }

    /// Modular exponentiations spent so far (Fermat tests plus Miller–Rabin rounds are
    /// counted per pair as `2 * rounds`).
    pub fn exponentiations(&self, mr_rounds: u32) -> u64 {
        self.fermat_q + self.fermat_p + self.miller_rabin * 2 * u64::from(mr_rounds)
    }
}

/// A safe prime `p = 2q + 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafePrime<N> {
    p: N,
    q: N,
}

impl<N: Natural> SafePrime<N> {
    /// The safe prime `p`.
    pub fn p(&self) -> &N {
        &self.p
    }
    /// The Sophie Germain prime `q = (p - 1) / 2`.
    pub fn q(&self) -> &N {
        &self.q
    }
    /// Takes `p`.
    pub fn into_p(self) -> N {
        self.p
    }
    /// `p` in lowercase hexadecimal.
    pub fn to_hex(&self) -> String {
        self.p.to_hex()
    }

    pub(crate) fn new(p: N, q: N) -> Self {
        Self { p, q }
    }
}

/// Whether two primes of the same size share their top 64 bits (then `|a - b|` is small
/// enough for Fermat factorisation of `a·b`). With independent random seeds this happens
/// with probability ~2^-63; [`generate_many`] rejects such pairs anyway.
pub fn too_close<N: Natural>(a: &N, b: &N) -> bool {
    let top = |x: &N| -> u64 {
        let bytes = x.to_be_bytes();
        let mut v = [0u8; 8];
        let n = bytes.len().min(8);
        v[..n].copy_from_slice(&bytes[..n]);
        u64::from_be_bytes(v)
    };
    a.bit_len() == b.bit_len() && top(a).abs_diff(top(b)) <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_validate() {
        assert_eq!(Params::new(8), Err(Error::BitSize(8)));
        assert_eq!(Params::new(MAX_BITS + 1), Err(Error::BitSize(MAX_BITS + 1)));
        let p = Params::new(512).unwrap();
        assert_eq!(p.with_mr_rounds(4), Err(Error::TooFewRounds(4)));
        assert_eq!(p.with_sieve_limit(2), Err(Error::SieveLimit(2)));
        assert_eq!(
            p.with_sieve_limit(MAX_SIEVE_LIMIT + 1),
            Err(Error::SieveLimit(MAX_SIEVE_LIMIT + 1))
        );
        assert_eq!(p.with_window(10), Err(Error::Window(10)));
        assert_eq!(Params::cggmp().validated(), Ok(Params::cggmp()));
        assert_eq!(Params::cggmp().bits(), 1536);
    }

    #[test]
    fn closeness_guard() {
        let a = BigUint::from(0xffff_0000_0000_0000_1234u128);
        let b = BigUint::from(0xffff_0000_0000_0000_9999u128);
        let c = BigUint::from(0xfff0_0000_0000_0000_1234u128);
        assert!(too_close(&a, &b));
        assert!(!too_close(&a, &c));
    }
}
