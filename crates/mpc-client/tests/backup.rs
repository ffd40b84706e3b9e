//! Backups of a party's shares (`export_backup` / `import_backup`) on the committed test
//! wallet (`testing/fixtures/dev-wallet.json`): no plaintext key material in the file,
//! the key-share file format, wrong passphrase and another wallet's share refused with
//! nothing written, idempotent re-import, the same keys after a restore. Signing with
//! the cosigner after a restore is the end-to-end test's part
//! (`testing/e2e-tests/tests/backup.rs`).

use std::path::{Path, PathBuf};

use mpc_client::*;
use mpc_core::keystore::KeyShareBundle;

const WALLET: &str = include_str!("../../../testing/fixtures/dev-wallet.json");
const DEVICE_PASS: &str = "device file passphrase";
const RECOVERY_PASS: &str = "recovery file passphrase";
const BACKUP_PASS: &str = "a separate backup passphrase";

fn fixture_bundle(party: u16) -> KeyShareBundle {
    let v: serde_json::Value = serde_json::from_str(WALLET).unwrap();
    let b = v["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["party_index"] == party)
        .unwrap();
    serde_json::from_value(b.clone()).unwrap()
}

fn meta(wallet_id: &str, party: u16) -> WalletMeta {
    WalletMeta {
        format: WALLET_META_FORMAT.into(),
        wallet_id: wallet_id.into(),
        party_index: party,
        cosigner_url: "http://127.0.0.1:9".into(),
        label: "backup test".into(),
        created_at_ms: 1,
    }
}

fn cfg(dir: &Path) -> MpcConfig {
    let mut c = MpcConfig::new(dir.join("device.json").display().to_string(), DEVICE_PASS);
    c.recovery_path = Some(dir.join("recovery.json").display().to_string());
    c.recovery_passphrase = Some(RECOVERY_PASS.into());
    c.cosigner_url = "http://127.0.0.1:9".into();
    c.insecure_fast_kdf = true;
    c
}

/// A directory with both user parties' files of the dev wallet under `wallet_id`.
fn wallet_dir(wallet_id: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (party, file, pass) in [
        (0, "device.json", DEVICE_PASS),
        (2, "recovery.json", RECOVERY_PASS),
    ] {
        save_party_files(
            &dir.path().join(file),
            pass,
            true,
            &meta(wallet_id, party),
            &fixture_bundle(party),
        )
        .unwrap();
    }
    dir
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    v.sort();
    v
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn export_holds_no_plaintext_and_is_a_key_share_file() {
    let src = wallet_dir("w-backup");
    let client = new_mpc_client(cfg(src.path())).unwrap();
    let bytes = client
        .export_backup(PartyRole::Device, BACKUP_PASS.into())
        .await
        .unwrap();

    let bundle = fixture_bundle(0);
    let mut secrets: Vec<String> = bundle
        .accounts
        .values()
        .map(|a| {
            serde_json::to_value(&a.share).unwrap()["x"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    secrets.push(bundle.identity_secret.clone().unwrap());
    assert!(secrets.len() >= 2);
    let lower = String::from_utf8_lossy(&bytes).to_lowercase();
    for s in &secrets {
        let raw = hex::decode(s).unwrap();
        assert_eq!(raw.len(), 32, "a 32-byte secret scalar");
        assert!(
            !lower.contains(&s.to_lowercase()),
            "hex secret in the backup"
        );
        assert!(!contains(&bytes, &raw), "raw secret bytes in the backup");
        let b64 = base64_of(&raw);
        assert!(!String::from_utf8_lossy(&bytes).contains(&b64));
    }
    // The key-share file format: the keystore reads it as it is.
    let text = std::str::from_utf8(&bytes).unwrap();
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(v["format"], "wallet-mpc/key-shares");
    assert_eq!(v["kdf"]["name"], "argon2id");
    assert_eq!(v["wallet"]["wallet_id"], "w-backup");
    let back = KeyShareBundle::decrypt(text, BACKUP_PASS).unwrap();
    assert_eq!(back.party_index, 0);
    assert_eq!(back.identity_secret, bundle.identity_secret);
    // Not under the file's own passphrase.
    assert!(KeyShareBundle::decrypt(text, DEVICE_PASS).is_err());

    // A weak backup passphrase is refused unless overridden.
    let mut strict = cfg(src.path());
    strict.insecure_fast_kdf = false;
    let e = new_mpc_client(strict)
        .unwrap()
        .export_backup(PartyRole::Device, "short".into())
        .await
        .unwrap_err();
    assert!(matches!(e, MpcError::InvalidInput { .. }), "{e}");
}

fn base64_of(b: &[u8]) -> String {
    // Standard base64 without the crate: enough to search for the encoding of a secret.
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

#[tokio::test]
async fn import_restores_the_same_keys_and_is_idempotent() {
    let src = wallet_dir("w-restore");
    let source = new_mpc_client(cfg(src.path())).unwrap();
    let device = source
        .export_backup(PartyRole::Device, BACKUP_PASS.into())
        .await
        .unwrap();
    let recovery = source
        .export_backup(PartyRole::Recovery, BACKUP_PASS.into())
        .await
        .unwrap();

    let dst = tempfile::tempdir().unwrap();
    let target = new_mpc_client(cfg(dst.path())).unwrap();
    let done = target
        .import_backup(device.clone(), BACKUP_PASS.into())
        .await
        .unwrap();
    assert_eq!(done.wallet_id, "w-restore");
    assert_eq!(done.party_index, 0);
    assert!(!done.already_present);
    assert_eq!(
        done.path,
        dst.path().join("device.json").display().to_string()
    );
    assert_eq!(target.wallet_id().await.unwrap(), "w-restore");
    // The same accounts, keys and addresses.
    assert_eq!(
        target.list_accounts().await.unwrap(),
        source.list_accounts().await.unwrap()
    );
    for a in source.list_accounts().await.unwrap() {
        for path in ["m", "m/44/60/0/0/0"] {
            assert_eq!(
                target
                    .get_public_key(a.account_id.clone(), path.into())
                    .await
                    .unwrap(),
                source
                    .get_public_key(a.account_id.clone(), path.into())
                    .await
                    .unwrap()
            );
        }
    }
    // The restored file opens under the client's own passphrase, holding the same share.
    let restored = KeyShareBundle::load(&dst.path().join("device.json"), DEVICE_PASS).unwrap();
    assert_eq!(
        serde_json::to_string(&restored).unwrap(),
        serde_json::to_string(&fixture_bundle(0)).unwrap()
    );

    // The identical share again: accepted, nothing written.
    let before = files(dst.path());
    let again = target
        .import_backup(device, BACKUP_PASS.into())
        .await
        .unwrap();
    assert!(again.already_present);
    assert_eq!(files(dst.path()), before);

    // The recovery party's backup goes to the recovery file.
    let r = target
        .import_backup(recovery, BACKUP_PASS.into())
        .await
        .unwrap();
    assert_eq!(r.party_index, 2);
    assert_eq!(
        r.path,
        dst.path().join("recovery.json").display().to_string()
    );
    // Both restored shares sign together without the cosigner.
    let accounts = target.list_accounts().await.unwrap();
    let sig = target
        .offline_sign_message(
            accounts[0].account_id.clone(),
            "m".into(),
            b"restored".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(sig.ethereum_address, accounts[0].ethereum_address);
}

#[tokio::test]
async fn bad_backups_and_other_wallets_are_refused_with_nothing_written() {
    let src = wallet_dir("w-mine");
    let source = new_mpc_client(cfg(src.path())).unwrap();
    let backup = source
        .export_backup(PartyRole::Device, BACKUP_PASS.into())
        .await
        .unwrap();

    // Wrong passphrase.
    let dst = tempfile::tempdir().unwrap();
    let target = new_mpc_client(cfg(dst.path())).unwrap();
    let e = target
        .import_backup(backup.clone(), "not the backup passphrase".into())
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::WrongPassphrase), "{e}");
    assert_eq!(e.code(), ErrorCode::WrongPassphrase);
    // A modified backup reads the same.
    let mut v: serde_json::Value = serde_json::from_slice(&backup).unwrap();
    v["kdf"]["t_cost"] = 2.into();
    let e = target
        .import_backup(serde_json::to_vec(&v).unwrap(), BACKUP_PASS.into())
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::WrongPassphrase), "{e}");
    // Not a backup: garbage, a bare key-share file (no wallet id), a party mismatch.
    for bad in [
        b"{not json".to_vec(),
        vec![0xff, 0xfe],
        std::fs::read(src.path().join("device.json")).unwrap(),
        {
            let mut v: serde_json::Value = serde_json::from_slice(&backup).unwrap();
            v["wallet"]["party_index"] = 2.into();
            serde_json::to_vec(&v).unwrap()
        },
    ] {
        let e = target
            .import_backup(bad, BACKUP_PASS.into())
            .await
            .unwrap_err();
        assert!(matches!(e, BackupError::NotABackup { .. }), "{e}");
        assert_eq!(e.code(), ErrorCode::Storage);
    }
    assert_eq!(files(dst.path()), Vec::new(), "something was written");

    // Another wallet's share in the way: refused, naming both wallets; untouched.
    let other = wallet_dir("w-other");
    let before = files(other.path());
    let e = new_mpc_client(cfg(other.path()))
        .unwrap()
        .import_backup(backup.clone(), BACKUP_PASS.into())
        .await
        .unwrap_err();
    match &e {
        BackupError::OtherWallet {
            existing_wallet_id,
            backup_wallet_id,
            ..
        } => assert_eq!(
            (existing_wallet_id.as_str(), backup_wallet_id.as_str()),
            ("w-other", "w-mine")
        ),
        other => panic!("expected OtherWallet, got {other}"),
    }
    assert_eq!(e.code(), ErrorCode::WalletExists);
    assert!(e.to_string().contains("w-other") && e.to_string().contains("w-mine"));
    assert_eq!(files(other.path()), before);

    // The same wallet's party 0 file holding another share: refused.
    let dir = tempfile::tempdir().unwrap();
    save_party_files(
        &dir.path().join("device.json"),
        DEVICE_PASS,
        true,
        &meta("w-mine", 0),
        &{
            let mut b = fixture_bundle(0);
            b.accounts.pop_last();
            b
        },
    )
    .unwrap();
    let before = files(dir.path());
    let e = new_mpc_client(cfg(dir.path()))
        .unwrap()
        .import_backup(backup, BACKUP_PASS.into())
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::DifferentShare { .. }), "{e}");
    assert_eq!(files(dir.path()), before);
}
