//! The client flows driven without a network: in-process fakes of every effect (see
//! `common`), including a cosigner that lies, refuses and misbehaves.

mod common;
// The key-lifecycle flows: a module of this binary so that they share its one fixture
// wallet (created once per process) instead of creating their own.
#[path = "flows/lifecycle.rs"]
mod lifecycle;
#[path = "flows/lifecycle_template.rs"]
mod lifecycle_template;

use client_core::sign::Discarded;
use client_core::*;
use common::*;
use mpc_core::hd::DerivationPath;
use wallet_types::{ErrorCode, DEVICE};

fn params(account: &str, path: &str, presign: PresignMode) -> SignParams {
    SignParams {
        account_id: account.into(),
        path: path.into(),
        preimage: mpc_core::digest::eip191_preimage(b"client-core flows"),
        digest: DigestKind::Keccak256,
        payload: PayloadKind::EthereumMessage,
        cosigner_payload: None,
        chain: ChainStyle::Legacy,
        presign,
    }
}

/// Checks a signature independently of the flow (k256 through mpc-core) against the
/// key at the path.
fn check(f: &Fixture, s: &SignedResult, path: &str) {
    let party = f.device();
    let pk = party.bundle().accounts[&s.account_id]
        .public_key_at(&DerivationPath::parse(path).unwrap())
        .unwrap();
    assert_eq!(s.public_key, hex::encode(pk.to_bytes(true)));
    let digest = mpc_core::digest::digest(
        DigestKind::Keccak256,
        &params("", "m", PresignMode::Off).preimage,
    );
    assert_eq!(s.digest, hex::encode(digest));
    let recovered = verify_ethereum(
        &params("", "m", PresignMode::Off).preimage,
        &s.rsv,
        &s.ethereum_address,
    )
    .unwrap();
    assert_eq!(recovered, s.ethereum_address);
    // And with k256 directly, over the digest.
    let vk = k256::ecdsa::VerifyingKey::from_sec1_bytes(&pk.to_bytes(true)).unwrap();
    let sig = k256::ecdsa::Signature::from_slice(&hex::decode(&s.rsv).unwrap()[..64]).unwrap();
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    vk.verify_prehash(&digest, &sig).unwrap();
}

// --------------------------------------------------------------------------- create

#[test]
fn create_runs_every_step_in_order_and_retries_confirm_by_code() {
    let f = fixture();
    assert!(f.created.committed);
    assert_eq!(f.created.accounts.len(), 2);
    assert!(f
        .created
        .accounts
        .iter()
        .all(|a| a.kind == AccountKind::Independent));
    let t: Vec<&str> = f.trace.iter().map(String::as_str).collect();
    let pos = |s: &str| {
        t.iter()
            .position(|x| *x == s)
            .unwrap_or_else(|| panic!("{s} not in {t:?}"))
    };
    // Health first, then the recovery identity and the primes, then CreateWallet.
    assert_eq!(t[0], "call Health ok");
    assert!(pos("recovery identity") < pos("primes"));
    assert!(pos("primes") < pos("call CreateWallet ok"));
    assert!(pos("call CreateWallet ok") < pos("start recovery"));
    // Aux info, then one keygen per account, then the recovery party's keys.
    let sessions: Vec<&str> = t
        .iter()
        .filter(|s| s.starts_with("session"))
        .copied()
        .collect();
    assert_eq!(
        sessions,
        ["session aux-info", "session keygen", "session keygen"]
    );
    assert!(pos("start recovery") < pos("session aux-info"));
    assert!(pos("await recovery") < pos("persist"));
    // Persisted BEFORE confirming; two wallet_not_ready answers, each followed by a
    // wait, then the commit.
    assert!(
        pos("persist")
            < t.iter()
                .position(|x| x.starts_with("call ConfirmWallet"))
                .unwrap()
    );
    assert_eq!(
        t.iter().filter(|x| **x == "call ConfirmWallet err").count(),
        2
    );
    assert_eq!(t.iter().filter(|x| **x == "wait 500").count(), 2);
    assert_eq!(*t.last().unwrap(), "done");
    // Both user parties hold the same keys as the cosigner, and their identities.
    let dev = f.device();
    let rec = f.recovery();
    assert_eq!(
        bundle_public_keys(dev.bundle()),
        bundle_public_keys(rec.bundle())
    );
    assert_eq!(dev.bundle().peers.len(), 2);
    assert_eq!(f.cosigner.device, Some(dev.public_identity()));
    assert_eq!(f.cosigner.recovery, Some(rec.public_identity()));
}

#[test]
fn create_refuses_inconsistent_cosigner_answers_before_any_session() {
    let create = |knobs: Knobs| {
        let mut c = FakeCosigner::new();
        c.knobs = knobs;
        let mut w = World::new(c);
        let e = w
            .create(CreateParams {
                accounts: 2,
                kind: AccountKind::Hd,
                label: String::new(),
                registration_credential: None,
            })
            .unwrap_err();
        assert_eq!(w.sessions, 0, "{e}");
        e
    };
    // Another identity in Health than the cosigner's own: the CreateWallet is signed
    // for that audience, and the cosigner refuses it (a request for another cosigner).
    let other = mpc_wire::IdentityKey::generate()
        .unwrap()
        .public()
        .to_string();
    let e = create(Knobs {
        health_identity: Some(other),
        ..Knobs::default()
    });
    assert_eq!(e.code(), ErrorCode::Unauthorized, "{e}");
    assert!(e.to_string().contains("signed for cosigner"), "{e}");
    // No identity in Health: nothing to sign for.
    let e = create(Knobs {
        health_identity: Some(String::new()),
        ..Knobs::default()
    });
    assert_eq!(e.code(), ErrorCode::InvalidResponse, "{e}");
    // Fewer accounts than asked for.
    let e = create(Knobs {
        accounts: Some(1),
        ..Knobs::default()
    });
    assert_eq!(e.code(), ErrorCode::InvalidResponse, "{e}");
    // Arguments are checked first.
    assert_eq!(
        Create::start(CreateParams {
            accounts: 0,
            kind: AccountKind::Hd,
            label: String::new(),
            registration_credential: None,
        })
        .unwrap_err()
        .code(),
        ErrorCode::InvalidInput
    );
    assert!(Create::start(CreateParams {
        accounts: 101,
        kind: AccountKind::Hd,
        label: String::new(),
        registration_credential: None,
    })
    .is_err());
}

// ------------------------------------------------------------------------ full sign

#[test]
fn full_signing_verifies_at_a_derived_path() {
    let f = fixture();
    let mut w = f.world();
    let path = "m/44/60/0/0/7";
    let s = w
        .sign(&f.device(), params(&f.account(0), path, PresignMode::Auto))
        .unwrap();
    assert!(!s.result.presigned);
    assert!(!s.fast_path.tried, "a derived path never uses the pool");
    assert_eq!(s.result.signers, vec![0, 1]);
    assert_eq!(s.result.derivation_path, path);
    assert!(!s.result.request_id.is_empty());
    check(f, &s.result, path);
    // Recovery + cosigner.
    let s = w
        .sign(&f.recovery(), params(&f.account(1), "m", PresignMode::Off))
        .unwrap();
    assert_eq!(s.result.signers, vec![1, 2]);
    check(f, &s.result, "m");
}

#[test]
fn a_wrong_announced_digest_is_refused_before_any_session() {
    let f = fixture();
    let mut w = f.world();
    w.cosigner.knobs.digest = Some("00".repeat(32));
    let e = w
        .sign(&f.device(), params(&f.account(0), "m/1", PresignMode::Off))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::DigestMismatch, "{e}");
    assert_eq!(w.sessions, 0);
}

#[test]
fn a_wrong_signer_set_is_an_invalid_response() {
    let f = fixture();
    let mut w = f.world();
    w.cosigner.knobs.signers = Some(vec![1, 2]);
    let e = w
        .sign(&f.device(), params(&f.account(0), "m/1", PresignMode::Off))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidResponse, "{e}");
    assert_eq!(w.sessions, 0);
}

#[test]
fn cosigner_refusals_keep_their_code_and_rule() {
    let f = fixture();
    for (code, rule) in [
        (ErrorCode::PolicyDenied, Some("allowed_destinations")),
        (ErrorCode::Unauthorized, None),
        (ErrorCode::NotFound, None),
        (ErrorCode::Busy, None),
        (ErrorCode::RateLimited, None),
        (ErrorCode::WalletNotReady, None),
        (ErrorCode::CosignerUnavailable, None),
        (ErrorCode::CosignerRejected, None),
    ] {
        let mut w = f.world();
        let mut e = RemoteError::new(code, "refused (the text says nothing useful)");
        e.rule = rule.map(str::to_string);
        w.cosigner.knobs.refuse = Some(e);
        let got = w
            .sign(&f.device(), params(&f.account(0), "m/2", PresignMode::Off))
            .unwrap_err();
        assert_eq!(got.code(), code, "{got}");
        assert_eq!(got.rule(), rule, "{got:?}");
        assert_eq!(got.retryable(), code.retryable());
    }
}

#[test]
fn arguments_are_checked_first() {
    let f = fixture();
    let mut w = f.world();
    let d = f.device();
    let mut p = params(&f.account(0), "m", PresignMode::Off);
    p.preimage.clear();
    assert_eq!(w.sign(&d, p).unwrap_err().code(), ErrorCode::InvalidInput);
    let mut p = params(&f.account(0), "m", PresignMode::Off);
    p.preimage = vec![0; wallet_types::MAX_PREIMAGE_LEN + 1];
    assert_eq!(w.sign(&d, p).unwrap_err().code(), ErrorCode::InvalidInput);
    let e = w
        .sign(&d, params("nope", "m", PresignMode::Off))
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::UnknownAccount { available, .. } if available.len() == 2),
        "{e}"
    );
    assert_eq!(
        w.sign(&d, params(&f.account(0), "m/1'", PresignMode::Off))
            .unwrap_err()
            .code(),
        ErrorCode::InvalidInput
    );
    // `require` at a derived path, or on an HD account: refused, nothing asked.
    assert_eq!(
        w.sign(&d, params(&f.account(0), "m/1", PresignMode::Require))
            .unwrap_err()
            .code(),
        ErrorCode::InvalidInput
    );
    let mut hd = f.device.clone();
    for a in hd.accounts.values_mut() {
        a.kind = AccountKind::Hd;
    }
    let hd = Party::new(f.created.wallet_id.clone(), hd, "hd").unwrap();
    let e = w
        .sign(&hd, params(&f.account(0), "m", PresignMode::Require))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput, "{e}");
    assert!(w.cosigner.calls.is_empty(), "{:?}", w.cosigner.calls);
    assert_eq!(w.sessions, 0);
}

// ----------------------------------------------------------------- presignatures

/// A world whose pools (both sides) hold `n` presignatures of account 0.
fn with_pool(n: u32) -> (&'static Fixture, World) {
    let f = fixture();
    let mut w = f.world();
    let s = w.refill(&f.device(), &f.account(0), Some(n)).unwrap();
    assert_eq!((s.local, s.generated, s.usable), (n, n, Some(n)), "{s:?}");
    (f, w)
}

#[test]
fn refill_then_the_fast_path_signs_without_a_session() {
    let (f, mut w) = with_pool(2);
    let sessions = w.sessions;
    let s = w
        .sign(
            &f.device(),
            params(&f.account(0), "m", PresignMode::Require),
        )
        .unwrap();
    assert!(s.result.presigned);
    assert_eq!(w.sessions, sessions, "the fast path runs no session");
    assert_eq!(
        s.fast_path.used.as_deref(),
        Some(s.result.session_id.as_str())
    );
    check(f, &s.result, "m");
    // Used on both sides.
    assert_eq!(w.pool.list(&f.account(0)).len(), 1);
    assert_eq!(w.cosigner.presigs.len(), 1);
    assert!(w.cosigner.used.contains(&s.result.session_id));
    // The other account's pool is empty: auto falls back to full signing.
    let s = w
        .sign(&f.device(), params(&f.account(1), "m", PresignMode::Auto))
        .unwrap();
    assert!(!s.result.presigned && s.fast_path.tried && s.fast_path.empty);
    check(f, &s.result, "m");
    // ... and require refuses.
    let e = w
        .sign(
            &f.device(),
            params(&f.account(1), "m", PresignMode::Require),
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PresignatureUnavailable, "{e}");
}

#[test]
fn a_garbage_partial_is_an_invalid_response_and_a_wrong_one_fails_verification() {
    let (f, mut w) = with_pool(2);
    w.cosigner.knobs.partial = Some(vec![0xff; 32]); // above the group order
    let e = w
        .sign(
            &f.device(),
            params(&f.account(0), "m", PresignMode::Require),
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidResponse, "{e}");
    w.cosigner.knobs.partial = Some({
        let mut b = vec![0u8; 32];
        b[31] = 7; // a valid scalar, not the cosigner's partial
        b
    });
    let e = w
        .sign(
            &f.device(),
            params(&f.account(0), "m", PresignMode::Require),
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::VerificationFailed, "{e}");
    // Both presignatures are gone from the pool: never reused.
    assert!(w.pool.list(&f.account(0)).is_empty());
    assert_eq!(w.pool.taken.len(), 2);
}

#[test]
fn the_fast_path_checks_digest_and_signers_too() {
    let (f, mut w) = with_pool(2);
    w.cosigner.knobs.digest = Some("11".repeat(32));
    let e = w
        .sign(&f.device(), params(&f.account(0), "m", PresignMode::Auto))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::DigestMismatch, "{e}");
    w.cosigner.knobs.digest = None;
    w.cosigner.knobs.signers = Some(vec![0, 2]);
    let e = w
        .sign(&f.device(), params(&f.account(0), "m", PresignMode::Auto))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidResponse, "{e}");
}

#[test]
fn unknown_and_used_presignatures_are_discarded_then_auto_falls_back() {
    let (f, mut w) = with_pool(3);
    // The cosigner lost one (unknown) and already used another.
    let ids = w.pool.list(&f.account(0));
    w.cosigner.presigs.remove(&ids[0]);
    w.cosigner.presigs.remove(&ids[1]);
    w.cosigner.used.insert(ids[1].clone());
    let s = w
        .sign(&f.device(), params(&f.account(0), "m", PresignMode::Auto))
        .unwrap();
    assert!(!s.result.presigned);
    assert_eq!(
        s.fast_path.discarded,
        vec![(ids[0].clone(), Discarded::Unknown)]
    );
    check(f, &s.result, "m");
    let e = w
        .sign(
            &f.device(),
            params(&f.account(0), "m", PresignMode::Require),
        )
        .unwrap_err();
    match &e {
        ClientError::PresignatureUnavailable {
            presignature_id,
            state,
            ..
        } => {
            assert_eq!(presignature_id.as_deref(), Some(ids[1].as_str()));
            assert_eq!(*state, Some(PresignatureState::Used));
        }
        other => panic!("{other}"),
    }
    // The third one still signs.
    let s = w
        .sign(
            &f.device(),
            params(&f.account(0), "m", PresignMode::Require),
        )
        .unwrap();
    assert!(s.result.presigned);
}

#[test]
fn an_unreadable_record_is_dropped_and_the_next_one_taken() {
    let (f, mut w) = with_pool(1);
    w.pool
        .put(&f.account(0), "bogus-0", b"not a presignature".to_vec())
        .unwrap();
    // The bogus record is now second; move it first.
    let bogus = w.pool.items.pop().unwrap();
    w.pool.items.insert(0, bogus);
    let s = w
        .sign(
            &f.device(),
            params(&f.account(0), "m", PresignMode::Require),
        )
        .unwrap();
    assert!(s.result.presigned);
    assert_eq!(
        s.fast_path.discarded,
        vec![("bogus-0".to_string(), Discarded::Unreadable)]
    );
}

#[test]
fn a_policy_refusal_on_the_fast_path_is_policy_denied() {
    let (f, mut w) = with_pool(1);
    let mut e = RemoteError::new(ErrorCode::PolicyDenied, "no");
    e.rule = Some("max_value_per_tx_wei".into());
    w.cosigner.knobs.refuse = Some(e);
    let e = w
        .sign(&f.device(), params(&f.account(0), "m", PresignMode::Auto))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PolicyDenied);
    assert_eq!(e.rule(), Some("max_value_per_tx_wei"));
}

// --------------------------------------------------------------- reconciliation

#[test]
fn reconciliation_discards_orphans_and_releases_the_cosigners_except_in_flight() {
    let (f, mut w) = with_pool(3);
    let ids = w.pool.list(&f.account(0));
    // Local only: ids[0] (the cosigner lost it). Cosigner only: ids[1] (taken here
    // long ago) and ids[2] (taken a moment ago: a signature may be using it).
    w.cosigner.presigs.remove(&ids[0]);
    w.pool.take(&f.account(0), &ids[1]);
    w.pool.take(&f.account(0), &ids[2]);
    w.pool.in_flight = vec![ids[2].clone()];
    let s = w.refill(&f.device(), &f.account(0), Some(2)).unwrap();
    assert!(
        w.trace
            .contains(&format!("discard {:?}", vec![ids[0].clone()])),
        "{:?}",
        w.trace
    );
    assert_eq!(w.cosigner.released, vec![ids[1].clone()]);
    assert!(
        w.cosigner.presigs.contains_key(&ids[2]),
        "an in-flight id was released"
    );
    assert_eq!(s.discarded, 2);
    assert_eq!((s.local, s.generated), (2, 2), "{s:?}");
}

#[test]
fn no_reconciliation_while_the_cosigner_runs_sessions() {
    let (f, mut w) = with_pool(2);
    let ids = w.pool.list(&f.account(0));
    w.cosigner.presigs.remove(&ids[0]);
    w.cosigner.knobs.running_for = 1;
    let s = w.refill(&f.device(), &f.account(0), Some(2)).unwrap();
    assert!(
        !w.trace.iter().any(|t| t.starts_with("discard")),
        "{:?}",
        w.trace
    );
    assert_eq!(s.discarded, 0);
    assert_eq!(w.pool.list(&f.account(0)).len(), 2);
}

#[test]
fn refill_settles_with_waits_the_core_names_and_stops_at_a_full_pool() {
    let (f, mut w) = with_pool(1);
    // The cosigner reports a running session for three status checks: the first one
    // (no reconciliation then), and two while settling after the new session.
    w.cosigner.knobs.running_for = 3;
    let before = w.trace.len();
    let s = w.refill(&f.device(), &f.account(0), Some(2)).unwrap();
    let t: Vec<&String> = w.trace[before..].iter().collect();
    let waits: Vec<_> = t.iter().filter(|x| x.starts_with("wait")).collect();
    assert_eq!(waits.len(), 2, "{t:?}");
    assert!(waits
        .iter()
        .all(|x| **x == &format!("wait {}", refill::SETTLE_POLL_MS)));
    let first_wait = t.iter().position(|x| x.starts_with("wait")).unwrap();
    let presign = t.iter().position(|x| x.starts_with("presign")).unwrap();
    assert!(presign < first_wait, "{t:?}");
    assert_eq!(
        (s.local, s.generated, s.cosigner_running),
        (2, 1, 0),
        "{s:?}"
    );
    // A full cosigner pool ends the refill without an error.
    w.cosigner.knobs.pool_full = true;
    let s = w.refill(&f.device(), &f.account(0), Some(5)).unwrap();
    assert_eq!((s.local, s.generated), (2, 0), "{s:?}");
    // Status only.
    let s = w.refill(&f.device(), &f.account(0), None).unwrap();
    assert_eq!((s.local, s.cosigner, s.usable), (2, Some(2), Some(2)));
}

#[test]
fn a_settle_that_never_ends_stops_after_the_deadline() {
    let (f, mut w) = with_pool(1);
    w.cosigner.knobs.running_for = u32::MAX;
    let s = w.refill(&f.device(), &f.account(0), Some(2)).unwrap();
    assert_eq!(s.cosigner_running, 1);
    // The core stops once 5 s passed on the driver's clock (this test's clock ticks a
    // millisecond per call on top of each wait).
    let waits = w.trace.iter().filter(|t| t.starts_with("wait")).count() as u64;
    assert!(
        waits >= refill::SETTLE_MS / (refill::SETTLE_POLL_MS + 4),
        "{waits}"
    );
    assert!(
        waits <= refill::SETTLE_MS / refill::SETTLE_POLL_MS + 1,
        "{waits}"
    );
}

/// The fixture's device with every account turned HD (same shares, same wallet).
fn hd_device(f: &Fixture) -> Party {
    let mut hd = f.device.clone();
    for a in hd.accounts.values_mut() {
        a.kind = AccountKind::Hd;
    }
    Party::new(f.created.wallet_id.clone(), hd, "hd").unwrap()
}

#[test]
fn refill_is_for_independent_accounts_and_reports_failures_by_code() {
    let f = fixture();
    let hd = hd_device(f);
    let mut w = f.world();
    assert_eq!(
        w.refill(&hd, &f.account(0), Some(1)).unwrap_err().code(),
        ErrorCode::InvalidInput
    );
    w.cosigner.knobs.refuse = Some(RemoteError::new(ErrorCode::Busy, "busy"));
    let e = w.refill(&f.device(), &f.account(0), Some(1)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Busy);
    // An independent account has no pool at a child path.
    let e = w
        .refill_at(&f.device(), &f.account(0), "m/44/60/0/0/0", Some(1))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
}

/// An HD account's pool belongs to one path: refilled at m/44/60/0/0/3, it signs there
/// from the pool (verified against the DERIVED key), while the sibling path and the
/// root fall back to full signing; the records bind the path on both sides, each used
/// once.
#[test]
fn hd_pools_are_per_path_and_sign_for_the_derived_key() {
    let f = fixture();
    let hd = hd_device(f);
    let mut w = f.world();
    let path = "m/44/60/0/0/3";
    let s = w.refill_at(&hd, &f.account(0), path, Some(2)).unwrap();
    assert_eq!((s.local, s.usable), (2, Some(2)), "{s:?}");
    assert_eq!(s.path, path);
    let pool = client_core::pool_key(&f.account(0), &DerivationPath::parse(path).unwrap());
    assert_eq!(w.pool.list(&pool).len(), 2);
    assert!(w.pool.list(&f.account(0)).is_empty(), "not the root pool");
    assert!(w
        .cosigner
        .presigs
        .values()
        .all(|p| p.path().to_string() == path));

    let sessions = w.sessions;
    let s = w
        .sign(&hd, params(&f.account(0), path, PresignMode::Require))
        .unwrap();
    assert!(s.result.presigned);
    assert_eq!(w.sessions, sessions, "the fast path runs no session");
    check(f, &s.result, path);
    let root = f.device().bundle().accounts[&f.account(0)].master_public_key();
    assert_ne!(s.result.public_key, hex::encode(root.to_bytes(true)));
    assert_eq!(w.pool.list(&pool).len(), 1);
    assert!(w.cosigner.used.contains(&s.result.session_id));
    assert!(!w.cosigner.presigs.contains_key(&s.result.session_id));

    // The sibling path has no pool: auto signs in full, require refuses.
    let sibling = "m/44/60/0/0/4";
    let s = w
        .sign(&hd, params(&f.account(0), sibling, PresignMode::Auto))
        .unwrap();
    assert!(!s.result.presigned && s.fast_path.tried && s.fast_path.empty);
    check(f, &s.result, sibling);
    let e = w
        .sign(&hd, params(&f.account(0), sibling, PresignMode::Require))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PresignatureUnavailable, "{e}");
    // A record of the path filed in the sibling's pool is dropped, never used there.
    let (id, bytes) = w.pool.take_oldest(&pool).unwrap();
    let sibling_pool =
        client_core::pool_key(&f.account(0), &DerivationPath::parse(sibling).unwrap());
    // (Filed by hand: the pool's tombstone refuses a taken id.)
    w.pool.items.push((sibling_pool, id.clone(), bytes));
    let s = w
        .sign(&hd, params(&f.account(0), sibling, PresignMode::Auto))
        .unwrap();
    assert!(!s.result.presigned);
    assert_eq!(
        s.fast_path.discarded,
        vec![(id.clone(), Discarded::Unreadable)]
    );
    assert!(
        w.cosigner.presigs.contains_key(&id),
        "not asked at the cosigner"
    );
    check(f, &s.result, sibling);
}

// ------------------------------------------------------------------------ offline

#[test]
fn offline_signing_with_both_user_parties() {
    let f = fixture();
    let p = OfflineParams {
        account_id: f.account(1),
        path: "m/44/60/0/0/3".into(),
        preimage: params("", "m", PresignMode::Off).preimage,
        digest: DigestKind::Keccak256,
        chain: ChainStyle::Eip155 { chain_id: 5 },
    };
    let OfflineStep::RunLocal(run) =
        OfflineSign::start(&f.device(), &f.recovery(), p.clone()).unwrap()
    else {
        panic!("expected RunLocal")
    };
    let (sessions, flow) = run.start();
    let out = mpc_core::local::run_sessions(sessions.open().unwrap(), None);
    let OfflineStep::Done(r) = flow.finished(out).unwrap() else {
        panic!("expected Done")
    };
    assert_eq!(r.signers, vec![0, 2]);
    assert!(r.v == 5 * 2 + 35 || r.v == 5 * 2 + 36);
    check(f, &r, "m/44/60/0/0/3");
    // Two device shares are refused.
    let e = OfflineSign::start(&f.device(), &f.device(), p).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Config);
    assert_eq!(f.device().index(), DEVICE);
}

// ----------------------------------------------------------------------- enrollment

/// One device enrollment (its aux info is the slow part), shared: the cosigner after
/// it, the device's and the recovery party's enrollments, the steps.
struct Enrolled {
    cosigner: FakeCosigner,
    device: Enrollment,
    recovery: Enrollment,
    trace: Vec<String>,
}

fn enrolled() -> &'static Enrolled {
    static E: std::sync::OnceLock<Enrolled> = std::sync::OnceLock::new();
    E.get_or_init(|| {
        let mut w = World::new(FakeCosigner::new());
        let (device, recovery) = w.enroll().expect("the device enrolls");
        Enrolled {
            cosigner: w.cosigner.fork(),
            device,
            recovery,
            trace: w.trace,
        }
    })
}

fn enrolled_world() -> (World, (Enrollment, Enrollment)) {
    let e = enrolled();
    (
        World::new(e.cosigner.fork()),
        (e.device.clone(), e.recovery.clone()),
    )
}

fn two_accounts() -> CreateParams {
    CreateParams {
        accounts: 2,
        kind: AccountKind::Independent,
        label: "enrolled".into(),
        registration_credential: Some("wmreg1.ignored-for-an-enrollment".into()),
    }
}

#[test]
fn enroll_runs_aux_info_only_and_both_parties_keep_an_enrollment() {
    let e = enrolled();
    assert_eq!(
        e.trace,
        [
            "call Health ok",
            "recovery identity",
            "primes",
            "call EnrollDevice ok",
            "start recovery",
            "session aux-info",
            "await recovery",
            "persist",
            "done",
        ]
    );
    assert_eq!(e.device.party_index, DEVICE);
    assert_eq!(e.recovery.party_index, 2);
    assert_eq!(e.device.enrollment_id, e.recovery.enrollment_id);
    assert_eq!(e.device.recovery_identity(), e.recovery.recovery_identity());
    assert_eq!(e.device.device_identity(), e.recovery.device_identity());
    assert_eq!(
        e.device.cosigner_identity(),
        Some(e.cosigner.identity.public())
    );
    assert!(!e.device.is_expired(1_800_000_000_000));
    assert!(e.device.is_expired(e.device.expires_at_ms));
    // The cosigner stored its aux info under the enrollment.
    assert!(e.cosigner.enrollments[&e.device.enrollment_id]
        .aux
        .is_some());
}

#[test]
fn enroll_then_create_runs_only_the_keygens_and_the_wallet_signs() {
    let (mut w, (device, recovery)) = enrolled_world();
    let (created, bundle, rbundle) = w
        .create_with(two_accounts(), Some((device.clone(), recovery.clone())))
        .unwrap();
    assert!(created.committed);
    assert_eq!(created.accounts.len(), 2);
    assert_eq!(
        w.trace,
        [
            "call Health ok",
            "call CreateWallet ok",
            "start recovery",
            "session keygen",
            "session keygen",
            "await recovery",
            "persist",
            "call ConfirmWallet ok",
            "done",
        ],
        "no recovery identity, no primes, no aux-info session"
    );
    // The same shape as a combined creation's bundle: the enrollment's aux info and
    // identity, and the accounts.
    for (b, e) in [(&bundle, &device), (&rbundle, &recovery)] {
        assert_eq!(b.accounts.len(), 2);
        assert_eq!(
            serde_json::to_value(b.aux_info.as_ref().unwrap()).unwrap(),
            serde_json::to_value(&e.aux_info).unwrap()
        );
        assert_eq!(
            b.identity_secret.as_deref(),
            Some(e.identity.to_seed_hex().as_str())
        );
        assert_eq!(b.peers.len(), 2);
    }
    let f = fixture();
    assert_eq!(
        serde_json::to_value(bundle_shape(&bundle)).unwrap(),
        serde_json::to_value(bundle_shape(&f.device)).unwrap()
    );
    // Both user parties sign with the cosigner.
    for b in [bundle, rbundle] {
        let party = Party::new(created.wallet_id.clone(), b, "enrolled").unwrap();
        let account = created.accounts[0].account_id.clone();
        let signed = w
            .sign(&party, params(&account, "m", PresignMode::Off))
            .unwrap();
        assert_eq!(signed.result.account_id, account);
        assert!(verify_ethereum(
            &params("", "m", PresignMode::Off).preimage,
            &signed.result.rsv,
            &signed.result.ethereum_address
        )
        .is_ok());
    }
    // An enrollment makes one wallet: the second one is refused by name.
    let e = w
        .create_with(two_accounts(), Some((device, recovery)))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert!(
        matches!(e, ClientError::EnrollmentUnusable { ref enrollment_id, .. } if enrollment_id == &enrolled().device.enrollment_id),
        "{e}"
    );
}

/// The keys of a bundle's JSON form, recursively down to the accounts (values differ).
fn bundle_shape(b: &mpc_core::keystore::KeyShareBundle) -> Vec<String> {
    let v = serde_json::to_value(b).unwrap();
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.push(format!("accounts={}", b.accounts.len()));
    keys.push(format!("aux={}", b.aux_info.is_some()));
    keys.push(format!("peers={:?}", b.peers.keys().collect::<Vec<_>>()));
    keys
}

#[test]
fn create_from_an_enrollment_waits_while_the_cosigner_stores_its_aux_info() {
    let (mut w, enrollments) = enrolled_world();
    w.cosigner.knobs.enrollment_not_ready = 2;
    let (created, _, _) = w.create_with(two_accounts(), Some(enrollments)).unwrap();
    assert!(created.committed);
    let waits: Vec<&String> = w.trace.iter().filter(|t| t.starts_with("wait")).collect();
    assert_eq!(waits, ["wait 1000", "wait 1000"]);
    assert_eq!(
        w.trace
            .iter()
            .filter(|t| *t == "call CreateWallet err")
            .count(),
        2
    );

    // Bounded: a cosigner that is never ready ends the flow with its code.
    let (mut w, enrollments) = enrolled_world();
    w.cosigner.knobs.enrollment_not_ready = u32::MAX;
    let e = w
        .create_with(two_accounts(), Some(enrollments))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::WalletNotReady);
    assert_eq!(
        w.trace.iter().filter(|t| t.starts_with("wait")).count(),
        client_core::create::ENROLLED_CREATE_ATTEMPTS as usize
    );
    assert_eq!(w.sessions, 0);
}

/// Creates from `enrollments` in `w`, which must fail with
/// `ClientError::EnrollmentUnusable` of `code`; returns that error.
fn create_with_unusable(
    w: &mut World,
    enrollments: (Enrollment, Enrollment),
    code: ErrorCode,
) -> ClientError {
    let e = w
        .create_with(two_accounts(), Some(enrollments))
        .unwrap_err();
    assert!(
        matches!(e, ClientError::EnrollmentUnusable { code: c, .. } if c == code),
        "{e:?}"
    );
    e
}

#[test]
fn unknown_and_foreign_enrollments_are_typed_errors() {
    // Unknown (expired, or the cosigner lost it): not_found.
    let (mut w, enrollments) = enrolled_world();
    w.cosigner.enrollments.clear();
    let e = create_with_unusable(&mut w, enrollments, ErrorCode::NotFound);
    assert!(e.to_string().contains("enroll the device again"), "{e}");
    assert_eq!(w.sessions, 0);

    // Another device's: unauthorized.
    let (mut w, enrollments) = enrolled_world();
    for rec in w.cosigner.enrollments.values_mut() {
        rec.device = mpc_wire::IdentityKey::generate().unwrap().public();
    }
    let e = create_with_unusable(&mut w, enrollments, ErrorCode::Unauthorized);
    assert_eq!(e.code(), ErrorCode::Unauthorized);

    // The recovery party's enrollment is not the device's, and another cosigner's
    // enrollment is refused before any request is signed.
    let (_, (device, recovery)) = enrolled_world();
    assert_eq!(
        Create::from_enrollment(two_accounts(), recovery)
            .unwrap_err()
            .code(),
        ErrorCode::InvalidInput
    );
    let mut w = World::new(FakeCosigner::new());
    let e = w
        .create_with(two_accounts(), Some((device.clone(), device)))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput, "{e}");
    assert_eq!(w.cosigner.calls, [CosignerMethod::Health]);
}

#[test]
fn an_aux_room_for_an_enrollment_wallet_is_refused() {
    let (mut w, enrollments) = enrolled_world();
    w.cosigner.knobs.aux_room_for_enrollment = true;
    let e = w
        .create_with(two_accounts(), Some(enrollments))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidResponse, "{e}");
    assert!(e.to_string().contains("protocol violation"), "{e}");
    assert_eq!(w.sessions, 0);
}

#[test]
fn the_enrollment_file_round_trips_and_refuses_tampering() {
    use mpc_core::keystore::KdfParams;
    let e = &enrolled().device;
    let kdf = KdfParams::insecure_for_tests();
    let text = e.encrypt("correct horse battery", kdf).unwrap();
    assert!(!text.contains(e.identity.to_seed_hex().as_str()));
    let back = Enrollment::decrypt(&text, "correct horse battery", "enrollment.json").unwrap();
    assert_eq!(back.enrollment_id, e.enrollment_id);
    assert_eq!(back.party_index, e.party_index);
    assert_eq!(back.identity.public(), e.identity.public());
    assert_eq!(back.peers, e.peers);
    assert_eq!(back.expires_at_ms, e.expires_at_ms);
    assert_eq!(
        serde_json::to_value(&back.aux_info).unwrap(),
        serde_json::to_value(&e.aux_info).unwrap()
    );

    let open = |t: &str| Enrollment::decrypt(t, "correct horse battery", "enrollment.json");
    let wrong = Enrollment::decrypt(&text, "wrong passphrase!", "enrollment.json").unwrap_err();
    assert_eq!(wrong.code(), ErrorCode::WrongPassphrase);
    assert!(matches!(
        Enrollment::decrypt(&text, "", "enrollment.json"),
        Err(ClientError::Config { .. })
    ));
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        f(&mut v);
        open(&v.to_string())
    };
    // Every envelope field is authenticated.
    for (what, e) in [
        (
            "id",
            edit(&|v| v["enrollment_id"] = "enrollment-999".into()),
        ),
        ("expiry", edit(&|v| v["expires_at_ms"] = 1.into())),
        ("party", edit(&|v| v["party_index"] = 2.into())),
        (
            "inner party",
            edit(&|v| v["shares"]["party_index"] = 2.into()),
        ),
        (
            "ciphertext",
            edit(&|v| {
                let c = v["shares"]["ciphertext"].as_str().unwrap().to_string();
                let flipped = if c.starts_with('A') { "B" } else { "A" };
                v["shares"]["ciphertext"] = format!("{flipped}{}", &c[1..]).into();
            }),
        ),
    ] {
        let e = e.unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::WrongPassphrase { .. } | ClientError::CorruptFile { .. }
            ),
            "{what}: {e:?}"
        );
    }
    assert!(matches!(
        edit(&|v| v["version"] = 99.into()),
        Err(ClientError::CorruptFile { .. })
    ));
    assert!(matches!(
        edit(&|v| v["format"] = "wallet-mpc/key-shares".into()),
        Err(ClientError::CorruptFile { .. })
    ));
    assert!(matches!(open("{"), Err(ClientError::CorruptFile { .. })));
    // The inner key-share file does not open under the plain passphrase.
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(mpc_core::keystore::KeyShareBundle::decrypt(
        &v["shares"].to_string(),
        "correct horse battery"
    )
    .is_err());
    // A key-share file is no enrollment.
    let ks = fixture()
        .device
        .encrypt("correct horse battery", kdf)
        .unwrap();
    assert!(matches!(open(&ks), Err(ClientError::CorruptFile { .. })));
}

#[test]
fn enrollments_join_only_where_they_fit() {
    let e = enrolled();
    let room = |sid: &str| Room {
        session_id: sid.into(),
        room: format!("room-{sid}"),
        room_token: String::new(),
        gateway_url: "http://gateway.invalid".into(),
    };
    let device = e.device.device_identity().unwrap();
    let cosigner = e.cosigner.identity.public();
    let job = RecoveryJob {
        wallet_id: "wallet-x".into(),
        cosigner_identity: cosigner,
        device_identity: device,
        recovery_identity: e.recovery.identity.public(),
        kind: AccountKind::Hd,
        aux_info: room("unused-aux"),
        accounts: vec![AccountRoom {
            account_id: "account-0".into(),
            keygen: room("keygen-x"),
        }],
        enrollment_id: Some(e.recovery.enrollment_id.clone()),
    };
    // The recovery party's own enrollment fits: keygens only, its aux info ready.
    let p = job.join_params_enrolled(&e.recovery, 1).unwrap();
    assert!(matches!(p.aux, JoinAux::Ready(_)));
    assert_eq!(p.identity.public(), e.recovery.identity.public());
    // Not the device's enrollment, not another enrollment id, not other peers, and no
    // primes-based join for an enrollment wallet.
    assert!(job.join_params_enrolled(&e.device, 1).is_err());
    let mut other = job.clone();
    other.enrollment_id = Some("enrollment-other".into());
    assert!(other.join_params_enrolled(&e.recovery, 1).is_err());
    let mut other = job.clone();
    other.cosigner_identity = mpc_wire::IdentityKey::generate().unwrap().public();
    assert!(other.join_params_enrolled(&e.recovery, 1).is_err());
    assert!(job
        .join_params(
            e.recovery.identity.clone(),
            mpc_core::primes::dev_fixture_primes()[2].clone(),
            1
        )
        .is_err());
    // Ready aux info with no keygen to run is no join.
    let mut p = job.join_params_enrolled(&e.recovery, 1).unwrap();
    p.accounts.clear();
    assert_eq!(p.validate().unwrap_err().code(), ErrorCode::InvalidInput);
}

// --------------------------------------------------------------------- Bitcoin PSBT

mod psbt {
    use super::*;
    use wallet_btc::bitcoin::consensus::encode::serialize;
    use wallet_btc::bitcoin::TxOut;
    use wallet_btc::{InputSignature, Network, WalletKeys};

    fn keys(f: &Fixture) -> WalletKeys {
        let a = &f.device.accounts[&f.account(0)];
        WalletKeys::new(
            &a.master_public_key().to_bytes(true),
            &a.share
                .chain_code
                .expect("the fixture's keys have chain codes"),
        )
        .unwrap()
    }

    /// A regtest PSBT (serialized) spending `n` P2WPKH coins of the wallet at
    /// `m/84/1/0/0/i` to a foreign address with change to `m/84/1/0/1/0`
    /// (wallet_btc::testing); and the spent outputs.
    fn regtest_psbt(keys: &WalletKeys, n: u32) -> (Vec<u8>, Vec<TxOut>) {
        let (psbt, spent) = wallet_btc::testing::regtest_spend(keys, 0, n);
        (psbt.serialize(), spent)
    }

    /// Signs every input through the one signing flow, finalizes with wallet-btc and
    /// has Bitcoin Core's interpreter verify each input.
    fn sign_all(
        w: &mut World,
        party: &Party,
        account: &str,
        keys: &WalletKeys,
        psbt: &[u8],
        spent: &[TxOut],
        mode: PresignMode,
    ) -> Vec<Signed> {
        let plan = wallet_btc::analyze_psbt(psbt, keys, Network::Regtest).unwrap();
        let mut sigs = Vec::new();
        let mut signed = Vec::new();
        for input in &plan.inputs {
            let params = SignParams {
                account_id: account.into(),
                path: input.path_string(),
                preimage: input.preimage.clone(),
                digest: DigestKind::DoubleSha256,
                payload: PayloadKind::BitcoinPsbtInput,
                cosigner_payload: Some(psbt.to_vec()),
                chain: ChainStyle::Legacy,
                presign: mode,
            };
            let bitcoin = BitcoinInput {
                input_index: input.index as u32,
                network: "regtest".into(),
            };
            let s = w.sign_with(party, params, Some(bitcoin)).unwrap();
            assert_eq!(s.result.digest, hex::encode(input.sighash));
            sigs.push((
                input.index,
                InputSignature::Der(hex::decode(&s.result.der).unwrap()),
            ));
            signed.push(s);
        }
        let done = wallet_btc::finalize_psbt(psbt, keys, Network::Regtest, &sigs).unwrap();
        for (i, out) in spent.iter().enumerate() {
            bitcoinconsensus::verify(
                out.script_pubkey.as_bytes(),
                out.value.to_sat(),
                &serialize(&done.tx),
                None,
                i,
            )
            .unwrap_or_else(|e| panic!("input {i}: {e:?}"));
        }
        signed
    }

    /// 1- and 5-input PSBTs signed in full, then a 5-input PSBT whose inputs 1 and 3
    /// have a pool at their path: those two sign from it (no session), the others in
    /// full; the cosigner got each input's index and network; Bitcoin Core accepts
    /// every input.
    #[test]
    fn psbt_inputs_sign_in_full_and_from_their_path_pools() {
        let f = fixture();
        let hd = hd_device(f);
        let account = f.account(0);
        let keys = keys(f);
        let mut w = f.world();

        // Wall times for the note (in-process: both parties' sessions in this test
        // process, pure-Rust big integers on both sides, no network).
        let timed = std::time::Instant::now();
        let (one, spent) = regtest_psbt(&keys, 1);
        let s = sign_all(&mut w, &hd, &account, &keys, &one, &spent, PresignMode::Off);
        eprintln!("[psbt] 1 input, full signing: {:?}", timed.elapsed());
        assert!(!s[0].result.presigned);
        assert_eq!(w.cosigner.psbt_inputs, vec![(0, "regtest".to_string())]);

        let (five, spent) = regtest_psbt(&keys, 5);
        w.cosigner.psbt_inputs.clear();
        let before = w.sessions;
        let s = sign_all(
            &mut w,
            &hd,
            &account,
            &keys,
            &five,
            &spent,
            PresignMode::Off,
        );
        assert_eq!(w.sessions - before, 5, "one session per input");
        assert!(s.iter().all(|s| !s.result.presigned));
        assert_eq!(
            w.cosigner.psbt_inputs,
            (0..5)
                .map(|i| (i, "regtest".to_string()))
                .collect::<Vec<_>>()
        );

        for i in [1, 3] {
            let st = w
                .refill_at(&hd, &account, &format!("m/84/1/0/0/{i}"), Some(1))
                .unwrap();
            assert_eq!(st.usable, Some(1), "{st:?}");
        }
        let before = w.sessions;
        let s = sign_all(
            &mut w,
            &hd,
            &account,
            &keys,
            &five,
            &spent,
            PresignMode::Auto,
        );
        let presigned: Vec<bool> = s.iter().map(|s| s.result.presigned).collect();
        assert_eq!(presigned, [false, true, false, true, false]);
        assert_eq!(
            w.sessions - before,
            3,
            "sessions only for the inputs without a pool"
        );
    }

    /// The PSBT kind's arguments are checked before anything is asked.
    #[test]
    fn psbt_arguments_are_checked_before_any_call() {
        let f = fixture();
        let hd = hd_device(f);
        let keys = keys(f);
        let (psbt, _) = regtest_psbt(&keys, 1);
        let mut w = f.world();
        let base = SignParams {
            account_id: f.account(0),
            path: "m/84/1/0/0/0".into(),
            preimage: vec![1; 100],
            digest: DigestKind::DoubleSha256,
            payload: PayloadKind::BitcoinPsbtInput,
            cosigner_payload: Some(psbt.clone()),
            chain: ChainStyle::Legacy,
            presign: PresignMode::Off,
        };
        let input = || {
            Some(BitcoinInput {
                input_index: 0,
                network: "regtest".into(),
            })
        };
        let cases = [
            (base.clone(), None),
            (
                SignParams {
                    cosigner_payload: None,
                    ..base.clone()
                },
                input(),
            ),
            (
                SignParams {
                    digest: DigestKind::Keccak256,
                    ..base.clone()
                },
                input(),
            ),
            (
                base.clone(),
                Some(BitcoinInput {
                    input_index: 0,
                    network: "mainnet".into(),
                }),
            ),
            (params(&f.account(0), "m/1", PresignMode::Off), input()),
        ];
        for (p, b) in cases {
            let e = w.sign_with(&hd, p, b).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidInput, "{e}");
        }
        assert!(w.cosigner.calls.is_empty(), "{:?}", w.cosigner.calls);
        assert_eq!(w.sessions, 0);
        // A preimage that is not the input's: the cosigner's own sighash differs, the
        // client refuses before any session.
        let e = w.sign_with(&hd, base, input()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::DigestMismatch, "{e}");
        assert_eq!(w.sessions, 0);
    }
}
