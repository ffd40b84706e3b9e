//! The PostgreSQL store in production: TLS to the server (a real server with `ssl = on`
//! and certificates made now), the statement and lock timeouts (a lock really held by
//! another connection), and the migration from a redb file.

use super::postgres::PgOptions;
use super::*;
use std::time::{Duration, Instant};

use gateway_tests::tls::TestCa;

fn key() -> KeySource {
    KeySource::Hex(Zeroizing::new(hex::encode([7u8; 32])))
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sign-service-pg-ops-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn unavailable(r: Result<impl std::fmt::Debug, StoreError>) -> String {
    match r {
        Err(StoreError::Unavailable(m)) => m,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// A server that speaks TLS only (plaintext TCP is rejected by its pg_hba.conf), with a
/// certificate for 127.0.0.1 issued by `ca`.
fn tls_server(ca: &TestCa, dir: &std::path::Path) -> pg_server::PgServer {
    let cert = ca.server_cert(dir, "server").unwrap();
    let pem = std::fs::read(&cert.cert_file).unwrap();
    let key = std::fs::read(&cert.key_file).unwrap();
    let hba = b"local all all trust\n\
                hostssl all all 127.0.0.1/32 trust\n\
                hostnossl all all 127.0.0.1/32 reject\n";
    pg_server::PgServer::start_with(
        &[
            ("server.pem", &pem),
            ("server.key", &key),
            ("pg_hba.conf", hba),
        ],
        "ssl = on\nssl_cert_file = '{dir}/server.pem'\nssl_key_file = '{dir}/server.key'\n\
         hba_file = '{dir}/pg_hba.conf'",
    )
}

#[test]
fn tls_verify_full_works_a_wrong_ca_is_a_certificate_problem_and_require_needs_tls() {
    let dir = tmp("tls");
    let ca = TestCa::new("wallet-mpc test PostgreSQL CA").unwrap();
    let ca_file = ca.write_pem(&dir.join("ca.pem")).unwrap();
    let other = TestCa::new("another CA").unwrap();
    let other_file = other.write_pem(&dir.join("other.pem")).unwrap();
    let server = tls_server(&ca, &dir);
    let base = server.url("postgres");
    fn with_ca(f: &std::path::Path) -> PgOptions<'_> {
        PgOptions {
            ca_file: Some(f),
            ..PgOptions::default()
        }
    }

    // verify-full with the right CA: a store round trip.
    let url = format!("{base}&sslmode=verify-full");
    let s = Store::open_postgres_with(&url, &with_ca(&ca_file), &key()).expect("verify-full");
    assert!(s.describe().contains("TLS verify-full"), "{}", s.describe());
    s.push_primes(&set(1)).unwrap();
    assert_eq!(s.prime_count().unwrap(), 1);
    drop(s);
    // The CA file alone means verify-full; the URL's sslrootcert is the same setting.
    let s = Store::open_postgres_with(&base, &with_ca(&ca_file), &key()).unwrap();
    assert_eq!(s.pop_primes().unwrap(), Some(set(1)));
    drop(s);
    let url_root = format!(
        "{base}&sslmode=verify-full&sslrootcert={}",
        ca_file.display()
    );
    Store::open_postgres_with(&url_root, &PgOptions::default(), &key()).expect("sslrootcert");

    // The server refuses plaintext: the connections above were TLS.
    let plain = unavailable(Store::open_postgres(
        &format!("{base}&sslmode=disable"),
        None,
        &key(),
    ));
    assert!(
        plain.contains("no encryption") || plain.contains("pg_hba"),
        "{plain}"
    );

    // A certificate from another CA: refused, and the error says it is the certificate.
    for mode in ["verify-full", "verify-ca", "require"] {
        let e = unavailable(Store::open_postgres_with(
            &format!("{base}&sslmode={mode}"),
            &with_ca(&other_file),
            &key(),
        ));
        assert!(e.contains("TLS certificate problem"), "{mode}: {e}");
        assert!(e.contains("store_ca_file"), "{mode}: {e}");
    }
    // verify-ca checks the issuer, not the name: the right CA passes.
    Store::open_postgres_with(
        &format!("{base}&sslmode=verify-ca"),
        &with_ca(&ca_file),
        &key(),
    )
    .expect("verify-ca");
    // require without a CA: encrypted, the certificate not checked (libpq's meaning).
    Store::open_postgres(&format!("{base}&sslmode=require"), None, &key()).expect("require");

    // require against a server without TLS: a clear failure.
    let no_tls = pg_server::PgServer::start();
    let e = unavailable(Store::open_postgres(
        &format!("{}&sslmode=require", no_tls.database()),
        None,
        &key(),
    ));
    assert!(e.contains("TLS") && e.contains("require"), "{e}");

    // Settings refused before any connection: plaintext to another machine unless
    // asked for, verify-full without a CA, prefer.
    for (url, why) in [
        ("postgres://wallet@db.example/w", "sslmode=disable"),
        ("postgres://wallet@10.1.2.3/w", "not on this machine"),
        (
            "postgres://wallet@db.example/w?sslmode=verify-full",
            "store_ca_file",
        ),
        ("postgres://wallet@127.0.0.1/w?sslmode=prefer", "plaintext"),
    ] {
        match Store::open_postgres(url, None, &key()) {
            Err(StoreError::Db(m)) => assert!(m.contains(why), "{url}: {m}"),
            other => panic!("{url}: {other:?}"),
        }
    }
}

fn set(n: u8) -> mpc_core::primes::PrimeSet {
    mpc_core::primes::PrimeSet {
        primes: [n, n + 1, n + 2, n + 3].map(|x| format!("{x:02x}")),
    }
}

/// A store call that waits for a lock another connection holds fails within the lock
/// timeout (or the statement timeout) as the retryable Unavailable, which the wire
/// calls `cosigner_unavailable`; the store works again once the lock is released.
#[test]
fn a_statement_blocked_by_a_lock_times_out_retryably_and_the_store_recovers() {
    use crate::error::CosignerError;
    use wallet_types::ErrorCode;

    let server = pg_server::PgServer::start();
    let url = server.database();
    let by_lock = Store::open_postgres_with(
        &url,
        &PgOptions {
            lock_timeout: Duration::from_millis(300),
            ..PgOptions::default()
        },
        &key(),
    )
    .unwrap();
    let by_statement = Store::open_postgres_with(
        &url,
        &PgOptions {
            statement_timeout: Duration::from_millis(500),
            lock_timeout: Duration::ZERO,
            ..PgOptions::default()
        },
        &key(),
    )
    .unwrap();
    by_lock.push_primes(&set(1)).unwrap();

    let mut holder = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE prime_pool IN ACCESS EXCLUSIVE MODE")
        .unwrap();

    let t0 = Instant::now();
    let e = unavailable(by_lock.prime_count());
    assert!(e.contains("lock timeout"), "{e}");
    let e = unavailable(by_lock.pop_primes());
    assert!(e.contains("lock timeout"), "{e}");
    let e = unavailable(by_statement.prime_count());
    assert!(e.contains("statement timeout"), "{e}");
    // Generous: three timeouts of well under a second each, not the 30 s of a hang.
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    let wire = CosignerError::Store(StoreError::Unavailable(e));
    assert_eq!(wire.code(), ErrorCode::CosignerUnavailable);
    assert!(wire.retryable());

    tx.rollback().unwrap();
    assert_eq!(by_lock.prime_count().unwrap(), 1);
    assert_eq!(by_statement.pop_primes().unwrap(), Some(set(1)));
    assert_eq!(by_lock.prime_count().unwrap(), 0);
}

/// Every table of a redb store lands in PostgreSQL as it was (same sealed records: the
/// same key opens it), the redb file is then refused, a second run finds the copy and
/// succeeds, and a target holding another store is refused.
#[test]
fn a_redb_store_migrates_to_postgres_once_and_a_rerun_is_safe() {
    let dir = tmp("migrate");
    let path = dir.join("store.redb");
    let slot = PresigSlot {
        wallet_id: "w".into(),
        account_id: "a".into(),
        party: 0,
        path: "m/44/60/0/0/0".into(),
    };
    let (identity, store_id) = {
        let s = Store::open(&path, &key()).unwrap();
        s.push_primes(&set(1)).unwrap();
        s.put_presignature(&slot, "p1", &"one".to_string()).unwrap();
        s.put_presignature(&slot, "p2", &"two".to_string()).unwrap();
        assert!(matches!(
            s.take_presignature::<String>(&slot, "p1", 5).unwrap(),
            PresigTake::Taken(_)
        ));
        assert!(s.replay_record("w/0", &[1; 16], u64::MAX / 2, &[]).unwrap());
        (
            s.load_or_create_identity().unwrap().public(),
            s.store_id().unwrap(),
        )
    };
    let server = pg_server::PgServer::start();
    let url = server.database();
    let from =
        Store::with_backend(Box::new(redb::RedbBackend::open(&path).unwrap()), &key()).unwrap();
    let mut lines = Vec::new();
    let done = migrate::migrate(
        &from,
        Box::new(postgres::PgBackend::connect(&url, None).unwrap()),
        &key(),
        1,
        &mut |l| lines.push(l),
    )
    .unwrap();
    assert!(!done.already);
    let count = |t: Table| done.tables.iter().find(|s| s.table == t).unwrap().records;
    assert_eq!(count(Table::Presignatures), 1);
    assert_eq!(count(Table::PresignaturesUsed), 1);
    assert_eq!(count(Table::PresignaturePaths), 1);
    assert_eq!(count(Table::PrimePool), 1);
    assert!(
        lines.iter().any(|l| l.contains("presignatures")),
        "{lines:?}"
    );
    drop(from);

    // The source is refused from now on; the target is the same store.
    assert!(matches!(
        Store::open(&path, &key()),
        Err(StoreError::Moved(to)) if to.contains("postgres://")
    ));
    {
        let s = Store::open_postgres(&url, None, &key()).unwrap();
        assert_eq!(s.store_id().unwrap(), store_id);
        assert_eq!(s.load_or_create_identity().unwrap().public(), identity);
        assert_eq!(s.presign_takes().unwrap(), 1);
        assert!(!s.replay_record("w/0", &[1; 16], u64::MAX / 2, &[]).unwrap());
        assert_eq!(
            s.take_presignature::<String>(&slot, "p1", 6).unwrap(),
            PresigTake::Used
        );
        assert_eq!(s.presignature_ids(&slot).unwrap(), vec!["p2".to_string()]);
    }

    // Again (a run that failed after its commit): the copy is found, nothing copied.
    let from =
        Store::with_backend(Box::new(redb::RedbBackend::open(&path).unwrap()), &key()).unwrap();
    let again = migrate::migrate(
        &from,
        Box::new(postgres::PgBackend::connect(&url, None).unwrap()),
        &key(),
        2,
        &mut |_| {},
    )
    .unwrap();
    assert!(again.already);
    // Once the copy is used, it differs: refused.
    Store::open_postgres(&url, None, &key())
        .unwrap()
        .push_primes(&set(5))
        .unwrap();
    let e = migrate::migrate(
        &from,
        Box::new(postgres::PgBackend::connect(&url, None).unwrap()),
        &key(),
        3,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(&e, StoreError::TargetNotEmpty(m) if m.contains("prime_pool")),
        "{e}"
    );
    // Another store's database: refused.
    let other = server.database();
    Store::open_postgres(&other, None, &key()).unwrap();
    let e = migrate::migrate(
        &from,
        Box::new(postgres::PgBackend::connect(&other, None).unwrap()),
        &key(),
        4,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(&e, StoreError::TargetNotEmpty(m) if m.contains("another store")),
        "{e}"
    );
}
