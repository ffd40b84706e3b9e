//! Two cosigner instances on one PostgreSQL database: two [`Store`]s (each its own
//! connections) racing from many threads.

use super::*;
use std::sync::Arc;

fn key() -> KeySource {
    KeySource::Hex(Zeroizing::new(hex::encode([9u8; 32])))
}

/// Every presignature is handed out exactly once, whoever asks; the take counter
/// counts each take once.
#[test]
fn a_presignature_is_taken_once_across_instances() {
    let server = pg_server::PgServer::start();
    let url = server.database();
    let a = Arc::new(Store::open_postgres(&url, None, &key()).unwrap());
    let b = Arc::new(Store::open_postgres(&url, None, &key()).unwrap());
    assert_eq!(a.store_id().unwrap(), b.store_id().unwrap());
    let slot = PresigSlot {
        wallet_id: "w".into(),
        account_id: "a".into(),
        party: 0,
        path: ROOT_PATH.into(),
    };
    const N: usize = 40;
    for i in 0..N {
        a.put_presignature(&slot, &format!("p{i}"), &format!("secret-{i}"))
            .unwrap();
    }
    // 8 threads per instance, each trying every id.
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let store = if t % 2 == 0 { a.clone() } else { b.clone() };
            let slot = slot.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for i in 0..N {
                    let id = format!("p{}", (i + t * 5) % N);
                    match store.take_presignature::<String>(&slot, &id, 1).unwrap() {
                        PresigTake::Taken(v) => got.push(v),
                        PresigTake::Used => {}
                        other => panic!("{id}: {other:?}"),
                    }
                }
                got
            })
        })
        .collect();
    let mut all: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    let mut expected: Vec<String> = (0..N).map(|i| format!("secret-{i}")).collect();
    expected.sort();
    assert_eq!(all, expected, "each presignature exactly once");
    assert_eq!(a.presign_takes().unwrap(), N as u64);
    assert_eq!(b.presignature_count().unwrap(), 0);
}

/// Concurrent check-and-adds of two instances never pass the daily limit, and every
/// accepted amount is counted (EVM and Bitcoin).
#[test]
fn the_daily_limit_holds_across_instances() {
    let server = pg_server::PgServer::start();
    let url = server.database();
    let a = Arc::new(Store::open_postgres(&url, None, &key()).unwrap());
    let b = Arc::new(Store::open_postgres(&url, None, &key()).unwrap());
    const LIMIT: u64 = 1_000;
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let store = if t % 2 == 0 { a.clone() } else { b.clone() };
            std::thread::spawn(move || {
                let (mut evm, mut btc) = (0u64, 0u64);
                for i in 0..10 {
                    let amount = 7 + (t as u64 + i) % 5;
                    if store
                        .add_daily_spend("w", 3, amount.into(), LIMIT.into())
                        .unwrap()
                        .is_ok()
                    {
                        evm += amount;
                    }
                    let txid = format!("tx-{t}-{i}");
                    if store
                        .add_bitcoin_daily_spend("w", 3, &txid, amount, LIMIT)
                        .unwrap()
                        .is_ok()
                    {
                        btc += amount;
                    }
                }
                (evm, btc)
            })
        })
        .collect();
    let (evm, btc) = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold((0, 0), |acc, x| (acc.0 + x.0, acc.1 + x.1));
    // 160 attempts of 7..=11 each: more than the limit, so some were refused.
    assert!(evm <= LIMIT && evm > LIMIT - 11, "evm {evm}");
    assert!(btc <= LIMIT && btc > LIMIT - 11, "btc {btc}");
    // What was accepted is exactly what is recorded.
    assert_eq!(
        a.add_daily_spend("w", 3, 0, LIMIT.into()).unwrap(),
        Ok(evm.into())
    );
    assert_eq!(
        b.add_bitcoin_daily_spend("w", 3, "probe", 0, LIMIT)
            .unwrap(),
        Ok(btc)
    );
}

/// A nonce, a registration credential and a prime set are each taken by one
/// instance only; a wallet committed from one enrollment by one.
#[test]
fn nonces_registrations_and_primes_are_used_once_across_instances() {
    let server = pg_server::PgServer::start();
    let url = server.database();
    let a = Arc::new(Store::open_postgres(&url, None, &key()).unwrap());
    let b = Arc::new(Store::open_postgres(&url, None, &key()).unwrap());
    assert_eq!(
        a.load_or_create_identity().unwrap().public(),
        b.load_or_create_identity().unwrap().public(),
        "one identity"
    );
    for i in 0..20u8 {
        a.push_primes(&PrimeSet {
            primes: [i, i, i, i].map(|x| format!("{x:02x}")),
        })
        .unwrap();
    }
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = if t % 2 == 0 { a.clone() } else { b.clone() };
            std::thread::spawn(move || {
                let (mut nonces, mut regs, mut primes) = (0, 0, Vec::new());
                for i in 0..10u8 {
                    if store.replay_record("w/0", &[i; 16], 9_000, &[]).unwrap() {
                        nonces += 1;
                    }
                    if store
                        .registration_consume(&format!("r{i}"), 9_000, 1_000)
                        .unwrap()
                    {
                        regs += 1;
                    }
                    if let Some(p) = store.pop_primes().unwrap() {
                        primes.push(p.primes[0].clone());
                    }
                }
                (nonces, regs, primes)
            })
        })
        .collect();
    let (mut nonces, mut regs, mut primes) = (0, 0, Vec::new());
    for t in threads {
        let (n, r, p) = t.join().unwrap();
        nonces += n;
        regs += r;
        primes.extend(p);
    }
    assert_eq!(nonces, 10, "each nonce recorded once");
    assert_eq!(regs, 10, "each registration consumed once");
    primes.sort();
    let expected: Vec<String> = (0..20u8).map(|i| format!("{i:02x}")).collect();
    assert_eq!(primes, expected, "each prime set popped once");
    assert_eq!(b.prime_count().unwrap(), 0);
}

/// The migrations run once (concurrent starts included) and are recorded; a
/// database migrated by a newer sign-service is refused, naming the versions.
#[test]
fn migrations_run_once_and_a_newer_schema_is_refused() {
    let server = pg_server::PgServer::start();
    let url = server.database();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || postgres::PgBackend::connect(&url, None).map(|_| ()))
        })
        .collect();
    for s in starts {
        s.join().unwrap().unwrap();
    }
    let backend = postgres::PgBackend::connect(&url, None).unwrap();
    assert_eq!(backend.schema_version().unwrap(), 2);
    let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    let rows = c.query("SELECT version FROM schema_version", &[]).unwrap();
    assert_eq!(rows.len(), 2, "each migration ran once");
    c.execute(
        "INSERT INTO schema_version (version, name) VALUES (99, 'future')",
        &[],
    )
    .unwrap();
    let e = postgres::PgBackend::connect(&url, None).err().unwrap();
    assert!(e.to_string().contains("version 99"), "{e}");
}

/// The database down: a clear error (no panic), and the store works again once it
/// is back (connections are re-made).
#[test]
fn a_database_outage_is_an_error_and_recovers() {
    let server = pg_server::PgServer::start();
    let url = server.database();
    let s = Store::open_postgres(&url, None, &key()).unwrap();
    assert_eq!(s.wallet_count().unwrap(), 0);
    // Idle through the outage: its pooled connection dies unnoticed.
    let idle = Store::open_postgres(&url, None, &key()).unwrap();
    assert_eq!(idle.wallet_count().unwrap(), 0);
    server.stop();
    let e = s.wallet_count().unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    assert!(e.to_string().contains("PostgreSQL"), "{e}");
    assert!(!e.to_string().contains("password"), "{e}");
    let e = Store::open_postgres(&url, None, &key()).unwrap_err();
    assert!(
        e.to_string().contains("cannot connect to PostgreSQL"),
        "{e}"
    );
    server.restart();
    assert_eq!(s.wallet_count().unwrap(), 0);
    // The dead connection is replaced at BEGIN, the first call succeeds.
    assert_eq!(idle.wallet_count().unwrap(), 0);
    assert_eq!(idle.add_daily_spend("w", 1, 5, 10).unwrap(), Ok(5));
}
