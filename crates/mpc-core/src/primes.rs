//! Safe-prime sets for aux info, and the committed public test fixtures.
//!
//! Each party's aux info needs four 1536-bit safe primes. Generating them is the slow
//! part of onboarding, so they can be generated once, saved, and reused; the committed
//! fixtures make test DKGs take seconds. **The fixtures are public**: a key whose aux
//! info uses them is not secret-safe, so only tests use them and the CLI refuses them.

use cggmp24::paillier_zk::backend::Integer;
use serde::{Deserialize, Serialize};

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

    /// Generates a fresh set with the library's generator, calling `progress(k)` after
    /// each of the four primes. Takes minutes in pure Rust.
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
