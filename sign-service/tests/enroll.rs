//! Issue 16 item 4, cosigner side: a device enrolls ahead of time (EnrollDevice runs
//! only aux info), and a later CreateWallet with the `enrollment_id` runs only the
//! DKGs. Real `sign-gateway` and `sign-service` processes; the device and recovery
//! parties run in-process.
//!
//! - `an_enrollment_creates_one_wallet_and_survives_a_restart`: enroll (replayed:
//!   refused as a replay; the stored aux
//!   info is sealed: no piece of an aux info's serialization is in the store file),
//!   SIGKILL and restart the cosigner, another device's identity is refused
//!   (`unauthorized`) and an unknown id is `not_found`, then a 2-account wallet from the
//!   enrollment (no aux-info room), confirmed with matching keys, presigns and signs;
//!   a rival wallet created from the same enrollment before that commit cannot commit
//!   (`not_found`, spent), and a new one from the spent enrollment is `not_found`.
//! - `enrollment_admission_and_refusals`: with registration required, EnrollDevice
//!   without a credential is `registration_required`, a credential enrolls once (the
//!   replayed request and another enrollment with it are `registration_required`);
//!   CreateWallet from the enrollment needs no credential (one given is neither checked
//!   nor consumed) and is `wallet_not_ready` (retryable) while the aux info waits for its
//!   peers, another device's is `unauthorized`; once the aux info failed (its peers
//!   never came) the enrollment is `not_found`.
//! - `an_enrollment_refuses_peers_with_public_dev_primes`: in production mode, peers
//!   built from the public test primes are refused (audited), nothing is stored, and
//!   the enrollment is `not_found`.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::*;
use cosigner_api::auth::{self, now_ms};
use cosigner_api::pb::{self, AccountKind, DigestKind, PayloadKind};
use cosigner_api::{registration, RemoteError};
use gateway_client::GatewayClient;
use mpc_core::{Account, AuxInfo};
use mpc_wire::{IdentityKey, PublicIdentity, Roster};
use wallet_types::ErrorCode;

/// An EnrollDevice request of a new device naming a new recovery identity.
fn signed_enroll(
    me: &PublicIdentity,
    credential: &str,
) -> (IdentityKey, IdentityKey, pb::EnrollDeviceRequest) {
    let device = IdentityKey::generate().expect("id");
    let recovery = IdentityKey::generate().expect("id");
    let mut req = pb::EnrollDeviceRequest {
        recovery_identity: recovery.public().to_string(),
        registration_credential: credential.into(),
        ..Default::default()
    };
    auth::sign_device_request(&mut req, &device, me).expect("sign");
    (device, recovery, req)
}

/// A CreateWallet of `accounts` HD accounts from `enrollment_id`, signed by `device`.
fn from_enrollment(
    me: &PublicIdentity,
    device: &IdentityKey,
    recovery: &PublicIdentity,
    enrollment_id: &str,
    accounts: u32,
) -> pb::CreateWalletRequest {
    from_enrollment_with(me, device, recovery, enrollment_id, accounts, "")
}

/// [`from_enrollment`] carrying a registration credential.
fn from_enrollment_with(
    me: &PublicIdentity,
    device: &IdentityKey,
    recovery: &PublicIdentity,
    enrollment_id: &str,
    accounts: u32,
    credential: &str,
) -> pb::CreateWalletRequest {
    let mut req = pb::CreateWalletRequest {
        recovery_identity: recovery.to_string(),
        accounts,
        kind: AccountKind::Hd as i32,
        label: "enrolled".into(),
        enrollment_id: enrollment_id.into(),
        registration_credential: credential.into(),
        ..Default::default()
    };
    auth::sign_device_request(&mut req, device, me).expect("sign");
    req
}

/// The device's (party 0) and the recovery's (party 2) sides of an aux-info session.
async fn both_aux(
    gw: &GatewayClient,
    room: &pb::SessionRoom,
    device: &IdentityKey,
    recovery: &IdentityKey,
    roster: &Roster,
) -> (AuxInfo, AuxInfo) {
    tokio::join!(
        run_party_aux(gw, room, 0, device, roster),
        run_party_aux(gw, room, 2, recovery, roster),
    )
}

/// The device's (party 0) and the recovery's (party 2) sides of every keygen of a
/// wallet created from an enrollment.
async fn both_keygens(
    gw: &GatewayClient,
    created: &pb::CreateWalletResponse,
    device: &IdentityKey,
    recovery: &IdentityKey,
    roster: &Roster,
) -> (Vec<Account>, Vec<Account>) {
    let kind = mpc_core::AccountKind::Hd;
    tokio::join!(
        run_party_keygens(gw, created, 0, device, roster, kind),
        run_party_keygens(gw, created, 2, recovery, roster, kind),
    )
}

/// Whether the audit log records the cosigner's side of enrollment `id` as stored.
fn stored(svc: &Service, id: &str) -> bool {
    svc.audit()
        .lines()
        .any(|l| l.contains("\"enrollment_aux\"") && l.contains(id) && l.contains("\"stored\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_enrollment_creates_one_wallet_and_survives_a_restart() {
    let gw_proc = gateway().await;
    let mut svc = start_service(&gw_proc, "", false).await;
    let mut client = svc.client().await;
    let me = cosigner_identity(&mut client).await;

    // EnrollDevice: one aux-info room, the parties run their side.
    let (device, recovery, req) = signed_enroll(&me, "");
    let enrolled = client
        .enroll_device(req.clone())
        .await
        .expect("enroll")
        .into_inner();
    // The same request again is a replay.
    let e = client.enroll_device(req).await.expect_err("replayed");
    let r = RemoteError::from(&e);
    assert_eq!(r.code, ErrorCode::Unauthorized, "{r}");
    assert!(r.message.contains("replayed"), "{r}");
    assert_eq!(enrolled.cosigner_identity, me.to_string());
    assert!(!enrolled.enrollment_id.is_empty());
    let now = now_ms();
    assert!(enrolled.expires_at_ms > now);
    // The default enrollment lifetime: 30 days.
    let thirty_days = 30 * 86_400_000;
    assert!(
        enrolled.enrollment_expires_at_ms > now + thirty_days - 60_000
            && enrolled.enrollment_expires_at_ms <= now + thirty_days,
        "{}",
        enrolled.enrollment_expires_at_ms
    );
    let room = enrolled.aux_info.clone().expect("aux room");
    assert!(!room.room_token.is_empty());
    let roster =
        Roster::new([(0, device.public()), (1, me), (2, recovery.public())]).expect("roster");
    let gw = GatewayClient::new(&room.gateway_url).expect("gateway client");
    let (device_aux, recovery_aux) = both_aux(&gw, &room, &device, &recovery, &roster).await;
    let id = enrolled.enrollment_id.clone();
    eventually(
        "the cosigner to store the enrollment",
        Duration::from_secs(120),
        || std::future::ready(stored(&svc, &id)),
    )
    .await;

    // Sealed at rest: the cosigner's aux info shares every party's Paillier modulus
    // with the device's, in the same serialization; no 32-byte piece of the device's
    // is in the store file.
    let raw = std::fs::read(svc.dir.0.join("store.redb")).expect("store file");
    let plain = serde_json::to_vec(&device_aux).expect("aux json");
    assert!(plain.len() > 1000);
    let leaked = plain
        .chunks_exact(32)
        .filter(|piece| raw.windows(32).any(|w| w == *piece))
        .count();
    assert_eq!(
        leaked, 0,
        "pieces of aux info in plaintext in the store file"
    );

    // The enrollment is durable: a crash and a restart keep it.
    svc.restart(&[]).await;
    let mut client = svc.client().await;

    // Another device's identity with this enrollment id, or another recovery party.
    let stranger = IdentityKey::generate().expect("id");
    let r = refused(
        &mut client,
        from_enrollment(&me, &stranger, &recovery.public(), &id, 1),
    )
    .await;
    assert_eq!(r.code, ErrorCode::Unauthorized, "{r}");
    let r = refused(
        &mut client,
        from_enrollment(&me, &device, &stranger.public(), &id, 1),
    )
    .await;
    assert_eq!(r.code, ErrorCode::Unauthorized, "{r}");
    // An unknown id.
    let r = refused(
        &mut client,
        from_enrollment(&me, &device, &recovery.public(), "no-such-enrollment", 1),
    )
    .await;
    assert_eq!(r.code, ErrorCode::NotFound, "{r}");
    assert!(!r.retryable);

    // The wallet: only the DKGs run.
    let created = client
        .create_wallet(from_enrollment(&me, &device, &recovery.public(), &id, 2))
        .await
        .expect("create from the enrollment")
        .into_inner();
    assert!(created.aux_info.is_none(), "no aux-info room");
    assert_eq!(created.accounts.len(), 2);
    // A rival wallet from the same enrollment, created before the first is committed.
    let rival = client
        .create_wallet(from_enrollment(&me, &device, &recovery.public(), &id, 1))
        .await
        .expect("a second creation before the first is committed")
        .into_inner();
    let (device_accounts, recovery_accounts) =
        both_keygens(&gw, &created, &device, &recovery, &roster).await;
    let keys: HashMap<String, String> = device_accounts
        .iter()
        .map(|a| (a.id.clone(), a.public_key.clone()))
        .collect();
    for (d, r) in device_accounts.iter().zip(&recovery_accounts) {
        assert_eq!(d.public_key, r.public_key);
    }
    let confirmed =
        confirm_wallet(&mut client, &device, &me, &created.wallet_id, keys.clone()).await;
    assert!(confirmed.committed);
    assert_eq!(confirmed.accounts.len(), 2);
    for a in &confirmed.accounts {
        assert_eq!(
            Some(&a.public_key),
            keys.get(&a.account_id),
            "{}",
            a.account_id
        );
    }

    // It signs: the cosigner's share (stored aux info + its keygen share) presigns with
    // the device's, and the presignature gives a partial signature.
    let w = Wallet {
        id: created.wallet_id.clone(),
        device: device.clone(),
        recovery: recovery.clone(),
        cosigner: me,
        gw: gw.clone(),
        device_aux,
        device_accounts,
        recovery_aux,
        recovery_accounts,
    };
    let path = "m/44/60/0/0/1";
    let presignature = presign_kept_at(&mut client, &w, "account-0", path).await.id;
    let mut sign = pb::SignWithPresignatureRequest {
        auth: None,
        account_id: "account-0".into(),
        presignature_id: presignature,
        preimage: mpc_core::digest::eip191_preimage(b"enrolled"),
        digest: DigestKind::Keccak256 as i32,
        payload_kind: PayloadKind::EthereumMessage as i32,
        derivation_path: path.into(),
        ..Default::default()
    };
    auth::sign_request(&mut sign, &device, &me, &w.id, 0).expect("sign");
    let partial = client
        .sign_with_presignature(sign)
        .await
        .expect("sign with the enrolled wallet")
        .into_inner();
    assert_eq!(partial.partial_signature.len(), 32);

    // Spent: a wallet created from it before the first was committed (a race) cannot
    // commit any more, and a new wallet from it is refused.
    let (rival_device, rival_recovery) =
        both_keygens(&gw, &rival, &device, &recovery, &roster).await;
    assert_eq!(rival_device[0].public_key, rival_recovery[0].public_key);
    let mut confirm = pb::ConfirmWalletRequest {
        auth: None,
        public_keys: HashMap::from([(
            rival_device[0].id.clone(),
            rival_device[0].public_key.clone(),
        )]),
    };
    auth::sign_request(&mut confirm, &device, &me, &rival.wallet_id, 0).expect("sign");
    let e = client
        .confirm_wallet(confirm)
        .await
        .expect_err("a second wallet from one enrollment");
    let r = RemoteError::from(&e);
    assert_eq!(r.code, ErrorCode::NotFound, "{r}");
    assert!(r.message.contains("spent"), "{r}");
    let r = refused(
        &mut client,
        from_enrollment(&me, &device, &recovery.public(), &id, 1),
    )
    .await;
    assert_eq!(r.code, ErrorCode::NotFound, "{r}");
    let audit = svc.audit();
    assert!(audit.contains("\"enroll_device\""), "{audit}");
    assert!(audit.contains(&format!("enrollment {id}")), "{audit}");
    drop(gw_proc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enrollment_admission_and_refusals() {
    let gw_proc = gateway().await;
    let issuer = IdentityKey::generate().expect("id");
    // The enrollments' aux info gives up after 8 s when its peers never come.
    let yaml = format!(
        "dev_open_registration: false\nregistration_issuers: [\"{}\"]\nwallet_creation_timeout_secs: 8\n",
        issuer.public()
    );
    let svc = start_service(&gw_proc, &yaml, false).await;
    let mut client = svc.client().await;
    let me = cosigner_identity(&mut client).await;

    // Registration required: no credential, no enrollment.
    let (_, _, req) = signed_enroll(&me, "");
    let e = client.enroll_device(req).await.expect_err("no credential");
    let r = RemoteError::from(&e);
    assert_eq!(r.code, ErrorCode::RegistrationRequired, "{r}");

    // A credential enrolls once; the same request replayed is refused.
    let credential =
        registration::issue(&issuer, now_ms(), 3_600_000, Some(&me)).expect("credential");
    let (device, recovery, req) = signed_enroll(&me, &credential);
    let enrolled = client
        .enroll_device(req.clone())
        .await
        .expect("enroll")
        .into_inner();
    // Replayed, the request is refused (its credential is spent by then).
    let e = client.enroll_device(req).await.expect_err("replayed");
    let r = RemoteError::from(&e);
    assert_eq!(r.code, ErrorCode::RegistrationRequired, "{r}");
    // The credential was consumed by the enrollment.
    let (_, _, again) = signed_enroll(&me, &credential);
    let e = client.enroll_device(again).await.expect_err("used");
    assert_eq!(RemoteError::from(&e).code, ErrorCode::RegistrationRequired);

    // Nobody runs the parties: the cosigner's aux info waits for them. CreateWallet
    // from the enrollment (no credential needed) is not ready yet, retryably.
    let id = enrolled.enrollment_id.clone();
    let r = refused(
        &mut client,
        from_enrollment(&me, &device, &recovery.public(), &id, 1),
    )
    .await;
    assert_eq!(r.code, ErrorCode::WalletNotReady, "{r}");
    assert!(r.retryable, "{r}");
    // A credential given with the enrollment id is ignored: neither checked (garbage
    // passes) nor consumed (it enrolls another device afterwards).
    let spare = registration::issue(&issuer, now_ms(), 3_600_000, Some(&me)).expect("credential");
    for cred in ["wmreg1.AAAA.AAAA", spare.as_str()] {
        let r = refused(
            &mut client,
            from_enrollment_with(&me, &device, &recovery.public(), &id, 1, cred),
        )
        .await;
        assert_eq!(r.code, ErrorCode::WalletNotReady, "{cred}: {r}");
    }
    let (_, _, other) = signed_enroll(&me, &spare);
    client
        .enroll_device(other)
        .await
        .expect("the credential ignored by CreateWallet is still unused");
    // Another device's identity: unauthorized, even while it runs.
    let stranger = IdentityKey::generate().expect("id");
    let r = refused(
        &mut client,
        from_enrollment(&me, &stranger, &recovery.public(), &id, 1),
    )
    .await;
    assert_eq!(r.code, ErrorCode::Unauthorized, "{r}");

    // Its peers never came: the aux info fails at its deadline and the enrollment is
    // gone (not_found), not stored.
    let mut outcome = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while outcome.is_none() {
        let r = refused(
            &mut client,
            from_enrollment(&me, &device, &recovery.public(), &id, 1),
        )
        .await;
        if r.code != ErrorCode::WalletNotReady {
            outcome = Some(r);
        } else {
            assert!(
                std::time::Instant::now() < deadline,
                "the enrollment never ended"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let r = outcome.expect("an outcome");
    assert_eq!(r.code, ErrorCode::NotFound, "{r}");
    let audit = svc.audit();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"enrollment_aux\"") && l.contains(&id) && l.contains("failed")),
        "{audit}"
    );
    drop(gw_proc);
}

/// Production mode (`insecure_dev_primes: false`, the cosigner's primes from its
/// pool): peers whose Paillier moduli are built from the public test primes are
/// refused at enrollment as at creation, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_enrollment_refuses_peers_with_public_dev_primes() {
    let gw_proc = gateway().await;
    let svc = start_service(&gw_proc, "", true).await;
    let mut client = svc.client().await;
    let me = cosigner_identity(&mut client).await;
    let (device, recovery, req) = signed_enroll(&me, "");
    let enrolled = client
        .enroll_device(req)
        .await
        .expect("enroll")
        .into_inner();
    let room = enrolled.aux_info.clone().expect("aux room");
    let roster =
        Roster::new([(0, device.public()), (1, me), (2, recovery.public())]).expect("roster");
    let gw = GatewayClient::new(&room.gateway_url).expect("gateway client");
    both_aux(&gw, &room, &device, &recovery, &roster).await;
    let id = enrolled.enrollment_id.clone();
    let failed = |svc: &Service| {
        svc.audit().lines().any(|l| {
            l.contains("\"enrollment_aux\"") && l.contains(&id) && l.contains("public test primes")
        })
    };
    eventually(
        "the cosigner to refuse the enrollment",
        Duration::from_secs(120),
        || std::future::ready(failed(&svc)),
    )
    .await;
    assert!(!stored(&svc, &id));
    let r = refused(
        &mut client,
        from_enrollment(&me, &device, &recovery.public(), &id, 1),
    )
    .await;
    assert_eq!(r.code, ErrorCode::NotFound, "{r}");
    drop(gw_proc);
}
