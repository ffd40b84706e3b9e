//! Chunked, resumable safe-prime search for the browser (over `safe_primes::Search`),
//! and the assembly of a device's four primes into a validated [`PrimeSet`].
//!
//! A Web Worker holds one [`PrimeSearchCore`], calls [`PrimeSearchCore::run`] with a
//! small candidate budget, posts [`PrimeSearchCore::progress`] and
//! [`PrimeSearchCore::checkpoint`] after each chunk, and keeps going until the
//! coordinator has four primes. Checkpoints are **secret** (the next prime of a search can
//! be recomputed from one): callers store them encrypted.

use mpc_core::primes::{PrimeSet, PRIME_BITS};
use safe_primes::{BigUint, Checkpoint, Natural, Params, Search};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult, Code};

/// Largest candidate budget of one `run` call (keeps one call to a few seconds at most).
pub const MAX_BUDGET: u32 = 1 << 22;

/// Search counters as exposed to JS (all cumulative over the life of the search,
/// including the time before a checkpoint was taken).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchProgress {
    /// Candidates `q` looked at.
    pub candidates: u64,
    /// Candidates that passed the joint sieve.
    pub survivors: u64,
    /// Base-2 Fermat tests on `q`.
    pub fermat_q: u64,
    /// Base-2 Fermat tests on `p`.
    pub fermat_p: u64,
    /// Pairs that got the full Miller–Rabin tests.
    pub miller_rabin: u64,
    /// Random seeds taken.
    pub seeds: u64,
    /// Safe primes found by this search.
    pub found: u64,
}

impl From<safe_primes::Progress> for SearchProgress {
    fn from(p: safe_primes::Progress) -> Self {
        SearchProgress {
            candidates: p.candidates,
            survivors: p.survivors,
            fermat_q: p.fermat_q,
            fermat_p: p.fermat_p,
            miller_rabin: p.miller_rabin,
            seeds: p.seeds,
            found: p.found,
        }
    }
}

fn checkpoint_error(msg: impl Into<String>) -> ApiError {
    ApiError::new(Code::InvalidInput, msg)
}

/// One resumable safe-prime search (pure-Rust big integers).
pub struct PrimeSearchCore {
    search: Search<BigUint>,
}

impl PrimeSearchCore {
    /// A new search for safe primes of `bits` bits (default 1536, the aux-info size)
    /// from an OS-random seed.
    pub fn new(bits: Option<u32>) -> ApiResult<Self> {
        let params = Params::new(bits.unwrap_or(PRIME_BITS))
            .map_err(|e| ApiError::input(format!("safe-prime search: {e}")))?;
        let search = Search::from_os_rng(params)
            .map_err(|e| ApiError::new(Code::Internal, format!("safe-prime search: {e}")))?;
        Ok(PrimeSearchCore { search })
    }

    /// Resumes a search from [`PrimeSearchCore::checkpoint`] bytes. Anything else is
    /// rejected with [`Code::InvalidInput`]. With `expect_bits`, a checkpoint of
    /// another size is rejected too.
    pub fn resume(bytes: &[u8], expect_bits: Option<u32>) -> ApiResult<Self> {
        let cp: Checkpoint = serde_json::from_slice(bytes)
            .map_err(|e| checkpoint_error(format!("not a safe-prime search checkpoint: {e}")))?;
        if let Some(b) = expect_bits {
            if cp.params.bits() != b {
                return Err(checkpoint_error(format!(
                    "the checkpoint is of a {}-bit search, expected {b} bits",
                    cp.params.bits()
                )));
            }
        }
        let search = Search::resume(&cp).map_err(|e| checkpoint_error(e.to_string()))?;
        Ok(PrimeSearchCore { search })
    }

    /// Looks at up to `budget` candidates (1..=[`MAX_BUDGET`]); returns the safe prime
    /// `p` (lowercase hex) when one was found (the search then continues from a fresh
    /// random seed on the next call).
    pub fn run(&mut self, budget: u32) -> ApiResult<Option<String>> {
        if budget == 0 || budget > MAX_BUDGET {
            return Err(ApiError::input(format!(
                "budget {budget} is outside 1..={MAX_BUDGET} candidates"
            )));
        }
        let found = self
            .search
            .run(&mut rand_core::OsRng, u64::from(budget), None)
            .map_err(|e| ApiError::new(Code::Internal, format!("safe-prime search: {e}")))?;
        Ok(found.map(|p| p.to_hex()))
    }

    /// Cumulative counters.
    pub fn progress(&self) -> SearchProgress {
        self.search.progress().into()
    }

    /// Size of the primes searched for, in bits.
    pub fn bits(&self) -> u32 {
        self.search.params().bits()
    }

    /// Secret snapshot (JSON bytes) for [`PrimeSearchCore::resume`].
    pub fn checkpoint(&self) -> ApiResult<Zeroizing<Vec<u8>>> {
        serde_json::to_vec(&self.search.checkpoint())
            .map(Zeroizing::new)
            .map_err(|e| ApiError::new(Code::Internal, format!("cannot serialize checkpoint: {e}")))
    }
}

fn parse_prime(k: usize, h: &str) -> ApiResult<BigUint> {
    let h = h.trim().trim_start_matches("0x").to_ascii_lowercase();
    BigUint::from_hex(&h).ok_or_else(|| ApiError::input(format!("prime {k} is not hex")))
}

/// Whether two primes (hex) are too close to be factors of one Paillier modulus
/// (`safe_primes::too_close`: same size and the same top 64 bits), or equal.
pub fn primes_conflict(a: &str, b: &str) -> ApiResult<bool> {
    let (x, y) = (parse_prime(0, a)?, parse_prime(1, b)?);
    Ok(x == y || safe_primes::too_close(&x, &y))
}

/// Assembles the four primes of a device into a [`PrimeSet`]: exactly four, hex, odd,
/// `p ≡ 3 (mod 4)` (every safe prime above 7 is), pairwise distinct and not close
/// ([`safe_primes::too_close`]), and accepted by the library
/// (`PrimeSet::to_pregenerated`: at least 1536 bits).
pub fn assemble_prime_set(primes: &[String]) -> ApiResult<PrimeSet> {
    if primes.len() != 4 {
        return Err(ApiError::input(format!(
            "a prime set needs exactly 4 primes, got {}",
            primes.len()
        )));
    }
    let ints = primes
        .iter()
        .enumerate()
        .map(|(k, h)| parse_prime(k, h))
        .collect::<ApiResult<Vec<_>>>()?;
    for (k, p) in ints.iter().enumerate() {
        if p.mod_u32(4) != 3 {
            return Err(ApiError::input(format!(
                "prime {k} is not a safe prime (p mod 4 must be 3)"
            )));
        }
    }
    for i in 0..4 {
        for j in i + 1..4 {
            if ints[i] == ints[j] {
                return Err(ApiError::input(format!("primes {i} and {j} are equal")));
            }
            if safe_primes::too_close(&ints[i], &ints[j]) {
                return Err(ApiError::input(format!(
                    "primes {i} and {j} are too close (same top 64 bits)"
                )));
            }
        }
    }
    let set = PrimeSet {
        primes: [0, 1, 2, 3].map(|k| ints[k].to_hex()),
    };
    crate::api::validate_primes(&set)?;
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_checkpoints_are_typed_errors() {
        for junk in [&b""[..], b"garbage", b"{}", b"[1,2,3]", b"{\"params\":1}"] {
            assert_eq!(
                PrimeSearchCore::resume(junk, None).err().map(|e| e.code),
                Some(Code::InvalidInput)
            );
        }
    }

    #[test]
    fn small_search_checkpoint_round_trip() {
        let mut s = PrimeSearchCore::new(Some(64)).unwrap();
        let _ = s.run(500).unwrap();
        let cp = s.checkpoint().unwrap();
        let r = PrimeSearchCore::resume(&cp, Some(64)).unwrap();
        assert_eq!(r.progress(), s.progress());
        assert_eq!(*r.checkpoint().unwrap(), *cp);
        assert_eq!(
            PrimeSearchCore::resume(&cp, Some(1536))
                .err()
                .map(|e| e.code),
            Some(Code::InvalidInput)
        );
        assert!(s.run(0).is_err());
        assert!(PrimeSearchCore::new(Some(8)).is_err());
    }

    #[test]
    fn fixture_set_assembles_and_bad_sets_do_not() {
        let f = mpc_core::primes::dev_fixture_primes();
        let set = f[0].primes.to_vec();
        assert_eq!(assemble_prime_set(&set).unwrap(), f[0]);
        assert!(assemble_prime_set(&set[..3]).is_err());
        let mut dup = set.clone();
        dup[3] = dup[0].clone();
        assert!(assemble_prime_set(&dup)
            .unwrap_err()
            .message
            .contains("equal"));
        assert!(primes_conflict(&set[0], &set[0]).unwrap());
        assert!(!primes_conflict(&set[0], &set[1]).unwrap());
        let mut bad = set.clone();
        bad[1] = "zz".into();
        assert!(assemble_prime_set(&bad).is_err());
        let mut small = set.clone();
        small[2] = "b".into(); // 11 ≡ 3 mod 4 but far too small
        assert!(assemble_prime_set(&small).is_err());
    }
}
