//! Protocol cost benchmark: prints a table for the backend this build uses.
//!
//! ```sh
//! cargo bench -p mpc-core --bench protocol                                              # pure Rust
//! cargo bench -p mpc-core --bench protocol --no-default-features --features backend-rug # GMP
//! scripts/bench-core.sh                                                                 # both
//! ```
//! Every figure is the work of all participating parties run in ONE thread (so it is CPU
//! time, not the wall time of a distributed run). `BENCH_ITERS` (default 3) sets the
//! repetitions of the interactive protocols; `BENCH_PRIMES=0` skips the safe-prime row;
//! `BENCH_JSON=<path>` also writes the results as JSON.

use std::time::{Duration, Instant};

use mpc_core::digest::{DigestKind, SignRequest};
use mpc_core::hd::DerivationPath;
use mpc_core::local::run_sessions;
use mpc_core::presign::{combine, PresignaturePublicDataRepr, StoredPresignature};
use mpc_core::primes::{dev_fixture_primes, PRIME_BITS};
use mpc_core::{AuxInfo, KeyShare, Session, SessionOutput};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fmt(d: Duration) -> String {
    if d.as_secs_f64() >= 1.0 {
        format!("{:.2} s", d.as_secs_f64())
    } else if d.as_secs_f64() >= 1e-3 {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    }
}

fn main() {
    let iters: usize = std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let primes_row = std::env::var("BENCH_PRIMES")
        .map(|v| v != "0")
        .unwrap_or(true);
    let backend = mpc_core::BACKEND;
    let mut rows: Vec<Row> = Vec::new();
    eprintln!("backend: {backend}; iterations: {iters}");

    if primes_row {
        let t = Instant::now();
        let _ = mpc_core::cggmp24::paillier_zk::backend::Integer::generate_safe_prime(
            &mut rand_core::OsRng,
            PRIME_BITS,
        );
        rows.push(Row::new(
            "safe_prime_library",
            "one safe prime (library generator, 1536 bit)",
            t.elapsed(),
            1,
        ));
        eprintln!("safe prime done");
    }

    let primes = dev_fixture_primes();
    let t = Instant::now();
    let sessions = (0..3u16)
        .map(|i| {
            Session::aux_info(
                b"bench-aux",
                i,
                3,
                primes[usize::from(i)].to_pregenerated().unwrap(),
            )
            .unwrap()
        })
        .collect();
    let aux: Vec<AuxInfo> = run_sessions(sessions, None)
        .unwrap()
        .into_iter()
        .map(|o| match o {
            SessionOutput::AuxInfo(a) => *a,
            _ => unreachable!(),
        })
        .collect();
    rows.push(Row::new(
        "aux_info_3_parties",
        "aux info, 3 parties (fixture primes)",
        t.elapsed(),
        1,
    ));
    eprintln!("aux info done");

    let mut dkg = Vec::new();
    let mut shares: Vec<KeyShare> = Vec::new();
    let mut cores = Vec::new();
    for k in 0..iters {
        let t = Instant::now();
        let sid = format!("bench-dkg-{k}");
        let sessions = (0..3u16)
            .map(|i| Session::keygen(sid.as_bytes(), i, 3, 2).unwrap())
            .collect();
        let outs = run_sessions(sessions, None).unwrap();
        dkg.push(t.elapsed());
        cores = outs
            .into_iter()
            .map(|o| match o {
                SessionOutput::Keygen(s) => *s,
                _ => unreachable!(),
            })
            .collect::<Vec<_>>();
        shares = cores
            .iter()
            .zip(&aux)
            .map(|(s, a)| KeyShare::from_parts((s.clone(), a.clone())).unwrap())
            .collect();
    }
    rows.push(Row::new(
        "dkg_3_parties",
        "DKG 2-of-3, 3 parties",
        median(dkg),
        iters,
    ));

    // Key lifecycle (docs/lifecycle.md): the elliptic-curve work of a refresh among the
    // three parties and of a repair of index 0 by the other two (no Paillier work; a
    // device replacement adds one aux-info run, the row above).
    let mut refresh = Vec::new();
    let mut repair = Vec::new();
    for k in 0..iters {
        let sid = format!("bench-refresh-{k}");
        let t = Instant::now();
        let sessions = cores
            .iter()
            .map(|s| Session::refresh(sid.as_bytes(), s, 0).unwrap())
            .collect();
        run_sessions(sessions, None).unwrap();
        refresh.push(t.elapsed());

        let sid = format!("bench-repair-{k}");
        let pk = *cores[0].shared_public_key;
        let t = Instant::now();
        let sessions = vec![
            Session::repair_new(sid.as_bytes(), 0, 0, pk).unwrap(),
            Session::repair_helper(sid.as_bytes(), &cores[1], 0, 0).unwrap(),
            Session::repair_helper(sid.as_bytes(), &cores[2], 0, 0).unwrap(),
        ];
        run_sessions(sessions, None).unwrap();
        repair.push(t.elapsed());
    }
    rows.push(Row::new(
        "refresh_3_parties",
        "share refresh, 3 parties",
        median(refresh),
        iters,
    ));
    rows.push(Row::new(
        "repair_3_parties",
        "share repair of index 0 (2 helpers + new party)",
        median(repair),
        iters,
    ));

    let req = SignRequest {
        preimage: b"bench".to_vec(),
        digest: DigestKind::Keccak256,
    };
    let signers = vec![0u16, 1];
    let mut full = Vec::new();
    for k in 0..iters {
        let sid = format!("bench-sign-{k}");
        let t = Instant::now();
        let sessions = signers
            .iter()
            .map(|&i| {
                Session::sign(
                    sid.as_bytes(),
                    signers.clone(),
                    shares[usize::from(i)].clone(),
                    None,
                    req.data_to_sign(),
                )
                .unwrap()
            })
            .collect();
        run_sessions(sessions, None).unwrap();
        full.push(t.elapsed());
    }
    rows.push(Row::new(
        "full_sign_2_parties",
        "full signing, 2 parties",
        median(full),
        iters,
    ));

    let mut presign = Vec::new();
    let mut stored = Vec::new();
    for k in 0..iters {
        let sid = format!("bench-presign-{k}");
        let t = Instant::now();
        let sessions = signers
            .iter()
            .map(|&i| {
                Session::presign(
                    sid.as_bytes(),
                    signers.clone(),
                    shares[usize::from(i)].clone(),
                    None,
                )
                .unwrap()
            })
            .collect();
        let outs = run_sessions(sessions, None).unwrap();
        presign.push(t.elapsed());
        let pair: Vec<StoredPresignature> = outs
            .into_iter()
            .map(|o| match o {
                SessionOutput::Presignature(p, public) => StoredPresignature {
                    id: sid.clone(),
                    account_id: "bench".into(),
                    signers: signers.clone(),
                    presignature: *p,
                    public: PresignaturePublicDataRepr::new(
                        public.as_ref(),
                        DerivationPath::root(),
                    ),
                },
                _ => unreachable!(),
            })
            .collect();
        stored.push(pair);
    }
    rows.push(Row::new(
        "presign_2_parties",
        "presignature generation, 2 parties",
        median(presign),
        iters,
    ));

    // Online signing: both partial signatures + combine (verifies each partial).
    let mut online = Vec::new();
    for pair in stored {
        let public = pair[0].public.clone();
        let t = Instant::now();
        let partials: Vec<_> = pair
            .into_iter()
            .map(|p| p.issue_partial(&req, &DerivationPath::root()).unwrap())
            .collect();
        let sig = combine(&public, &partials, &req).unwrap();
        online.push(t.elapsed());
        std::hint::black_box(sig);
    }
    rows.push(Row::new(
        "online_sign_2_parties",
        "signing from a presignature (2 partials + combine)",
        median(online),
        iters,
    ));

    println!();
    println!("| operation | {backend} | runs |");
    println!("|---|---:|---|");
    for r in &rows {
        let runs = if r.samples == 1 {
            "1 run".to_string()
        } else {
            format!("median of {}", r.samples)
        };
        println!("| {} | {} | {runs} |", r.label, fmt(r.time));
    }
    if let Ok(path) = std::env::var("BENCH_JSON") {
        let json = serde_json::json!({
            "suite": "protocol",
            "backend": backend,
            "note": "all participating parties' work in one thread",
            "rows": rows.iter().map(|r| serde_json::json!({
                "key": r.key,
                "label": r.label,
                "seconds": r.time.as_secs_f64(),
                "samples": r.samples,
            })).collect::<Vec<_>>(),
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
        eprintln!("wrote {path}");
    }
}

/// One benchmark result (median over `samples`).
struct Row {
    key: &'static str,
    label: &'static str,
    time: Duration,
    samples: usize,
}

impl Row {
    fn new(key: &'static str, label: &'static str, time: Duration, samples: usize) -> Self {
        Row {
            key,
            label,
            time,
            samples,
        }
    }
}
