//! The figures of a run: printed as a table and written as JSON (`--json`, the `scale`
//! section of `scripts/bench_report.py`).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use e2e_tests::latency_stats;

use super::checks::StoreFigures;
use super::{Args, Failure, Kill, Kind, Outcome, NAMES};

/// Everything measured, for the report.
pub(crate) struct Run<'a> {
    pub(crate) args: &'a Args,
    pub(crate) outcomes: &'a [Outcome],
    pub(crate) kill: &'a Kill,
    pub(crate) create_s: f64,
    pub(crate) refill_s: f64,
    pub(crate) presignatures: usize,
    pub(crate) phase_s: f64,
    pub(crate) cpu_busy: f64,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) store: StoreFigures,
    /// The store's take counter before and after the signings.
    pub(crate) takes: (u64, u64),
    pub(crate) unused_left: usize,
    pub(crate) total_s: f64,
}

/// Whether a failed attempt is one the kill caused: on A, from the kill on.
fn by_kill(kill: &Kill, f: &Failure) -> bool {
    f.cosigner == 0 && f.at_s >= kill.at_s
}

/// Adds the problems the outcomes show (final failures, a kill that hit nothing),
/// prints the figures and the problems, and writes the JSON file.
pub(crate) fn report(r: &Run<'_>, problems: &mut Vec<String>) -> Result<()> {
    let total = r.outcomes.len();
    let failed = r.outcomes.iter().filter(|o| o.signed.is_none()).count();
    for o in r.outcomes.iter().filter(|o| o.signed.is_none()) {
        problems.push(format!(
            "signing {} ({}) failed: {:?}",
            o.job.id,
            o.job.kind.as_str(),
            o.failures.last()
        ));
    }
    let retries: Vec<(&Outcome, &Failure)> = r
        .outcomes
        .iter()
        .flat_map(|o| o.failures.iter().map(move |f| (o, f)))
        .filter(|(_, f)| f.retryable)
        .collect();
    let kill_retries = retries.iter().filter(|(_, f)| by_kill(r.kill, f)).count();
    if kill_retries == 0 {
        problems.push(
            "no session of cosigner A failed at the kill: nothing was in flight there \
             (raise --clients or change --kill-at)"
                .into(),
        );
    }
    let mut codes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut retries_by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for (o, f) in &retries {
        *codes.entry(f.code).or_default() += 1;
        *retries_by_kind.entry(o.job.kind.as_str()).or_default() += 1;
    }
    let other_retries: Vec<String> = retries
        .iter()
        .filter(|(_, f)| !by_kill(r.kill, f))
        .map(|(o, f)| {
            format!(
                "signing {} on {} at {:.1} s: {} ({})",
                o.job.id, NAMES[f.cosigner], f.at_s, f.code, f.message
            )
        })
        .collect();
    let stats = |k: Option<Kind>, retried_only: bool| {
        latency_stats(
            r.outcomes
                .iter()
                .filter(|o| o.signed.is_some() && k.is_none_or(|k| o.job.kind == k))
                .filter(|o| !retried_only || !o.failures.is_empty())
                .map(|o| (o.end_s - o.start_s) * 1000.0)
                .collect(),
        )
    };
    let (pool_s, full_s, all_s, retried_s) = (
        stats(Some(Kind::Pool), false),
        stats(Some(Kind::Full), false),
        stats(None, false),
        stats(None, true),
    );
    let signed = total - failed;
    let by_cosigner = [0, 1].map(|c| {
        r.outcomes
            .iter()
            .filter(|o| o.signed.as_ref().is_some_and(|(_, sc)| *sc == c))
            .count()
    });
    let throughput = signed as f64 / r.phase_s.max(1e-9);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };

    println!(
        "scale-bench: 2 cosigners (GMP) on one PostgreSQL, 2 gateways on one Redis; client {}; profile {profile}",
        mpc_core::BACKEND,
    );
    println!(
        "setup: {} wallet(s) created in {:.1} s; {} presignatures in {:.1} s ({:.2}/s)",
        r.args.wallets,
        r.create_s,
        r.presignatures,
        r.refill_s,
        r.presignatures as f64 / r.refill_s.max(1e-9)
    );
    println!(
        "signings: {signed}/{total} signed ({} pool, {} full) from {} client tasks in {:.1} s = {throughput:.2} signatures/s; through A {}, through B {}",
        r.args.pool, r.args.full, r.args.clients, r.phase_s, by_cosigner[0], by_cosigner[1]
    );
    println!(
        "{:<40} {:>10} {:>10} {:>10} {:>6}",
        "latency (client wall, retries included)", "p50 ms", "p95 ms", "max ms", "n"
    );
    for (name, s) in [
        ("pool", &pool_s),
        ("full", &full_s),
        ("all", &all_s),
        ("retried signings", &retried_s),
    ] {
        println!(
            "{:<40} {:>10.1} {:>10.1} {:>10.1} {:>6}",
            name,
            s["p50_ms"].as_f64().unwrap_or(0.0),
            s["p95_ms"].as_f64().unwrap_or(0.0),
            s["max_ms"].as_f64().unwrap_or(0.0),
            s["n"]
        );
    }
    println!(
        "kill: SIGKILL of cosigner A at {:.1} s after {} signings; in flight on A: {} pool, {} full",
        r.kill.at_s, r.kill.done, r.kill.in_flight[0], r.kill.in_flight[1]
    );
    println!(
        "retries: {} ({kill_retries} caused by the kill), by code {codes:?}, by kind {retries_by_kind:?}",
        retries.len(),
    );
    for line in &other_retries {
        println!("  retry not caused by the kill: {line}");
    }
    println!(
        "store: {} presignatures taken during the run, {} of them by pool signatures, {} taken without a signature (lost with A); {} unused left; take counter {} -> {}",
        r.store.taken, r.store.signed, r.store.lost, r.unused_left, r.takes.0, r.takes.1
    );
    println!(
        "machine: {cores} cores, CPU busy {:.0}% during the signings (every process), load average {} before, {} after",
        r.cpu_busy, r.load_before, r.load_after
    );
    if problems.is_empty() {
        println!("checks: all passed (zero final failures; every presignature used at most once, in the store and on the devices)");
    } else {
        for p in problems.iter() {
            println!("FAILED: {p}");
        }
    }

    let Some(path) = &r.args.json else {
        return Ok(());
    };
    // [start s, end s, kind, attempts, signed] per signing, for the chart.
    let timeline: Vec<serde_json::Value> = r
        .outcomes
        .iter()
        .map(|o| {
            serde_json::json!([
                (o.start_s * 1000.0).round() / 1000.0,
                (o.end_s * 1000.0).round() / 1000.0,
                o.job.kind.as_str(),
                o.failures.len() + 1,
                o.signed.is_some(),
            ])
        })
        .collect();
    let j = serde_json::json!({
        "suite": "scale",
        "profile": profile,
        "client_backend": mpc_core::BACKEND,
        "setup": {
            "cosigners": 2,
            "gateways": 2,
            "store": "postgresql",
            "rooms": "redis",
            "wallets": r.args.wallets,
            "clients": r.args.clients,
            "wallet_creation_seconds": r.create_s,
            "presignatures_filled": r.presignatures,
            "refill_seconds": r.refill_s,
        },
        "signings": {
            "total": total,
            "pool": r.args.pool,
            "full": r.args.full,
            "signed": signed,
            "failed": failed,
            "through_a": by_cosigner[0],
            "through_b": by_cosigner[1],
            "seconds": r.phase_s,
            "throughput_per_second": throughput,
        },
        "latency_pool": pool_s,
        "latency_full": full_s,
        "latency_all": all_s,
        "latency_retried": retried_s,
        "kill": {
            "at_seconds": r.kill.at_s,
            "after_signings": r.kill.done,
            "in_flight_pool": r.kill.in_flight[0],
            "in_flight_full": r.kill.in_flight[1],
        },
        "retries": {
            "total": retries.len(),
            "caused_by_kill": kill_retries,
            "by_code": codes,
            "by_kind": retries_by_kind,
            "others": other_retries,
        },
        "store": {
            "taken_during_run": r.store.taken,
            "taken_by_pool_signatures": r.store.signed,
            "taken_without_signature": r.store.lost,
            "unused_left": r.unused_left,
            "take_counter_before": r.takes.0,
            "take_counter_after": r.takes.1,
        },
        "machine": {
            "cores": cores,
            "cpu_busy_percent": r.cpu_busy,
            "load_average_before": r.load_before,
            "load_average_after": r.load_after,
        },
        "checks_passed": problems.is_empty(),
        "problems": problems,
        "total_seconds": r.total_s,
        "timeline": timeline,
    });
    std::fs::write(path, serde_json::to_string_pretty(&j)?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("[scale] wrote {}", path.display());
    Ok(())
}
