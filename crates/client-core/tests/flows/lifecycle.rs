//! The key-lifecycle flows without a network: the cosigner's answers are checked
//! (malformed, wrong epoch, accounts missing or extra), the confirmation polls by code,
//! and the sessions run for real in-process (the cosigner's side is mpc-core's session,
//! as sign-service runs it), the new shares then sign.

use crate::common::*;
use client_core::*;
use cosigner_api::{auth, pb};
use mpc_core::keystore::KeyShareBundle;
use mpc_core::primes::dev_fixture_primes;
use mpc_core::Session;
use mpc_party::PartySession;
use mpc_wire::{IdentityKey, Roster, SessionId};
use wallet_types::{ErrorCode, COSIGNER};

pub(crate) fn room(sid: &str) -> pb::SessionRoom {
    pb::SessionRoom {
        session_id: sid.into(),
        room: format!("room-{sid}"),
        room_token: String::new(),
        gateway_url: "http://gateway".into(),
    }
}

/// A well-formed answer to StartRefresh (or, with `replace`, to ReplaceDevice).
pub(crate) fn response(bundle: &KeyShareBundle, replace: bool) -> pb::LifecycleResponse {
    pb::LifecycleResponse {
        lifecycle_id: "lc-1".into(),
        epoch: bundle.share_epoch,
        aux_info: replace.then(|| room("lc-aux")),
        accounts: bundle
            .accounts
            .values()
            .map(|a| pb::LifecycleAccount {
                account_id: a.id.clone(),
                repair: replace.then(|| room(&format!("lc-repair-{}", a.id))),
                refresh: Some(room(&format!("lc-refresh-{}", a.id))),
                public_key: a.public_key.clone(),
            })
            .collect(),
        expires_at_ms: clock().0 + 600_000,
        request_id: "req-1".into(),
        controls: Some(pb::WalletControls::default()),
    }
}

fn start_refresh(party: &Party, r: pb::LifecycleResponse) -> Result<LifecyclePlan, ClientError> {
    let StartStep::CallCosigner(call) = StartLifecycle::refresh(party).unwrap() else {
        panic!("a call first")
    };
    assert_eq!(call.method(), CosignerMethod::StartRefresh);
    let (req, awaiting) = call.send(clock().0).unwrap();
    let CosignerRequest::StartRefresh(req) = req else {
        panic!("StartRefresh")
    };
    let a = req.auth.unwrap();
    assert_eq!(a.party, u32::from(party.index()));
    match awaiting.reply(Ok(CosignerResponse::Lifecycle(
        CosignerMethod::StartRefresh,
        r,
    )))? {
        StartStep::Done(p) => Ok(*p),
        other => panic!("{other:?}"),
    }
}

fn invalid(r: Result<LifecyclePlan, ClientError>, needle: &str) {
    let e = r.expect_err("refused");
    assert_eq!(e.code(), ErrorCode::InvalidResponse, "{e}");
    assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
}

#[test]
fn a_refresh_plan_is_checked_against_the_shares() {
    let f = fixture();
    let d = f.device();
    let good = response(d.bundle(), false);
    let plan = start_refresh(&d, good.clone()).unwrap();
    assert_eq!(plan.kind, LifecycleKind::Refresh);
    assert_eq!((plan.epoch, plan.next_epoch()), (0, 1));
    assert_eq!(plan.accounts.len(), 2);
    assert!(plan.aux_info.is_none());

    let mut r = good.clone();
    r.accounts[0].refresh = None;
    invalid(start_refresh(&d, r), "no refresh");
    let mut r = good.clone();
    r.epoch = 1;
    invalid(start_refresh(&d, r), "epoch 1");
    let mut r = good.clone();
    r.accounts.pop();
    invalid(start_refresh(&d, r), "left out");
    let mut r = good.clone();
    let mut extra = r.accounts[0].clone();
    extra.account_id = "not-mine".into();
    r.accounts.push(extra);
    invalid(start_refresh(&d, r), "accounts");
    let mut r = good.clone();
    r.accounts[1].account_id = r.accounts[0].account_id.clone();
    invalid(start_refresh(&d, r), "twice");
    let mut r = good.clone();
    r.accounts[1].refresh = r.accounts[0].refresh.clone();
    invalid(start_refresh(&d, r), "used twice");
    let mut r = good.clone();
    r.accounts[0].public_key = r.accounts[1].public_key.clone();
    invalid(start_refresh(&d, r), "public key");
    let mut r = good.clone();
    r.aux_info = Some(room("lc-aux"));
    invalid(start_refresh(&d, r), "aux-info");
    let mut r = good.clone();
    r.accounts[0].repair = Some(room("x"));
    invalid(start_refresh(&d, r), "repair");
    let mut r = good;
    r.lifecycle_id = String::new();
    invalid(start_refresh(&d, r), "lifecycle id");
}

#[test]
fn refusals_keep_the_cosigners_code() {
    let d = fixture().device();
    for code in [
        ErrorCode::NotFound,
        ErrorCode::Unauthorized,
        ErrorCode::Busy,
    ] {
        let StartStep::CallCosigner(call) = StartLifecycle::refresh(&d).unwrap() else {
            panic!()
        };
        let (_, awaiting) = call.send(clock().0).unwrap();
        let e = awaiting
            .reply(Err(RemoteError::new(code, "refused")))
            .unwrap_err();
        assert_eq!(e.code(), code, "{e}");
    }
}

#[test]
fn replace_device_carries_the_new_devices_proof_and_is_checked() {
    let f = fixture();
    let r = f.recovery();
    let new = IdentityKey::generate().unwrap();
    // Only the recovery party asks, and for a fresh identity.
    assert_eq!(
        StartLifecycle::replace_device(&f.device(), &new, "lost")
            .unwrap_err()
            .code(),
        ErrorCode::Config
    );
    let old_device =
        IdentityKey::from_seed_hex(f.device.identity_secret.as_deref().unwrap()).unwrap();
    assert_eq!(
        StartLifecycle::replace_device(&r, &old_device, "lost")
            .unwrap_err()
            .code(),
        ErrorCode::InvalidInput
    );
    let StartStep::CallCosigner(call) = StartLifecycle::replace_device(&r, &new, "lost").unwrap()
    else {
        panic!()
    };
    let (req, awaiting) = call.send(clock().0).unwrap();
    let CosignerRequest::ReplaceDevice(req) = req else {
        panic!()
    };
    let a = req.auth.clone().unwrap();
    assert_eq!(a.party, 2);
    assert_eq!(req.new_device_identity, new.public().to_string());
    let msg = auth::replace_device_possession_message(
        &a.audience,
        &a.wallet_id,
        &req.new_device_identity,
        a.timestamp_ms,
        &a.nonce,
    );
    assert!(auth::verify_bytes(
        &new.public(),
        &msg,
        &req.new_device_signature
    ));
    assert!(!auth::verify_bytes(
        &r.public_identity(),
        &msg,
        &req.new_device_signature
    ));

    // A replacement needs the aux-info and repair rooms.
    let mut resp = response(r.bundle(), true);
    resp.accounts[1].repair = None;
    let e = awaiting
        .reply(Ok(CosignerResponse::Lifecycle(
            CosignerMethod::ReplaceDevice,
            resp,
        )))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidResponse);
    assert!(e.to_string().contains("repair"), "{e}");
}

#[test]
fn confirm_polls_by_code_until_committed_at_the_new_epoch() {
    let f = fixture();
    let mut pending = f.device.clone();
    pending.share_epoch = 1;
    let params = ConfirmParams {
        wallet_id: f.created.wallet_id.clone(),
        lifecycle_id: "lc-1".into(),
        expires_at_ms: clock().0 + 10_000,
    };
    let ConfirmStep::CallCosigner(call) =
        ConfirmLifecycle::start(&pending, params.clone()).unwrap()
    else {
        panic!()
    };
    let (req, awaiting) = call.send(clock().0).unwrap();
    let CosignerRequest::ConfirmLifecycle(req) = req else {
        panic!()
    };
    assert_eq!(req.share_digests.len(), 2);
    for (id, d) in &req.share_digests {
        let share = &pending.accounts[id].share;
        assert_eq!(d, &client_core::lifecycle::share_digest(share, 1).unwrap());
        assert_ne!(d, &client_core::lifecycle::share_digest(share, 0).unwrap());
    }
    // Not ready yet: wait and ask again.
    let step = awaiting
        .reply(Err(RemoteError::new(ErrorCode::WalletNotReady, "waiting")))
        .unwrap();
    let ConfirmStep::Wait(w) = step else { panic!() };
    let ConfirmStep::CallCosigner(call) = w.done().unwrap() else {
        panic!()
    };
    let (_, awaiting) = call.send(clock().0 + 500).unwrap();
    // Committed at another epoch: refused.
    let e = awaiting
        .reply(Ok(CosignerResponse::ConfirmLifecycle(
            pb::ConfirmLifecycleResponse {
                committed: true,
                epoch: 2,
                confirmed_parties: vec![0, 2],
            },
        )))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidResponse);
    // A failed session ends it with the cosigner's code.
    let ConfirmStep::CallCosigner(call) =
        ConfirmLifecycle::start(&pending, params.clone()).unwrap()
    else {
        panic!()
    };
    let (_, awaiting) = call.send(clock().0).unwrap();
    let e = awaiting
        .reply(Err(RemoteError::new(
            ErrorCode::SessionFailed,
            "digest mismatch",
        )))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionFailed);
    // Past the expiry: a timeout, not an endless poll.
    let ConfirmStep::CallCosigner(call) =
        ConfirmLifecycle::start(&pending, params.clone()).unwrap()
    else {
        panic!()
    };
    let (_, awaiting) = call.send(params.expires_at_ms + 1).unwrap();
    let e = awaiting
        .reply(Err(RemoteError::new(ErrorCode::WalletNotReady, "waiting")))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Timeout);
    // Committed.
    let ConfirmStep::CallCosigner(call) = ConfirmLifecycle::start(&pending, params).unwrap() else {
        panic!()
    };
    let (_, awaiting) = call.send(clock().0).unwrap();
    let ConfirmStep::Done(c) = awaiting
        .reply(Ok(CosignerResponse::ConfirmLifecycle(
            pb::ConfirmLifecycleResponse {
                committed: true,
                epoch: 1,
                confirmed_parties: vec![2, 0],
            },
        )))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!((c.epoch, c.confirmed_parties), (1, vec![0, 2]));
}

/// The cosigner's side of a lifecycle session, as sign-service runs it.
fn cosigner_session(
    f: &Fixture,
    roster: &Roster,
    sid: &str,
    build: impl FnOnce(&[u8]) -> Result<Session, mpc_core::SessionError>,
) -> PartySession {
    let bytes = sid.as_bytes().to_vec();
    let s = build(&bytes);
    PartySession::open(
        SessionId::new(sid.to_string()).unwrap(),
        COSIGNER,
        f.cosigner.identity.clone(),
        roster.clone(),
        move || s,
    )
    .unwrap()
}

/// Runs two user parties' refreshes and the cosigner's sessions room by room.
fn run_all(
    f: &Fixture,
    plan: &LifecyclePlan,
    mut a: LifecycleStep,
    mut b: LifecycleStep,
    roster: &Roster,
) -> (PendingShares, PendingShares) {
    let cosigner_share = |id: &str| f.cosigner.bundle.accounts[id].share.clone();
    loop {
        match (a, b) {
            (LifecycleStep::Done(x), LifecycleStep::Done(y)) => return (*x, *y),
            (LifecycleStep::RunSession(ra), LifecycleStep::RunSession(rb)) => {
                let (sa, ea) = ra.start();
                let (sb, eb) = rb.start();
                assert_eq!(sa.session_id(), sb.session_id());
                assert_eq!(sa.parties(), vec![0, 1, 2]);
                let sid = sa.session_id().to_string();
                let account = sa.account_id().map(str::to_string);
                let c = match (sa.stage(), account) {
                    ("refresh", Some(id)) => cosigner_session(f, roster, &sid, |b| {
                        Session::refresh(b, &cosigner_share(&id), plan.epoch)
                    }),
                    other => panic!("unexpected session {other:?}"),
                };
                let mut out = run_room(vec![sa.open().unwrap(), sb.open().unwrap(), c]);
                let oc = out.pop().unwrap();
                assert!(oc.is_ok(), "cosigner: {oc:?}");
                let ob = out.pop().unwrap();
                let oa = out.pop().unwrap();
                a = ea.finished(oa).unwrap();
                b = eb.finished(ob).unwrap();
            }
            _ => panic!("the parties are out of step"),
        }
    }
}

fn sign_offline(device: &KeyShareBundle, recovery: &KeyShareBundle, wallet: &str, account: &str) {
    let d = Party::new(wallet, device.clone(), "device").unwrap();
    let r = Party::new(wallet, recovery.clone(), "recovery").unwrap();
    let params = OfflineParams {
        account_id: account.into(),
        path: "m".into(),
        preimage: mpc_core::digest::eip191_preimage(b"after the lifecycle"),
        digest: DigestKind::Keccak256,
        chain: ChainStyle::Legacy,
    };
    let mut step = OfflineSign::start(&d, &r, params).unwrap();
    loop {
        step = match step {
            OfflineStep::RunLocal(run) => {
                let (sessions, flow) = run.start();
                let sessions = sessions.open().unwrap();
                flow.finished(mpc_core::local::run_sessions(sessions, None))
                    .unwrap()
            }
            OfflineStep::Done(s) => {
                assert_eq!(
                    s.ethereum_address,
                    d.public_key(account, "m").unwrap().ethereum_address
                );
                return;
            }
        };
    }
}

#[test]
fn a_refresh_runs_for_real_and_the_new_shares_sign_together_not_with_old_ones() {
    let f = fixture();
    let (d, r) = (f.device(), f.recovery());
    let plan = start_refresh(&d, response(d.bundle(), false)).unwrap();
    let roster = Roster::new(vec![
        (0, d.public_identity()),
        (1, f.cosigner.identity.public()),
        (2, r.public_identity()),
    ])
    .unwrap();
    let a = LifecycleRun::start(&d, &plan, None).unwrap();
    let b = LifecycleRun::start(&r, &plan, None).unwrap();
    let (pd, pr) = run_all(f, &plan, a, b, &roster);
    assert_eq!((pd.epoch, pr.epoch), (1, 1));
    assert_eq!(pd.bundle.share_epoch, 1);
    assert_eq!(
        pd.digests, pr.digests,
        "both parties hold the same public data"
    );
    for (id, acct) in &pd.bundle.accounts {
        let old = &d.bundle().accounts[id];
        assert_eq!(acct.public_key, old.public_key);
        assert_eq!(acct.chain_code, old.chain_code);
        assert_ne!(
            mpc_core::lifecycle::public_data_digest(&acct.share, 1).unwrap(),
            mpc_core::lifecycle::public_data_digest(&old.share, 1).unwrap(),
            "the public shares changed"
        );
    }
    let wallet = &f.created.wallet_id;
    let account = f.account(0);
    sign_offline(&pd.bundle, &pr.bundle, wallet, &account);
    // An old share with a new one: refused before any signing (public data differ).
    let d_old = Party::new(wallet, f.device.clone(), "device").unwrap();
    let r_new = Party::new(wallet, pr.bundle.clone(), "recovery").unwrap();
    let params = OfflineParams {
        account_id: account.clone(),
        path: "m".into(),
        preimage: b"x".to_vec(),
        digest: DigestKind::Keccak256,
        chain: ChainStyle::Legacy,
    };
    let mixed = OfflineSign::start(&d_old, &r_new, params).and_then(|step| match step {
        OfflineStep::RunLocal(run) => {
            let (sessions, flow) = run.start();
            let sessions = sessions
                .open()
                .map_err(|e| ClientError::internal(e.to_string()))?;
            flow.finished(mpc_core::local::run_sessions(sessions, None))
                .map(|_| ())
        }
        OfflineStep::Done(_) => Ok(()),
    });
    assert!(
        mixed.is_err(),
        "an old and a new share must not sign together"
    );
    // A session output of another kind, or at the wrong epoch, is refused.
    let LifecycleStep::RunSession(run) = LifecycleRun::start(&d, &plan, None).unwrap() else {
        panic!()
    };
    let (_, running) = run.start();
    let e = running
        .finished(Ok(mpc_core::SessionOutput::RepairHelped))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionFailed);
    let LifecycleStep::RunSession(run) = LifecycleRun::start(&d, &plan, None).unwrap() else {
        panic!()
    };
    let (spec, running) = run.start();
    let same = d.bundle().accounts[spec.account_id().unwrap()]
        .share
        .clone();
    let e = running
        .finished(Ok(mpc_core::SessionOutput::Refreshed(Box::new(
            mpc_core::EpochShare {
                share: same,
                epoch: 0,
            },
        ))))
        .unwrap_err();
    assert!(e.to_string().contains("epoch 0"), "{e}");
}

#[test]
fn a_replacement_is_joined_by_the_new_device_from_the_template_not_by_the_old_one() {
    let f = fixture();
    let r = f.recovery();
    let new = IdentityKey::generate().unwrap();
    let StartStep::CallCosigner(call) = StartLifecycle::replace_device(&r, &new, "lost").unwrap()
    else {
        panic!()
    };
    let (_, awaiting) = call.send(clock().0).unwrap();
    let StartStep::Done(plan) = awaiting
        .reply(Ok(CosignerResponse::Lifecycle(
            CosignerMethod::ReplaceDevice,
            response(r.bundle(), true),
        )))
        .unwrap()
    else {
        panic!()
    };
    let primes = dev_fixture_primes();
    // The old device takes no part.
    assert!(LifecycleRun::start(&f.device(), &plan, Some(primes[0].clone())).is_err());
    // The new device as the browser page runs it: the recovery party's template (JSON)
    // and the cosigner's answer (bytes), checked on its side.
    let template = client_core::lifecycle::NewDeviceTemplate::from_recovery(&r);
    let template: client_core::lifecycle::NewDeviceTemplate =
        serde_json::from_str(&serde_json::to_string(&template).unwrap()).unwrap();
    let bytes = prost::Message::encode_to_vec(&response(r.bundle(), true));
    let page_plan =
        LifecyclePlan::from_bytes_for_new_device(&bytes, &template, new.public()).unwrap();
    let params = NewDeviceParams::from_template(&template, new.clone(), primes[0].clone()).unwrap();
    // Both halves start with the new group's aux info. The sessions themselves run in
    // the replacement tests across real processes (e2e-tests `e2e`, the recovery
    // agent's, sign-service's and Playwright's): each costs a pure-Rust aux-info run.
    for step in [
        LifecycleRun::new_device(params, &page_plan).unwrap(),
        LifecycleRun::start(&r, &plan, Some(primes[2].clone())).unwrap(),
    ] {
        let LifecycleStep::RunSession(run) = step else {
            panic!("a session first")
        };
        let (session, _) = run.start();
        assert_eq!((session.stage(), session.account_id()), ("aux-info", None));
        assert_eq!(session.parties(), vec![0, 1, 2]);
    }
}
