//! TLS end to end, real processes on loopback: `sign-gateway` and `sign-service` serve
//! TLS with certificates two private CAs issued at run time (rcgen); the cosigner joins
//! its rooms over https trusting the gateway's CA (`gateway_ca_file`); the `client`
//! binary signs through both with `--ca-file` (the dev wallet imported with
//! `sign-service import`: no aux info, no DKG). A client that does not trust a server's
//! CA is refused with `tls_failed` (exit 8) naming the certificate, never
//! `cosigner_unavailable`: the cosigner's CA unknown, and the gateway's CA unknown
//! (the cosigner reached, the session's gateway refused).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::common::*;
use gateway_tests::process::{native_yaml, wait_port_file, TempDir, TestConfig};
use gateway_tests::tls::TestCa;
use mpc_core::keystore::{KdfParams, KeyShareBundle};
use mpc_wire::IdentityKey;

const DEVICE_PASS: &str = "tls test device passphrase";
const SERVICE_PASS: &str = "tls test service passphrase";

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sign-gateway` serving TLS with `cert`; returns it and its `https://` URL.
fn tls_gateway(dir: &Path, cert: &gateway_tests::tls::ServerCert) -> (Killed, String) {
    let cfg = TestConfig {
        secret: Some(SECRET.into()),
        ..TestConfig::default()
    };
    let yaml = format!(
        "{}tls:\n  cert_file: {}\n  key_file: {}\n",
        native_yaml(&cfg, 0).expect("yaml"),
        cert.cert_file.display(),
        cert.key_file.display()
    );
    let cfg_path = dir.join("sign-gateway.yaml");
    std::fs::write(&cfg_path, yaml).expect("gateway config");
    let port_file = dir.join("sign-gateway.port");
    let log = std::fs::File::create(dir.join("sign-gateway.log")).expect("log");
    let mut child = Command::new(gateway_bin())
        .arg("--config")
        .arg(&cfg_path)
        .arg("--port-file")
        .arg(&port_file)
        .env_remove("SIGN_GATEWAY_TLS_CERT_FILE")
        .env_remove("SIGN_GATEWAY_TLS_KEY_FILE")
        .env_remove("SIGN_GATEWAY_ACCESS_SECRET")
        .env_remove("SIGN_GATEWAY_PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start sign-gateway");
    let addr =
        wait_port_file(&mut child, &port_file, Duration::from_secs(20)).unwrap_or_else(|e| {
            panic!(
                "sign-gateway did not start: {e:#}\n{}",
                std::fs::read_to_string(dir.join("sign-gateway.log")).unwrap_or_default()
            )
        });
    (Killed(child), format!("https://{addr}"))
}

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

/// The dev wallet's party `i` bundle with its HD account only (a wallet has one kind).
fn hd_bundle(i: usize) -> KeyShareBundle {
    let mut b = dev_wallet_bundles()[i].clone();
    b.accounts
        .retain(|_, a| a.kind == mpc_core::AccountKind::Hd);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_signs_through_a_tls_cosigner_and_gateway() {
    let tmp = TempDir::new("sign-service-tls").expect("tempdir");
    let dir = &tmp.0;
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).expect("pki dir");
    // Two private CAs: one for the cosigner, one for the gateway; a third nobody uses.
    let cosigner_ca = TestCa::new("wallet test cosigner CA").expect("CA");
    let gateway_ca = TestCa::new("wallet test gateway CA").expect("CA");
    let other_ca = TestCa::new("wallet test unrelated CA").expect("CA");
    let cosigner_cert = cosigner_ca.server_cert(&pki, "cosigner").expect("cert");
    let gateway_cert = gateway_ca.server_cert(&pki, "gateway").expect("cert");
    let both = pki.join("both-cas.pem");
    std::fs::write(&both, cosigner_ca.pem() + &gateway_ca.pem()).expect("CA bundle");
    let cosigner_only = cosigner_ca
        .write_pem(&pki.join("cosigner-ca.pem"))
        .expect("CA");
    let gateway_only = gateway_ca
        .write_pem(&pki.join("gateway-ca.pem"))
        .expect("CA");
    let unrelated = other_ca.write_pem(&pki.join("other-ca.pem")).expect("CA");

    let (_gateway, gateway_url) = tls_gateway(dir, &gateway_cert);

    // The cosigner's config: TLS, the gateway over https trusting the gateway's CA.
    let svc_dir = TempDir::new("sign-service-tls-svc").expect("tempdir");
    let mut yaml = format!(
        "port: 0\ngateway_url: {gateway_url}\ngateway_ca_file: {}\nkey_store: {}\naudit_log: {}\n\
         insecure_dev_primes: true\nprime_pool_size: 0\ndev_open_registration: true\n\
         logging:\n  level: info\n  format: json\n",
        gateway_only.display(),
        svc_dir.0.join("store.redb").display(),
        svc_dir.0.join("audit.jsonl").display(),
    );
    yaml.push_str(&format!(
        "tls:\n  cert_file: {}\n  key_file: {}\n",
        cosigner_cert.cert_file.display(),
        cosigner_cert.key_file.display()
    ));
    let cfg = svc_dir.0.join("sign-service.yaml");
    std::fs::write(&cfg, yaml).expect("config");

    // The dev wallet: the cosigner's share imported (its own identity), the device's
    // share and the wallet metadata written for the client.
    let shares = dir.join("client");
    std::fs::create_dir_all(&shares).expect("client dir");
    let device = IdentityKey::generate().expect("id");
    let recovery = IdentityKey::generate().expect("id");
    let mut service = hd_bundle(1);
    service.identity_secret = None;
    service.peers.clear();
    service.peers.insert(0, device.public().to_string());
    service.peers.insert(2, recovery.public().to_string());
    let service_file = svc_dir.0.join("service_key_shares.json");
    service
        .save(&service_file, SERVICE_PASS, KdfParams::insecure_for_tests())
        .expect("save the cosigner's share");
    let pass_file = svc_dir.0.join("pass");
    std::fs::write(&pass_file, format!("{SERVICE_PASS}\n")).expect("pass file");
    let out = Command::new(env!("CARGO_BIN_EXE_sign-service"))
        .arg("--config")
        .arg(&cfg)
        .arg("--insecure-dev-store-key")
        .arg("import")
        .arg(&service_file)
        .arg("--passphrase-file")
        .arg(&pass_file)
        .arg("--insecure-dev-primes")
        .env_remove("SIGN_SERVICE_STORE_KEY")
        .env_remove("SIGN_SERVICE_STORE_PASSPHRASE")
        .output()
        .expect("run sign-service import");
    let imported: serde_json::Value = serde_json::from_str(
        ok("sign-service import", &out)
            .lines()
            .last()
            .expect("a line"),
    )
    .expect("JSON line");
    let wallet_id = imported["wallet_id"].as_str().expect("wallet_id");
    let cosigner_identity = imported["cosigner_identity"]
        .as_str()
        .expect("cosigner_identity");
    let address = imported["accounts"][0]["ethereum_address"]
        .as_str()
        .expect("address")
        .to_string();
    let mut dev = hd_bundle(0);
    dev.identity_secret = Some(device.to_seed_hex().to_string());
    dev.peers.clear();
    dev.peers.insert(1, cosigner_identity.to_string());
    dev.peers.insert(2, recovery.public().to_string());
    dev.save(
        &shares.join("client_key_shares.json"),
        DEVICE_PASS,
        KdfParams::insecure_for_tests(),
    )
    .expect("save the device's share");
    let meta = serde_json::json!({
        "format": "wallet-mpc/wallet",
        "wallet_id": wallet_id,
        "party_index": 0,
        "cosigner_url": "",
        "label": "",
        "created_at_ms": 0,
    });
    std::fs::write(
        shares.join("client_key_shares.wallet.json"),
        meta.to_string(),
    )
    .expect("meta");

    let svc = start_service_in(svc_dir, cfg).await;
    let url = svc.url.replace("http://", "https://");
    let log = svc.log();
    assert!(log.contains("\"scheme\":\"https\""), "{log}");

    let client_bin = root_bin("CLIENT_BIN", "wallet-cli", "client");
    let client = |ca: Option<&Path>, args: &[&str]| {
        let mut c = Command::new(&client_bin);
        c.current_dir(&shares)
            .args(["--json", "--insecure-fast-kdf", "--cosigner", &url])
            .args(["--timeout", "20"])
            .env("WALLET_CLIENT_PASSPHRASE", DEVICE_PASS)
            .env_remove("WALLET_RECOVERY_PASSPHRASE")
            .env_remove("WALLET_COSIGNER_URL")
            .env_remove("WALLET_GATEWAY_URL")
            .env_remove("WALLET_MPC_CA_FILE");
        if let Some(ca) = ca {
            c.arg("--ca-file").arg(ca);
        }
        c.args(args).output().expect("run client")
    };

    // Both CAs trusted: health, then a signature through the TLS cosigner and gateway.
    let h = ok("client health", &client(Some(&both), &["health"]));
    assert!(h.contains("\"ok\""), "{h}");
    let out = ok(
        "client sign-message",
        &client(Some(&both), &["sign-message", "over TLS"]),
    );
    let sig: serde_json::Value =
        serde_json::from_str(out.lines().last().expect("a line")).expect("JSON");
    assert_eq!(sig["signers"], serde_json::json!([0, 1]), "{sig}");
    assert!(
        sig["ethereum_address"]
            .as_str()
            .is_some_and(|a| a.eq_ignore_ascii_case(&address)),
        "{sig} vs {address}"
    );

    // Refusals: each a TLS error naming the certificate, exit 8, not retryable.
    for (case, ca, args) in [
        ("no CA file", None, &["health"][..]),
        (
            "an unrelated CA",
            Some(unrelated.as_path()),
            &["health"][..],
        ),
        (
            "the gateway's CA unknown",
            Some(cosigner_only.as_path()),
            &["sign-message", "gateway refused"][..],
        ),
    ] {
        let out = client(ca, args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(8), "{case}: {stdout}\n{stderr}");
        let e: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap_or("{}")).expect("JSON error");
        assert_eq!(e["error"]["code"], "tls_failed", "{case}: {e}");
        let message = e["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("certificate") && message.contains("UnknownIssuer"),
            "{case}: {message}"
        );
        assert!(!message.contains("unavailable"), "{case}: {message}");
    }
    drop(svc);
}
