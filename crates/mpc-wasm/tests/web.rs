//! Browser tests (headless Chromium via wasm-bindgen-test; run `crates/mpc-wasm/test.sh`).
#![cfg(target_arch = "wasm32")]

use futures_util::future::join;
use js_sys::Reflect;
use mpc_core::{Outgoing, Session, SessionOutput};
use mpc_party::Relay;
use mpc_wasm::api::{BundleCore, PresigCore};
use mpc_wasm::driver::drive;
use mpc_wasm::js;
use mpc_wasm::transport::MemoryRoom;
use mpc_wasm::Code;
use mpc_wire::SessionId;
use serde_json::Value;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

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

fn bytes_hex(o: &JsValue, k: &str) -> String {
    hex::encode(js_sys::Uint8Array::new(&get(o, k)).to_vec())
}

fn code_of(e: &JsValue) -> String {
    get(e, "code").as_string().unwrap_or_default()
}

#[wasm_bindgen_test]
fn identity_generation() {
    let id = js::generate_identity().unwrap();
    let secret = js_sys::Uint8Array::new(&get(&id, "secret")).to_vec();
    assert_eq!(secret.len(), 32);
    let public = get(&id, "publicIdentity").as_string().unwrap();
    assert_eq!(public.len(), 128);
    assert_eq!(js::identity_public(&secret).unwrap(), public);
    let e = js::identity_public(&[1, 2]).unwrap_err();
    assert_eq!(code_of(&e), "invalid_input");
    assert!(wasm_bindgen::JsCast::is_instance_of::<js_sys::Error>(&e));
}

#[wasm_bindgen_test]
fn auth_signatures_match_native_vectors() {
    let v = vectors();
    let seed = hex::decode(v["device_seed"].as_str().unwrap()).unwrap();
    let rseed = hex::decode(v["recovery_seed"].as_str().unwrap()).unwrap();
    let nonce = hex::decode(v["nonce"].as_str().unwrap()).unwrap();
    let ts = v["timestamp_ms"].as_f64();
    assert_eq!(js::identity_public(&seed).unwrap(), v["device_identity"]);

    let cw = js::sign_create_wallet(
        &seed,
        js_obj(serde_json::json!({"recoveryIdentity": v["recovery_identity"], "accounts": 2, "kind": 1, "label": "demo wallet"})),
        ts,
        Some(nonce.clone()),
    )
    .unwrap();
    assert_eq!(bytes_hex(&cw, "signature"), v["create_wallet"]["signature"]);
    assert_eq!(get(&cw, "timestampMs").as_f64(), ts);

    let cases = [
        (
            "ConfirmWallet",
            &seed,
            "confirm_wallet",
            serde_json::json!({"publicKeys": {"acct-1": "02aa", "acct-0": "03bb"}}),
        ),
        (
            "GetPublicKey",
            &seed,
            "get_public_key",
            serde_json::json!({"accountId": "acct-0", "derivationPath": ""}),
        ),
        (
            "ListAccounts",
            &seed,
            "list_accounts",
            serde_json::json!({}),
        ),
    ];
    for (method, key, name, fields) in cases {
        let party = v[name]["party"].as_u64().unwrap() as u16;
        let a = js::sign_auth(
            key,
            method,
            "wallet-1",
            party,
            js_obj(fields),
            ts,
            Some(nonce.clone()),
        )
        .unwrap();
        assert_eq!(bytes_hex(&a, "signature"), v[name]["signature"], "{method}");
        assert_eq!(get(&a, "walletId").as_string().unwrap(), "wallet-1");
    }
    // StartSign carries bytes: build the fields object by hand.
    let fields = js_sys::Object::new();
    let preimage = hex::decode(v["start_sign"]["preimage"].as_str().unwrap()).unwrap();
    Reflect::set(&fields, &"accountId".into(), &"acct-0".into()).unwrap();
    Reflect::set(&fields, &"derivationPath".into(), &"m/44/60/0/0/7".into()).unwrap();
    Reflect::set(
        &fields,
        &"preimage".into(),
        &js_sys::Uint8Array::from(preimage.as_slice()),
    )
    .unwrap();
    Reflect::set(&fields, &"digest".into(), &1.into()).unwrap();
    Reflect::set(&fields, &"payloadKind".into(), &3.into()).unwrap();
    let a = js::sign_auth(
        &rseed,
        "StartSign",
        "wallet-1",
        2,
        fields.into(),
        ts,
        Some(nonce.clone()),
    )
    .unwrap();
    assert_eq!(bytes_hex(&a, "signature"), v["start_sign"]["signature"]);

    // Without a timestamp: Date.now() is used (SystemTime is unavailable in wasm).
    let a = js::sign_auth(
        &seed,
        "ListAccounts",
        "wallet-1",
        0,
        JsValue::UNDEFINED,
        None,
        None,
    )
    .unwrap();
    assert!(get(&a, "timestampMs").as_f64().unwrap() > 1.7e12);
    // Errors are typed.
    let e = js::sign_auth(
        &seed,
        "ListAccounts",
        "wallet-1",
        0,
        JsValue::UNDEFINED,
        None,
        Some(vec![1]),
    )
    .unwrap_err();
    assert_eq!(code_of(&e), "invalid_input");
    let e = js::sign_auth(
        &seed,
        "ListAccounts",
        "no spaces",
        0,
        JsValue::UNDEFINED,
        None,
        None,
    )
    .unwrap_err();
    assert_eq!(code_of(&e), "auth");
}

#[wasm_bindgen_test]
fn bundle_round_trips_and_wrong_passphrase() {
    let ids: Vec<_> = (0..3)
        .map(|_| mpc_wasm::api::generate_identity().unwrap())
        .collect();
    let peers =
        js_obj(serde_json::json!({"1": ids[1].public_identity, "2": ids[2].public_identity}));
    let b = js::Bundle::new(0, &ids[0].secret, peers).unwrap();
    assert_eq!(b.identity_public().unwrap(), ids[0].public_identity);
    let bytes = b.to_bytes().unwrap();
    let back = js::Bundle::from_bytes(&bytes).unwrap();
    assert_eq!(back.party_index(), 0);
    let file = back
        .encrypt_with_passphrase("correct horse", Some(true))
        .unwrap();
    let again = js::Bundle::decrypt_with_passphrase(&file, "correct horse").unwrap();
    assert_eq!(again.to_bytes().unwrap(), bytes);
    let e = js::Bundle::decrypt_with_passphrase(&file, "wrong")
        .err()
        .unwrap();
    assert_eq!(code_of(&e), "wrong_passphrase");
    let e = js::Bundle::decrypt_with_passphrase("not json", "x")
        .err()
        .unwrap();
    assert_eq!(code_of(&e), "keystore");
    let e = js::Bundle::from_bytes(b"\x00\xff garbage").err().unwrap();
    assert_eq!(code_of(&e), "keystore");
    let e = again.public_key("nope", None).unwrap_err();
    assert_eq!(code_of(&e), "invalid_input");
    // A peer entry that is not an identity is refused.
    let bad = js_obj(serde_json::json!({"1": "00"}));
    assert_eq!(
        code_of(&js::Bundle::new(0, &ids[0].secret, bad).err().unwrap()),
        "invalid_input"
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
            s0,
            relay(&bs[0], sid, &[0, 1]),
            &room,
            &mut in0,
            120_000.0,
            &|p| rounds.borrow_mut().push(p.round),
        ),
        drive(
            s1,
            relay(&bs[1], sid, &[0, 1]),
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
        Session::presign(sid.as_bytes(), vec![0, 1], b.key_share("ind-0").unwrap()).unwrap()
    };
    let (mut in0, mut in1) = (room.subscribe(), room.subscribe());
    let (r0, r1) = join(
        drive(
            mk(&bs[0]),
            relay(&bs[0], sid, &[0, 1]),
            &room,
            &mut in0,
            120_000.0,
            &|_| {},
        ),
        drive(
            mk(&bs[1]),
            relay(&bs[1], sid, &[0, 1]),
            &room,
            &mut in1,
            120_000.0,
            &|_| {},
        ),
    )
    .await;
    let store = |o: SessionOutput| {
        let SessionOutput::Presignature(p, public) = o else {
            panic!("presign output")
        };
        PresigCore::new(mpc_core::presign::StoredPresignature {
            id: sid.into(),
            account_id: "ind-0".into(),
            signers: vec![0, 1],
            presignature: *p,
            public: (&*public).into(),
        })
    };
    let mut p0 = store(r0.unwrap());
    let mut p1 = store(r1.unwrap());
    // Through the JS class (bytes round trip) for party 1.
    let mut jp1 = js::Presignature::from_bytes(&p1.to_bytes().unwrap()).unwrap();
    let public = p0.public_data().unwrap();
    let msg = b"presigned message";
    let part0 = p0
        .issue_partial(msg, mpc_core::DigestKind::Keccak256)
        .unwrap();
    let part1 = jp1.issue_partial(msg, "keccak256").unwrap();
    let e = jp1.issue_partial(msg, "keccak256").unwrap_err();
    assert_eq!(code_of(&e), "presignature_used");
    assert_eq!(
        p0.issue_partial(msg, mpc_core::DigestKind::Keccak256)
            .unwrap_err()
            .code,
        Code::PresignatureUsed
    );
    let _ = p1
        .issue_partial(msg, mpc_core::DigestKind::Keccak256)
        .unwrap();
    let ind_pk = bs[0]
        .accounts()
        .into_iter()
        .find(|a| a.account_id == "ind-0")
        .unwrap()
        .public_key;
    let sig = mpc_wasm::api::combine_partials(
        &public,
        &[part0.clone(), part1.clone()],
        msg,
        mpc_core::DigestKind::Keccak256,
        &ind_pk,
    )
    .unwrap();
    assert_eq!(sig.digest, js::digest("keccak256", msg).unwrap());
    // A wrong message does not combine.
    assert!(mpc_wasm::api::combine_partials(
        &public,
        &[part0, part1],
        b"other",
        mpc_core::DigestKind::Keccak256,
        &ind_pk
    )
    .is_err());
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
    let err = drive(s0, r0, &room, &mut in0, 30_000.0, &|_| {})
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::MalformedMessage);
    assert_eq!(err.party, Some(1));
    let jsv = js::to_js_error(err);
    assert_eq!(code_of(&jsv), "malformed_message");
    assert_eq!(get(&jsv, "party").as_f64(), Some(1.0));
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
    let err = drive(s0, r0, &room, &mut in0, 300.0, &|_| {})
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::Timeout, "{err:?}");
    assert!(err.message.contains("[1, 2]"), "{}", err.message);
    assert!(
        err.message.contains("rejected envelopes"),
        "{}",
        err.message
    );
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
        futs.push(drive(s, r, &room, inbox, 60_000.0, &|_| {}));
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
