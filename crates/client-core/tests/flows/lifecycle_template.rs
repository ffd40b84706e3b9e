//! A new device that does not run next to the recovery party (the browser page joining
//! the recovery agent's replacement): the template of public facts, the plan as bytes,
//! and a ReplaceDevice request whose proof of possession was made elsewhere.

use crate::common::*;
use client_core::lifecycle::NewDeviceTemplate;
use client_core::*;
use cosigner_api::{auth, pb};
use mpc_core::keystore::KeyShareBundle;
use mpc_core::primes::dev_fixture_primes;
use mpc_wire::IdentityKey;
use prost::Message;
use wallet_types::ErrorCode;

use crate::lifecycle::room;

fn response(bundle: &KeyShareBundle, replace: bool) -> pb::LifecycleResponse {
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

#[test]
fn the_template_carries_public_facts_only_and_round_trips_as_json() {
    let f = fixture();
    let r = f.recovery();
    let t = NewDeviceTemplate::from_recovery(&r);
    assert_eq!(t.wallet_id, f.created.wallet_id);
    assert_eq!(t.recovery_identity, r.public_identity().to_string());
    assert_eq!(t.accounts.len(), r.bundle().accounts.len());
    for (id, a) in &r.bundle().accounts {
        let ta = &t.accounts[id];
        assert_eq!(
            (&ta.public_key, &ta.chain_code, ta.kind),
            (&a.public_key, &a.chain_code, a.kind)
        );
    }
    let json = serde_json::to_string(&t).unwrap();
    assert!(
        !json.contains("identity_secret") && !json.contains("\"x\""),
        "{json}"
    );
    let back: NewDeviceTemplate = serde_json::from_str(&json).unwrap();
    assert_eq!(back, t);

    let new = IdentityKey::generate().unwrap();
    let primes = dev_fixture_primes();
    assert!(NewDeviceParams::from_template(&t, new.clone(), primes[0].clone()).is_ok());
    // The new device cannot reuse the recovery party's identity; the facts must parse.
    let mut bad = t.clone();
    bad.recovery_identity = new.public().to_string();
    let e = NewDeviceParams::from_template(&bad, new.clone(), primes[0].clone()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    let mut bad = t.clone();
    bad.accounts.values_mut().next().unwrap().public_key = "02ff".into();
    let e = NewDeviceParams::from_template(&bad, new.clone(), primes[0].clone()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    let mut bad = t;
    bad.accounts.clear();
    let e = NewDeviceParams::from_template(&bad, new, primes[0].clone()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
}

#[test]
fn a_plan_from_bytes_is_checked_like_the_flows_check_it() {
    let f = fixture();
    let (d, r) = (f.device(), f.recovery());
    let t = NewDeviceTemplate::from_recovery(&r);
    let new = IdentityKey::generate().unwrap().public();

    let refresh = response(d.bundle(), false).encode_to_vec();
    let plan = LifecyclePlan::from_bytes_for_party(LifecycleKind::Refresh, &refresh, &d).unwrap();
    assert_eq!(
        (plan.kind, plan.epoch, plan.accounts.len()),
        (LifecycleKind::Refresh, 0, 2)
    );
    // The old device takes no part in a replacement; garbage does not decode.
    let replace = response(r.bundle(), true).encode_to_vec();
    let e = LifecyclePlan::from_bytes_for_party(LifecycleKind::ReplaceDevice, &replace, &d)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    let e =
        LifecyclePlan::from_bytes_for_party(LifecycleKind::Refresh, b"\xff\xff", &d).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    // A refresh plan carries no aux-info room: refused as a refresh.
    let e = LifecyclePlan::from_bytes_for_party(LifecycleKind::Refresh, &replace, &d).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidResponse);

    let plan = LifecyclePlan::from_bytes_for_new_device(&replace, &t, new).unwrap();
    assert_eq!(plan.new_device, Some(new));
    assert!(plan.aux_info.is_some() && plan.accounts.iter().all(|a| a.repair.is_some()));
    // Another public key, a missing account, a missing repair room: refused.
    let mut bad = response(r.bundle(), true);
    bad.accounts[0].public_key = bad.accounts[1].public_key.clone();
    let e = LifecyclePlan::from_bytes_for_new_device(&bad.encode_to_vec(), &t, new).unwrap_err();
    assert!(e.to_string().contains("public key"), "{e}");
    let mut bad = response(r.bundle(), true);
    bad.accounts.pop();
    let e = LifecyclePlan::from_bytes_for_new_device(&bad.encode_to_vec(), &t, new).unwrap_err();
    assert!(e.to_string().contains("left out"), "{e}");
    let mut bad = response(r.bundle(), true);
    bad.accounts[0].repair = None;
    let e = LifecyclePlan::from_bytes_for_new_device(&bad.encode_to_vec(), &t, new).unwrap_err();
    assert!(e.to_string().contains("repair"), "{e}");
    // A new device only joins with its own identity.
    let params = NewDeviceParams::from_template(
        &t,
        IdentityKey::generate().unwrap(),
        dev_fixture_primes()[0].clone(),
    )
    .unwrap();
    let e = LifecycleRun::new_device(params, &plan).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
}

#[test]
fn a_proof_of_possession_made_elsewhere_is_verified_then_carried_at_its_timestamp() {
    let f = fixture();
    let r = f.recovery();
    let new = IdentityKey::generate().unwrap();
    let (ts, nonce) = (clock().0, [7u8; 16]);
    let msg = StartLifecycle::possession_message(&r, new.public(), ts, &nonce).unwrap();
    let sig = auth::sign_bytes(&new, &msg).unwrap();

    // A signature by another key, or over another timestamp: refused before any call.
    let other = auth::sign_bytes(&IdentityKey::generate().unwrap(), &msg).unwrap();
    let e = StartLifecycle::replace_device_with_possession(&r, new.public(), ts, nonce, other, "")
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    let e =
        StartLifecycle::replace_device_with_possession(&r, new.public(), ts + 1, nonce, sig, "")
            .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    // Only the recovery party asks.
    let e = StartLifecycle::replace_device_with_possession(
        &f.device(),
        new.public(),
        ts,
        nonce,
        sig,
        "",
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Config);

    let StartStep::CallCosigner(call) =
        StartLifecycle::replace_device_with_possession(&r, new.public(), ts, nonce, sig, "lost")
            .unwrap()
    else {
        panic!("a call first")
    };
    // Signed at the proof's timestamp and nonce, whatever the driver's clock says.
    let (req, _awaiting) = call.send(ts + 5_000).unwrap();
    let CosignerRequest::ReplaceDevice(req) = req else {
        panic!("ReplaceDevice")
    };
    let a = req.auth.clone().unwrap();
    assert_eq!(
        (a.timestamp_ms, a.nonce.as_slice(), a.party),
        (ts, &nonce[..], 2)
    );
    assert_eq!(req.new_device_signature, sig.to_vec());
    assert_eq!(req.new_device_identity, new.public().to_string());
    let cosigner = f.cosigner.identity.public();
    auth::verify_request(&req, &r.public_identity(), &cosigner, ts, 60_000).unwrap();
    let msg2 = auth::replace_device_possession_message(
        &a.audience,
        &a.wallet_id,
        &req.new_device_identity,
        a.timestamp_ms,
        &a.nonce,
    );
    assert_eq!(msg2, msg);
}
