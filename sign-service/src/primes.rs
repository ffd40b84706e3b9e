//! Safe primes for aux info: 4 fresh 1536-bit safe primes per wallet, generated with our
//! fast generator (`safe-primes` over GMP: joint sieve of q and 2q+1, Fermat filters,
//! Miller-Rabin) on blocking threads and kept (encrypted) in the key store, or the public
//! test fixtures when `insecure_dev_primes` is set.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mpc_core::primes::{dev_fixture_primes, PrimeSet};
use tokio::sync::Notify;

use crate::store::{Store, StoreError};

/// Why no prime set could be had.
#[derive(Debug, thiserror::Error)]
pub enum PrimeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// None became available in time.
    #[error("no safe-prime set became available within {0:?} (generation is slow; raise prime_pool_size or the wallet-creation timeout)")]
    Timeout(Duration),
    /// The fixtures are missing.
    #[error("the public dev fixture primes are missing")]
    NoFixture,
}

/// Threads for one background prime search: half the cores (at least one), so refilling
/// the pool never takes all of them from signing.
fn generator_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// The pool.
#[derive(Debug)]
pub struct PrimePool {
    store: Arc<Store>,
    target: usize,
    insecure_dev: bool,
    available: Notify,
    wanted: Notify,
    waiting: AtomicUsize,
}

impl PrimePool {
    /// A pool of `target` sets backed by `store`.
    pub fn new(store: Arc<Store>, target: usize, insecure_dev: bool) -> Arc<Self> {
        Arc::new(Self {
            store,
            target,
            insecure_dev,
            available: Notify::new(),
            wanted: Notify::new(),
            waiting: AtomicUsize::new(0),
        })
    }

    /// Sets in stock.
    pub fn len(&self) -> u64 {
        self.store.prime_count().unwrap_or(0)
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts the background generator (no-op with dev primes).
    pub fn spawn_generator(self: &Arc<Self>) {
        if self.insecure_dev {
            return;
        }
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let wanted = pool.wanted.notified();
                let have = pool.store.prime_count().unwrap_or(u64::MAX);
                let target = pool.target as u64;
                // Keep `target` sets ready, and generate on demand for waiting wallets.
                if have >= target && pool.waiting.load(Ordering::SeqCst) == 0 {
                    wanted.await;
                    continue;
                }
                let threads = generator_threads();
                tracing::info!(
                    have,
                    target,
                    threads,
                    backend = mpc_core::primes::FAST_PRIME_BACKEND,
                    "generating a safe-prime set (4 x 1536 bits)"
                );
                let started = std::time::Instant::now();
                let res = tokio::task::spawn_blocking(move || {
                    PrimeSet::generate_fast(threads, None, &mut |_| {})
                })
                .await;
                match res {
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "safe-prime generation failed");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    Ok(Ok(set)) => match pool.store.push_primes(&set) {
                        Ok(()) => {
                            tracing::info!(
                                secs = started.elapsed().as_secs_f32(),
                                "safe-prime set ready"
                            );
                            pool.available.notify_waiters();
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot store a prime set");
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                    },
                    Err(e) => {
                        tracing::error!(error = %e, "prime generation task failed");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            }
        });
    }

    /// Takes one set for a new wallet, waiting up to `wait` for the generator.
    pub async fn take(&self, wait: Duration) -> Result<PrimeSet, PrimeError> {
        if self.insecure_dev {
            return dev_fixture_primes()
                .into_iter()
                .nth(1)
                .ok_or(PrimeError::NoFixture);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.available.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.store.pop_primes() {
                Ok(Some(set)) => {
                    self.wanted.notify_one();
                    return Ok(set);
                }
                Ok(None) => {}
                Err(e @ StoreError::Tampered { .. }) | Err(e @ StoreError::Malformed(..)) => {
                    tracing::error!(error = %e, "discarded an unreadable prime set");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            self.waiting.fetch_add(1, Ordering::SeqCst);
            self.wanted.notify_one();
            tracing::info!("waiting for a safe-prime set");
            let timed_out = tokio::time::timeout_at(deadline, notified).await.is_err();
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            if timed_out {
                return Err(PrimeError::Timeout(wait));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeySource;

    fn store(name: &str) -> Arc<Store> {
        let d =
            std::env::temp_dir().join(format!("sign-service-primes-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Arc::new(Store::open(&d.join("s.redb"), &KeySource::InsecureDev).unwrap())
    }

    #[tokio::test]
    async fn dev_primes_are_the_cosigner_fixture() {
        let pool = PrimePool::new(store("dev"), 0, true);
        let set = pool.take(Duration::from_millis(1)).await.unwrap();
        assert_eq!(set, dev_fixture_primes()[1]);
        assert!(set.is_public_fixture());
    }

    #[tokio::test]
    async fn empty_pool_times_out_and_stocked_pool_serves() {
        let s = store("stock");
        let pool = PrimePool::new(Arc::clone(&s), 0, false);
        assert!(matches!(
            pool.take(Duration::from_millis(50)).await,
            Err(PrimeError::Timeout(_))
        ));
        let set = dev_fixture_primes()[0].clone();
        s.push_primes(&set).unwrap();
        assert_eq!(pool.take(Duration::from_millis(50)).await.unwrap(), set);
        assert!(pool.is_empty());
    }

    /// Real generation through the background generator with the fast generator over GMP
    /// (a few seconds of CPU per set; the independent primality checks of the generated
    /// numbers are in `safe-primes` and `mpc-core`'s tests).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn real_generation() {
        let pool = PrimePool::new(store("real"), 0, false);
        pool.spawn_generator();
        let t = std::time::Instant::now();
        let set = pool.take(Duration::from_secs(1800)).await.unwrap();
        eprintln!(
            "one safe-prime set (4 x 1536 bits) in {:?} with {}",
            t.elapsed(),
            mpc_core::BACKEND
        );
        assert!(!set.is_public_fixture());
        set.to_pregenerated().unwrap();
        for (i, p) in set.primes.iter().enumerate() {
            assert!(
                set.primes[..i].iter().all(|o| o != p),
                "primes are distinct"
            );
            // 1536 bits exactly: 384 hex digits, top digit >= 8
            assert_eq!(p.len(), 384);
            assert!(u8::from_str_radix(&p[..1], 16).unwrap() >= 8);
        }
    }
}
