//! Generates the committed fixtures inside the browser (same code as
//! `examples/gen_fixtures.rs`, for machines where a native build is not at hand):
//! `cargo test --release --target wasm32-unknown-unknown -p mpc-wasm --test genfix -- --include-ignored --nocapture`
//! prints `FIXTURE-VECTORS <json>` and `FIXTURE-WALLET <json>` lines. Ignored normally.
#![cfg(target_arch = "wasm32")]

#[path = "common/vectors.rs"]
mod vectors;

use mpc_core::primes::dev_fixture_primes;
use mpc_core::{Account, AccountKind, Session, SessionOutput, PARTIES, THRESHOLD};
use mpc_wasm::driver::run_local;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
#[ignore]
async fn generate() {
    console_log!("FIXTURE-VECTORS {}", vectors::compute());
    let primes = dev_fixture_primes();
    let t = js_sys::Date::now();
    let sessions = (0..PARTIES)
        .map(|i| {
            Session::aux_info(
                b"mpc-wasm-fixture-aux",
                i,
                PARTIES,
                primes[usize::from(i)].to_pregenerated().unwrap(),
            )
            .unwrap()
        })
        .collect();
    let aux = run_local(sessions).await.unwrap();
    console_log!(
        "BENCH aux info, 3 parties in one thread (fixture primes): {:.0} ms",
        js_sys::Date::now() - t
    );
    let ids: Vec<mpc_wire::IdentityKey> = (0..3u8)
        .map(|i| mpc_wire::IdentityKey::from_seed(&[i + 1; 32]))
        .collect();
    let mut bundles: Vec<mpc_core::keystore::KeyShareBundle> = (0..PARTIES)
        .map(mpc_core::keystore::KeyShareBundle::new)
        .collect();
    for (i, (b, a)) in bundles.iter_mut().zip(aux).enumerate() {
        let SessionOutput::AuxInfo(a) = a else {
            panic!("aux output")
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
        let t = js_sys::Date::now();
        let sessions = (0..PARTIES)
            .map(|i| Session::keygen(account_id.as_bytes(), i, PARTIES, THRESHOLD).unwrap())
            .collect();
        let outs = run_local(sessions).await.unwrap();
        console_log!(
            "BENCH DKG, 3 parties in one thread: {:.0} ms",
            js_sys::Date::now() - t
        );
        for (b, o) in bundles.iter_mut().zip(outs) {
            let SessionOutput::Keygen(s) = o else {
                panic!("keygen output")
            };
            let acct = Account::new(account_id, kind, *s, 1_764_000_000);
            acct.complete(b.aux_info.as_ref().unwrap()).unwrap();
            b.accounts.insert(account_id.into(), acct);
        }
    }
    let file = serde_json::json!({
        "warning": "PUBLIC TEST KEYS made from the public dev prime fixtures. Never use them for funds.",
        "bundles": bundles,
    });
    console_log!("FIXTURE-WALLET {}", serde_json::to_string(&file).unwrap());
}
