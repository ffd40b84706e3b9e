//! Typed errors a mobile app switches on, checked without a cosigner.

use mpc_client::*;
use mpc_core::keystore::{KdfParams, KeyShareBundle};

fn cfg(dir: &std::path::Path) -> MpcConfig {
    let mut c = MpcConfig::new(dir.join("device.json").display().to_string(), "device pw");
    c.recovery_path = Some(dir.join("recovery.json").display().to_string());
    c.recovery_passphrase = Some("recovery pw".into());
    // Nobody listens on port 9 of loopback.
    c.cosigner_url = "http://127.0.0.1:9".into();
    c.request_timeout_secs = 2;
    // Short passphrases on purpose (the strength check has its own test).
    c.allow_weak_passphrase = true;
    c
}

#[tokio::test]
async fn config_and_file_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let mut bad = cfg(d);
    bad.key_share_path = String::new();
    assert!(matches!(new_mpc_client(bad), Err(MpcError::Config { .. })));
    let mut bad = cfg(d);
    bad.sign_timeout_secs = 0;
    assert!(matches!(new_mpc_client(bad), Err(MpcError::Config { .. })));
    let mut bad = cfg(d);
    bad.role = PartyRole::Recovery;
    bad.recovery_path = None;
    assert!(matches!(new_mpc_client(bad), Err(MpcError::Config { .. })));

    // No wallet yet.
    let client = new_mpc_client(cfg(d)).unwrap();
    let e = client.list_accounts().await.unwrap_err();
    assert!(matches!(e, MpcError::NoWallet { .. }), "{e}");

    // Invalid input is refused before anything else.
    let e = client
        .sign_tx(
            "a".into(),
            "m/44'/60".into(),
            vec![1],
            DigestKind::Keccak256,
            PayloadKind::Raw,
            ChainStyle::Legacy,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, MpcError::InvalidInput { .. }), "{e}");
    let e = client
        .sign_tx(
            "a".into(),
            "m".into(),
            vec![],
            DigestKind::Keccak256,
            PayloadKind::Raw,
            ChainStyle::Legacy,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, MpcError::InvalidInput { .. }), "{e}");

    // Unreachable cosigner: typed, before any prime work.
    let e = client
        .create_wallet(1, AccountKind::Hd, String::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, MpcError::CosignerUnavailable { .. }), "{e}");
    let e = client
        .create_wallet(0, AccountKind::Hd, String::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, MpcError::InvalidInput { .. }), "{e}");

    // A key-gen style file (no identity, no metadata) and a wrong passphrase.
    let mut b = KeyShareBundle::new(0);
    b.identity_secret = None;
    b.save(
        &d.join("device.json"),
        "device pw",
        KdfParams::insecure_for_tests(),
    )
    .unwrap();
    let e = new_mpc_client(cfg(d))
        .unwrap()
        .list_accounts()
        .await
        .unwrap_err();
    assert!(matches!(e, MpcError::CorruptFile { .. }), "{e}");
    let mut wrong = cfg(d);
    wrong.passphrase = "not it".into();
    let e = new_mpc_client(wrong)
        .unwrap()
        .list_accounts()
        .await
        .unwrap_err();
    assert!(matches!(e, MpcError::WrongPassphrase { .. }), "{e}");

    // Existing files are never overwritten.
    let e = client
        .create_wallet(1, AccountKind::Hd, String::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, MpcError::WalletExists { .. }), "{e}");

    // Independent verification helper.
    let e = verify_ethereum(b"x", "00", "0x00").unwrap_err();
    assert!(matches!(e, MpcError::InvalidInput { .. }), "{e}");
}
