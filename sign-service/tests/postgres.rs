//! Two `sign-service` processes on ONE PostgreSQL store (started by the test itself:
//! `sign_service::store::pg_server`), serving the same wallet: one identity, a
//! presignature made through one and used through the other exactly once, a request
//! nonce accepted by one refused by the other; with the database stopped, a request is
//! answered `cosigner_unavailable` and `/readyz` fails its `key_store` check, and both
//! come back with the database.

use std::time::Duration;

use crate::common::*;
use cosigner_api::pb::{self, DigestKind, PayloadKind};
use cosigner_api::{auth, PresignatureState, RemoteError};
use sign_service::store::pg_server::PgServer;
use sign_service::store::{KeySource, Store};
use wallet_types::ErrorCode;

const ACCOUNT: &str = "account-0";

fn sign_req(w: &Wallet, id: &str, msg: &str) -> pb::SignWithPresignatureRequest {
    let mut req = pb::SignWithPresignatureRequest {
        auth: None,
        account_id: ACCOUNT.into(),
        presignature_id: id.into(),
        preimage: mpc_core::digest::eip191_preimage(msg.as_bytes()),
        digest: DigestKind::Keccak256 as i32,
        payload_kind: PayloadKind::EthereumMessage as i32,
        ..Default::default()
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign");
    req
}

fn pool_req(w: &Wallet) -> pb::PresignPoolStatusRequest {
    let mut req = pb::PresignPoolStatusRequest {
        auth: None,
        account_id: ACCOUNT.into(),
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign");
    req
}

/// A cosigner on the store at `url`, in a temporary folder of its own (audit log,
/// rollback anchor, port files).
async fn cosigner_on(gateway: &gateway_tests::process::GatewayProcess, url: &str) -> Service {
    let dir = gateway_tests::process::TempDir::new("sign-service-pg").expect("tempdir");
    let cfg = dir.0.join("sign-service.yaml");
    let extra = format!(
        "store_url: \"{url}\"\npresign_workers: 1\nadmin_listen: 127.0.0.1:0\n\
         health_check_interval_secs: 1\n"
    );
    std::fs::write(&cfg, service_yaml(gateway, &dir.0, false, &extra)).expect("write config");
    start_service_in(dir, cfg).await
}

fn key_store_ok(body: &serde_json::Value) -> bool {
    body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .any(|c| c["name"] == "key_store" && c["ok"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_cosigners_share_one_postgres_store() {
    let pg = PgServer::start();
    let url = pg.database();
    let gw_proc = gateway().await;
    let made = {
        let store =
            Store::open_postgres(&url, None, &KeySource::InsecureDev).expect("open the store");
        seed_dev_wallets(&store, &[mpc_core::AccountKind::Independent])
    };
    let a = cosigner_on(&gw_proc, &url).await;
    let b = cosigner_on(&gw_proc, &url).await;
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    let identity = cosigner_identity(&mut ca).await;
    assert_eq!(
        cosigner_identity(&mut cb).await,
        identity,
        "one identity, from the shared store"
    );
    let [w] = one(dev_wallets(&gw_proc, identity, made));

    // A presignature made through A is in B's pool, used through B once; A then finds
    // it used.
    let id = presign_one(&mut ca, &w, ACCOUNT).await;
    assert_eq!(
        pool_ids(&mut cb, &w, ACCOUNT).await.expect("pool"),
        vec![id.clone()]
    );
    let r = cb
        .sign_with_presignature(sign_req(&w, &id, "via b"))
        .await
        .expect("signed through B")
        .into_inner();
    assert_eq!(r.partial_signature.len(), 32);
    let e = ca
        .sign_with_presignature(sign_req(&w, &id, "via a"))
        .await
        .expect_err("used through B");
    let remote = RemoteError::from(&e);
    assert_eq!(remote.code, ErrorCode::PresignatureUnavailable, "{remote}");
    assert_eq!(remote.presignature, Some(PresignatureState::Used));

    // A request accepted by A is a replay at B.
    let req = pool_req(&w);
    ca.presign_pool_status(req.clone())
        .await
        .expect("accepted by A");
    let e = cb
        .presign_pool_status(req)
        .await
        .expect_err("replayed at B");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");

    // The database down: B answers cosigner_unavailable, its readiness fails on the
    // key store; no crash. Back up: both serve again.
    let (status, body) = readyz(&reqwest::Client::new(), &b.admin_url()).await;
    assert_eq!(status, 200, "{body}");
    pg.stop();
    let e = cb
        .presign_pool_status(pool_req(&w))
        .await
        .expect_err("no database");
    let remote = RemoteError::from(&e);
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert_eq!(remote.code, ErrorCode::CosignerUnavailable, "{remote}");
    assert!(remote.retryable);
    let (status, body) = readyz(&reqwest::Client::new(), &b.admin_url()).await;
    assert_eq!(status, 503, "{body}");
    assert!(!key_store_ok(&body), "{body}");
    pg.restart();
    eventually("B ready again", Duration::from_secs(20), || async {
        readyz(&reqwest::Client::new(), &b.admin_url()).await.0 == 200
    })
    .await;
    let id = presign_one(&mut cb, &w, ACCOUNT).await;
    ca.sign_with_presignature(sign_req(&w, &id, "via a after the outage"))
        .await
        .expect("signed through A");
    assert!(!a.log().contains("panicked"), "{}", a.log());
    assert!(!b.log().contains("panicked"), "{}", b.log());
}

/// The `sign-service` command on a PostgreSQL store: `store rekey` moves every record
/// to the new key in one transaction (the old key no longer opens the store, the new
/// one opens it with the same identity and prime sets), the PostgreSQL password comes
/// from its file, and a URL holding a password is refused before anything starts,
/// without repeating it.
#[test]
fn store_rekey_and_the_url_checks_on_postgres() {
    const OLD: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let pg = PgServer::start();
    let url = pg.database();
    let dir = gateway_tests::process::TempDir::new("sign-service-pg-rekey").expect("tempdir");
    let d = &dir.0;
    let secret = |name: &str, text: &str| {
        use std::os::unix::fs::PermissionsExt;
        let p = d.join(name);
        std::fs::write(&p, format!("{text}\n")).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        p
    };
    let (old, new) = (secret("old.key", OLD), secret("new.key", &"ab".repeat(32)));
    // The test server trusts loopback: the password is read and sent, not checked.
    let password = secret("pg.password", "not-checked-by-a-trust-server");
    let identity = {
        let s = Store::open_postgres(&url, None, &KeySource::Hex(OLD.to_string().into()))
            .expect("open with the old key");
        s.push_primes(&mpc_core::primes::dev_fixture_primes()[1])
            .expect("primes");
        s.load_or_create_identity().expect("identity").public()
    };
    let command = |store_url: &str| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sign-service"));
        c.env("SIGN_SERVICE_STORE_URL", store_url)
            .env("SIGN_SERVICE_STORE_PASSWORD_FILE", &password)
            .env("SIGN_SERVICE_AUDIT_LOG", d.join("audit.jsonl"))
            .env("SIGN_SERVICE_STORE_KEY_FILE", &old)
            .env_remove("SIGN_SERVICE_STORE_KEY")
            .env_remove("SIGN_SERVICE_STORE_PASSPHRASE")
            .env_remove("SIGN_SERVICE_STORE_PASSPHRASE_FILE")
            .env_remove("SIGN_SERVICE_CONFIG");
        c
    };
    let out = command(&url)
        .args(["store", "rekey", "--new-key-file"])
        .arg(&new)
        .output()
        .expect("run rekey");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("one JSON line");
    // The prime set, the identity, the key check.
    assert_eq!(line["records"], 3, "{line}");
    assert!(matches!(
        Store::open_postgres(&url, None, &KeySource::Hex(OLD.to_string().into())),
        Err(sign_service::store::StoreError::WrongKey)
    ));
    let s = Store::open_postgres(&url, None, &KeySource::Hex("ab".repeat(32).into()))
        .expect("open with the new key");
    assert_eq!(
        s.load_or_create_identity().expect("identity").public(),
        identity
    );
    assert_eq!(s.prime_count().expect("primes"), 1);

    // Plaintext to another machine only when asked for: the start-up error says how.
    let out = command("postgres://wallet@db.example:5432/wallet")
        .args(["store", "purge-presignatures"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("plaintext")
            && err.contains("sslmode=disable")
            && err.contains("sslmode=verify-full"),
        "{err}"
    );

    let with_password = url.replace("wallet@", "wallet:hunter2@");
    let out = command(&with_password)
        .args(["store", "purge-presignatures"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("store_url") && err.contains("store_password_file"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

/// `sign-service store migrate-to-postgres` through the binary: a cosigner on its redb
/// store (the dev wallet) makes a presignature and stops; the command copies the store
/// into PostgreSQL over TLS (`sslmode=verify-full`, a CA and a server certificate made
/// now, the server refusing plaintext); a second run finds the copy; the cosigner
/// restarted on PostgreSQL has the same identity and wallet, uses the presignature once
/// and refuses it the second time; the redb file is refused from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redb_store_migrated_to_postgres_over_tls_keeps_serving() {
    use gateway_tests::tls::TestCa;

    let gw_proc = gateway().await;
    let dir = gateway_tests::process::TempDir::new("sign-service-migrate").expect("tempdir");
    let made = {
        let store = Store::open(&dir.0.join("store.redb"), &KeySource::InsecureDev)
            .expect("open the redb store");
        seed_dev_wallets(&store, &[mpc_core::AccountKind::Independent])
    };
    let cfg = dir.0.join("sign-service.yaml");
    let redb_yaml = service_yaml(
        &gw_proc,
        &dir.0,
        false,
        "presign_workers: 1\nadmin_listen: 127.0.0.1:0\n",
    );
    std::fs::write(&cfg, &redb_yaml).expect("write config");
    let ca = TestCa::new("wallet-mpc test PostgreSQL CA").expect("CA");
    let ca_file = ca.write_pem(&dir.0.join("pg-ca.pem")).expect("CA file");
    let cert = ca
        .server_cert(&dir.0, "pg-server")
        .expect("server certificate");
    let mut svc = start_service_in(dir, cfg.clone()).await;
    let mut client = svc.client().await;
    let identity = cosigner_identity(&mut client).await;
    let [w] = one(dev_wallets(&gw_proc, identity, made));
    let id = presign_one(&mut client, &w, ACCOUNT).await;
    svc.kill();

    let pg = PgServer::start_with(
        &[
            (
                "server.pem",
                &std::fs::read(&cert.cert_file).expect("certificate"),
            ),
            ("server.key", &std::fs::read(&cert.key_file).expect("key")),
            (
                "pg_hba.conf",
                b"local all all trust\nhostssl all all 127.0.0.1/32 trust\n\
                  hostnossl all all 127.0.0.1/32 reject\n",
            ),
        ],
        "ssl = on\nssl_cert_file = '{dir}/server.pem'\nssl_key_file = '{dir}/server.key'\n\
         hba_file = '{dir}/pg_hba.conf'",
    );
    let url = format!("{}&sslmode=verify-full", pg.url("postgres"));
    std::fs::write(
        &cfg,
        format!(
            "{redb_yaml}store_url: \"{url}\"\nstore_ca_file: {}\n",
            ca_file.display()
        ),
    )
    .expect("write config");
    let command = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sign-service"));
        c.arg("--config")
            .arg(&cfg)
            .args(["--insecure-dev-store-key", "store", "migrate-to-postgres"])
            .env_remove("SIGN_SERVICE_STORE_KEY")
            .env_remove("SIGN_SERVICE_STORE_PASSPHRASE")
            .env_remove("SIGN_SERVICE_STORE_URL")
            .env_remove("SIGN_SERVICE_STORE_CA_FILE");
        c
    };
    // Another CA: the binary stops on the certificate, and says so.
    let other = gateway_tests::process::TempDir::new("sign-service-other-ca").expect("tempdir");
    let other_ca = TestCa::new("another CA")
        .expect("CA")
        .write_pem(&other.0.join("other-ca.pem"))
        .expect("CA file");
    let out = command()
        .env("SIGN_SERVICE_STORE_CA_FILE", &other_ca)
        .output()
        .expect("run the migration");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("TLS certificate problem"), "{err}");
    let migrate = || {
        let t0 = std::time::Instant::now();
        let out = command().output().expect("run the migration");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        eprintln!("migration ({:?}):\n{err}", t0.elapsed());
        let line: serde_json::Value =
            serde_json::from_slice(out.stdout.trim_ascii()).expect("one JSON line");
        (line, err)
    };
    let (line, progress) = migrate();
    assert_eq!(line["already"], false, "{line}");
    assert_eq!(line["tables"]["wallets"], 1, "{line}");
    assert_eq!(line["tables"]["presignatures"], 1, "{line}");
    assert!(
        line["target"]
            .as_str()
            .unwrap_or("")
            .contains("TLS verify-full"),
        "{line}"
    );
    assert!(
        progress.contains("copying") && progress.contains("verifying"),
        "{progress}"
    );
    let (again, _) = migrate();
    assert_eq!(again["already"], true, "{again}");
    assert_eq!(again["records"], line["records"], "{again}");

    // The cosigner on PostgreSQL: the same identity, the wallet's account, the
    // presignature made on redb used once.
    svc.restart(&[]).await;
    assert!(svc.log().contains("TLS verify-full"), "{}", svc.log());
    let mut client = svc.client().await;
    assert_eq!(cosigner_identity(&mut client).await, identity);
    let mut req = pb::ListAccountsRequest { auth: None };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign");
    let accounts = client
        .list_accounts(req)
        .await
        .expect("ListAccounts")
        .into_inner()
        .accounts;
    assert_eq!(
        accounts
            .iter()
            .map(|a| a.account_id.as_str())
            .collect::<Vec<_>>(),
        [ACCOUNT]
    );
    assert_eq!(
        pool_ids(&mut client, &w, ACCOUNT).await.expect("pool"),
        vec![id.clone()]
    );
    let r = client
        .sign_with_presignature(sign_req(&w, &id, "after the migration"))
        .await
        .expect("signed with the migrated presignature")
        .into_inner();
    assert_eq!(r.partial_signature.len(), 32);
    let e = client
        .sign_with_presignature(sign_req(&w, &id, "twice"))
        .await
        .expect_err("used once");
    let remote = RemoteError::from(&e);
    assert_eq!(remote.code, ErrorCode::PresignatureUnavailable, "{remote}");
    assert_eq!(remote.presignature, Some(PresignatureState::Used));
    assert!(!svc.log().contains("panicked"), "{}", svc.log());

    // The redb file is refused from now on.
    match Store::open(&svc.dir.0.join("store.redb"), &KeySource::InsecureDev) {
        Err(sign_service::store::StoreError::Moved(to)) => assert!(to.contains("postgres://")),
        other => panic!("the migrated redb store opened: {other:?}"),
    }
}
