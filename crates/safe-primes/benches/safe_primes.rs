//! Safe-prime generation: ours vs the library's generator, same backend, same machine.
//!
//! The library row calls fast-paillier's `Integer::generate_safe_prime(rng, bits)`, the
//! exact function `cggmp24::PregeneratedPrimes::generate` calls four times (one prime per
//! sample here). fast-paillier compiles only one backend's safe-prime generator at a time,
//! so one run compares one backend's library generator:
//!
//! ```text
//! # pure Rust (num-bigint): ours vs library
//! cargo bench -p safe-primes --features bench-num-bigint --bench safe_primes -- --json a.json
//! # GMP (rug): ours vs library
//! cargo bench -p safe-primes --features bench-rug --bench safe_primes -- --json b.json
//! ```
//!
//! `crates/safe-primes/bench.sh` runs both and merges the JSON.
//!
//! Options: `--samples N` (ours, default 8), `--lib-samples N` (library, default 5),
//! `--threads T` (multi-thread rows, default: available cores), `--bits B` (default
//! 1536), `--sieve-limit L`, `--json PATH`, `--no-library`, `--only ours|library`.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use rand_core::OsRng;
use safe_primes::{generate, generate_parallel, BigUint, Natural, Params, Progress};

struct Opts {
    samples: usize,
    lib_samples: usize,
    threads: usize,
    bits: u32,
    sieve_limit: Option<u32>,
    json: Option<String>,
    library: bool,
    ours: bool,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        samples: 8,
        lib_samples: 5,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        bits: 1536,
        sieve_limit: None,
        json: None,
        library: true,
        ours: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--samples" => o.samples = val("--samples")?.parse().map_err(|e| format!("{e}"))?,
            "--lib-samples" => {
                o.lib_samples = val("--lib-samples")?.parse().map_err(|e| format!("{e}"))?
            }
            "--threads" => o.threads = val("--threads")?.parse().map_err(|e| format!("{e}"))?,
            "--bits" => o.bits = val("--bits")?.parse().map_err(|e| format!("{e}"))?,
            "--json" => o.json = Some(val("--json")?),
            "--sieve-limit" => {
                o.sieve_limit = Some(val("--sieve-limit")?.parse().map_err(|e| format!("{e}"))?)
            }
            "--no-library" => o.library = false,
            "--only" => match val("--only")?.as_str() {
                "ours" => o.library = false,
                "library" => o.ours = false,
                other => return Err(format!("--only ours|library, not {other}")),
            },
            // cargo bench passes --bench
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.samples == 0 || o.lib_samples == 0 || o.threads == 0 {
        return Err("samples and threads must be at least 1".into());
    }
    Ok(o)
}

/// CPU time of the calling thread in seconds (Linux `/proc/thread-self/schedstat`, ns
/// resolution); `None` elsewhere. On a shared machine this is the fair single-thread
/// measure: wall time also counts time spent waiting for a core.
fn thread_cpu() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

#[derive(Clone)]
struct Row {
    generator: &'static str,
    backend: &'static str,
    threads: usize,
    secs: Vec<f64>,
    /// CPU seconds per sample (single-thread rows on Linux).
    cpu: Option<Vec<f64>>,
    /// Our counters summed over the samples (None for the library).
    work: Option<Progress>,
}

struct Stats {
    mean: f64,
    median: f64,
    min: f64,
    max: f64,
    stddev: f64,
}

fn stats(v: &[f64]) -> Stats {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len() as f64;
    let mean = s.iter().sum::<f64>() / n;
    let median = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    };
    let var = s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    Stats {
        mean,
        median,
        min: s[0],
        max: s[s.len() - 1],
        stddev: var.sqrt(),
    }
}

fn ours<N: Natural>(params: Params, threads: usize, samples: usize) -> Row {
    let mut secs = Vec::new();
    let mut cpu = Vec::new();
    let mut work = Progress::default();
    let never = AtomicBool::new(false);
    for i in 0..samples {
        let mut last = Progress::default();
        let c = thread_cpu();
        let t = Instant::now();
        let p = if threads == 1 {
            generate::<N, _>(params, &mut OsRng, Some(&never), &mut |pr| last = *pr)
        } else {
            generate_parallel::<N>(params, threads, Some(&never), &mut |pr| last = *pr)
        };
        let dt = t.elapsed().as_secs_f64();
        let dc = c.zip(thread_cpu()).map(|(a, b)| b - a);
        if let (1, Some(dc)) = (threads, dc) {
            cpu.push(dc);
        }
        match p {
            Ok(p) => assert_eq!(p.p().bit_len(), u64::from(params.bits())),
            Err(e) => panic!("generation failed: {e}"),
        }
        work.add(&last);
        secs.push(dt);
        eprintln!(
            "  ours {:<10} {} thread(s) sample {}/{}: {:.2} s wall, {} cpu ({} candidates, {} Fermat tests)",
            N::BACKEND,
            threads,
            i + 1,
            samples,
            dt,
            dc.filter(|_| threads == 1)
                .map_or("-".to_string(), |c| format!("{c:.2} s")),
            last.candidates,
            last.fermat_q + last.fermat_p
        );
    }
    Row {
        generator: "ours",
        backend: N::BACKEND,
        threads,
        secs,
        cpu: (cpu.len() == samples).then_some(cpu),
        work: Some(work),
    }
}

#[cfg(any(feature = "bench-num-bigint", feature = "bench-rug"))]
fn library(bits: u32, samples: usize) -> Row {
    // With both bench features fast-paillier uses num-bigint (see its backend docs).
    let backend = if cfg!(feature = "bench-num-bigint") {
        "num-bigint"
    } else {
        "rug"
    };
    let mut secs = Vec::new();
    let mut cpu = Vec::new();
    for i in 0..samples {
        let c = thread_cpu();
        let t = Instant::now();
        let p = fast_paillier::backend::Integer::generate_safe_prime(&mut OsRng, bits);
        let dt = t.elapsed().as_secs_f64();
        let dc = c.zip(thread_cpu()).map(|(a, b)| b - a);
        if let Some(dc) = dc {
            cpu.push(dc);
        }
        assert!(p.significant_bits() >= u64::from(bits));
        secs.push(dt);
        eprintln!(
            "  library {backend:<10} 1 thread sample {}/{samples}: {dt:.2} s wall, {:.2} s cpu",
            i + 1,
            dc.unwrap_or(f64::NAN)
        );
    }
    Row {
        generator: "library",
        backend,
        threads: 1,
        secs,
        cpu: (cpu.len() == samples).then_some(cpu),
        work: None,
    }
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("safe_primes bench: {e}");
            std::process::exit(2);
        }
    };
    let params = match Params::new(o.bits)
        .and_then(|p| o.sieve_limit.map_or(Ok(p), |l| p.with_sieve_limit(l)))
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("safe_primes bench: {e}");
            std::process::exit(2);
        }
    };
    let mut rows: Vec<Row> = Vec::new();
    eprintln!(
        "safe primes of {} bits; ours: {} samples, library: {} samples; multi-thread rows use {} threads",
        o.bits, o.samples, o.lib_samples, o.threads
    );

    let want_nb = cfg!(feature = "bench-num-bigint") || !cfg!(feature = "rug");
    if o.ours && want_nb {
        rows.push(ours::<BigUint>(params, 1, o.samples));
        if o.threads > 1 {
            rows.push(ours::<BigUint>(params, o.threads, o.samples));
        }
    }
    #[cfg(feature = "rug")]
    if o.ours {
        rows.push(ours::<safe_primes::rug::Integer>(params, 1, o.samples));
        if o.threads > 1 {
            rows.push(ours::<safe_primes::rug::Integer>(
                params, o.threads, o.samples,
            ));
        }
    }
    #[cfg(any(feature = "bench-num-bigint", feature = "bench-rug"))]
    if o.library {
        rows.push(library(o.bits, o.lib_samples));
    }
    #[cfg(not(any(feature = "bench-num-bigint", feature = "bench-rug")))]
    if o.library {
        eprintln!("(library rows need --features bench-num-bigint or bench-rug)");
    }

    print_table(&o, params, &rows);
    if let Some(path) = &o.json {
        let json = to_json(&o, params, &rows);
        if let Err(e) = std::fs::write(path, json) {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(1);
        }
        eprintln!("wrote {path}");
    }
}

fn library_row<'a>(rows: &'a [Row], backend: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.generator == "library" && r.backend == backend)
}

/// library / ours for (median wall, mean wall, median cpu, mean cpu).
fn ratios(rows: &[Row], r: &Row) -> [Option<f64>; 4] {
    let Some(l) = library_row(rows, r.backend).filter(|_| r.generator == "ours") else {
        return [None; 4];
    };
    let (lw, ow) = (stats(&l.secs), stats(&r.secs));
    let cpu = l
        .cpu
        .as_ref()
        .zip(r.cpu.as_ref())
        .map(|(a, b)| (stats(a), stats(b)));
    [
        Some(lw.median / ow.median),
        Some(lw.mean / ow.mean),
        cpu.as_ref().map(|(a, b)| a.median / b.median),
        cpu.as_ref().map(|(a, b)| a.mean / b.mean),
    ]
}

fn fmt_ratio(x: Option<f64>) -> String {
    x.map_or("-".into(), |x| format!("{x:.1}x"))
}

fn print_table(o: &Opts, params: Params, rows: &[Row]) {
    println!();
    println!(
        "Safe prime p = 2q+1, {} bits: seconds per prime (wall; cpu = CPU time of the generating thread, single-thread rows)",
        o.bits
    );
    println!("ratio = library / ours, same backend (ours single-thread vs library; ours multi-thread vs library single-thread)");
    println!(
        "{:<8} {:<10} {:>3} {:>3} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "gen", "backend", "thr", "n", "wall med", "wall avg", "min", "max", "sd",
        "cpu med", "cpu avg", "r(wall~)", "r(wall)", "r(cpu~)", "r(cpu)", "exp/pr"
    );
    for r in rows {
        let s = stats(&r.secs);
        let c = r.cpu.as_ref().map(|c| stats(c));
        let [a, b, cc, d] = ratios(rows, r);
        let exps = r
            .work
            .map(|w| {
                format!(
                    "{:.0}",
                    w.exponentiations(params.mr_rounds()) as f64 / r.secs.len() as f64
                )
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<8} {:<10} {:>3} {:>3} {:>8.2} {:>8.2} {:>7.2} {:>7.2} {:>7.2} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
            r.generator,
            r.backend,
            r.threads,
            r.secs.len(),
            s.median,
            s.mean,
            s.min,
            s.max,
            s.stddev,
            c.as_ref().map_or("-".into(), |c| format!("{:.2}", c.median)),
            c.as_ref().map_or("-".into(), |c| format!("{:.2}", c.mean)),
            fmt_ratio(a),
            fmt_ratio(b),
            fmt_ratio(cc),
            fmt_ratio(d),
            exps
        );
    }
    println!("(~ = median; exp/pr = modular exponentiations per prime, ours only)");
    println!();
}

fn to_json(o: &Opts, params: Params, rows: &[Row]) -> String {
    use serde_json::{json, Value};
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let s = stats(&r.secs);
            let c = r.cpu.as_ref().map(|c| stats(c));
            let [a, b, cc, d] = ratios(rows, r);
            json!({
                "generator": r.generator,
                "backend": r.backend,
                "threads": r.threads,
                "samples": r.secs.len(),
                "wall_median": s.median,
                "wall_mean": s.mean,
                "wall_min": s.min,
                "wall_max": s.max,
                "wall_stddev": s.stddev,
                "cpu_median": c.as_ref().map(|c| c.median),
                "cpu_mean": c.as_ref().map(|c| c.mean),
                "ratio_vs_library_wall_median": a,
                "ratio_vs_library_wall_mean": b,
                "ratio_vs_library_cpu_median": cc,
                "ratio_vs_library_cpu_mean": d,
                "wall_secs": r.secs,
                "cpu_secs": r.cpu,
                "work_total": r.work.map(|w| json!({
                    "candidates": w.candidates,
                    "survivors": w.survivors,
                    "fermat_q": w.fermat_q,
                    "fermat_p": w.fermat_p,
                    "miller_rabin_pairs": w.miller_rabin,
                    "seeds": w.seeds,
                })),
            })
        })
        .collect();
    let doc = json!({
        "benchmark": "safe_primes",
        "bits": o.bits,
        "mr_rounds": params.mr_rounds(),
        "sieve_limit": params.sieve_limit(),
        "window": params.window(),
        "machine_threads": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "unit": "seconds per safe prime",
        "library_function": "fast_paillier::backend::Integer::generate_safe_prime (called 4x by cggmp24::PregeneratedPrimes::generate)",
        "rows": items,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
