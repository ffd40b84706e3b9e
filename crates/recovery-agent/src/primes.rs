//! Where the agent's aux-info primes come from.
//!
//! Every wallet's aux info needs four fresh 1536-bit safe primes (the recovery party's
//! Paillier and ring-Pedersen moduli). Generating them is the slow part of wallet
//! creation, so a small pool is filled in the background at startup and refilled after
//! each use; a job that finds the pool empty generates its set itself (stage `primes`).
//!
//! The generator is a plain function ([`Generator`]): by default ours
//! ([`fast_generator`], `PrimeSet::generate_fast`: a joint sieve over q and 2q+1 before
//! any exponentiation), with the library's ([`library_generator`]) kept for comparison. The pool lives in memory only: primes are secrets and are never
//! written to disk unencrypted.

use std::sync::Arc;

use mpc_core::primes::{dev_fixture_primes, PrimeSet};
use tokio::sync::Mutex;

/// A prime-set generator: calls `progress(k)` after prime `k` (1..=4).
pub type Generator = fn(&mut dyn FnMut(usize)) -> PrimeSet;

/// The library's generator.
pub fn library_generator(progress: &mut dyn FnMut(usize)) -> PrimeSet {
    PrimeSet::generate(progress)
}

/// Our generator (`safe-primes`, one thread), falling back to the library's if it fails
/// (it only fails on invalid parameters, which would be a bug).
pub fn fast_generator(progress: &mut dyn FnMut(usize)) -> PrimeSet {
    let mut seen = 0u64;
    let fast = PrimeSet::generate_fast(1, None, &mut |p| {
        while seen < p.found.min(4) {
            seen += 1;
            progress(seen as usize);
        }
    });
    match fast {
        Ok(set) => set,
        Err(e) => {
            tracing::warn!("fast prime generation failed ({e}); using the library's generator");
            PrimeSet::generate(progress)
        }
    }
}

/// Where a job gets its primes.
#[derive(Clone)]
pub enum PrimeSource {
    /// The repository's PUBLIC test primes (party 2's fixture). Tests and demos only:
    /// keys made with them are not secret-safe.
    InsecureDev,
    /// Freshly generated sets, with a background pool.
    Generated(Arc<PrimePool>),
}

impl std::fmt::Debug for PrimeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrimeSource::InsecureDev => f.write_str("InsecureDev"),
            PrimeSource::Generated(p) => write!(f, "Generated(pool size {})", p.target),
        }
    }
}

/// A pool of generated prime sets.
pub struct PrimePool {
    ready: Mutex<Vec<PrimeSet>>,
    refilling: std::sync::atomic::AtomicBool,
    target: usize,
    generator: Generator,
}

impl PrimePool {
    /// A pool that keeps `target` sets ready (0: generate on demand only).
    pub fn new(target: usize, generator: Generator) -> Arc<Self> {
        Arc::new(PrimePool {
            ready: Mutex::new(Vec::new()),
            refilling: std::sync::atomic::AtomicBool::new(false),
            target,
            generator,
        })
    }

    /// Sets ready now.
    pub async fn ready(&self) -> usize {
        self.ready.lock().await.len()
    }

    /// Starts filling the pool in the background (one set at a time) unless a refill is
    /// already running.
    pub fn refill(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.target == 0 || self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                if pool.ready.lock().await.len() >= pool.target {
                    break;
                }
                let gen = pool.generator;
                let started = std::time::Instant::now();
                match tokio::task::spawn_blocking(move || gen(&mut |_| {})).await {
                    Ok(set) => {
                        tracing::info!(
                            secs = started.elapsed().as_secs_f64(),
                            "prime set generated for the pool"
                        );
                        pool.ready.lock().await.push(set);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "prime generation failed");
                        break;
                    }
                }
            }
            pool.refilling.store(false, Ordering::Release);
        });
    }

    /// Takes a set (from the pool, or generated now), reporting `progress(done, 4)`.
    pub async fn take(
        self: &Arc<Self>,
        progress: impl Fn(usize) + Send + 'static,
    ) -> Result<PrimeSet, String> {
        let ready = self.ready.lock().await.pop();
        let set = match ready {
            Some(s) => s,
            None => {
                let gen = self.generator;
                tokio::task::spawn_blocking(move || gen(&mut |k| progress(k)))
                    .await
                    .map_err(|e| format!("prime generation failed: {e}"))?
            }
        };
        self.refill();
        Ok(set)
    }
}

impl PrimeSource {
    /// A set for one wallet.
    pub async fn take(
        &self,
        progress: impl Fn(usize) + Send + 'static,
    ) -> Result<PrimeSet, String> {
        match self {
            PrimeSource::InsecureDev => dev_fixture_primes()
                .get(2)
                .cloned()
                .ok_or_else(|| "the dev prime fixture is missing".to_string()),
            PrimeSource::Generated(pool) => pool.take(progress).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(progress: &mut dyn FnMut(usize)) -> PrimeSet {
        for k in 1..=4 {
            progress(k);
        }
        dev_fixture_primes()[0].clone()
    }

    #[tokio::test]
    async fn pool_refills_and_generates_on_demand() {
        let pool = PrimePool::new(1, fake);
        pool.refill();
        // Until the background refill has pushed its set, with no deadline of our own: a
        // busy machine may take long to run it, and a refill that never ends hangs the
        // test, which nextest's slow-test timeout then names.
        while pool.ready().await == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(pool.ready().await, 1);
        let steps = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let s = steps.clone();
        pool.take(move |_| {
            s.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .await
        .unwrap();
        // From the pool: no generation progress.
        assert_eq!(steps.load(std::sync::atomic::Ordering::Relaxed), 0);
        let empty = PrimePool::new(0, fake);
        let s = steps.clone();
        empty
            .take(move |_| {
                s.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
            .await
            .unwrap();
        assert_eq!(steps.load(std::sync::atomic::Ordering::Relaxed), 4);
        assert_eq!(empty.ready().await, 0);
    }
}
