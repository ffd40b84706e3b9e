//! A refresh and a device replacement end to end.

use super::*;

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
    // Retired now, not merely revoked: still told why, by code.
    assert_eq!(refusal(&e).code, ErrorCode::Unauthorized);
    assert_eq!(
        refusal(&e).wallet_refusal,
        Some(WalletRefusal::IdentityRevoked)
    );
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
