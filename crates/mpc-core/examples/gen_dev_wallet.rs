//! Regenerates the committed test wallet `testing/fixtures/dev-wallet.json` (minutes:
//! aux info for three parties in pure Rust):
//!
//! ```text
//! cargo run --release -p mpc-core --features backend-num-bigint --example gen_dev_wallet
//! ```
//!
//! The file holds the three parties' key-share bundles (plaintext bundle JSON, as
//! `KeyShareBundle` serializes) with finished aux info and two accounts (`hd-0`, HD;
//! `ind-0`, independent), identity keys from the fixed seeds `[i + 1; 32]`. Everything
//! is made from the PUBLIC dev prime fixture: these are test keys. Tests load it so that
//! only the tests of wallet creation itself run aux info; every production path refuses
//! key material built from the public primes.

use mpc_core::keystore::KeyShareBundle;
use mpc_core::local::{run_sessions, run_sessions_threaded};
use mpc_core::primes::dev_fixture_primes;
use mpc_core::{Account, AccountKind, Session, SessionOutput, PARTIES, THRESHOLD};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = root.join("testing/fixtures/dev-wallet.json");

    let primes = dev_fixture_primes();
    let factories: Vec<_> = (0..PARTIES)
        .map(|i| {
            let p = primes[usize::from(i)]
                .to_pregenerated()
                .map_err(|e| e.to_string());
            move || {
                let p = p.map_err(mpc_core::SessionError::InvalidParams)?;
                Session::aux_info(b"mpc-wasm-fixture-aux", i, PARTIES, p)
            }
        })
        .collect();
    let started = std::time::Instant::now();
    let aux = run_sessions_threaded(factories, &|_, _| {})
        .map_err(|(p, e)| format!("aux info, party {p}: {e}"))?;
    eprintln!("aux info: {:?}", started.elapsed());
    let ids: Vec<mpc_wire::IdentityKey> = (0..3u8)
        .map(|i| mpc_wire::IdentityKey::from_seed(&[i + 1; 32]))
        .collect();
    let mut bundles: Vec<KeyShareBundle> = (0..PARTIES).map(KeyShareBundle::new).collect();
    for (i, (b, a)) in bundles.iter_mut().zip(aux).enumerate() {
        let SessionOutput::AuxInfo(a) = a else {
            return Err("aux output".into());
        };
        b.aux_info = Some(*a);
        b.identity_secret = Some(ids[i].to_seed_hex().to_string());
        b.peers = (0..PARTIES)
            .filter(|&p| usize::from(p) != i)
            .map(|p| (p, ids[usize::from(p)].public().to_string()))
            .collect();
    }
    for (account_id, kind) in [
        ("hd-0", AccountKind::Hd),
        ("ind-0", AccountKind::Independent),
    ] {
        let sessions = (0..PARTIES)
            .map(|i| Session::keygen(account_id.as_bytes(), i, PARTIES, THRESHOLD))
            .collect::<Result<Vec<_>, _>>()?;
        let outs =
            run_sessions(sessions, None).map_err(|(p, e)| format!("keygen, party {p}: {e}"))?;
        for (b, o) in bundles.iter_mut().zip(outs) {
            let SessionOutput::Keygen(s) = o else {
                return Err("keygen output".into());
            };
            let acct = Account::new(account_id, kind, *s, 1_764_000_000);
            if let Some(aux) = &b.aux_info {
                acct.complete(aux)?;
            }
            b.accounts.insert(account_id.into(), acct);
        }
    }
    let file = serde_json::json!({
        "warning": "PUBLIC TEST KEYS made from the public dev prime fixtures. Never use them for funds.",
        "bundles": bundles,
    });
    std::fs::write(&out, serde_json::to_string(&file)?)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
