//! End-to-end protocol tests with the public fixture primes: aux info, DKG, signing by
//! every pair, HD children, encodings checked by independent libraries, presignatures,
//! and misbehaving parties.

mod common;

use common::store::PresignatureStore;
use common::wallet;
use mpc_core::digest::{eip191_preimage, DigestKind, SignRequest};
use mpc_core::hd::DerivationPath;
use mpc_core::local::run_sessions;
use mpc_core::presign::{combine, StoredPresignature};
use mpc_core::signature::{
    bitcoin_der, ethereum_signature, recover_ethereum_address, verify_digest, EthereumVStyle,
};
use mpc_core::{address, CoreError, Session, SessionError, SessionOutput, Signature};

fn sign(
    signers: &[u16],
    path: Option<&DerivationPath>,
    req: &SignRequest,
    sid: &[u8],
) -> Signature {
    let w = wallet();
    let sessions = signers
        .iter()
        .map(|&k| {
            Session::sign(
                sid,
                signers.to_vec(),
                w.shares[usize::from(k)].clone(),
                path.map(|p| p.indices().to_vec()),
                req.data_to_sign(),
            )
            .expect("session")
        })
        .collect();
    let outs = run_sessions(sessions, None).expect("signing");
    let sigs: Vec<Signature> = outs
        .into_iter()
        .map(|o| match o {
            SessionOutput::Signature(s) => s,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert!(sigs.windows(2).all(|w| w[0] == w[1]), "signers disagree");
    sigs[0]
}

#[test]
fn every_pair_signs_and_signatures_verify() {
    let w = wallet();
    let pk = w.accounts[0].master_public_key();
    for (n, pair) in [[0u16, 1], [0, 2], [1, 2]].iter().enumerate() {
        let req = SignRequest {
            preimage: format!("pair {pair:?} pays 1 ETH").into_bytes(),
            digest: DigestKind::Keccak256,
        };
        let sig = sign(pair, None, &req, format!("pair-{n}").as_bytes());
        verify_digest(&pk, &req.digest_bytes(), &sig).expect("k256 verifies");
        sig.verify(&pk, &req.data_to_sign())
            .expect("library verifies");
    }
}

#[test]
fn hd_children_match_independent_bip32_and_sign() {
    let w = wallet();
    let acct = &w.accounts[0];
    let path = DerivationPath::parse("m/44/60/0/0/7").unwrap();
    let ours = acct.public_key_at(&path).unwrap();

    // Independent derivation with the `bip32` crate from the xpub (depth 0 master).
    let chain_code: [u8; 32] = hex::decode(acct.chain_code.as_ref().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let master = bip32::PublicKey::from_bytes(
        acct.master_public_key()
            .to_bytes(true)
            .as_ref()
            .try_into()
            .unwrap(),
    )
    .map(|pk: k256::ecdsa::VerifyingKey| pk)
    .unwrap();
    let attrs = bip32::ExtendedKeyAttrs {
        depth: 0,
        parent_fingerprint: [0; 4],
        child_number: bip32::ChildNumber(0),
        chain_code,
    };
    let mut xpub = bip32::ExtendedPublicKey::<k256::ecdsa::VerifyingKey>::new(master, attrs);
    for &i in path.indices() {
        xpub = xpub
            .derive_child(bip32::ChildNumber::new(i, false).unwrap())
            .unwrap();
    }
    let theirs = xpub.public_key().to_encoded_point(true);
    assert_eq!(
        ours.to_bytes(true).as_ref(),
        theirs.as_bytes(),
        "child public keys differ"
    );

    // Sign at the child path; the signature verifies under the child key, not the master.
    let req = SignRequest {
        preimage: b"child tx".to_vec(),
        digest: DigestKind::Keccak256,
    };
    let sig = sign(&[0, 1], Some(&path), &req, b"hd-sign");
    verify_digest(&ours, &req.digest_bytes(), &sig).expect("verifies under child key");
    assert!(verify_digest(&acct.master_public_key(), &req.digest_bytes(), &sig).is_err());
}

#[test]
fn ethereum_signature_recovers_the_address() {
    let w = wallet();
    let path = DerivationPath::parse("m/0/1").unwrap();
    let pk = w.accounts[0].public_key_at(&path).unwrap();
    let addr = address::ethereum_address(&pk);
    let req = SignRequest {
        preimage: eip191_preimage(b"hello wallet"),
        digest: DigestKind::Keccak256,
    };
    let sig = sign(&[1, 2], Some(&path), &req, b"eth-sign");
    let digest = req.digest_bytes();
    for style in [
        EthereumVStyle::Legacy,
        EthereumVStyle::Eip155(1),
        EthereumVStyle::Typed,
    ] {
        let eth = ethereum_signature(&pk, &digest, &sig, style).unwrap();
        assert_eq!(recover_ethereum_address(&digest, &eth).unwrap(), addr);
        match style {
            EthereumVStyle::Legacy => assert_eq!(eth.v, 27 + u64::from(eth.y_parity)),
            EthereumVStyle::Eip155(c) => assert_eq!(eth.v, c * 2 + 35 + u64::from(eth.y_parity)),
            EthereumVStyle::Typed => assert_eq!(eth.v, u64::from(eth.y_parity)),
        }
        // Low s (EIP-2).
        let half_n =
            hex::decode("7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0")
                .unwrap();
        assert!(eth.s.as_slice() <= half_n.as_slice(), "s is not low");
    }
}

#[test]
fn bitcoin_der_verifies_with_libsecp256k1() {
    let w = wallet();
    let pk = w.accounts[0].master_public_key();
    let req = SignRequest {
        preimage: b"bitcoin sighash preimage".to_vec(),
        digest: DigestKind::DoubleSha256,
    };
    let sig = sign(&[0, 2], None, &req, b"btc-sign");
    let der = bitcoin_der(&sig).unwrap();
    let secp = secp256k1::Secp256k1::verification_only();
    let msg = secp256k1::Message::from_digest(req.digest_bytes());
    let s = secp256k1::ecdsa::Signature::from_der(&der).expect("strict DER");
    let key = secp256k1::PublicKey::from_slice(&pk.to_bytes(true)).unwrap();
    secp.verify_ecdsa(&msg, &s, &key)
        .expect("libsecp256k1 verifies");
    // libsecp256k1 rejects high-s signatures in verify; normalising changes nothing.
    let mut norm = s;
    norm.normalize_s();
    assert_eq!(norm, s, "signature is already low-s");
    // P2WPKH address of the same key is well formed.
    let a = address::bitcoin_p2wpkh_address(&pk, address::BitcoinNetwork::Mainnet).unwrap();
    assert!(a.starts_with("bc1q") && a.len() == 42, "{a}");
}

#[test]
fn presignature_signs_once_and_only_once() {
    let w = wallet();
    let signers = vec![0u16, 1];
    let sessions = signers
        .iter()
        .map(|&k| {
            Session::presign(
                b"presign-1",
                signers.clone(),
                w.shares[usize::from(k)].clone(),
                None,
            )
            .unwrap()
        })
        .collect();
    let outs = run_sessions(sessions, None).expect("presign");
    let mut stores = Vec::new();
    let mut public = None;
    for (k, o) in signers.iter().zip(outs) {
        let SessionOutput::Presignature(p, pubdata) = o else {
            panic!("unexpected")
        };
        let repr = mpc_core::presign::PresignaturePublicDataRepr::new(
            pubdata.as_ref(),
            DerivationPath::root(),
        );
        public.get_or_insert_with(|| repr.clone());
        let mut store = PresignatureStore::new();
        store
            .insert(StoredPresignature {
                id: "presign-1".into(),
                account_id: "acct".into(),
                signers: signers.clone(),
                presignature: *p,
                public: repr,
            })
            .unwrap();
        stores.push((*k, store));
    }
    let public = public.unwrap();
    let req = SignRequest {
        preimage: b"fast path".to_vec(),
        digest: DigestKind::Keccak256,
    };
    let mut partials = Vec::new();
    let mut taken = Vec::new();
    for (_, store) in stores.iter_mut() {
        assert_eq!(
            store.available_for("acct", &signers),
            vec!["presign-1".to_string()]
        );
        let p = store.take("presign-1").unwrap();
        taken.push(p.clone());
        partials.push(p.issue_partial(&req, &DerivationPath::root()).unwrap());
    }
    let sig = combine(&public, &partials, &req).unwrap();
    verify_digest(
        &w.accounts[0].master_public_key(),
        &req.digest_bytes(),
        &sig,
    )
    .unwrap();

    // Second use: the store refuses, both by id and when the same presignature is
    // re-inserted (e.g. restored from a backup).
    for ((_, store), p) in stores.iter_mut().zip(taken) {
        assert!(matches!(
            store.take("presign-1"),
            Err(CoreError::PresignatureReused(_))
        ));
        assert!(matches!(
            store.insert(p),
            Err(CoreError::PresignatureReused(_))
        ));
        assert!(store.is_empty());
    }
    // A partial signature for a different message does not combine with the others.
    let other = SignRequest {
        preimage: b"other".to_vec(),
        digest: DigestKind::Keccak256,
    };
    assert!(combine(&public, &partials, &other).is_err());
}

/// A presignature generated at an HD path (the wallet's BIP-44 style, non-hardened)
/// signs for the derived child key, not the root; asked at another path it issues
/// nothing.
#[test]
fn hd_presignature_signs_for_the_derived_key_only() {
    let w = wallet();
    let signers = vec![0u16, 1];
    let path = DerivationPath::parse("m/44/60/0/0/3").unwrap();
    let child = w.accounts[0].public_key_at(&path).unwrap();
    let root = w.accounts[0].master_public_key();
    let presign = |sid: &[u8]| -> Vec<StoredPresignature> {
        let sessions = signers
            .iter()
            .map(|&k| {
                Session::presign(
                    sid,
                    signers.clone(),
                    w.shares[usize::from(k)].clone(),
                    Some(path.indices().to_vec()),
                )
                .unwrap()
            })
            .collect();
        run_sessions(sessions, None)
            .expect("presign")
            .into_iter()
            .map(|o| {
                let SessionOutput::Presignature(p, pubdata) = o else {
                    panic!("unexpected")
                };
                StoredPresignature {
                    id: String::from_utf8_lossy(sid).into_owned(),
                    account_id: "acct".into(),
                    signers: signers.clone(),
                    presignature: *p,
                    public: mpc_core::presign::PresignaturePublicDataRepr::new(
                        pubdata.as_ref(),
                        path.clone(),
                    ),
                }
            })
            .collect()
    };
    let req = SignRequest {
        preimage: b"hd fast path".to_vec(),
        digest: DigestKind::Keccak256,
    };

    // The record survives serialization with its path.
    let pair = presign(b"presign-hd");
    let json = serde_json::to_vec(&pair[0]).unwrap();
    let back: StoredPresignature = serde_json::from_slice(&json).unwrap();
    assert_eq!(back.path(), &path);

    let public = pair[0].public.clone();
    let mut it = pair.into_iter();
    let (a, b) = (it.next().unwrap(), it.next().unwrap());
    let mine = a.issue_partial(&req, &path).unwrap();
    let theirs = b.issue_partial(&req, &path).unwrap();
    let sig =
        mpc_core::presign::combine_pair(&public, &signers, 0, mine, theirs, &req, &path, &child)
            .expect("verifies against the derived key");
    verify_digest(&child, &req.digest_bytes(), &sig).expect("k256: derived key");
    assert!(
        verify_digest(&root, &req.digest_bytes(), &sig).is_err(),
        "an HD presignature does not sign for the root key"
    );
    // Ethereum: the signature recovers the derived account's address.
    let eth = ethereum_signature(&child, &req.digest_bytes(), &sig, EthereumVStyle::Typed).unwrap();
    let rec = recover_ethereum_address(&req.digest_bytes(), &eth).unwrap();
    assert_eq!(rec, address::ethereum_address(&child));
    // Combining as if at the root (with the root key) is refused, as is verifying the
    // right partials against the root key.
    assert!(matches!(
        mpc_core::presign::combine_pair(
            &public,
            &signers,
            0,
            mine,
            theirs,
            &req,
            &DerivationPath::root(),
            &root,
        ),
        Err(CoreError::PresignaturePathMismatch { .. })
    ));
    assert_eq!(
        mpc_core::presign::combine_pair(&public, &signers, 0, mine, theirs, &req, &path, &root)
            .unwrap_err(),
        CoreError::InvalidSignature
    );

    // Another presignature of the same path, asked at a sibling path or the root:
    // refused, no partial signature.
    let pair = presign(b"presign-hd-2");
    for wrong in ["m/44/60/0/0/4", "m"] {
        let wrong = DerivationPath::parse(wrong).unwrap();
        let e = pair[0].clone().issue_partial(&req, &wrong).unwrap_err();
        assert!(
            matches!(&e, CoreError::PresignaturePathMismatch { bound, .. } if bound == "m/44/60/0/0/3"),
            "{e}"
        );
        assert!(pair[0].check_path(&wrong).is_err());
    }
    assert!(pair[0].check_path(&path).is_ok());
}

#[test]
fn tampered_message_names_the_misbehaving_party() {
    let w = wallet();
    let signers = vec![0u16, 2];
    let req = SignRequest {
        preimage: b"tamper".to_vec(),
        digest: DigestKind::Keccak256,
    };
    let sessions = signers
        .iter()
        .map(|&k| {
            Session::sign(
                b"tamper",
                signers.clone(),
                w.shares[usize::from(k)].clone(),
                None,
                req.data_to_sign(),
            )
            .unwrap()
        })
        .collect();
    // Party 2 alters a number inside its first broadcast (a commitment/ciphertext):
    // the message still decodes, but its zero-knowledge proof no longer verifies.
    let mut tampered = false;
    let mut intercept = |from: u16, msg: &mut mpc_core::Outgoing| {
        if from == 2 && !tampered {
            let mut v: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
            if flip_first_hex_digit(&mut v) {
                msg.payload = serde_json::to_vec(&v).unwrap();
                tampered = true;
            }
        }
    };
    let err = run_sessions(sessions, Some(&mut intercept)).unwrap_err();
    assert!(tampered);
    let (reporter, err) = err;
    assert_eq!(reporter, 0, "the honest party detects it: {err}");
    match &err {
        SessionError::Aborted { blamed, .. } => assert_eq!(blamed, &vec![2], "{err}"),
        SessionError::MalformedMessage { from, .. } => assert_eq!(*from, 2, "{err}"),
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains('2'), "{err}");
}

/// Changes the first long hex string found in a JSON value (a big number or point).
fn flip_first_hex_digit(v: &mut serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s)
            if s.len() >= 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            let last = s.pop().unwrap();
            s.push(if last == '1' { '2' } else { '1' });
            true
        }
        serde_json::Value::Array(a) => a.iter_mut().any(flip_first_hex_digit),
        serde_json::Value::Object(o) => o.values_mut().any(flip_first_hex_digit),
        _ => false,
    }
}

#[test]
fn sessions_reject_bad_input_without_losing_state() {
    let w = wallet();
    let req = SignRequest {
        preimage: b"x".to_vec(),
        digest: DigestKind::Keccak256,
    };
    let mut s = Session::sign(
        b"bad-input",
        vec![0, 1],
        w.shares[0].clone(),
        None,
        req.data_to_sign(),
    )
    .unwrap();
    s.run().unwrap();
    let first = s.drain_outgoing();
    assert!(!first.is_empty());
    // Unknown sender, self, garbage, oversize.
    let bad = |sender, payload: &[u8]| mpc_core::Incoming {
        sender,
        broadcast: true,
        payload: payload.to_vec(),
    };
    assert!(matches!(
        s.handle(bad(2, b"{}")),
        Err(SessionError::UnknownSender { from: 2, .. })
    ));
    assert!(matches!(
        s.handle(bad(0, b"{}")),
        Err(SessionError::UnknownSender { from: 0, .. })
    ));
    assert!(matches!(
        s.handle(bad(1, b"\xff\x00garbage")),
        Err(SessionError::MalformedMessage { from: 1, .. })
    ));
    assert!(matches!(
        s.handle(bad(1, &vec![b' '; mpc_core::session::MAX_PAYLOAD + 1])),
        Err(SessionError::MalformedMessage { from: 1, .. })
    ));
    // Duplicate delivery of a valid message is refused the second time.
    let mut peer = Session::sign(
        b"bad-input",
        vec![0, 1],
        w.shares[1].clone(),
        None,
        req.data_to_sign(),
    )
    .unwrap();
    peer.run().unwrap();
    let msgs = peer.drain_outgoing();
    let m = &msgs[0];
    let inc = mpc_core::Incoming {
        sender: 1,
        broadcast: m.recipient.is_none(),
        payload: m.payload.clone(),
    };
    s.handle(inc.clone()).unwrap();
    assert!(matches!(
        s.handle(inc),
        Err(SessionError::MalformedMessage { from: 1, .. })
    ));
    // Bad parameters.
    assert!(Session::sign(b"p", vec![0], w.shares[0].clone(), None, req.data_to_sign()).is_err());
    assert!(Session::sign(
        b"p",
        vec![1, 2],
        w.shares[0].clone(),
        None,
        req.data_to_sign()
    )
    .is_err());
    assert!(Session::sign(
        b"p",
        vec![1, 0],
        w.shares[0].clone(),
        None,
        req.data_to_sign()
    )
    .is_err());
    assert!(Session::keygen(b"p", 3, 3, 2).is_err());
    assert!(Session::keygen(b"p", 0, 3, 4).is_err());
}

#[test]
fn aux_info_is_reused_across_accounts() {
    let w = wallet();
    let second = common::keygen(b"second-account", mpc_core::AccountKind::Independent);
    assert_ne!(second[0].public_key, w.accounts[0].public_key);
    let shares: Vec<_> = second
        .iter()
        .zip(&w.aux)
        .map(|(a, x)| a.complete(x).unwrap())
        .collect();
    let req = SignRequest {
        preimage: b"second".to_vec(),
        digest: DigestKind::Sha256,
    };
    let sessions = [1u16, 2]
        .iter()
        .map(|&k| {
            Session::sign(
                b"second",
                vec![1, 2],
                shares[usize::from(k)].clone(),
                None,
                req.data_to_sign(),
            )
            .unwrap()
        })
        .collect();
    let out = run_sessions(sessions, None).unwrap();
    let SessionOutput::Signature(sig) = out[0] else {
        panic!()
    };
    verify_digest(&second[0].master_public_key(), &req.digest_bytes(), &sig).unwrap();
}
