//! Native multi-threaded search: one independent [`Search`] per thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rand_core::OsRng;

use crate::{too_close, Error, Natural, Params, Progress, SafePrime, Search};

/// Candidates per chunk between progress updates (a few hundred exponentiations at most).
const CHUNK: u64 = 4096;
/// How often the calling thread reports progress.
const REPORT_EVERY: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Shared {
    candidates: AtomicU64,
    survivors: AtomicU64,
    fermat_q: AtomicU64,
    fermat_p: AtomicU64,
    miller_rabin: AtomicU64,
    seeds: AtomicU64,
    found: AtomicU64,
}

impl Shared {
    fn add(&self, d: &Progress) {
        self.candidates.fetch_add(d.candidates, Ordering::Relaxed);
        self.survivors.fetch_add(d.survivors, Ordering::Relaxed);
        self.fermat_q.fetch_add(d.fermat_q, Ordering::Relaxed);
        self.fermat_p.fetch_add(d.fermat_p, Ordering::Relaxed);
        self.miller_rabin
            .fetch_add(d.miller_rabin, Ordering::Relaxed);
        self.seeds.fetch_add(d.seeds, Ordering::Relaxed);
        self.found.fetch_add(d.found, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Progress {
        Progress {
            candidates: self.candidates.load(Ordering::Relaxed),
            survivors: self.survivors.load(Ordering::Relaxed),
            fermat_q: self.fermat_q.load(Ordering::Relaxed),
            fermat_p: self.fermat_p.load(Ordering::Relaxed),
            miller_rabin: self.miller_rabin.load(Ordering::Relaxed),
            seeds: self.seeds.load(Ordering::Relaxed),
            found: self.found.load(Ordering::Relaxed),
        }
    }
}

fn diff(now: &Progress, before: &Progress) -> Progress {
    Progress {
        candidates: now.candidates - before.candidates,
        survivors: now.survivors - before.survivors,
        fermat_q: now.fermat_q - before.fermat_q,
        fermat_p: now.fermat_p - before.fermat_p,
        miller_rabin: now.miller_rabin - before.miller_rabin,
        seeds: now.seeds - before.seeds,
        found: now.found - before.found,
    }
}

/// Finds one safe prime with `threads` parallel searches (each from its own OS-random
/// seed); the first find wins and the other threads stop. `progress` is called on the
/// calling thread about five times a second with the aggregated counters. Setting
/// `cancel` stops all threads and returns [`Error::Cancelled`].
pub fn generate_parallel<N: Natural>(
    params: Params,
    threads: usize,
    cancel: Option<&AtomicBool>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<SafePrime<N>, Error> {
    let mut v = generate_many::<N>(params, 1, threads, cancel, progress)?;
    v.pop().ok_or(Error::Worker("no prime returned".into()))
}

/// Finds `count` safe primes with `threads` parallel searches. Every prime comes from its
/// own random seed; the set is checked to hold no two equal or close primes (see
/// [`too_close`]). Progress and cancellation as in [`generate_parallel`].
pub fn generate_many<N: Natural>(
    params: Params,
    count: usize,
    threads: usize,
    cancel: Option<&AtomicBool>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<SafePrime<N>>, Error> {
    let params = params.validated()?;
    if threads == 0 {
        return Err(Error::Zero("thread count"));
    }
    if count == 0 {
        return Err(Error::Zero("prime count"));
    }
    let stop = AtomicBool::new(false);
    let shared = Shared::default();
    let mut out: Vec<SafePrime<N>> = Vec::with_capacity(count);

    let result = std::thread::scope(|scope| -> Result<(), Error> {
        let (tx, rx) = mpsc::channel::<Result<SafePrime<N>, Error>>();
        for i in 0..threads {
            let tx = tx.clone();
            let stop = &stop;
            let shared = &shared;
            let spawned = std::thread::Builder::new()
                .name(format!("safe-primes-{i}"))
                .spawn_scoped(scope, move || worker::<N>(params, stop, shared, &tx));
            if let Err(e) = spawned {
                stop.store(true, Ordering::Relaxed);
                return Err(Error::Worker(e.to_string()));
            }
        }
        drop(tx);
        let outcome = loop {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                break Err(Error::Cancelled);
            }
            match rx.recv_timeout(REPORT_EVERY) {
                Ok(Ok(prime)) => {
                    if out.iter().any(|o| too_close(o.p(), prime.p())) {
                        continue;
                    }
                    out.push(prime);
                    progress(&shared.snapshot());
                    if out.len() >= count {
                        break Ok(());
                    }
                }
                Ok(Err(e)) => break Err(e),
                Err(mpsc::RecvTimeoutError::Timeout) => progress(&shared.snapshot()),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err(Error::Worker("all workers stopped".into()))
                }
            }
        };
        stop.store(true, Ordering::Relaxed);
        outcome
    });
    result?;
    progress(&shared.snapshot());
    Ok(out)
}

fn worker<N: Natural>(
    params: Params,
    stop: &AtomicBool,
    shared: &Shared,
    tx: &mpsc::Sender<Result<SafePrime<N>, Error>>,
) {
    let mut rng = OsRng;
    let mut search = match Search::<N>::new(params, &mut rng) {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    let mut reported = Progress::default();
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        // `stop` doubles as the per-exponentiation cancellation flag of this chunk.
        let r = search.run(&mut rng, CHUNK, Some(stop));
        let now = search.progress();
        shared.add(&diff(&now, &reported));
        reported = now;
        match r {
            Ok(Some(p)) => {
                if tx.send(Ok(p)).is_err() {
                    return;
                }
            }
            Ok(None) => {}
            // Another thread completed the set, or the caller cancelled (the collecting
            // thread watches the caller's flag and sets `stop`).
            Err(Error::Cancelled) => return,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BigUint;

    #[test]
    fn zero_threads_or_count_is_an_error() {
        let p = Params::new(128).unwrap();
        assert_eq!(
            generate_many::<BigUint>(p, 1, 0, None, &mut |_| {}).unwrap_err(),
            Error::Zero("thread count")
        );
        assert_eq!(
            generate_many::<BigUint>(p, 0, 1, None, &mut |_| {}).unwrap_err(),
            Error::Zero("prime count")
        );
    }

    #[test]
    fn cancel_stops_all_threads() {
        let cancel = AtomicBool::new(false);
        let mut calls = 0;
        let r = generate_many::<BigUint>(Params::cggmp(), 4, 2, Some(&cancel), &mut |_| {
            calls += 1;
            cancel.store(true, Ordering::Relaxed);
        });
        assert_eq!(r.unwrap_err(), Error::Cancelled);
        assert!(calls >= 1);
    }
}
