//! Safe-prime sets for aux info, and the committed public test fixtures.
//!
//! Each party's aux info needs four 1536-bit safe primes. Generating them is the slow
//! part of onboarding, so they can be generated once, saved, and reused; the committed
//! fixtures make test DKGs take seconds. **The fixtures are public**: a key whose aux
//! info uses them is not secret-safe, so only tests use them and the CLI refuses them.
//!
//! Two generators: [`PrimeSet::generate_fast`] (ours, the `safe-primes` crate: joint
//! sieve of `q` and `2q + 1`, cheap Fermat filters before Miller–Rabin, parallel threads;
//! GMP when the `backend-rug` feature is on, pure Rust otherwise) and
//! [`PrimeSet::generate`] (the library's generator, kept for comparison). Both hand the
//! primes to the library through `PregeneratedPrimes::try_from`.

use std::sync::atomic::AtomicBool;

use cggmp24::paillier_zk::backend::Integer;
use serde::{Deserialize, Serialize};

pub use safe_primes::Progress as SearchProgress;

use crate::error::CoreError;
use crate::SecurityLevel;

/// Pregenerated primes in the form the library takes.
pub type PregeneratedPrimes = cggmp24::PregeneratedPrimes<SecurityLevel>;

/// Bit length of each prime at our security level.
pub const PRIME_BITS: u32 = 1536;

/// Four safe primes of one party, hex encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimeSet {
    /// The primes, lowercase hex without prefix.
    pub primes: [String; 4],
}

impl PrimeSet {
    /// Converts to the library's type, checking sizes.
    pub fn to_pregenerated(&self) -> Result<PregeneratedPrimes, CoreError> {
        let mut ints = Vec::with_capacity(4);
        for (k, p) in self.primes.iter().enumerate() {
            let i = Integer::from_str_radix(p.trim_start_matches("0x"), 16)
                .ok_or_else(|| CoreError::invalid("prime", format!("prime {k} is not hex")))?;
            ints.push(i);
        }
        let arr: [Integer; 4] = ints
            .try_into()
            .map_err(|_| CoreError::invalid("prime set", "need exactly 4 primes"))?;
        PregeneratedPrimes::try_from(arr).map_err(|_| {
            CoreError::invalid(
                "prime set",
                format!("primes must be at least {PRIME_BITS} bits"),
            )
        })
    }

    /// Builds a set from the library's type.
    pub fn from_pregenerated(p: &PregeneratedPrimes) -> Self {
        let primes = p.primes_ref().clone().map(|i| i.to_str_radix(16));
        PrimeSet { primes }
    }

    /// Generates a fresh set with our fast generator (`safe-primes`): `threads` parallel
    /// searches (at least 1; ignored on wasm32, which has no threads: browsers run
    /// [`safe_primes::Search`] chunks in Web Workers instead), GMP with `backend-rug`,
    /// pure Rust otherwise. `progress` gets the aggregated search counters (`found` counts
    /// the primes done, 0..=4) several times a second. Setting `cancel` stops the search
    /// with an error. The set is checked by `PregeneratedPrimes::try_from` before it is
    /// returned.
    pub fn generate_fast(
        threads: usize,
        cancel: Option<&AtomicBool>,
        progress: &mut dyn FnMut(&SearchProgress),
    ) -> Result<Self, CoreError> {
        let params = safe_primes::Params::new(PRIME_BITS)
            .map_err(|e| CoreError::invalid("safe-prime parameters", e))?;
        let hex = fast_hex(params, threads, cancel, progress)
            .map_err(|e| CoreError::invalid("safe-prime generation", e))?;
        let primes: [String; 4] = hex
            .try_into()
            .map_err(|_| CoreError::invalid("safe-prime generation", "expected 4 primes"))?;
        let set = PrimeSet { primes };
        set.to_pregenerated()?;
        Ok(set)
    }

    /// Generates a fresh set with the library's generator
    /// (`fast_paillier::Integer::generate_safe_prime`, as `PregeneratedPrimes::generate`),
    /// calling `progress(k)` after each of the four primes. Takes minutes in pure Rust;
    /// kept for comparison — use [`PrimeSet::generate_fast`].
    pub fn generate(progress: &mut dyn FnMut(usize)) -> Self {
        let mut rng = rand_core::OsRng;
        let primes = [0usize, 1, 2, 3].map(|k| {
            let p = Integer::generate_safe_prime(&mut rng, PRIME_BITS);
            progress(k + 1);
            p.to_str_radix(16)
        });
        PrimeSet { primes }
    }

    /// Whether any of these primes is one of the public test fixtures.
    pub fn is_public_fixture(&self) -> bool {
        let fixtures = dev_fixture_primes();
        self.primes.iter().any(|p| {
            let p = p.trim_start_matches("0x").to_ascii_lowercase();
            fixtures
                .iter()
                .flat_map(|s| s.primes.iter())
                .any(|f| *f == p)
        })
    }
}

#[cfg(feature = "backend-rug")]
type FastInt = safe_primes::rug::Integer;
#[cfg(not(feature = "backend-rug"))]
type FastInt = safe_primes::BigUint;

/// Which big-integer backend [`PrimeSet::generate_fast`] uses in this build.
pub const FAST_PRIME_BACKEND: &str = <FastInt as safe_primes::Natural>::BACKEND;

#[cfg(not(target_arch = "wasm32"))]
fn fast_hex(
    params: safe_primes::Params,
    threads: usize,
    cancel: Option<&AtomicBool>,
    progress: &mut dyn FnMut(&SearchProgress),
) -> Result<Vec<String>, safe_primes::Error> {
    let found = safe_primes::generate_many::<FastInt>(params, 4, threads, cancel, progress)?;
    Ok(found.iter().map(|p| p.to_hex()).collect())
}

#[cfg(target_arch = "wasm32")]
fn fast_hex(
    params: safe_primes::Params,
    _threads: usize,
    cancel: Option<&AtomicBool>,
    progress: &mut dyn FnMut(&SearchProgress),
) -> Result<Vec<String>, safe_primes::Error> {
    use safe_primes::Natural;
    let mut rng = rand_core::OsRng;
    let mut found: Vec<FastInt> = Vec::with_capacity(4);
    // counters of the finished searches
    let mut done = SearchProgress::default();
    while found.len() < 4 {
        let mut last = SearchProgress::default();
        let p = safe_primes::generate::<FastInt, _>(params, &mut rng, cancel, &mut |pr| {
            last = *pr;
            let mut total = done;
            total.add(pr);
            progress(&total);
        })?;
        done.add(&last);
        if !found.iter().any(|o| safe_primes::too_close(o, p.p())) {
            found.push(p.into_p());
        }
    }
    Ok(found.iter().map(Natural::to_hex).collect())
}

/// A file of prime sets, one per party index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrimesFile {
    /// Set to `true` in the public test fixture.
    #[serde(default)]
    pub insecure_public_fixture: bool,
    /// Free-form note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// One set per party, by keygen index.
    pub parties: Vec<PrimeSet>,
}

impl PrimesFile {
    /// Parses a primes file.
    pub fn from_json(s: &str) -> Result<Self, CoreError> {
        serde_json::from_str(s).map_err(|e| CoreError::invalid("primes file", e))
    }

    /// Whether the file is (or contains) the public test fixture.
    pub fn is_public_fixture(&self) -> bool {
        self.insecure_public_fixture || self.parties.iter().any(PrimeSet::is_public_fixture)
    }
}

const FIXTURE_JSON: &str = include_str!("../fixtures/dev-primes.json");

/// The committed **public** prime fixtures (three parties). Tests and benchmarks only.
pub fn dev_fixture_primes() -> Vec<PrimeSet> {
    match serde_json::from_str::<PrimesFile>(FIXTURE_JSON) {
        Ok(f) => f.parties,
        Err(_) => Vec::new(),
    }
}
