//! Issue 17 items 4 and 5 at the system level, with real processes (gateway +
//! cosigner; the device and recovery parties in-process): a proactive refresh
//! (StartRefresh → every party's `Session::refresh` → ConfirmLifecycle by both user
//! parties) and the replacement of a device keeping every address (ReplaceDevice → aux
//! info of the new group, repair of index 0 for the new device, refresh → both
//! confirm), and the attacks on them: a device-signed or badly proven ReplaceDevice, a
//! second session, early, foreign, replayed and mismatching confirmations.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::*;
use cosigner_api::auth::{self, AuthenticatedRequest};
use cosigner_api::pb::{self, DigestKind, PayloadKind};
use cosigner_api::RemoteError;
use mpc_core::{Account, AccountKind, AuxInfo, IncompleteKeyShare, Session, SessionOutput};
use mpc_party::run_session;
use mpc_wire::{IdentityKey, PublicIdentity, Roster};
use tonic::transport::Channel;
use wallet_types::ErrorCode;

type Client = cosigner_api::pb::cosigner_client::CosignerClient<Channel>;

fn signed<R: AuthenticatedRequest>(mut req: R, w: &Wallet, key: &IdentityKey, party: u16) -> R {
    auth::sign_request(&mut req, key, &w.cosigner, &w.id, party).expect("sign");
    req
}

fn list(w: &Wallet, key: &IdentityKey, party: u16) -> pb::ListAccountsRequest {
    signed(pb::ListAccountsRequest { auth: None }, w, key, party)
}

async fn accounts(
    client: &mut Client,
    w: &Wallet,
    key: &IdentityKey,
    party: u16,
) -> Vec<pb::AccountInfo> {
    client
        .list_accounts(list(w, key, party))
        .await
        .expect("ListAccounts")
        .into_inner()
        .accounts
}

fn refresh_req(w: &Wallet, key: &IdentityKey, party: u16) -> pb::StartRefreshRequest {
    signed(pb::StartRefreshRequest { auth: None }, w, key, party)
}

/// A ReplaceDevice signed by `key` as `party`, naming `new` with its proof of
/// possession signed by `prover`.
fn replace_req(
    w: &Wallet,
    key: &IdentityKey,
    party: u16,
    new: &str,
    prover: &IdentityKey,
) -> pb::ReplaceDeviceRequest {
    let mut req = signed(
        pb::ReplaceDeviceRequest {
            auth: None,
            new_device_identity: new.to_string(),
            new_device_signature: Vec::new(),
            reason: "phone fell in the lake".into(),
        },
        w,
        key,
        party,
    );
    let a = req.auth.clone().expect("auth");
    let m = auth::replace_device_possession_message(
        &a.audience,
        &a.wallet_id,
        new,
        a.timestamp_ms,
        &a.nonce,
    );
    req.new_device_signature = auth::sign_bytes(prover, &m).expect("sign").to_vec();
    req
}

fn confirm_req(
    w: &Wallet,
    key: &IdentityKey,
    party: u16,
    lifecycle_id: &str,
    digests: HashMap<String, String>,
) -> pb::ConfirmLifecycleRequest {
    signed(
        pb::ConfirmLifecycleRequest {
            auth: None,
            lifecycle_id: lifecycle_id.into(),
            share_digests: digests,
        },
        w,
        key,
        party,
    )
}

/// The digests a party reports: every account's new share at `epoch`.
fn digests(shares: &[(String, IncompleteKeyShare)], epoch: u64) -> HashMap<String, String> {
    shares
        .iter()
        .map(|(id, s)| {
            let d = mpc_core::lifecycle::public_data_digest(s, epoch).expect("digest");
            (id.clone(), hex::encode(d))
        })
        .collect()
}

fn roster(device: PublicIdentity, w: &Wallet) -> Roster {
    Roster::new([(0, device), (1, w.cosigner), (2, w.recovery.public())]).expect("roster")
}

/// One party's refresh of `share` (epoch `epoch`) in `room`.
async fn refresh_party(
    w: &Wallet,
    room: &pb::SessionRoom,
    me: u16,
    id: &IdentityKey,
    roster: &Roster,
    share: IncompleteKeyShare,
    epoch: u64,
) -> IncompleteKeyShare {
    let sid = room.session_id.clone().into_bytes();
    let out = run_session(
        ctx(&w.gw, room, me, id, roster),
        move || Session::refresh(&sid, &share, epoch),
        |_| {},
    )
    .await
    .expect("refresh session");
    let SessionOutput::Refreshed(new) = out else {
        panic!("refresh output")
    };
    assert_eq!(new.epoch, epoch + 1);
    new.share
}

/// The device and the recovery party refresh every account of `started` (a
/// StartRefresh answer): their new shares.
async fn run_refresh(
    w: &Wallet,
    started: &pb::LifecycleResponse,
) -> (
    Vec<(String, IncompleteKeyShare)>,
    Vec<(String, IncompleteKeyShare)>,
) {
    let r = roster(w.device.public(), w);
    let mut dev = Vec::new();
    let mut rec = Vec::new();
    for a in &started.accounts {
        let room = a.refresh.clone().expect("refresh room");
        let d_share = account_of(&w.device_accounts, &a.account_id).share.clone();
        let r_share = account_of(&w.recovery_accounts, &a.account_id)
            .share
            .clone();
        let (d, rr) = tokio::join!(
            refresh_party(w, &room, 0, &w.device, &r, d_share, started.epoch),
            refresh_party(w, &room, 2, &w.recovery, &r, r_share, started.epoch),
        );
        dev.push((a.account_id.clone(), d));
        rec.push((a.account_id.clone(), rr));
    }
    (dev, rec)
}

fn account_of<'a>(accounts: &'a [Account], id: &str) -> &'a Account {
    accounts.iter().find(|a| a.id == id).expect("account")
}

fn with_share(a: &Account, share: &IncompleteKeyShare) -> Account {
    let mut a = a.clone();
    a.share = share.clone();
    a
}

fn refusal(s: &tonic::Status) -> RemoteError {
    RemoteError::from(s)
}

/// A StartSign of the wallet's device (identity `w.device`) run with `share` + `aux` on
/// the device's side: whether a valid signature came out within a minute.
async fn signs_with(client: &mut Client, w: &Wallet, share: &Account, aux: &AuxInfo) -> bool {
    let req = message_sign_request(w, b"mixed shares");
    let preimage = req.preimage.clone();
    let started = match client.start_sign(req).await {
        Ok(s) => s.into_inner(),
        Err(_) => return false,
    };
    let room = started.session.expect("room");
    let key = share.complete(aux).expect("complete");
    let sid = room.session_id.clone().into_bytes();
    let roster = Roster::new([(0, w.device.public()), (1, w.cosigner)]).expect("roster");
    let data = mpc_core::DigestKind::Keccak256.data_to_sign(&preimage);
    let run = run_session(
        ctx(&w.gw, &room, 0, &w.device, &roster),
        move || Session::sign(&sid, vec![0, 1], key, None, data),
        |_| {},
    );
    match tokio::time::timeout(Duration::from_secs(60), run).await {
        Ok(Ok(SessionOutput::Signature(sig))) => mpc_core::signature::verify_digest(
            &share.master_public_key(),
            &mpc_core::DigestKind::Keccak256.digest(&preimage),
            &sig,
        )
        .is_ok(),
        _ => false,
    }
}

/// Where the tests' HD accounts presign (HD pools live at BIP-44-style paths).
const PRESIGN_PATH: &str = "m/44/60/0/0/0";

fn presig_sign(w: &Wallet, id: &str) -> pb::SignWithPresignatureRequest {
    signed(
        pb::SignWithPresignatureRequest {
            auth: None,
            account_id: "account-0".into(),
            presignature_id: id.into(),
            preimage: mpc_core::digest::eip191_preimage(b"with an old presignature"),
            digest: DigestKind::Keccak256 as i32,
            payload_kind: PayloadKind::EthereumMessage as i32,
            derivation_path: PRESIGN_PATH.into(),
            ..Default::default()
        },
        w,
        &w.device,
        0,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_changes_every_share_and_keeps_every_address() {
    let gw = gateway().await;
    let (svc, wallets) =
        start_service_with_dev_wallets(&gw, "refresh_interval_days: 30\n", &[AccountKind::Hd])
            .await;
    let [mut w] = one(wallets);
    let mut client = svc.client().await;
    let before = accounts(&mut client, &w, &w.recovery, 2).await;
    assert_eq!(before[0].share_epoch, 0);
    let kept = presign_kept_at(&mut client, &w, "account-0", PRESIGN_PATH)
        .await
        .id;

    let started = client
        .start_refresh(refresh_req(&w, &w.device, 0))
        .await
        .expect("StartRefresh")
        .into_inner();
    assert_eq!(started.epoch, 0);
    assert!(started.aux_info.is_none());
    assert_eq!(started.accounts.len(), 1);
    assert!(started.accounts[0].repair.is_none());
    assert_eq!(started.accounts[0].public_key, before[0].public_key);
    let controls = started.controls.clone().expect("controls");
    // The schedule: 30 days after the creation (no refresh yet).
    assert_eq!(
        controls.refresh_due_at_ms,
        1_700_000_000_000 + 30 * 86_400_000
    );

    let (dev, rec) = run_refresh(&w, &started).await;
    let (mut c1, mut c2) = (client.clone(), client.clone());
    let (a, b) = tokio::join!(
        c1.confirm_lifecycle(confirm_req(
            &w,
            &w.device,
            0,
            &started.lifecycle_id,
            digests(&dev, 1)
        )),
        c2.confirm_lifecycle(confirm_req(
            &w,
            &w.recovery,
            2,
            &started.lifecycle_id,
            digests(&rec, 1)
        )),
    );
    for c in [a.expect("device confirms"), b.expect("recovery confirms")] {
        let c = c.into_inner();
        assert!(c.committed);
        assert_eq!(c.epoch, 1);
        assert_eq!(c.confirmed_parties, vec![0, 2]);
    }
    // Idempotent: a party that crashed after the commit learns it (a new request).
    let again = client
        .confirm_lifecycle(confirm_req(
            &w,
            &w.device,
            0,
            &started.lifecycle_id,
            digests(&dev, 1),
        ))
        .await
        .expect("a confirmation after the commit")
        .into_inner();
    assert!(again.committed);
    assert_eq!(again.epoch, 1);

    let after = accounts(&mut client, &w, &w.device, 0).await;
    assert_eq!(after[0].share_epoch, 1);
    assert_eq!(after[0].public_key, before[0].public_key);
    assert_eq!(after[0].chain_code, before[0].chain_code);
    assert_eq!(after[0].ethereum_address, before[0].ethereum_address);
    let listed = client
        .list_accounts(list(&w, &w.device, 0))
        .await
        .expect("ListAccounts")
        .into_inner();
    let due = listed.controls.expect("controls").refresh_due_at_ms;
    assert!(
        due > 1_700_000_000_000 + 30 * 86_400_000,
        "the schedule counts from the refresh"
    );

    // The presignature made with the old shares is gone on the cosigner.
    let e = client
        .sign_with_presignature(presig_sign(&w, &kept))
        .await
        .expect_err("an old presignature");
    assert_eq!(
        refusal(&e).code,
        ErrorCode::PresignatureUnavailable,
        "{e:?}"
    );

    // The old device share with the new cosigner share does not sign.
    let old_device = w.device_accounts[0].clone();
    assert!(!signs_with(&mut client, &w, &old_device, &w.device_aux.clone()).await);

    // The new shares sign (the device's, with the cosigner's new one).
    w.device_accounts[0] = with_share(&old_device, &dev[0].1);
    w.recovery_accounts[0] = with_share(&w.recovery_accounts[0], &rec[0].1);
    full_sign(&mut client, &w, "signed after the refresh").await;
    // A presignature made with the new shares (epoch 1) is used as usual.
    let fresh = presign_kept_at(&mut client, &w, "account-0", PRESIGN_PATH)
        .await
        .id;
    let partial = client
        .sign_with_presignature(presig_sign(&w, &fresh))
        .await
        .expect("a presignature of the new epoch")
        .into_inner();
    assert_eq!(partial.partial_signature.len(), 32);

    let audit = svc.audit();
    assert!(audit.contains("\"event\":\"lifecycle_started\""));
    assert!(audit.contains("\"event\":\"lifecycle_committed\""));
    assert!(audit.contains("1 presignatures deleted"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replaced_device_keeps_every_address_and_the_old_one_is_out_at_once() {
    let gw = gateway().await;
    let (svc, wallets) = start_service_with_dev_wallets(&gw, "", &[AccountKind::Hd]).await;
    let [mut w] = one(wallets);
    let mut client = svc.client().await;
    let before = accounts(&mut client, &w, &w.device, 0).await;
    let kept = presign_kept_at(&mut client, &w, "account-0", PRESIGN_PATH)
        .await
        .id;

    let new = IdentityKey::generate().expect("id");
    let new_hex = new.public().to_string();
    let started = client
        .replace_device(replace_req(&w, &w.recovery, 2, &new_hex, &new))
        .await
        .expect("ReplaceDevice")
        .into_inner();
    assert_eq!(
        started.controls.clone().expect("controls").revoked_parties,
        vec![0]
    );
    assert!(started.aux_info.is_some());

    // The old identity is refused at once, before anything is committed.
    let e = client
        .list_accounts(list(&w, &w.device, 0))
        .await
        .expect_err("the old device right after ReplaceDevice");
    assert_eq!(refusal(&e).code, ErrorCode::Unauthorized);
    let e = client
        .start_refresh(refresh_req(&w, &w.device, 0))
        .await
        .expect_err("the old device starts nothing");
    assert_eq!(refusal(&e).code, ErrorCode::Unauthorized);

    // The new group: aux info, then per account repair (new device) and refresh.
    let r = roster(new.public(), &w);
    let aux_room = started.aux_info.clone().expect("aux room");
    let a = started.accounts[0].clone();
    let repair_room = a.repair.clone().expect("repair room");
    let refresh_room = a.refresh.clone().expect("refresh room");
    let pk: mpc_core::Point = w.device_accounts[0].master_public_key();
    let new_device_side = async {
        let aux = run_party_aux(&w.gw, &aux_room, 0, &new, &r);
        let shares = async {
            let sid = repair_room.session_id.clone().into_bytes();
            let out = run_session(
                ctx(&w.gw, &repair_room, 0, &new, &r),
                move || Session::repair_new(&sid, 0, 0, pk),
                |_| {},
            )
            .await
            .expect("repair");
            let SessionOutput::Repaired(repaired) = out else {
                panic!("repair output")
            };
            assert_eq!(repaired.epoch, 0);
            refresh_party(&w, &refresh_room, 0, &new, &r, repaired.share, 0).await
        };
        tokio::join!(aux, shares)
    };
    let recovery_side = async {
        let aux = run_party_aux(&w.gw, &aux_room, 2, &w.recovery, &r);
        let share = w.recovery_accounts[0].share.clone();
        let helper = {
            let sid = repair_room.session_id.clone().into_bytes();
            let share = share.clone();
            run_session(
                ctx(&w.gw, &repair_room, 2, &w.recovery, &r),
                move || Session::repair_helper(&sid, &share, 0, 0),
                |_| {},
            )
        };
        let refresh = refresh_party(&w, &refresh_room, 2, &w.recovery, &r, share, 0);
        let (aux, helped, refreshed) = tokio::join!(aux, helper, refresh);
        assert!(matches!(
            helped.expect("repair helper"),
            SessionOutput::RepairHelped
        ));
        (aux, refreshed)
    };
    let ((new_aux, new_share), (rec_aux, rec_share)) = tokio::join!(new_device_side, recovery_side);
    let id = a.account_id.clone();
    let dev_digests = digests(&[(id.clone(), new_share.clone())], 1);

    // The old device cannot confirm for the new one.
    let e = client
        .confirm_lifecycle(confirm_req(
            &w,
            &w.device,
            0,
            &started.lifecycle_id,
            dev_digests.clone(),
        ))
        .await
        .expect_err("the old device confirms");
    assert_eq!(refusal(&e).code, ErrorCode::Unauthorized);

    let (mut k0, mut k2) = (client.clone(), client.clone());
    let (c0, c2) = tokio::join!(
        k0.confirm_lifecycle(confirm_req(
            &w,
            &new,
            0,
            &started.lifecycle_id,
            dev_digests.clone()
        )),
        k2.confirm_lifecycle(confirm_req(
            &w,
            &w.recovery,
            2,
            &started.lifecycle_id,
            digests(&[(id.clone(), rec_share.clone())], 1)
        )),
    );
    assert!(c0.expect("the new device confirms").into_inner().committed);
    assert_eq!(c2.expect("recovery confirms").into_inner().epoch, 1);

    // The old identity is still refused; the old device's share cannot sign with the
    // new shares (run under the new identity, which the cosigner accepts).
    let e = client
        .list_accounts(list(&w, &w.device, 0))
        .await
        .expect_err("the old device after the commit");
    assert_eq!(refusal(&e).code, ErrorCode::Unauthorized);
    let old_share = w.device_accounts[0].clone();
    let old_aux = w.device_aux.clone();
    w.device = new.clone();
    let listed = client
        .list_accounts(list(&w, &w.device, 0))
        .await
        .expect("ListAccounts by the new device")
        .into_inner();
    assert_eq!(
        listed.controls.expect("controls").revoked_parties,
        Vec::<u32>::new()
    );
    let after = listed.accounts;
    assert_eq!(after[0].share_epoch, 1);
    assert_eq!(after[0].public_key, before[0].public_key);
    assert_eq!(after[0].ethereum_address, before[0].ethereum_address);
    assert_eq!(after[0].chain_code, before[0].chain_code);
    assert!(!signs_with(&mut client, &w, &old_share, &old_aux).await);
    // The old device's presignature is gone (purged at the revocation).
    let e = client
        .sign_with_presignature(presig_sign(&w, &kept))
        .await
        .expect_err("an old presignature");
    assert_eq!(refusal(&e).code, ErrorCode::PresignatureUnavailable);

    // The new device signs with the cosigner.
    w.device_aux = new_aux;
    w.device_accounts[0] = with_share(&old_share, &new_share);
    w.recovery_aux = rec_aux;
    w.recovery_accounts[0] = with_share(&w.recovery_accounts[0], &rec_share);
    full_sign(&mut client, &w, "signed by the new device").await;

    let audit = svc.audit();
    assert!(audit.contains("\"event\":\"device_revoked\""));
    assert!(audit.contains("device identity replaced by"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replace_device_refuses_the_device_a_bad_proof_and_a_bad_identity() {
    let gw = gateway().await;
    let (svc, wallets) = start_service_with_dev_wallets(&gw, "", &[AccountKind::Independent]).await;
    let [w] = one(wallets);
    let mut client = svc.client().await;
    let new = IdentityKey::generate().expect("id");
    let new_hex = new.public().to_string();

    // Signed by the device (a thief replacing the owner's recovery plan): refused.
    let e = client
        .replace_device(replace_req(&w, &w.device, 0, &new_hex, &new))
        .await
        .expect_err("device-signed");
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert_eq!(refusal(&e).code, ErrorCode::Unauthorized);
    // A possession proof by another key: the recovery party names a key nobody holds.
    let other = IdentityKey::generate().expect("id");
    let e = client
        .replace_device(replace_req(&w, &w.recovery, 2, &new_hex, &other))
        .await
        .expect_err("bad proof");
    assert_eq!(refusal(&e).code, ErrorCode::Unauthorized);
    // A proof bound to another request (its nonce) does not carry over.
    let mut moved = replace_req(&w, &w.recovery, 2, &new_hex, &new);
    let fresh = replace_req(&w, &w.recovery, 2, &new_hex, &other);
    moved.auth = fresh.auth;
    let e = client
        .replace_device(moved)
        .await
        .expect_err("a proof of another request");
    assert_eq!(refusal(&e).code, ErrorCode::Unauthorized);
    // Bad identities: malformed, the recovery's own, the current device's.
    for (bad, prover) in [
        ("nonsense".to_string(), &new),
        (w.recovery.public().to_string(), &w.recovery),
        (w.device.public().to_string(), &w.device),
    ] {
        let e = client
            .replace_device(replace_req(&w, &w.recovery, 2, &bad, prover))
            .await
            .expect_err("a bad identity");
        assert_eq!(refusal(&e).code, ErrorCode::InvalidInput, "{bad}: {e:?}");
    }
    // Nothing was revoked: the device still acts.
    let l = client
        .list_accounts(list(&w, &w.device, 0))
        .await
        .expect("the device still acts")
        .into_inner();
    assert!(l.controls.expect("controls").revoked_parties.is_empty());
    assert_eq!(l.accounts[0].share_epoch, 0);

    // A frozen wallet refreshes nothing, but its device can be replaced (a lost device
    // is the reason to freeze).
    client
        .freeze_wallet(signed(
            pb::FreezeWalletRequest {
                auth: None,
                reason: "lost".into(),
            },
            &w,
            &w.device,
            0,
        ))
        .await
        .expect("freeze");
    let e = client
        .start_refresh(refresh_req(&w, &w.recovery, 2))
        .await
        .expect_err("a frozen wallet refreshes nothing");
    assert_eq!(refusal(&e).code, ErrorCode::WalletNotReady);
    assert!(matches!(
        refusal(&e).wallet_refusal,
        Some(cosigner_api::WalletRefusal::Frozen { .. })
    ));
    let started = client
        .replace_device(replace_req(&w, &w.recovery, 2, &new_hex, &new))
        .await
        .expect("ReplaceDevice of a frozen wallet")
        .into_inner();
    let c = started.controls.expect("controls");
    assert!(c.frozen);
    assert_eq!(c.revoked_parties, vec![0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_refresh_changes_nothing() {
    let gw = gateway().await;
    let (svc, wallets) = start_service_with_dev_wallets(
        &gw,
        "lifecycle_timeout_secs: 10\nconfirm_wait_secs: 0\n",
        &[AccountKind::Independent],
    )
    .await;
    let [w] = one(wallets);
    let mut client = svc.client().await;
    let started = client
        .start_refresh(refresh_req(&w, &w.device, 0))
        .await
        .expect("StartRefresh")
        .into_inner();
    let now = cosigner_api::auth::now_ms();
    assert!(started.expires_at_ms > now && started.expires_at_ms <= now + 11_000);
    tokio::time::sleep(Duration::from_millis(
        started.expires_at_ms.saturating_sub(now) + 500,
    ))
    .await;
    // Expired: unknown to ConfirmLifecycle, and a new one may start.
    let d: HashMap<String, String> = [("account-0".to_string(), "00".repeat(32))]
        .into_iter()
        .collect();
    let e = client
        .confirm_lifecycle(confirm_req(&w, &w.device, 0, &started.lifecycle_id, d))
        .await
        .expect_err("an expired session");
    assert_eq!(refusal(&e).code, ErrorCode::NotFound);
    assert_eq!(
        accounts(&mut client, &w, &w.device, 0).await[0].share_epoch,
        0
    );
    client
        .start_refresh(refresh_req(&w, &w.recovery, 2))
        .await
        .expect("a new refresh once the old one expired");
    full_sign(&mut client, &w, "still epoch 0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mismatch_ends_the_refresh_and_changes_nothing() {
    let gw = gateway().await;
    let (svc, wallets) =
        start_service_with_dev_wallets(&gw, "confirm_wait_secs: 1\n", &[AccountKind::Independent])
            .await;
    let [w] = one(wallets);
    let mut client = svc.client().await;

    let started = client
        .start_refresh(refresh_req(&w, &w.device, 0))
        .await
        .expect("StartRefresh")
        .into_inner();
    // One lifecycle session at a time.
    let e = client
        .start_refresh(refresh_req(&w, &w.recovery, 2))
        .await
        .expect_err("a second StartRefresh");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert_eq!(refusal(&e).code, ErrorCode::Busy);
    let new = IdentityKey::generate().expect("id");
    let e = client
        .replace_device(replace_req(
            &w,
            &w.recovery,
            2,
            &new.public().to_string(),
            &new,
        ))
        .await
        .expect_err("a replacement beside the refresh");
    assert_eq!(refusal(&e).code, ErrorCode::Busy);

    // Before the sessions ran: not ready, retryable.
    let id = "account-0".to_string();
    let fake: HashMap<String, String> = [(id.clone(), "00".repeat(32))].into_iter().collect();
    let e = client
        .confirm_lifecycle(confirm_req(
            &w,
            &w.device,
            0,
            &started.lifecycle_id,
            fake.clone(),
        ))
        .await
        .expect_err("too early");
    assert_eq!(e.code(), tonic::Code::Unavailable);
    let early = refusal(&e);
    assert_eq!(early.code, ErrorCode::WalletNotReady);
    assert!(early.retryable);
    // A stranger signing as the recovery party, and a third party index.
    let stranger = IdentityKey::generate().expect("id");
    let e = client
        .confirm_lifecycle(confirm_req(
            &w,
            &stranger,
            2,
            &started.lifecycle_id,
            fake.clone(),
        ))
        .await
        .expect_err("a stranger");
    assert_eq!(refusal(&e).code, ErrorCode::Unauthorized);
    let mut third = confirm_req(&w, &w.device, 0, &started.lifecycle_id, fake.clone());
    if let Some(a) = third.auth.as_mut() {
        a.party = 1;
    }
    let e = client.confirm_lifecycle(third).await.expect_err("party 1");
    assert_eq!(refusal(&e).code, ErrorCode::Unauthorized);

    let (dev, rec) = run_refresh(&w, &started).await;
    // The device confirms: recorded, waiting for the recovery party.
    let ok = confirm_req(&w, &w.device, 0, &started.lifecycle_id, digests(&dev, 1));
    let e = client
        .confirm_lifecycle(ok.clone())
        .await
        .expect_err("waiting for the other party");
    assert_eq!(refusal(&e).code, ErrorCode::WalletNotReady);
    // The same request again: a replay.
    let e = client.confirm_lifecycle(ok).await.expect_err("a replay");
    assert_eq!(refusal(&e).code, ErrorCode::Unauthorized);
    // The recovery party reports another digest: the session ends, nothing changes.
    let mut wrong = digests(&rec, 1);
    wrong.insert(id.clone(), "11".repeat(32));
    let e = client
        .confirm_lifecycle(confirm_req(
            &w,
            &w.recovery,
            2,
            &started.lifecycle_id,
            wrong,
        ))
        .await
        .expect_err("a mismatch");
    assert_eq!(refusal(&e).code, ErrorCode::SessionFailed);
    // Ended: even the right digests no longer commit it.
    let e = client
        .confirm_lifecycle(confirm_req(
            &w,
            &w.recovery,
            2,
            &started.lifecycle_id,
            digests(&rec, 1),
        ))
        .await
        .expect_err("the session is over");
    assert_eq!(refusal(&e).code, ErrorCode::NotFound);

    let after = accounts(&mut client, &w, &w.device, 0).await;
    assert_eq!(after[0].share_epoch, 0);
    // The old shares still sign; a new refresh may start.
    full_sign(&mut client, &w, "the old shares still sign").await;
    client
        .start_refresh(refresh_req(&w, &w.recovery, 2))
        .await
        .expect("a new refresh after the failed one");
}

/// Defence in depth: a presignature the cosigner holds from another share epoch (one
/// that escaped the commit's purge, e.g. a presign session finishing after it) never
/// signs: refused exactly as an unknown one. Set up by hand in the store (the service
/// stopped): three presignatures re-stored after a commit, tagged with the old epoch,
/// with no tag (a record from before epochs existed) and with the new epoch (the
/// control: the same material signs once its tag matches).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_presignature_of_another_epoch_never_signs() {
    use sign_service::store::{KeySource, LifecycleCommit, PresigSlot, PresigTake, Store};
    let gw = gateway().await;
    let (mut svc, wallets) =
        start_service_with_dev_wallets(&gw, "", &[AccountKind::Independent]).await;
    let [w] = one(wallets);
    let mut client = svc.client().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(presign_one(&mut client, &w, "account-0").await);
    }
    drop(client);
    svc.kill();
    {
        let store =
            Store::open(&svc.dir.0.join("store.redb"), &KeySource::InsecureDev).expect("store");
        let slot = PresigSlot {
            wallet_id: w.id.clone(),
            account_id: "account-0".into(),
            party: 0,
            path: sign_service::store::ROOT_PATH.into(),
        };
        let mut records = Vec::new();
        for id in &ids {
            let PresigTake::Taken(v) = store
                .take_presignature::<serde_json::Value>(&slot, id, 1)
                .expect("take")
            else {
                panic!("presignature {id} not stored")
            };
            assert_eq!(v["share_epoch"], 0, "stored with the wallet's epoch");
            records.push(v);
        }
        let wallet = store.get_wallet(&w.id).expect("read").expect("wallet");
        let committed = store
            .commit_lifecycle(&LifecycleCommit {
                wallet_id: w.id.clone(),
                from_epoch: 0,
                shares: wallet
                    .accounts
                    .iter()
                    .map(|(id, a)| (id.clone(), a.share.clone()))
                    .collect(),
                replacement: None,
                now_ms: 2,
            })
            .expect("commit");
        assert!(matches!(
            committed,
            sign_service::store::LifecycleOutcome::Committed { epoch: 1, .. }
        ));
        let [mut old, mut legacy, mut current] =
            <[serde_json::Value; 3]>::try_from(records).expect("three");
        old["share_epoch"] = 0.into();
        legacy
            .as_object_mut()
            .expect("an object")
            .remove("share_epoch");
        current["share_epoch"] = 1.into();
        for (id, v) in [("old", &old), ("legacy", &legacy), ("current", &current)] {
            store.put_presignature(&slot, id, v).expect("put");
        }
    }
    svc.restart(&[]).await;
    let mut client = svc.client().await;
    for id in ["old", "legacy"] {
        let e = client
            .sign_with_presignature(presig_sign_root(&w, id))
            .await
            .expect_err("a presignature of epoch 0 at epoch 1");
        let e = refusal(&e);
        assert_eq!(e.code, ErrorCode::PresignatureUnavailable, "{id}");
        assert_eq!(
            e.presignature,
            Some(cosigner_api::PresignatureState::Unknown),
            "{id}"
        );
    }
    client
        .sign_with_presignature(presig_sign_root(&w, "current"))
        .await
        .expect("the same material tagged with the wallet's epoch");
    assert!(svc
        .audit()
        .contains("presignature of share epoch 0, the wallet is at 1"));
}

fn presig_sign_root(w: &Wallet, id: &str) -> pb::SignWithPresignatureRequest {
    let mut req = presig_sign(w, id);
    req.derivation_path = String::new();
    signed(req, w, &w.device, 0)
}
