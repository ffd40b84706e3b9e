//! Browser tests (headless Chromium via wasm-bindgen-test; run `crates/mpc-wasm/test.sh`).
#![cfg(target_arch = "wasm32")]

use futures_util::future::join;
use js_sys::Reflect;
use mpc_core::{Outgoing, Session, SessionOutput};
use mpc_party::{PartySession, Relay};
use mpc_wasm::api::BundleCore;
use mpc_wasm::driver::drive;
use mpc_wasm::js;
use mpc_wire::SessionId;
use serde_json::Value;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

#[path = "common/memory_room.rs"]
mod memory_room;
use memory_room::MemoryRoom;

wasm_bindgen_test_configure!(run_in_browser);

const AUTH_VECTORS: &str = include_str!("fixtures/auth-vectors.json");
const WALLET: &str = include_str!("../../../testing/fixtures/dev-wallet.json");

#[path = "common/vectors.rs"]
mod kat;

/// The known-answer vectors: the committed file (generated natively by
/// `examples/gen_fixtures.rs`) must equal what `cosigner_api::auth` computes here.
fn vectors() -> Value {
    let here = kat::compute();
    let committed: Value = serde_json::from_str(AUTH_VECTORS).unwrap();
    assert_eq!(
        committed, here,
        "committed vectors differ from cosigner_api::auth in wasm (regenerate natively with the gen_fixtures example)"
    );
    here
}

fn bundles() -> Vec<BundleCore> {
    let w: Value = serde_json::from_str(WALLET).unwrap();
    w["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| BundleCore::from_bytes(&serde_json::to_vec(b).unwrap()).unwrap())
        .collect()
}

fn js_obj(v: Value) -> JsValue {
    let s = serde_wasm_bindgen::Serializer::json_compatible();
    serde::Serialize::serialize(&v, &s).unwrap()
}

fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(k)).unwrap()
}

fn code_of(e: &JsValue) -> String {
    get(e, "code").as_string().unwrap_or_default()
}

/// The request authentication the flows use (`cosigner_api::auth`, through
/// `client-core`) gives in wasm exactly the committed native answers.
#[wasm_bindgen_test]
fn auth_in_wasm_matches_native_vectors() {
    let v = vectors();
    assert!(v["device_identity"]
        .as_str()
        .is_some_and(|s| s.len() == 128));
}

/// A stored party opens in wasm from its plaintext bundle or its passphrase file,
/// typed errors otherwise; its pool key is HKDF of its identity (deterministic, per
/// wallet name).
#[wasm_bindgen_test]
fn wallet_party_opens_and_derives_its_pool_key() {
    use mpc_wasm::flows::WalletParty;
    let w: Value = serde_json::from_str(WALLET).unwrap();
    let b0 = serde_json::to_vec(&w["bundles"][0]).unwrap();
    let p = WalletParty::from_bytes("wallet-1", &b0, "fixture").unwrap();
    assert_eq!(p.party_index(), 0);
    let k1 = p.pool_key_material("default").unwrap();
    assert_eq!(k1.len(), 32);
    assert_eq!(k1, p.pool_key_material("default").unwrap());
    assert_ne!(k1, p.pool_key_material("other").unwrap());
    let file = bundles()[0].encrypt("correct horse battery", true).unwrap();
    let q =
        WalletParty::from_passphrase_file("wallet-1", &file, "correct horse battery", "fixture")
            .unwrap();
    assert_eq!(q.pool_key_material("default").unwrap(), k1);
    let e = WalletParty::from_passphrase_file("wallet-1", &file, "wrong", "fixture")
        .err()
        .unwrap();
    assert_eq!(code_of(&e), "wrong_passphrase");
    let e = WalletParty::from_bytes("wallet-1", b"\x00\xff garbage", "fixture")
        .err()
        .unwrap();
    assert_eq!(code_of(&e), "storage");
    // The recovery party's bundle opens too (party 2); the device checks the index itself.
    let b2 = serde_json::to_vec(&w["bundles"][2]).unwrap();
    assert_eq!(
        WalletParty::from_bytes("wallet-1", &b2, "fixture")
            .unwrap()
            .party_index(),
        2
    );
}

/// Three fresh identities and the keygen relays/sessions of a throwaway room.
fn keygen_party(ids: &[mpc_wire::IdentityKey], sid: &str, me: u16) -> (Session, Relay) {
    let roster =
        mpc_wire::Roster::new(ids.iter().enumerate().map(|(i, k)| (i as u16, k.public()))).unwrap();
    let s = Session::keygen(sid.as_bytes(), me, 3, 2).unwrap();
    let r = Relay::new(
        SessionId::new(sid).unwrap(),
        me,
        ids[usize::from(me)].clone(),
        roster,
    )
    .unwrap();
    (s, r)
}

fn sign_session(
    b: &BundleCore,
    sid: &str,
    preimage: &[u8],
) -> (Session, mpc_core::Point, [u8; 32]) {
    let kind = mpc_core::DigestKind::Keccak256;
    let share = b.key_share("hd-0").unwrap();
    let path = mpc_core::hd::DerivationPath::parse("m/44/60/0/0/3").unwrap();
    let pk = b.account("hd-0").unwrap().public_key_at(&path).unwrap();
    let s = Session::sign(
        sid.as_bytes(),
        vec![0, 1],
        share,
        Some(path.indices().to_vec()),
        kind.data_to_sign(preimage),
    )
    .unwrap();
    (s, pk, kind.digest(preimage))
}

fn relay(b: &BundleCore, sid: &str, parties: &[u16]) -> Relay {
    Relay::new(
        SessionId::new(sid).unwrap(),
        b.bundle.party_index,
        b.identity().unwrap(),
        b.roster(parties).unwrap(),
    )
    .unwrap()
}

#[wasm_bindgen_test]
async fn two_party_sign_and_presign_in_browser() {
    let bs = bundles();
    assert!(
        !bs.is_empty(),
        "testing/fixtures/dev-wallet.json is empty: run mpc-core's gen_dev_wallet example"
    );
    let room = MemoryRoom::new();
    // Noise from whoever can write to the room: ignored, never fatal.
    room.append("garbage".into());
    room.append("{\"v\":1}".into());
    let sid = "sign-test-1";
    let preimage = mpc_core::digest::eip191_preimage(b"hello from wasm");
    let (s0, pk, digest) = sign_session(&bs[0], sid, &preimage);
    let (s1, _, _) = sign_session(&bs[1], sid, &preimage);
    let (mut in0, mut in1) = (room.subscribe(), room.subscribe());
    let started = js_sys::Date::now();
    let rounds = std::cell::RefCell::new(Vec::new());
    let (r0, r1) = join(
        drive(
            PartySession::new(s0, relay(&bs[0], sid, &[0, 1])),
            &room,
            &mut in0,
            120_000.0,
            &|p| rounds.borrow_mut().push(p.round),
        ),
        drive(
            PartySession::new(s1, relay(&bs[1], sid, &[0, 1])),
            &room,
            &mut in1,
            120_000.0,
            &|_| {},
        ),
    )
    .await;
    console_log!(
        "2-party full signing in one thread: {:.0} ms",
        js_sys::Date::now() - started
    );
    let (SessionOutput::Signature(a), SessionOutput::Signature(b)) = (r0.unwrap(), r1.unwrap())
    else {
        panic!("outputs")
    };
    assert_eq!(a.r, b.r);
    let enc = mpc_wasm::api::encode_signature(&pk, &digest, &a).unwrap();
    assert!(js::verify_signature(&enc.public_key, &enc.digest, &enc.r, &enc.s).unwrap());
    assert!(
        rounds.borrow().len() >= 3,
        "progress reported: {:?}",
        rounds.borrow()
    );

    // Presign + online signing from the presignatures.
    let room = MemoryRoom::new();
    let sid = "presign-test-1";
    let mk = |b: &BundleCore| {
        Session::presign(
            sid.as_bytes(),
            vec![0, 1],
            b.key_share("ind-0").unwrap(),
            None,
        )
        .unwrap()
    };
    let (mut in0, mut in1) = (room.subscribe(), room.subscribe());
    let (r0, r1) = join(
        drive(
            PartySession::new(mk(&bs[0]), relay(&bs[0], sid, &[0, 1])),
            &room,
            &mut in0,
            120_000.0,
            &|_| {},
        ),
        drive(
            PartySession::new(mk(&bs[1]), relay(&bs[1], sid, &[0, 1])),
            &room,
            &mut in1,
            120_000.0,
            &|_| {},
        ),
    )
    .await;
    // Both parties hold a presignature of the same session (the fast path that uses
    // them is client-core's, tested there and end to end in Playwright).
    for r in [r0, r1] {
        assert!(matches!(r.unwrap(), SessionOutput::Presignature(..)));
    }
}

#[wasm_bindgen_test]
async fn authenticated_malformed_message_is_a_typed_error() {
    let ids: Vec<_> = (0..3)
        .map(|_| mpc_wire::IdentityKey::generate().unwrap())
        .collect();
    let room = MemoryRoom::new();
    let sid = "malformed-1";
    // Party 1 (authentic envelope) sends a payload that is no protocol message.
    let (_, mut evil) = keygen_party(&ids, sid, 1);
    room.append(
        evil.seal(&Outgoing {
            recipient: None,
            round: 0,
            payload: b"\xffnot a message".to_vec(),
        })
        .unwrap(),
    );
    let (s0, r0) = keygen_party(&ids, sid, 0);
    let mut in0 = room.subscribe();
    let err = drive(
        PartySession::new(s0, r0),
        &room,
        &mut in0,
        30_000.0,
        &|_| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            mpc_party::PartyError::Session(mpc_core::SessionError::MalformedMessage {
                from: 1,
                ..
            })
        ),
        "{err:?}"
    );
    // As a flow reports it: `session_failed`, blaming party 1.
    let jsv =
        mpc_wasm::flows::client_error_to_js(&client_core::ClientError::session("keygen", sid, err));
    assert_eq!(code_of(&jsv), "session_failed");
    let blamed = js_sys::Array::from(&get(&jsv, "blamed"));
    assert_eq!(blamed.length(), 1);
    assert_eq!(blamed.get(0).as_f64(), Some(1.0));
}

#[wasm_bindgen_test]
async fn forged_and_replayed_envelopes_are_dropped_then_timeout_names_them() {
    let ids: Vec<_> = (0..3)
        .map(|_| mpc_wire::IdentityKey::generate().unwrap())
        .collect();
    let room = MemoryRoom::new();
    let sid = "timeout-1";
    // An envelope of another session (replayed from elsewhere) and pure garbage.
    let (_, mut other) = keygen_party(&ids, "other-session", 1);
    room.append(
        other
            .seal(&Outgoing {
                recipient: Some(0),
                round: 0,
                payload: vec![1, 2, 3],
            })
            .unwrap(),
    );
    room.append("\u{0}\u{1}".into());
    let (s0, r0) = keygen_party(&ids, sid, 0);
    let mut in0 = room.subscribe();
    let err = drive(PartySession::new(s0, r0), &room, &mut in0, 300.0, &|_| {})
        .await
        .unwrap_err();
    let mpc_party::PartyError::Timeout {
        waiting_for,
        rejected,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(waiting_for, &vec![1, 2], "{err}");
    assert!(!rejected.is_empty(), "{err}");
    assert!(err.to_string().contains("rejected envelopes"), "{err}");
}

#[wasm_bindgen_test]
async fn three_party_keygen_over_envelopes() {
    let ids: Vec<_> = (0..3)
        .map(|_| mpc_wire::IdentityKey::generate().unwrap())
        .collect();
    let room = MemoryRoom::new();
    room.append("noise".into());
    let sid = "keygen-1";
    let parties: Vec<_> = (0..3).map(|i| keygen_party(&ids, sid, i)).collect();
    let mut inboxes: Vec<_> = (0..3).map(|_| room.subscribe()).collect();
    let mut futs = Vec::new();
    for ((s, r), inbox) in parties.into_iter().zip(inboxes.iter_mut()) {
        futs.push(drive(
            PartySession::new(s, r),
            &room,
            inbox,
            60_000.0,
            &|_| {},
        ));
    }
    let outs = futures_util::future::join_all(futs).await;
    let keys: Vec<_> = outs
        .into_iter()
        .map(|o| match o.unwrap() {
            SessionOutput::Keygen(s) => hex::encode(s.shared_public_key.to_bytes(true)),
            _ => panic!("keygen output"),
        })
        .collect();
    assert!(keys.iter().all(|k| *k == keys[0]));
}

#[wasm_bindgen_test]
fn helpers() {
    // Private key 1.
    let pk = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
    assert_eq!(
        js::ethereum_address(pk).unwrap(),
        "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    );
    assert_eq!(
        js::bitcoin_address(pk, None).unwrap(),
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    );
    assert_eq!(
        js::eip191_preimage(JsValue::from_str("hi")).unwrap(),
        b"\x19Ethereum Signed Message:\n2hi".to_vec()
    );
    assert_eq!(
        js::digest("keccak256", b"").unwrap(),
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    );
    assert_eq!(
        code_of(&js::digest("md5", b"").unwrap_err()),
        "invalid_input"
    );
    assert_eq!(
        code_of(&js::ethereum_address("02zz").unwrap_err()),
        "invalid_input"
    );
    let primes = js::dev_fixture_primes().unwrap();
    assert_eq!(get(&primes, "insecurePublicFixture"), JsValue::TRUE);
    let first = js_sys::Array::from(&get(&primes, "parties")).get(0);
    js::validate_primes(first.clone()).unwrap();
    assert!(js::is_public_fixture_primes(first).unwrap());
    let bad = js_obj(serde_json::json!({"primes": ["07", "0b", "0d", "11"]}));
    assert_eq!(
        code_of(&js::validate_primes(bad).unwrap_err()),
        "invalid_input"
    );
}
