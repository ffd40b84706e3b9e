//! The store's behaviour tests, on both backends.

use super::*;

/// Where a test's store is: a redb file or a PostgreSQL database.
enum Place {
    Redb(std::path::PathBuf),
    Pg(String),
}

impl Place {
    fn open(&self, key: &KeySource) -> Result<Store, StoreError> {
        match self {
            Place::Redb(p) => Store::open(p, key),
            Place::Pg(url) => Store::open_postgres(url, None, key),
        }
    }

    /// Every stored byte: the file, or every bytea value of the database.
    fn raw(&self) -> Vec<u8> {
        match self {
            Place::Redb(p) => std::fs::read(p).unwrap(),
            Place::Pg(url) => {
                let mut c = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
                let mut out = Vec::new();
                for t in Table::ALL {
                    if matches!(t.kind(), backend::Kind::Bytes | backend::Kind::Sequence) {
                        for row in c
                            .query(&format!("SELECT value FROM {}", t.name()), &[])
                            .unwrap()
                        {
                            out.extend_from_slice(&row.get::<_, Vec<u8>>(0));
                            out.push(0);
                        }
                    }
                }
                out
            }
        }
    }
}

/// Fresh redb files for the test `name`.
fn redb_places(name: &'static str) -> impl Fn() -> Place {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    move || {
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Place::Redb(tmp(&format!("{name}-{n}")))
    }
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sign-service-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d.join("store.redb")
}

fn hex_key(b: u8) -> KeySource {
    KeySource::Hex(Zeroizing::new(hex::encode([b; 32])))
}

fn set(n: u8) -> PrimeSet {
    PrimeSet {
        primes: [n, n + 1, n + 2, n + 3].map(|x| format!("{x:02x}")),
    }
}

fn a_registration_credential_is_consumed_once_and_expired_ids_are_pruned(mk: &dyn Fn() -> Place) {
    let p = mk();
    let s = p.open(&hex_key(1)).unwrap();
    assert!(!s.registration_used("aa").unwrap());
    assert!(s.registration_consume("aa", 2_000, 1_000).unwrap());
    assert!(s.registration_used("aa").unwrap());
    assert!(!s.registration_consume("aa", 2_000, 1_000).unwrap(), "used");
    s.registration_release("aa").unwrap();
    assert!(
        s.registration_consume("aa", 2_000, 1_000).unwrap(),
        "given back"
    );
    drop(s);
    let s = p.open(&hex_key(1)).unwrap();
    assert!(
        !s.registration_consume("aa", 2_000, 1_500).unwrap(),
        "persisted"
    );
    // Past its expiry the id is pruned by the next consume (the credential itself is
    // refused as expired by then).
    assert!(s.registration_consume("bb", 9_000, 3_000).unwrap());
    assert!(s.registration_consume("aa", 9_000, 3_000).unwrap());
}

fn replay_nonces_persist_expire_and_a_malformed_entry_is_named(mk: &dyn Fn() -> Place) {
    let p = mk();
    let s = p.open(&hex_key(1)).unwrap();
    s.replay_record("w/0", &[1; 16], 2_000, &[]).unwrap();
    s.replay_record("w/0", &[2; 16], 5_000, &[]).unwrap();
    s.replay_record("create/ab", &[3; 16], 5_000, &[("w/0".into(), [2; 16])])
        .unwrap();
    drop(s);
    let s = p.open(&hex_key(1)).unwrap();
    // [2] was deleted with the third record; [1] expired at 3000 and is pruned.
    let live = s.replay_load(3_000).unwrap();
    assert_eq!(
        live,
        vec![ReplayEntry {
            scope: "create/ab".into(),
            nonce: [3; 16],
            expiry_ms: 5_000
        }]
    );
    assert_eq!(s.replay_load(0).unwrap().len(), 1, "[1] was pruned");
    s.replay_forget("create/ab", &[3; 16]).unwrap();
    assert!(s.replay_load(0).unwrap().is_empty());
    for bad in [
        "no-space",
        "w/0 zz",
        " 00000000000000000000000000000000",
        "w/0 00",
    ] {
        s.replay_put_raw(bad, 9_000);
        let e = s.replay_load(0).unwrap_err();
        assert!(
            matches!(&e, StoreError::Malformed(what, _) if what.starts_with("replay_nonces/")),
            "{e}"
        );
        s.write(|tx| Ok((tx.remove(Table::ReplayNonces, bad)?, Outcome::Commit)))
            .unwrap();
    }
}

/// `rekey` moves every sealed record (wallets' spend, prime sets, presignatures,
/// the identity, the key check) to the new key in one transaction: the old key no
/// longer opens the store, the new one opens everything unchanged; a store with a
/// damaged record is not rekeyed at all; a bad new key is refused before anything
/// changes.
fn rekey_moves_every_record_to_the_new_key_at_once(mk: &dyn Fn() -> Place) {
    let p = mk();
    let s = p.open(&hex_key(1)).unwrap();
    let id = s.load_or_create_identity().unwrap().public();
    s.push_primes(&set(10)).unwrap();
    s.push_primes(&set(20)).unwrap();
    assert_eq!(s.add_daily_spend("w", 7, 5, 100).unwrap(), Ok(5));
    let slot = PresigSlot {
        wallet_id: "w".into(),
        account_id: "a".into(),
        party: 0,
        path: ROOT_PATH.into(),
    };
    s.put_presignature(&slot, "p1", &"secret presignature".to_string())
        .unwrap();
    assert!(matches!(
        s.rekey(&KeySource::Hex(Zeroizing::new("zz".into()))),
        Err(StoreError::BadKey(_))
    ));
    let n = s
        .rekey(&KeySource::Passphrase(Zeroizing::new(
            "a long new passphrase".into(),
        )))
        .unwrap();
    // 2 prime sets, 1 spend, 1 presignature, identity, key check.
    assert_eq!(n, 6);
    drop(s);
    assert!(matches!(p.open(&hex_key(1)), Err(StoreError::WrongKey)));
    let new = KeySource::Passphrase(Zeroizing::new("a long new passphrase".into()));
    let s = p.open(&new).unwrap();
    assert_eq!(s.load_or_create_identity().unwrap().public(), id);
    assert_eq!(s.prime_count().unwrap(), 2);
    assert!(s.pop_primes().unwrap().is_some());
    assert_eq!(s.add_daily_spend("w", 7, 1, 100).unwrap(), Ok(6));
    assert!(matches!(
        s.take_presignature::<String>(&slot, "p1", 1).unwrap(),
        PresigTake::Taken(ref v) if v == "secret presignature"
    ));
    // A damaged record: nothing is rekeyed.
    s.write(|tx| Ok((tx.seq_put(99, &[RECORD_VERSION; 60])?, Outcome::Commit)))
        .unwrap();
    assert!(matches!(
        s.rekey(&hex_key(3)),
        Err(StoreError::Tampered { .. })
    ));
    drop(s);
    p.open(&new).expect("still under the passphrase key");
}

fn wrong_key_is_refused(mk: &dyn Fn() -> Place) {
    let p = mk();
    let s = p.open(&hex_key(1)).unwrap();
    let id = s.load_or_create_identity().unwrap();
    drop(s);
    assert!(matches!(p.open(&hex_key(2)), Err(StoreError::WrongKey)));
    assert!(matches!(
        p.open(&KeySource::InsecureDev),
        Err(StoreError::WrongKey)
    ));
    let s = p.open(&hex_key(1)).unwrap();
    assert_eq!(s.load_or_create_identity().unwrap().public(), id.public());
    assert!(matches!(
        mk().open(&KeySource::Hex(Zeroizing::new("abcd".into()))),
        Err(StoreError::BadKey(_))
    ));
}

fn passphrase_key(mk: &dyn Fn() -> Place) {
    let p = mk();
    let pass = |s: &str| KeySource::Passphrase(Zeroizing::new(s.into()));
    p.open(&pass("correct horse battery"))
        .unwrap()
        .push_primes(&set(1))
        .unwrap();
    assert!(matches!(
        p.open(&pass("wrong horse battery")),
        Err(StoreError::WrongKey)
    ));
    let s = p.open(&pass("correct horse battery")).unwrap();
    assert_eq!(s.pop_primes().unwrap(), Some(set(1)));
    assert!(matches!(
        mk().open(&pass("short")),
        Err(StoreError::BadKey(_))
    ));
}

fn records_are_encrypted_and_authenticated(mk: &dyn Fn() -> Place) {
    let p = mk();
    let s = p.open(&hex_key(3)).unwrap();
    s.push_primes(&set(0x10)).unwrap();
    s.push_primes(&set(0x20)).unwrap();
    s.push_primes(&set(0x30)).unwrap();
    assert_eq!(s.prime_count().unwrap(), 3);
    // Plaintext never reaches the file.
    drop(s);
    let raw = p.raw();
    assert!(!raw.windows(6).any(|w| w == b"\"10\",\""));
    let s = p.open(&hex_key(3)).unwrap();
    // Flip one ciphertext bit of record 0.
    s.edit_prime_record(0, 0, |v| {
        let n = v.len() - 1;
        v[n] ^= 1;
    });
    assert!(matches!(s.pop_primes(), Err(StoreError::Tampered { .. })));
    // The bad record was dropped. Put record 1 under key 0: the associated data no
    // longer matches.
    s.edit_prime_record(1, 0, |_| {});
    assert!(matches!(s.pop_primes(), Err(StoreError::Tampered { .. })));
    assert_eq!(s.pop_primes().unwrap(), Some(set(0x30)));
    assert_eq!(s.pop_primes().unwrap(), None);
}

fn presignatures_are_taken_once_and_persist(mk: &dyn Fn() -> Place) {
    let p = mk();
    let slot = PresigSlot {
        wallet_id: "w1".into(),
        account_id: "account-0".into(),
        party: 0,
        path: ROOT_PATH.into(),
    };
    let other = PresigSlot {
        party: 2,
        ..slot.clone()
    };
    let s = p.open(&hex_key(5)).unwrap();
    s.put_presignature(&slot, "a", &"secret-a".to_string())
        .unwrap();
    s.put_presignature(&slot, "b", &"secret-b".to_string())
        .unwrap();
    s.put_presignature(&other, "a", &"other-a".to_string())
        .unwrap();
    assert!(matches!(
        s.put_presignature(&slot, "a", &"again".to_string()),
        Err(StoreError::Exists(_))
    ));
    assert!(s.put_presignature(&slot, "a/b", &0u8).is_err());
    assert_eq!(s.presignature_ids(&slot).unwrap(), vec!["a", "b"]);
    assert_eq!(s.presignature_ids(&other).unwrap(), vec!["a"]);
    assert_eq!(
        s.take_presignature::<String>(&slot, "a", 1).unwrap(),
        PresigTake::Taken("secret-a".into())
    );
    // Plaintext never reaches the file.
    drop(s);
    let raw = p.raw();
    assert!(!raw.windows(8).any(|w| w == b"secret-b"));
    // After a restart: consumed stays consumed, can never come back.
    let s = p.open(&hex_key(5)).unwrap();
    assert_eq!(
        s.take_presignature::<String>(&slot, "a", 2).unwrap(),
        PresigTake::Used
    );
    assert!(matches!(
        s.put_presignature(&slot, "a", &"restored".to_string()),
        Err(StoreError::Exists(_))
    ));
    assert_eq!(
        s.take_presignature::<String>(&slot, "zz", 2).unwrap(),
        PresigTake::Unknown
    );
    assert_eq!(
        s.presignature_state(&slot, "b").unwrap(),
        PresigState::Available
    );
    assert_eq!(
        s.release_presignatures(&slot, &["b".into(), "c".into()], 3)
            .unwrap(),
        1
    );
    assert!(s.presignature_ids(&slot).unwrap().is_empty());
    assert_eq!(
        s.take_presignature::<String>(&slot, "b", 4).unwrap(),
        PresigTake::Used
    );
    // The other party's slot is untouched.
    assert_eq!(
        s.take_presignature::<String>(&other, "a", 5).unwrap(),
        PresigTake::Taken("other-a".into())
    );
}

/// Pools are per path: ids listed per path, a take or a state at another path
/// than the presignature's refuses WITHOUT consuming it, release and purge clear
/// the path index too.
fn presignatures_belong_to_their_path(mk: &dyn Fn() -> Place) {
    let p = mk();
    let root = PresigSlot {
        wallet_id: "w1".into(),
        account_id: "hd-0".into(),
        party: 0,
        path: ROOT_PATH.into(),
    };
    let at = |path: &str| PresigSlot {
        path: path.into(),
        ..root.clone()
    };
    let (p0, p1) = (at("m/44/60/0/0/0"), at("m/44/60/0/0/1"));
    let s = p.open(&hex_key(7)).unwrap();
    s.put_presignature(&p0, "a", &"a0".to_string()).unwrap();
    s.put_presignature(&p1, "b", &"b1".to_string()).unwrap();
    s.put_presignature(&root, "c", &"cr".to_string()).unwrap();
    // The id is unique across paths.
    assert!(matches!(
        s.put_presignature(&p1, "a", &"x".to_string()),
        Err(StoreError::Exists(_))
    ));
    assert_eq!(s.presignature_ids(&p0).unwrap(), vec!["a"]);
    assert_eq!(s.presignature_ids(&p1).unwrap(), vec!["b"]);
    assert_eq!(s.presignature_ids(&root).unwrap(), vec!["c"]);
    let pools = s.presignature_pools(&root).unwrap();
    assert_eq!(pools.len(), 3);
    assert_eq!(pools["m/44/60/0/0/1"], vec!["b"]);
    // Asked at another path: refused, still there.
    assert_eq!(
        s.presignature_state(&p1, "a").unwrap(),
        PresigState::OtherPath("m/44/60/0/0/0".into())
    );
    assert_eq!(
        s.take_presignature::<String>(&p1, "a", 1).unwrap(),
        PresigTake::OtherPath("m/44/60/0/0/0".into())
    );
    assert_eq!(
        s.take_presignature::<String>(&root, "a", 1).unwrap(),
        PresigTake::OtherPath("m/44/60/0/0/0".into())
    );
    assert_eq!(
        s.take_presignature::<String>(&p0, "c", 1).unwrap(),
        PresigTake::OtherPath(ROOT_PATH.into())
    );
    assert_eq!(s.presignature_ids(&p0).unwrap(), vec!["a"]);
    assert_eq!(s.presign_takes().unwrap(), 0);
    // At its own path: taken once.
    assert_eq!(
        s.take_presignature::<String>(&p0, "a", 2).unwrap(),
        PresigTake::Taken("a0".into())
    );
    assert_eq!(
        s.take_presignature::<String>(&p0, "a", 3).unwrap(),
        PresigTake::Used
    );
    assert_eq!(
        s.take_presignature::<String>(&p1, "a", 3).unwrap(),
        PresigTake::Used
    );
    assert!(s.presignature_ids(&p0).unwrap().is_empty());
    // Release (whatever the slot's path) and purge clear the index.
    assert_eq!(s.release_presignatures(&root, &["b".into()], 4).unwrap(), 1);
    assert!(!s
        .presignature_pools(&root)
        .unwrap()
        .contains_key("m/44/60/0/0/1"));
    s.purge_presignatures(0, 5).unwrap();
    assert_eq!(s.read(|tx| tx.count(Table::PresignaturePaths)).unwrap(), 0);
}

/// Asking about an unknown or used id (or an available one) changes nothing: the
/// same ids stay available, used and unknown, and a take still works once.
fn presignature_state_is_read_only(mk: &dyn Fn() -> Place) {
    let p = mk();
    let slot = PresigSlot {
        wallet_id: "w1".into(),
        account_id: "account-0".into(),
        party: 0,
        path: ROOT_PATH.into(),
    };
    let s = p.open(&hex_key(6)).unwrap();
    s.put_presignature(&slot, "live", &"secret".to_string())
        .unwrap();
    s.put_presignature(&slot, "gone", &"old".to_string())
        .unwrap();
    assert_eq!(
        s.take_presignature::<String>(&slot, "gone", 1).unwrap(),
        PresigTake::Taken("old".into())
    );
    let snapshot = |s: &Store| {
        s.read(|tx| {
            Ok((
                tx.entries(Table::Presignatures, "")?,
                tx.entries_ms(Table::PresignaturesUsed)?,
            ))
        })
        .unwrap()
    };
    let before = snapshot(&s);
    for _ in 0..3 {
        assert_eq!(
            s.presignature_state(&slot, "nope").unwrap(),
            PresigState::Unknown
        );
        assert_eq!(
            s.presignature_state(&slot, "gone").unwrap(),
            PresigState::Used
        );
        assert_eq!(
            s.presignature_state(&slot, "live").unwrap(),
            PresigState::Available
        );
    }
    assert!(s.presignature_state(&slot, "bad/id").is_err());
    assert_eq!(snapshot(&s), before, "a probe changed the store");
    // Unknown stays unknown: it can still be stored later and taken once.
    s.put_presignature(&slot, "nope", &"late".to_string())
        .unwrap();
    assert_eq!(
        s.take_presignature::<String>(&slot, "live", 2).unwrap(),
        PresigTake::Taken("secret".into())
    );
}

fn daily_spend_is_atomic_and_bounded(mk: &dyn Fn() -> Place) {
    let s = mk().open(&hex_key(4)).unwrap();
    assert_eq!(s.add_daily_spend("w", 1, 60, 100).unwrap(), Ok(60));
    assert_eq!(s.add_daily_spend("w", 1, 50, 100).unwrap(), Err(60));
    assert_eq!(s.add_daily_spend("w", 1, 40, 100).unwrap(), Ok(100));
    assert_eq!(s.add_daily_spend("w", 2, 100, 100).unwrap(), Ok(100));
    assert_eq!(
        s.add_daily_spend("v", 1, u128::MAX, u128::MAX).unwrap(),
        Ok(u128::MAX)
    );
    assert_eq!(
        s.add_daily_spend("v", 1, 1, u128::MAX).unwrap(),
        Err(u128::MAX)
    );
    assert!(s.get_wallet("nope").unwrap().is_none());
    assert_eq!(s.wallet_count().unwrap(), 0);
}

fn bitcoin_daily_spend_counts_a_txid_once_and_survives_a_reopen(mk: &dyn Fn() -> Place) {
    let path = mk();
    {
        let s = path.open(&hex_key(4)).unwrap();
        assert_eq!(
            s.add_bitcoin_daily_spend("w", 5, "aa", 60, 100).unwrap(),
            Ok(60)
        );
        // The same transaction again (another input): counted once.
        assert_eq!(
            s.add_bitcoin_daily_spend("w", 5, "aa", 60, 100).unwrap(),
            Ok(60)
        );
        assert_eq!(
            s.add_bitcoin_daily_spend("w", 5, "bb", 50, 100).unwrap(),
            Err(60)
        );
        assert_eq!(
            s.add_bitcoin_daily_spend("v", 5, "bb", 50, 100).unwrap(),
            Ok(50)
        );
    }
    let s = path.open(&hex_key(4)).unwrap();
    assert_eq!(
        s.add_bitcoin_daily_spend("w", 5, "aa", 60, 100).unwrap(),
        Ok(60)
    );
    assert_eq!(
        s.add_bitcoin_daily_spend("w", 5, "bb", 41, 100).unwrap(),
        Err(60)
    );
    assert_eq!(
        s.add_bitcoin_daily_spend("w", 5, "bb", 40, 100).unwrap(),
        Ok(100)
    );
    // Across midnight: yesterday's transaction is not counted again today.
    assert_eq!(
        s.add_bitcoin_daily_spend("w", 6, "aa", 60, 100).unwrap(),
        Ok(0)
    );
    assert_eq!(
        s.add_bitcoin_daily_spend("w", 6, "cc", 100, 100).unwrap(),
        Ok(100)
    );
    assert_eq!(
        s.add_bitcoin_daily_spend("w", 0, "dd", 101, 100).unwrap(),
        Err(0)
    );
}

/// The cosigner's aux info of a 3-party group with the public dev primes (run
/// in-process once per test binary).
/// The dev wallet's cosigner aux info (committed fixture: no aux info run here).
fn dev_aux() -> AuxInfo {
    crate::dev_wallet::cosigner_aux()
}

fn enrollment(id: &str, expires_at_ms: u64) -> EnrollmentRecord {
    EnrollmentRecord {
        enrollment_id: id.into(),
        device_identity: IdentityKey::generate().unwrap().public(),
        recovery_identity: IdentityKey::generate().unwrap().public(),
        aux_info: dev_aux(),
        created_at_ms: 1_000,
        expires_at_ms,
        spent_by: None,
    }
}

fn wallet_from(e: &EnrollmentRecord, wallet_id: &str) -> WalletRecord {
    WalletRecord {
        wallet_id: wallet_id.into(),
        label: String::new(),
        kind: AccountKind::Hd,
        device_identity: e.device_identity,
        recovery_identity: e.recovery_identity,
        created_at_ms: 2_000,
        insecure_dev_primes: true,
        aux_info: e.aux_info.clone(),
        accounts: BTreeMap::new(),
        share_epoch: 0,
        last_refresh_at_ms: None,
        retired_device_identities: Vec::new(),
    }
}

fn enrollments_persist_encrypted_and_are_spent_once(mk: &dyn Fn() -> Place) {
    let p = mk();
    let s = p.open(&hex_key(5)).unwrap();
    let e = enrollment("e1", 10_000);
    s.insert_enrollment(&e).unwrap();
    assert!(matches!(
        s.insert_enrollment(&e),
        Err(StoreError::Exists(_))
    ));
    // The aux info never reaches the file in plaintext: no 32-byte piece of its
    // serialization (its Paillier primes and moduli are long decimal or hex
    // strings) appears in the file.
    drop(s);
    let raw = p.raw();
    let plain = serde_json::to_vec(&e.aux_info).unwrap();
    assert!(plain.len() > 1000, "the aux info serializes to {plain:?}");
    for piece in plain.chunks_exact(32) {
        assert!(
            !raw.windows(32).any(|w| w == piece),
            "plaintext aux info in the store file: {}",
            String::from_utf8_lossy(piece)
        );
    }
    // It survives a reopen, and only the right key opens it.
    assert!(matches!(p.open(&hex_key(6)), Err(StoreError::WrongKey)));
    let s = p.open(&hex_key(5)).unwrap();
    let back = s.get_enrollment("e1").unwrap().unwrap();
    assert_eq!(back.device_identity, e.device_identity);
    assert_eq!(back.recovery_identity, e.recovery_identity);
    assert_eq!(
        serde_json::to_vec(&back.aux_info).unwrap(),
        plain,
        "the aux info round-trips"
    );
    assert!(back.usable(9_999) && !back.usable(10_000));
    assert!(s.get_enrollment("e2").unwrap().is_none());
    // One wallet commits from it and spends it, in the same transaction; a second
    // wallet racing on it does not commit.
    s.insert_wallet_from_enrollment(&wallet_from(&e, "w1"), "e1", 5_000)
        .unwrap();
    assert_eq!(
        s.get_enrollment("e1").unwrap().unwrap().spent_by.as_deref(),
        Some("w1")
    );
    assert!(matches!(
        s.insert_wallet_from_enrollment(&wallet_from(&e, "w2"), "e1", 5_000),
        Err(StoreError::EnrollmentGone(id)) if id == "e1"
    ));
    assert!(s.get_wallet("w2").unwrap().is_none());
    assert!(s.get_wallet("w1").unwrap().is_some());
    // A retried commit of the same wallet changes nothing.
    assert!(matches!(
        s.insert_wallet_from_enrollment(&wallet_from(&e, "w1"), "e1", 5_000),
        Err(StoreError::Exists(_))
    ));
    // Unknown and expired enrollments commit nothing.
    assert!(matches!(
        s.insert_wallet_from_enrollment(&wallet_from(&e, "w3"), "nope", 5_000),
        Err(StoreError::EnrollmentGone(_))
    ));
    s.insert_enrollment(&enrollment("e3", 6_000)).unwrap();
    assert!(matches!(
        s.insert_wallet_from_enrollment(&wallet_from(&e, "w3"), "e3", 6_000),
        Err(StoreError::EnrollmentGone(_))
    ));
    assert!(s.get_wallet("w3").unwrap().is_none());
}

fn expired_enrollments_are_purged(mk: &dyn Fn() -> Place) {
    let s = mk().open(&hex_key(7)).unwrap();
    s.insert_enrollment(&enrollment("old", 1_000)).unwrap();
    s.insert_enrollment(&enrollment("new", 9_000)).unwrap();
    assert_eq!(s.purge_enrollments(500).unwrap(), 0);
    assert_eq!(s.purge_enrollments(1_000).unwrap(), 1);
    assert!(s.get_enrollment("old").unwrap().is_none());
    assert!(s.get_enrollment("new").unwrap().is_some());
    assert_eq!(s.purge_enrollments(1_000).unwrap(), 0);
}

/// A wallet with the dev wallet's cosigner account as `a`, for the lifecycle commit.
fn lifecycle_wallet(s: &Store, id: &str) -> WalletRecord {
    let mut account = crate::dev_wallet::bundles()[1]
        .accounts
        .values()
        .next()
        .unwrap()
        .clone();
    account.id = "a".into();
    let rec = WalletRecord {
        wallet_id: id.into(),
        label: String::new(),
        kind: account.kind,
        device_identity: IdentityKey::generate().unwrap().public(),
        recovery_identity: IdentityKey::generate().unwrap().public(),
        created_at_ms: 1,
        insecure_dev_primes: true,
        aux_info: dev_aux(),
        accounts: [("a".to_string(), account)].into_iter().collect(),
        share_epoch: 0,
        last_refresh_at_ms: None,
        retired_device_identities: Vec::new(),
    };
    s.insert_wallet(&rec).unwrap();
    rec
}

fn a_lifecycle_commit_moves_the_epoch_once_and_purges_the_wallets_presignatures(
    mk: &dyn Fn() -> Place,
) {
    let s = mk().open(&hex_key(3)).unwrap();
    let w = lifecycle_wallet(&s, "w");
    controls_wallet(&s, "w2");
    for (wallet, p, id) in [("w", 0, "d1"), ("w", 2, "r1"), ("w2", 2, "o1")] {
        s.put_presignature(&controls_slot(wallet, p), id, &1u8)
            .unwrap();
    }
    // A replacement: the old device is revoked first (its presignature goes then).
    s.change_wallet_controls("w", ControlAction::Revoke(0), 2, 10)
        .unwrap();
    let new_device = IdentityKey::generate().unwrap().public();
    let share = w.accounts["a"].share.clone();
    let commit =
        |from_epoch, shares: BTreeMap<String, mpc_core::IncompleteKeyShare>| LifecycleCommit {
            wallet_id: "w".into(),
            from_epoch,
            shares,
            replacement: Some((Box::new(dev_aux()), new_device)),
            now_ms: 100,
        };
    let one: BTreeMap<_, _> = [("a".to_string(), share.clone())].into_iter().collect();
    // A commit that misses an account changes nothing.
    let none: BTreeMap<String, mpc_core::IncompleteKeyShare> = BTreeMap::new();
    assert!(s.commit_lifecycle(&commit(0, none)).is_err());
    assert_eq!(s.get_wallet("w").unwrap().unwrap().share_epoch, 0);

    assert_eq!(
        s.commit_lifecycle(&commit(0, one.clone())).unwrap(),
        LifecycleOutcome::Committed {
            epoch: 1,
            presignatures_deleted: 1
        }
    );
    let after = s.get_wallet("w").unwrap().unwrap();
    assert_eq!(after.share_epoch, 1);
    assert_eq!(after.last_refresh_at_ms, Some(100));
    assert_eq!(after.device_identity, new_device);
    assert_eq!(after.retired_device_identities.len(), 1);
    assert_eq!(
        after.retired_device_identities[0].identity,
        w.device_identity
    );
    assert_eq!(after.retired_device_identities[0].epoch, 1);
    // The new device is not revoked; the old identity is no longer registered.
    assert!(!s.wallet_controls("w", 100).unwrap().is_revoked(0));
    for (wallet, p, id, want) in [
        ("w", 0, "d1", PresigState::Used),
        ("w", 2, "r1", PresigState::Used),
        ("w2", 2, "o1", PresigState::Available),
    ] {
        assert_eq!(
            s.presignature_state(&controls_slot(wallet, p), id).unwrap(),
            want,
            "{id}"
        );
    }
    // The same commit again (or any other of epoch 0) writes nothing.
    assert_eq!(
        s.commit_lifecycle(&commit(0, one)).unwrap(),
        LifecycleOutcome::EpochMoved(1)
    );
    assert_eq!(
        s.get_wallet("w")
            .unwrap()
            .unwrap()
            .retired_device_identities
            .len(),
        1
    );
}

/// The store's behaviour tests, on both backends: each on redb files, and all of
/// them on one PostgreSQL server (a database each).
fn controls_wallet(s: &Store, id: &str) {
    s.insert_wallet(&WalletRecord {
        wallet_id: id.into(),
        label: String::new(),
        kind: AccountKind::Independent,
        device_identity: IdentityKey::generate().unwrap().public(),
        recovery_identity: IdentityKey::generate().unwrap().public(),
        created_at_ms: 1,
        insecure_dev_primes: true,
        aux_info: dev_aux(),
        accounts: Default::default(),
        share_epoch: 0,
        last_refresh_at_ms: None,
        retired_device_identities: Vec::new(),
    })
    .unwrap();
}

fn controls_slot(wallet: &str, party: u16) -> PresigSlot {
    PresigSlot {
        wallet_id: wallet.into(),
        account_id: "a".into(),
        party,
        path: ROOT_PATH.into(),
    }
}

fn a_revocation_deletes_that_partys_presignatures_only_and_stops_new_ones(mk: &dyn Fn() -> Place) {
    let s = mk().open(&hex_key(1)).unwrap();
    controls_wallet(&s, "w");
    controls_wallet(&s, "w2");
    for (w, p, id) in [
        ("w", 0, "d1"),
        ("w", 0, "d2"),
        ("w", 2, "r1"),
        ("w2", 0, "o1"),
    ] {
        s.put_presignature(&controls_slot(w, p), id, &1u8).unwrap();
    }
    assert_eq!(
        s.wallet_controls("w", 10).unwrap(),
        WalletControls::default()
    );
    let out = s
        .change_wallet_controls("w", ControlAction::Revoke(0), 2, 10)
        .unwrap();
    assert!(out.changed);
    assert_eq!(out.presignatures_deleted, 2);
    assert!(out.controls.is_revoked(0) && !out.controls.is_revoked(2));
    for (w, p, id, want) in [
        ("w", 0, "d1", PresigState::Used),
        ("w", 0, "d2", PresigState::Used),
        ("w", 2, "r1", PresigState::Available),
        ("w2", 0, "o1", PresigState::Available),
    ] {
        assert_eq!(
            s.presignature_state(&controls_slot(w, p), id).unwrap(),
            want,
            "{id}"
        );
    }
    // A session that finishes after the revocation stores nothing.
    assert!(matches!(
        s.put_presignature(&controls_slot("w", 0), "late", &1u8),
        Err(StoreError::Revoked { party: 0, .. })
    ));
    s.put_presignature(&controls_slot("w2", 0), "fine", &1u8)
        .unwrap();
    // Again: nothing changes.
    let again = s
        .change_wallet_controls("w", ControlAction::Revoke(0), 0, 20)
        .unwrap();
    assert!(!again.changed);
    assert_eq!(
        again.controls.revoked[&0].by_party, 2,
        "the first one stays"
    );
    // An unknown wallet is refused.
    assert!(matches!(
        s.change_wallet_controls("nope", ControlAction::Freeze, 0, 1),
        Err(StoreError::NotFound(_))
    ));
}

fn freeze_unfreeze_after_a_delay_and_a_freeze_cancels_a_pending_unfreeze(mk: &dyn Fn() -> Place) {
    let place = mk();
    let s = place.open(&hex_key(2)).unwrap();
    controls_wallet(&s, "w");
    // Unfreezing a wallet that is not frozen changes nothing.
    let c = s
        .change_wallet_controls("w", ControlAction::UnfreezeAt(50), 2, 10)
        .unwrap();
    assert!(!c.changed && c.controls.unfreeze_at_ms.is_none());
    let c = s
        .change_wallet_controls("w", ControlAction::Freeze, 0, 100)
        .unwrap();
    assert!(c.changed && c.controls.is_frozen(100));
    let c = s
        .change_wallet_controls("w", ControlAction::UnfreezeAt(1_000), 2, 200)
        .unwrap();
    assert_eq!(c.controls.unfreeze_at_ms, Some(1_000));
    assert!(s.wallet_controls("w", 999).unwrap().is_frozen(999));
    // A second unfreeze does not move the time.
    let c = s
        .change_wallet_controls("w", ControlAction::UnfreezeAt(300), 2, 250)
        .unwrap();
    assert_eq!(c.controls.unfreeze_at_ms, Some(1_000));
    // A freeze cancels it.
    let c = s
        .change_wallet_controls("w", ControlAction::Freeze, 0, 300)
        .unwrap();
    assert_eq!(c.controls.unfreeze_at_ms, None);
    assert_eq!(c.controls.frozen.as_ref().map(|f| f.at_ms), Some(100));
    assert!(s.wallet_controls("w", 5_000).unwrap().is_frozen(5_000));
    s.change_wallet_controls("w", ControlAction::UnfreezeAt(6_000), 2, 5_000)
        .unwrap();
    // Persisted, and thawed once the time passed.
    drop(s);
    let s = place.open(&hex_key(2)).unwrap();
    assert!(s.wallet_controls("w", 5_999).unwrap().is_frozen(5_999));
    assert_eq!(
        s.wallet_controls("w", 6_000).unwrap(),
        WalletControls::default()
    );
    // Frozen again later: a new freeze.
    let c = s
        .change_wallet_controls("w", ControlAction::Freeze, 2, 7_000)
        .unwrap();
    assert_eq!(c.controls.frozen.as_ref().map(|f| f.at_ms), Some(7_000));
}

fn controls_are_sealed_and_follow_a_rekey(mk: &dyn Fn() -> Place) {
    let place = mk();
    let s = place.open(&hex_key(3)).unwrap();
    controls_wallet(&s, "w");
    s.change_wallet_controls("w", ControlAction::Revoke(0), 2, 10)
        .unwrap();
    s.rekey(&hex_key(4)).unwrap();
    drop(s);
    let s = place.open(&hex_key(4)).unwrap();
    assert!(s.wallet_controls("w", 20).unwrap().is_revoked(0));
    // A record moved to another wallet does not open (bound to its key).
    controls_wallet(&s, "w2");
    s.write(|tx| {
        let v = tx.get(Table::WalletControls, "w")?.expect("w's controls");
        tx.put(Table::WalletControls, "w2", &v)?;
        Ok(((), Outcome::Commit))
    })
    .unwrap();
    assert!(matches!(
        s.wallet_controls("w2", 20),
        Err(StoreError::Tampered { .. })
    ));
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_redb {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::redb_places(stringify!($name)))
                }
            )*
        }

        #[test]
        fn every_store_test_on_postgres() {
            let server = pg_server::PgServer::start();
            $(
                $name(&|| Place::Pg(server.database()));
            )*
        }
    };
}

on_both_backends!(
    a_registration_credential_is_consumed_once_and_expired_ids_are_pruned,
    replay_nonces_persist_expire_and_a_malformed_entry_is_named,
    rekey_moves_every_record_to_the_new_key_at_once,
    wrong_key_is_refused,
    passphrase_key,
    records_are_encrypted_and_authenticated,
    presignatures_are_taken_once_and_persist,
    presignatures_belong_to_their_path,
    presignature_state_is_read_only,
    daily_spend_is_atomic_and_bounded,
    bitcoin_daily_spend_counts_a_txid_once_and_survives_a_reopen,
    enrollments_persist_encrypted_and_are_spent_once,
    expired_enrollments_are_purged,
    a_revocation_deletes_that_partys_presignatures_only_and_stops_new_ones,
    freeze_unfreeze_after_a_delay_and_a_freeze_cancels_a_pending_unfreeze,
    controls_are_sealed_and_follow_a_rekey,
    a_lifecycle_commit_moves_the_epoch_once_and_purges_the_wallets_presignatures,
);
