//! The quick start as real processes: `key-gen --insecure-dev-primes` writes the three
//! share files; `sign-service import` refuses the cosigner's file without
//! `--insecure-dev-primes` and imports it with the flag (the wallet flagged in the
//! audit log); then `sign-gateway` + `sign-service` run and the `client` binary signs
//! with the imported wallet (device + cosigner, and recovery + cosigner). Each
//! signature is checked here with k256, independently of the wallet's code.
//!
//! key-gen writes no identity keys and no `.wallet.json` files (the client needs them),
//! so this test adds them: the device and recovery identities go into all three files'
//! `peers` before the import, and the cosigner's identity (printed by the import) into
//! the device's and recovery's files after it.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;
use gateway_tests::process::TempDir;
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use mpc_core::keystore::{KdfParams, KeyShareBundle};
use mpc_wire::IdentityKey;
use sha3::{Digest, Keccak256};

const PASS: [&str; 3] = [
    "import test device passphrase",
    "import test service passphrase",
    "import test recovery passphrase",
];
const ENV: [&str; 3] = [
    "WALLET_CLIENT_PASSPHRASE",
    "WALLET_SERVICE_PASSPHRASE",
    "WALLET_RECOVERY_PASSPHRASE",
];
const FILES: [&str; 3] = [
    "client_key_shares.json",
    "service_key_shares.json",
    "recovery_key_shares.json",
];

fn ok(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn eth_address(vk: &VerifyingKey) -> String {
    let pt = vk.to_encoded_point(false);
    let h = Keccak256::digest(&pt.as_bytes()[1..]);
    format!("0x{}", hex::encode(&h[12..]))
}

/// Checks the client's signature JSON over an EIP-191 message against `address`.
fn verify(message: &str, sig: &serde_json::Value, address: &str) {
    let mut preimage = format!("\x19Ethereum Signed Message:\n{}", message.len()).into_bytes();
    preimage.extend_from_slice(message.as_bytes());
    let digest: [u8; 32] = Keccak256::digest(&preimage).into();
    assert_eq!(sig["digest"], hex::encode(digest), "{sig}");
    let field = |k: &str| hex::decode(sig[k].as_str().expect(k)).expect("hex");
    let mut rs = field("r");
    rs.extend(field("s"));
    let signature = Signature::from_slice(&rs).expect("r||s");
    assert!(signature.normalize_s().is_none(), "s is not low");
    let y = sig["y_parity"].as_u64().expect("y_parity") as u8;
    let vk = VerifyingKey::recover_from_prehash(
        &digest,
        &signature,
        RecoveryId::from_byte(y).expect("recid"),
    )
    .expect("recover");
    assert!(eth_address(&vk).eq_ignore_ascii_case(address), "{sig}");
}

fn load(dir: &Path, i: usize) -> KeyShareBundle {
    KeyShareBundle::load(&dir.join(FILES[i]), PASS[i]).expect("load share file")
}

fn save(dir: &Path, i: usize, b: &KeyShareBundle) {
    b.save(
        &dir.join(FILES[i]),
        PASS[i],
        KdfParams::insecure_for_tests(),
    )
    .expect("save share file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_gen_import_and_sign_with_the_client() {
    let key_gen = root_bin("KEY_GEN_BIN", "wallet-cli", "key-gen");
    let client_bin = root_bin("CLIENT_BIN", "wallet-cli", "client");
    let gw = gateway().await;
    let shares = TempDir::new("sign-service-import-shares").expect("tempdir");
    let dir = &shares.0;

    // 1. key-gen with the public dev primes.
    let mut cmd = Command::new(&key_gen);
    cmd.args(["--insecure-dev-primes", "--insecure-fast-kdf", "--out-dir"])
        .arg(dir);
    for i in 0..3 {
        cmd.env(ENV[i], PASS[i]);
    }
    ok("key-gen", &cmd.output().expect("run key-gen"));

    // 2. Glue key-gen does not write: the device's and recovery's identities.
    let device = IdentityKey::generate().expect("id");
    let recovery = IdentityKey::generate().expect("id");
    let mut service = load(dir, 1);
    service.peers.insert(0, device.public().to_string());
    service.peers.insert(2, recovery.public().to_string());
    save(dir, 1, &service);

    // 3. Import: refused without --insecure-dev-primes, accepted with it.
    let svc_dir = TempDir::new("sign-service-import").expect("tempdir");
    let cfg = svc_dir.0.join("sign-service.yaml");
    std::fs::write(&cfg, service_yaml(&gw, &svc_dir.0, true, "")).expect("config");
    let pass_file = svc_dir.0.join("pass");
    std::fs::write(&pass_file, format!("{}\n", PASS[1])).expect("pass file");
    let import = |dev_primes: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sign-service"));
        c.arg("--config")
            .arg(&cfg)
            .arg("--insecure-dev-store-key")
            .arg("import")
            .arg(dir.join(FILES[1]))
            .arg("--passphrase-file")
            .arg(&pass_file)
            .env_remove("SIGN_SERVICE_STORE_KEY")
            .env_remove("SIGN_SERVICE_STORE_PASSPHRASE")
            .env_remove("WALLET_SERVICE_PASSPHRASE");
        if dev_primes {
            c.arg("--insecure-dev-primes");
        }
        c.output().expect("run sign-service import")
    };
    let refused = import(false);
    assert!(!refused.status.success(), "dev primes imported silently");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("PUBLIC dev primes") && err.contains("--insecure-dev-primes"),
        "{err}"
    );
    let out = ok("sign-service import", &import(true));
    let imported: serde_json::Value =
        serde_json::from_str(out.lines().last().expect("a line")).expect("JSON line");
    let wallet_id = imported["wallet_id"]
        .as_str()
        .expect("wallet_id")
        .to_string();
    let cosigner = imported["cosigner_identity"]
        .as_str()
        .expect("cosigner_identity")
        .to_string();
    let address = imported["accounts"][0]["ethereum_address"]
        .as_str()
        .expect("address")
        .to_string();
    assert_eq!(imported["insecure_dev_primes"], true, "{imported}");
    // The same file again: refused (the wallet exists).
    assert!(!import(true).status.success());
    let audit = std::fs::read_to_string(svc_dir.0.join("audit.jsonl")).expect("audit");
    assert!(
        audit.lines().any(|l| l.contains("\"import_wallet\"")
            && l.contains(&wallet_id)
            && l.contains("\"insecure_dev_primes\":true")),
        "{audit}"
    );

    // 4. Glue for the client: identities in its files and the wallet metadata.
    for (i, me, other, other_idx) in [
        (0usize, &device, &recovery, 2u16),
        (2, &recovery, &device, 0),
    ] {
        let mut b = load(dir, i);
        b.identity_secret = Some(me.to_seed_hex().to_string());
        b.peers.insert(1, cosigner.clone());
        b.peers.insert(other_idx, other.public().to_string());
        save(dir, i, &b);
        let meta = serde_json::json!({
            "format": "wallet-mpc/wallet",
            "wallet_id": wallet_id,
            "party_index": i,
            "cosigner_url": "",
            "label": "",
            "created_at_ms": 0,
        });
        let stem = FILES[i].trim_end_matches(".json");
        std::fs::write(dir.join(format!("{stem}.wallet.json")), meta.to_string()).expect("meta");
    }

    // 5. The cosigner serves the imported wallet; the client signs through the gateway.
    let svc = start_service_in(svc_dir, cfg).await;
    for (recovery_mode, message) in [(false, "imported wallet"), (true, "imported, recovery")] {
        let mut c = Command::new(&client_bin);
        c.current_dir(dir)
            .args(["--json", "--insecure-fast-kdf", "--cosigner", &svc.url]);
        if recovery_mode {
            c.arg("--recovery");
        }
        c.args(["sign-message", message])
            .env(ENV[0], PASS[0])
            .env(ENV[2], PASS[2])
            .env_remove("WALLET_COSIGNER_URL")
            .env_remove("WALLET_GATEWAY_URL");
        let out = ok("client sign-message", &c.output().expect("run client"));
        let sig: serde_json::Value =
            serde_json::from_str(out.lines().last().expect("a line")).expect("JSON");
        assert_eq!(
            sig["signers"],
            serde_json::json!(if recovery_mode { [1, 2] } else { [0, 1] }),
            "{sig}"
        );
        assert!(
            sig["ethereum_address"]
                .as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case(&address)),
            "{sig}"
        );
        verify(message, &sig, &address);
    }
    let audit = svc.audit();
    assert!(
        audit.lines().any(|l| l.contains("\"sign_request\"")
            && l.contains(&wallet_id)
            && l.contains("\"insecure_dev_primes\":true")),
        "{audit}"
    );
    drop(gw);
}
