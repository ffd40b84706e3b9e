//! In-browser measurements (release build, headless Chromium):
//! `crates/mpc-wasm/test.sh --bench`. Ignored in normal test runs. Prints a table.
//! Aux info (3 parties in one thread, fixture primes) only with
//! `MPC_WASM_BENCH_AUX=1` at build time: it takes minutes.
#![cfg(target_arch = "wasm32")]

use futures_util::future::join;
use mpc_core::{DigestKind, Session, SessionOutput, PARTIES, THRESHOLD};
use mpc_party::Relay;
use mpc_wasm::api::BundleCore;
use mpc_wasm::driver::drive;
use mpc_wasm::driver::run_local;
use mpc_wire::SessionId;
use serde_json::Value;
use wasm_bindgen_test::*;

#[path = "common/memory_room.rs"]
mod memory_room;
use memory_room::MemoryRoom;

// A dedicated Worker, as the wallet runs it: aux info blocks its thread for minutes, and
// on the page's main thread that stalls the test runner's WebDriver polling (renderer timeout).
wasm_bindgen_test_configure!(run_in_dedicated_worker);

const WALLET: &str = include_str!("../../../testing/fixtures/dev-wallet.json");

fn bundles() -> Vec<BundleCore> {
    let w: Value = serde_json::from_str(WALLET).unwrap();
    w["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| BundleCore::from_bytes(&serde_json::to_vec(b).unwrap()).unwrap())
        .collect()
}

fn relay(b: &BundleCore, sid: &str) -> Relay {
    Relay::new(
        SessionId::new(sid).unwrap(),
        b.bundle.party_index,
        b.identity().unwrap(),
        b.roster(&[0, 1]).unwrap(),
    )
    .unwrap()
}

async fn two_party(
    bs: &[BundleCore],
    sid: &str,
    mk: &dyn Fn(&BundleCore) -> Session,
) -> (SessionOutput, SessionOutput) {
    let room = MemoryRoom::new();
    let (mut i0, mut i1) = (room.subscribe(), room.subscribe());
    let (a, b) = join(
        drive(
            mpc_party::PartySession::new(mk(&bs[0]), relay(&bs[0], sid)),
            &room,
            &mut i0,
            600_000.0,
            &|_| {},
        ),
        drive(
            mpc_party::PartySession::new(mk(&bs[1]), relay(&bs[1], sid)),
            &room,
            &mut i1,
            600_000.0,
            &|_| {},
        ),
    )
    .await;
    (a.unwrap(), b.unwrap())
}

fn ms(since: f64) -> f64 {
    js_sys::Date::now() - since
}

#[wasm_bindgen_test]
#[ignore]
async fn measurements() {
    let bs = bundles();
    let mut rows: Vec<(&str, String, f64)> = Vec::new();

    if option_env!("MPC_WASM_BENCH_AUX") == Some("1") {
        let primes = mpc_core::primes::dev_fixture_primes();
        let sessions = (0..PARTIES)
            .map(|i| {
                Session::aux_info(
                    b"bench-aux",
                    i,
                    PARTIES,
                    primes[usize::from(i)].to_pregenerated().unwrap(),
                )
                .unwrap()
            })
            .collect();
        let t = js_sys::Date::now();
        run_local(sessions).await.unwrap();
        rows.push((
            "aux_info_3_parties",
            "aux info, 3 parties in one thread (fixture primes)".into(),
            ms(t),
        ));
    }

    let t = js_sys::Date::now();
    let sessions = (0..PARTIES)
        .map(|i| Session::keygen(b"bench-dkg", i, PARTIES, THRESHOLD).unwrap())
        .collect();
    run_local(sessions).await.unwrap();
    rows.push((
        "dkg_3_parties",
        "DKG, 3 parties in one thread (no envelopes)".into(),
        ms(t),
    ));

    // Key lifecycle: a refresh among the three parties and a repair of index 0 (the
    // elliptic-curve work only; a device replacement adds one aux-info run).
    for k in 0..2 {
        let cores: Vec<_> = bs
            .iter()
            .map(|b| b.bundle.accounts["hd-0"].share.clone())
            .collect();
        let sid = format!("bench-refresh-{k}");
        let t = js_sys::Date::now();
        let sessions = cores
            .iter()
            .map(|c| Session::refresh(sid.as_bytes(), c, 0).unwrap())
            .collect();
        run_local(sessions).await.unwrap();
        rows.push((
            "refresh_3_parties",
            format!("share refresh, 3 parties in one thread (run {k})"),
            ms(t),
        ));
        let sid = format!("bench-repair-{k}");
        let pk = *cores[0].shared_public_key;
        let t = js_sys::Date::now();
        let sessions = vec![
            Session::repair_new(sid.as_bytes(), 0, 0, pk).unwrap(),
            Session::repair_helper(sid.as_bytes(), &cores[1], 0, 0).unwrap(),
            Session::repair_helper(sid.as_bytes(), &cores[2], 0, 0).unwrap(),
        ];
        run_local(sessions).await.unwrap();
        rows.push((
            "repair_3_parties",
            format!("share repair of index 0, 3 parties in one thread (run {k})"),
            ms(t),
        ));
    }

    for k in 0..2 {
        let preimage = mpc_core::digest::eip191_preimage(format!("bench {k}").as_bytes());
        let sid = format!("bench-sign-{k}");
        let t = js_sys::Date::now();
        let mk = |b: &BundleCore| {
            Session::sign(
                sid.as_bytes(),
                vec![0, 1],
                b.key_share("hd-0").unwrap(),
                Some(vec![44, 60, 0, 0, 1]),
                DigestKind::Keccak256.data_to_sign(&preimage),
            )
            .unwrap()
        };
        two_party(&bs, &sid, &mk).await;
        rows.push((
            // The first run also warms up the wasm code; the report keeps the last.
            "full_sign_2_parties",
            format!("full signing, 2 parties in one thread, HD path (run {k})"),
            ms(t),
        ));
    }

    let sid = "bench-presign";
    let t = js_sys::Date::now();
    let mk = |b: &BundleCore| {
        Session::presign(
            sid.as_bytes(),
            vec![0, 1],
            b.key_share("ind-0").unwrap(),
            None,
        )
        .unwrap()
    };
    let (a, b) = two_party(&bs, sid, &mk).await;
    rows.push((
        "presign_2_parties",
        "presign, 2 parties in one thread".into(),
        ms(t),
    ));

    let (SessionOutput::Presignature(p0, public), SessionOutput::Presignature(p1, _)) = (a, b)
    else {
        panic!()
    };
    let req = mpc_core::SignRequest {
        preimage: b"online".to_vec(),
        digest: DigestKind::Keccak256,
    };
    let public = mpc_core::presign::PresignaturePublicDataRepr::new(
        &public,
        mpc_core::hd::DerivationPath::root(),
    );
    let t = js_sys::Date::now();
    let parts = [
        p0.issue_partial_signature(req.data_to_sign()),
        p1.issue_partial_signature(req.data_to_sign()),
    ];
    mpc_core::presign::combine(&public, &parts, &req).unwrap();
    rows.push((
        "online_sign_2_parties",
        "online sign from presignature (2 partials + combine)".into(),
        ms(t),
    ));

    console_log!("| wasm in headless Chromium | ms |");
    console_log!("|---|---:|");
    for (_, name, t) in &rows {
        console_log!("| {name} | {t:.1} |");
    }
    // One machine-readable line for scripts/bench.sh (later rows with the same key win).
    let mut by_key = serde_json::Map::new();
    for (key, _, t) in &rows {
        by_key.insert((*key).to_string(), serde_json::json!(t / 1000.0));
    }
    console_log!("BENCH_JSON {}", serde_json::Value::Object(by_key));
}
