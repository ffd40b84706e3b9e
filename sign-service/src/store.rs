//! The encrypted key store: a redb database whose every record is sealed with
//! XChaCha20-Poly1305 under the store key.
//!
//! - Record format: `0x01 ‖ nonce (24) ‖ ciphertext+tag`, associated data
//!   `"wallet-mpc/sign-service/v1" 0x00 table 0x00 key`, so a record moved to another
//!   key or table fails to decrypt, as does any modified byte.
//! - The store key is 32 bytes given in hex (`SIGN_SERVICE_STORE_KEY`) or derived once at
//!   start-up with Argon2id from a passphrase (`SIGN_SERVICE_STORE_PASSPHRASE`) and a
//!   random salt kept (unencrypted) in the database. A key-check record detects a wrong
//!   key at start-up.
//! - Every change is one redb write transaction (atomic, durable on commit).

use std::collections::BTreeMap;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use mpc_core::primes::PrimeSet;
use mpc_core::{Account, AccountKind, AuxInfo};
use mpc_wire::{IdentityKey, PublicIdentity};
use rand_core::{OsRng, RngCore};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const WALLETS: TableDefinition<&str, &[u8]> = TableDefinition::new("wallets");
const SPEND: TableDefinition<&str, &[u8]> = TableDefinition::new("daily_spend");
/// Bitcoin spend per wallet and UTC day: `wallet/day` -> sealed [`BitcoinDay`] (the
/// day's total in satoshis and the txids counted in it, encrypted like every record).
const BTC_SPEND: TableDefinition<&str, &[u8]> = TableDefinition::new("bitcoin_daily_spend");
const PRIMES: TableDefinition<u64, &[u8]> = TableDefinition::new("prime_pool");
/// Unused presignatures: `wallet/account/party/id` -> sealed record.
const PRESIGS: TableDefinition<&str, &[u8]> = TableDefinition::new("presignatures");
/// Consumed presignature ids: `wallet/account/party/id` -> ms since the epoch.
const PRESIGS_USED: TableDefinition<&str, u64> = TableDefinition::new("presignatures_used");
/// The derivation path of each unused presignature that has one (HD accounts):
/// `wallet/account/party/id` -> path (`m/44/60/0/0/0`). No entry: the root (every
/// record written before paths existed, and every independent account's). Written and
/// removed in the same transactions as [`PRESIGS`]; the sealed record carries the path
/// too, and is checked again after the take.
const PRESIG_PATHS: TableDefinition<&str, &str> = TableDefinition::new("presignature_paths");
/// The root path as [`PresigSlot::path`] names it.
pub const ROOT_PATH: &str = "m";
/// Nonces of accepted requests still inside the clock-skew window (`replay.rs`):
/// `scope nonce-hex` -> expiry, ms since the epoch. Plain: nothing secret.
const REPLAY: TableDefinition<&str, u64> = TableDefinition::new("replay_nonces");
/// Ids (hex) of the registration credentials that created a wallet, until they expire
/// (a used credential is refused; `registration.rs`).
const REGISTRATIONS_USED: TableDefinition<&str, u64> = TableDefinition::new("registrations_used");
/// Enrollments (EnrollDevice) by id: sealed [`EnrollmentRecord`]s.
const ENROLLMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("enrollments");
/// Each enrollment's expiry, ms since the epoch (unencrypted: purging reads no record).
const ENROLLMENT_EXPIRY: TableDefinition<&str, u64> = TableDefinition::new("enrollment_expiry");

/// `meta` key of the store's random identity (16 bytes, plain: not a secret).
const META_STORE_ID: &str = "store_id";
/// `meta` key of the number of presignature takes ever committed (u64 big-endian). It
/// grows in the same transaction as each take; the rollback anchor (`rollback.rs`),
/// a file outside the store, remembers it, so an older copy of the store is detected.
const META_PRESIGN_TAKES: &str = "presign_takes";

const AAD_DOMAIN: &[u8] = b"wallet-mpc/sign-service/v1";
const RECORD_VERSION: u8 = 1;
const KEY_CHECK: &[u8] = b"wallet-mpc sign-service store key check v1";
const INSECURE_DEV_KEY_LABEL: &[u8] = b"wallet-mpc/sign-service/INSECURE-dev-store-key";

/// One wallet's Bitcoin spend of one UTC day ([`Store::add_bitcoin_daily_spend`]).
#[derive(Debug, Default, Serialize, Deserialize)]
struct BitcoinDay {
    /// Sum of the external outputs of the transactions counted.
    total_sats: u64,
    /// Their txids.
    txids: std::collections::BTreeSet<String>,
}

/// Where the store key comes from.
pub enum KeySource {
    /// 64 hex digits.
    Hex(Zeroizing<String>),
    /// A passphrase stretched with Argon2id.
    Passphrase(Zeroizing<String>),
    /// A fixed, public key: local tests only.
    InsecureDev,
    /// A random data key kept wrapped by an AES key on a PKCS#11 token
    /// ([`crate::pkcs11`]).
    Pkcs11(crate::pkcs11::Pkcs11Key),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeySource::Hex(_) => "KeySource::Hex(..)",
            KeySource::Passphrase(_) => "KeySource::Passphrase(..)",
            KeySource::InsecureDev => "KeySource::InsecureDev",
            KeySource::Pkcs11(_) => "KeySource::Pkcs11(..)",
        })
    }
}

/// Key-store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("key store database error: {0}")]
    Db(String),
    /// The store key is not the one the store was created with.
    #[error(
        "the store key does not open this key store (wrong store key file, passphrase or SIGN_SERVICE_STORE_KEY?)"
    )]
    WrongKey,
    /// The key material is malformed.
    #[error("invalid store key: {0}")]
    BadKey(String),
    /// A record failed authentication (tampered, moved or corrupted).
    #[error("record {table}/{key} failed to decrypt: tampered or corrupted")]
    Tampered {
        /// Table.
        table: String,
        /// Key.
        key: String,
    },
    /// A record could not be (de)serialized.
    #[error("record {0} is malformed: {1}")]
    Malformed(String, String),
    /// The record already exists.
    #[error("{0} already exists")]
    Exists(String),
    /// Randomness unavailable.
    #[error("randomness unavailable: {0}")]
    Randomness(String),
    /// The enrollment a wallet is committed from is unknown, expired or already spent.
    #[error("enrollment {0} is unknown, expired or already spent")]
    EnrollmentGone(String),
    /// The record a change needs does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The party's identity is revoked for this wallet (nothing is stored for it).
    #[error("the identity of party {party} of wallet {wallet_id} is revoked")]
    Revoked {
        /// Wallet id.
        wallet_id: String,
        /// Keygen index.
        party: u16,
    },
}

/// A persisted request nonce (see [`Store::replay_load`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayEntry {
    /// The signing identity (`wallet/party`, `create/device-identity`).
    pub scope: String,
    /// The nonce.
    pub nonce: [u8; 16],
    /// When it may be forgotten, ms since the epoch.
    pub expiry_ms: u64,
}

/// `scope nonce-hex` (scopes hold no spaces: wallet ids and identities are restricted).
fn replay_key(scope: &str, nonce: &[u8; 16]) -> String {
    format!("{scope} {}", hex::encode(nonce))
}

fn parse_replay_key(key: &str) -> Result<(String, [u8; 16]), StoreError> {
    let bad = |why: &str| {
        StoreError::Malformed(
            format!(
                "replay_nonces/{}",
                key.chars().take(300).collect::<String>()
            ),
            why.to_string(),
        )
    };
    let (scope, nonce_hex) = key
        .rsplit_once(' ')
        .ok_or_else(|| bad("no space between scope and nonce"))?;
    if scope.is_empty() {
        return Err(bad("empty scope"));
    }
    let mut nonce = [0u8; 16];
    hex::decode_to_slice(nonce_hex, &mut nonce).map_err(|_| bad("nonce is not 32 hex digits"))?;
    Ok((scope.to_string(), nonce))
}

mod controls;
pub use controls::{ControlAction, ControlChange, ControlOutcome, WalletControls};

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

/// A committed wallet as the cosigner holds it.
#[derive(Clone, Serialize, Deserialize)]
pub struct WalletRecord {
    /// Wallet id.
    pub wallet_id: String,
    /// Label given at creation.
    pub label: String,
    /// Account kind of every account.
    pub kind: AccountKind,
    /// Device identity (party 0).
    pub device_identity: PublicIdentity,
    /// Recovery identity (party 2).
    pub recovery_identity: PublicIdentity,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Whether the wallet's aux info was built from the repository's PUBLIC test primes
    /// (anyone can read its Paillier keys): development wallets only, flagged in logs
    /// and audit records.
    #[serde(default)]
    pub insecure_dev_primes: bool,
    /// The cosigner's aux info for this wallet's 3-party group.
    pub aux_info: AuxInfo,
    /// Accounts by id (the cosigner's key shares).
    pub accounts: BTreeMap<String, Account>,
}

impl std::fmt::Debug for WalletRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalletRecord")
            .field("wallet_id", &self.wallet_id)
            .field("accounts", &self.accounts.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A device's enrollment (EnrollDevice) once the cosigner's side of its aux info
/// finished: the aux info that wallets created from it reuse.
#[derive(Clone, Serialize, Deserialize)]
pub struct EnrollmentRecord {
    /// Enrollment id.
    pub enrollment_id: String,
    /// Device identity (party 0).
    pub device_identity: PublicIdentity,
    /// Recovery identity (party 2).
    pub recovery_identity: PublicIdentity,
    /// The cosigner's aux info for this 3-party group.
    pub aux_info: AuxInfo,
    /// When the enrollment was requested, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// When it can no longer be used, ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// The wallet committed from it (then it is spent).
    #[serde(default)]
    pub spent_by: Option<String>,
}

impl std::fmt::Debug for EnrollmentRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollmentRecord")
            .field("enrollment_id", &self.enrollment_id)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("spent_by", &self.spent_by)
            .finish_non_exhaustive()
    }
}

impl EnrollmentRecord {
    /// Whether a wallet may still be created from it at `now_ms`.
    pub fn usable(&self, now_ms: u64) -> bool {
        self.spent_by.is_none() && now_ms < self.expires_at_ms
    }
}

impl WalletRecord {
    /// The registered identity of `party` (0 device, 2 recovery).
    pub fn identity_of(&self, party: u16) -> Option<&PublicIdentity> {
        match party {
            0 => Some(&self.device_identity),
            2 => Some(&self.recovery_identity),
            _ => None,
        }
    }
}

/// Whose presignatures: one wallet's account, generated with one caller party (the
/// signer pair is that party and the cosigner), at one derivation path: one pool.
///
/// Presignature ids are unique per (wallet, account, party) whatever their path: keys
/// and ids do not include the path ([`PRESIG_PATHS`] records it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PresigSlot {
    /// Wallet id.
    pub wallet_id: String,
    /// Account id.
    pub account_id: String,
    /// The caller's keygen index (0 device, 2 recovery).
    pub party: u16,
    /// The derivation path, in its canonical form (`mpc_core::hd::DerivationPath`'s
    /// display: [`ROOT_PATH`] for the root, `m/44/60/0/0/0`).
    pub path: String,
}

impl PresigSlot {
    /// Key prefix of this slot (`wallet/account/party/`).
    pub fn prefix(&self) -> String {
        format!("{}/{}/{}/", self.wallet_id, self.account_id, self.party)
    }

    fn key(&self, id: &str) -> Result<String, StoreError> {
        if id.is_empty()
            || id.len() > 128
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
        {
            return Err(StoreError::Malformed(
                "presignature id".into(),
                format!("{id:?}: 1..=128 characters of A-Z a-z 0-9 . _ : -"),
            ));
        }
        Ok(format!("{}{id}", self.prefix()))
    }
}

/// Result of [`Store::take_presignature`].
#[derive(Debug, PartialEq, Eq)]
pub enum PresigTake<T> {
    /// The presignature, now consumed (its removal is committed).
    Taken(T),
    /// The id was consumed before.
    Used,
    /// No such presignature (never stored, or released).
    Unknown,
    /// Stored and unused, but for another derivation path (named): NOT taken.
    OtherPath(String),
}

/// Result of [`Store::presignature_state`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresigState {
    /// Stored and unused, for the slot's path.
    Available,
    /// Stored and unused, for another derivation path (named).
    OtherPath(String),
    /// Consumed (or released) before.
    Used,
    /// Never stored.
    Unknown,
}

/// The path of the unused presignature stored under `key` ([`ROOT_PATH`] when it has
/// no [`PRESIG_PATHS`] entry).
fn path_of(
    t: &impl ReadableTable<&'static str, &'static str>,
    key: &str,
) -> Result<String, StoreError> {
    Ok(t.get(key)
        .map_err(db_err)?
        .map(|v| v.value().to_string())
        .unwrap_or_else(|| ROOT_PATH.to_string()))
}

/// The encrypted store.
pub struct Store {
    db: Database,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store { .. }")
    }
}

fn derive_key(source: &KeySource, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, StoreError> {
    let mut key = Zeroizing::new([0u8; 32]);
    match source {
        KeySource::Hex(h) => {
            let h = h.trim();
            if h.len() != 64 {
                return Err(StoreError::BadKey(format!(
                    "SIGN_SERVICE_STORE_KEY must be 64 hex digits (32 bytes), got {} characters",
                    h.len()
                )));
            }
            hex::decode_to_slice(h, key.as_mut())
                .map_err(|_| StoreError::BadKey("SIGN_SERVICE_STORE_KEY is not hex".into()))?;
        }
        KeySource::Passphrase(p) => {
            if p.len() < 12 {
                return Err(StoreError::BadKey(
                    "SIGN_SERVICE_STORE_PASSPHRASE must be at least 12 characters".into(),
                ));
            }
            let params = argon2::Params::new(64 * 1024, 3, 1, Some(32))
                .map_err(|e| StoreError::BadKey(e.to_string()))?;
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into(p.as_bytes(), salt, key.as_mut())
                .map_err(|e| StoreError::BadKey(e.to_string()))?;
        }
        KeySource::InsecureDev => {
            use sha2_lite::sha256;
            *key = sha256(INSECURE_DEV_KEY_LABEL);
        }
        KeySource::Pkcs11(_) => {
            return Err(StoreError::BadKey(
                "a PKCS#11 key is unwrapped, not derived".into(),
            ))
        }
    }
    Ok(key)
}

/// The meta entry of a data key wrapped on a PKCS#11 token.
const META_PKCS11_WRAPPED: &str = "pkcs11_wrapped_key";

/// A data key, and its wrapping when a token just made it.
type DataKey = (Zeroizing<[u8; 32]>, Option<Vec<u8>>);

/// The data key of a store from `source`: derived (hex, passphrase, dev), or unwrapped
/// by the token from `wrapped`; for a token and no `wrapped` yet, a fresh random key
/// and its wrapping (for the caller to store once the key is accepted).
fn data_key(
    source: &KeySource,
    salt: &[u8],
    store_id: &[u8],
    wrapped: Option<&[u8]>,
) -> Result<DataKey, StoreError> {
    match (source, wrapped) {
        (KeySource::Pkcs11(p), Some(w)) => Ok((p.unwrap(w, store_id)?, None)),
        (KeySource::Pkcs11(p), None) => {
            let mut k = Zeroizing::new([0u8; 32]);
            OsRng
                .try_fill_bytes(k.as_mut())
                .map_err(|e| StoreError::Randomness(e.to_string()))?;
            let w = p.wrap(&k, store_id)?;
            Ok((k, Some(w)))
        }
        (other, _) => Ok((derive_key(other, salt)?, None)),
    }
}

/// A tiny SHA-256 wrapper (the insecure dev key is a hash of a public label).
mod sha2_lite {
    pub fn sha256(b: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(b).into()
    }
}

fn takes_from(b: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(b).map(u64::from_be_bytes).map_err(|_| {
        StoreError::Malformed(format!("meta/{META_PRESIGN_TAKES}"), "not 8 bytes".into())
    })
}

fn aad(table: &str, key: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_DOMAIN.len() + table.len() + key.len() + 2);
    a.extend_from_slice(AAD_DOMAIN);
    a.push(0);
    a.extend_from_slice(table.as_bytes());
    a.push(0);
    a.extend_from_slice(key.as_bytes());
    a
}

/// Seals `plain` as record `key` of `table` under `cipher`: version byte, random
/// 24-byte nonce, XChaCha20-Poly1305 ciphertext with the table and key as associated
/// data (a record moved to another key or table does not open).
fn seal_with(
    cipher: &XChaCha20Poly1305,
    table: &str,
    key: &str,
    plain: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let mut nonce = [0u8; 24];
    OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(|e| StoreError::Randomness(e.to_string()))?;
    let aad = aad(table, key);
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        .map_err(|_| StoreError::Db("encryption failed".into()))?;
    let mut out = Vec::with_capacity(1 + 24 + ct.len());
    out.push(RECORD_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

impl Store {
    /// Opens (or creates) the store at `path` with the key from `source`.
    pub fn open(path: &Path, source: &KeySource) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", dir.display())))?;
            }
        }
        let db = Database::create(path)
            .map_err(|e| StoreError::Db(format!("cannot open {}: {e}", path.display())))?;
        // Create every table and the KDF salt once.
        let tx = db.begin_write().map_err(db_err)?;
        let salt = {
            tx.open_table(WALLETS).map_err(db_err)?;
            tx.open_table(SPEND).map_err(db_err)?;
            tx.open_table(PRIMES).map_err(db_err)?;
            tx.open_table(PRESIGS).map_err(db_err)?;
            tx.open_table(PRESIGS_USED).map_err(db_err)?;
            tx.open_table(PRESIG_PATHS).map_err(db_err)?;
            tx.open_table(REPLAY).map_err(db_err)?;
            tx.open_table(REGISTRATIONS_USED).map_err(db_err)?;
            tx.open_table(ENROLLMENTS).map_err(db_err)?;
            tx.open_table(ENROLLMENT_EXPIRY).map_err(db_err)?;
            let mut meta = tx.open_table(META).map_err(db_err)?;
            let existing = meta
                .get("kdf_salt")
                .map_err(db_err)?
                .map(|v| v.value().to_vec());
            let existing = match existing {
                Some(s) => s,
                None => {
                    let mut s = vec![0u8; 16];
                    OsRng
                        .try_fill_bytes(&mut s)
                        .map_err(|e| StoreError::Randomness(e.to_string()))?;
                    meta.insert("kdf_salt", s.as_slice()).map_err(db_err)?;
                    s
                }
            };
            if meta.get(META_STORE_ID).map_err(db_err)?.is_none() {
                let mut id = [0u8; 16];
                OsRng
                    .try_fill_bytes(&mut id)
                    .map_err(|e| StoreError::Randomness(e.to_string()))?;
                meta.insert(META_STORE_ID, id.as_slice()).map_err(db_err)?;
            }
            existing
        };
        tx.commit().map_err(db_err)?;
        let store_id = {
            let tx = db.begin_read().map_err(db_err)?;
            let meta = tx.open_table(META).map_err(db_err)?;
            let id = meta
                .get(META_STORE_ID)
                .map_err(db_err)?
                .map(|v| v.value().to_vec());
            let wrapped = meta
                .get(META_PKCS11_WRAPPED)
                .map_err(db_err)?
                .map(|v| v.value().to_vec());
            (id.unwrap_or_default(), wrapped)
        };
        let (store_id, wrapped) = store_id;
        let (key, new_wrapped) = data_key(source, &salt, &store_id, wrapped.as_deref())?;
        let key_bytes: &[u8; 32] = &key;
        let cipher = XChaCha20Poly1305::new(key_bytes.into());
        let store = Store { db, cipher };
        // Key check (a store made under another key source fails it, and then nothing
        // is written).
        let check = store.get_raw_meta("key_check")?;
        if check.is_none() {
            if let Some(w) = &new_wrapped {
                store.put_meta_raw(META_PKCS11_WRAPPED, w)?;
            }
        }
        match check {
            Some(sealed) => {
                let plain = store
                    .open_record("meta", "key_check", &sealed)
                    .map_err(|_| StoreError::WrongKey)?;
                if plain.as_slice() != KEY_CHECK {
                    return Err(StoreError::WrongKey);
                }
            }
            None => {
                let sealed = store.seal("meta", "key_check", KEY_CHECK)?;
                store.put_meta_raw("key_check", &sealed)?;
            }
        }
        Ok(store)
    }

    fn seal(&self, table: &str, key: &str, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        seal_with(&self.cipher, table, key, plain)
    }

    fn open_record(
        &self,
        table: &str,
        key: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let tampered = || StoreError::Tampered {
            table: table.into(),
            key: key.into(),
        };
        if sealed.len() < 1 + 24 + 16 || sealed[0] != RECORD_VERSION {
            return Err(tampered());
        }
        let aad = aad(table, key);
        self.cipher
            .decrypt(
                XNonce::from_slice(&sealed[1..25]),
                Payload {
                    msg: &sealed[25..],
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| tampered())
    }

    fn get_raw_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(META).map_err(db_err)?;
        Ok(t.get(key).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    fn put_meta_raw(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        tx.open_table(META)
            .map_err(db_err)?
            .insert(key, value)
            .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    fn decode<T: for<'de> Deserialize<'de>>(
        &self,
        table: &str,
        key: &str,
        sealed: &[u8],
    ) -> Result<T, StoreError> {
        let plain = self.open_record(table, key, sealed)?;
        serde_json::from_slice(&plain)
            .map_err(|e| StoreError::Malformed(format!("{table}/{key}"), e.to_string()))
    }

    fn encode<T: Serialize>(
        &self,
        table: &str,
        key: &str,
        value: &T,
    ) -> Result<Vec<u8>, StoreError> {
        let plain = Zeroizing::new(
            serde_json::to_vec(value)
                .map_err(|e| StoreError::Malformed(format!("{table}/{key}"), e.to_string()))?,
        );
        self.seal(table, key, &plain)
    }

    /// Re-encrypts every sealed record under the key from `new` (rotating the store
    /// key; to a PKCS#11 token: a fresh random data key wrapped there), in ONE write
    /// transaction: a crash or an error leaves the whole store under
    /// the old key, a commit the whole store under the new one. The store must be open
    /// with the old key (the service stopped). Every record is opened first, so a
    /// damaged record stops the rekey before anything changes. Returns how many records
    /// were re-encrypted; reopen the store with the new key afterwards.
    pub fn rekey(&self, new: &KeySource) -> Result<u64, StoreError> {
        let salt = self
            .get_raw_meta("kdf_salt")?
            .ok_or_else(|| StoreError::Malformed("meta/kdf_salt".into(), "missing".into()))?;
        let store_id = self.get_raw_meta(META_STORE_ID)?.unwrap_or_default();
        // A token source always gets a fresh data key (wrapped on the token).
        let (key, new_wrapped) = data_key(new, &salt, &store_id, None)?;
        let key_bytes: &[u8; 32] = &key;
        let next = XChaCha20Poly1305::new(key_bytes.into());
        let reseal = |table: &str, key: &str, sealed: &[u8]| -> Result<Vec<u8>, StoreError> {
            let plain = self.open_record(table, key, sealed)?;
            seal_with(&next, table, key, &plain)
        };
        let mut count = 0u64;
        let tx = self.db.begin_write().map_err(db_err)?;
        for (def, name) in [
            (WALLETS, "wallets"),
            (SPEND, "daily_spend"),
            (BTC_SPEND, "bitcoin_daily_spend"),
            (PRESIGS, "presignatures"),
            (ENROLLMENTS, "enrollments"),
            (controls::WALLET_CONTROLS, controls::WALLET_CONTROLS_NAME),
        ] {
            let mut t = tx.open_table(def).map_err(db_err)?;
            let mut resealed = Vec::new();
            for item in t.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                resealed.push((k.value().to_string(), reseal(name, k.value(), v.value())?));
            }
            for (k, v) in &resealed {
                t.insert(k.as_str(), v.as_slice()).map_err(db_err)?;
            }
            count += resealed.len() as u64;
        }
        {
            let mut t = tx.open_table(PRIMES).map_err(db_err)?;
            let mut resealed = Vec::new();
            for item in t.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                let k = k.value();
                resealed.push((k, reseal("prime_pool", &k.to_string(), v.value())?));
            }
            for (k, v) in &resealed {
                t.insert(*k, v.as_slice()).map_err(db_err)?;
            }
            count += resealed.len() as u64;
        }
        {
            let mut meta = tx.open_table(META).map_err(db_err)?;
            match &new_wrapped {
                Some(w) => {
                    meta.insert(META_PKCS11_WRAPPED, w.as_slice())
                        .map_err(db_err)?;
                }
                None => {
                    meta.remove(META_PKCS11_WRAPPED).map_err(db_err)?;
                }
            }
            for name in ["key_check", "identity"] {
                let sealed = meta.get(name).map_err(db_err)?.map(|v| v.value().to_vec());
                if let Some(sealed) = sealed {
                    let v = reseal("meta", name, &sealed)?;
                    meta.insert(name, v.as_slice()).map_err(db_err)?;
                    count += 1;
                }
            }
        }
        tx.commit().map_err(db_err)?;
        Ok(count)
    }

    /// The cosigner's identity key, created on first use.
    pub fn load_or_create_identity(&self) -> Result<IdentityKey, StoreError> {
        if let Some(sealed) = self.get_raw_meta("identity")? {
            let seed = self.open_record("meta", "identity", &sealed)?;
            let s = std::str::from_utf8(&seed)
                .map_err(|e| StoreError::Malformed("meta/identity".into(), e.to_string()))?;
            return IdentityKey::from_seed_hex(s)
                .map_err(|e| StoreError::Malformed("meta/identity".into(), e.to_string()));
        }
        let key = IdentityKey::generate().map_err(|e| StoreError::Randomness(e.to_string()))?;
        let sealed = self.seal("meta", "identity", key.to_seed_hex().as_bytes())?;
        self.put_meta_raw("identity", &sealed)?;
        Ok(key)
    }

    /// The store's random identity (hex), created with the store.
    pub fn store_id(&self) -> Result<String, StoreError> {
        let id = self
            .get_raw_meta(META_STORE_ID)?
            .ok_or_else(|| StoreError::Malformed("meta/store_id".into(), "missing".into()))?;
        Ok(hex::encode(id))
    }

    /// How many presignature takes the store has committed (see `META_PRESIGN_TAKES`).
    pub fn presign_takes(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let meta = tx.open_table(META).map_err(db_err)?;
        let v = meta.get(META_PRESIGN_TAKES).map_err(db_err)?;
        let takes = v.map(|v| takes_from(v.value())).unwrap_or(Ok(0));
        takes
    }

    /// A committed wallet.
    pub fn get_wallet(&self, wallet_id: &str) -> Result<Option<WalletRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(WALLETS).map_err(db_err)?;
        let Some(v) = t.get(wallet_id).map_err(db_err)? else {
            return Ok(None);
        };
        self.decode("wallets", wallet_id, v.value()).map(Some)
    }

    /// Commits a new wallet (fails if the id exists). One transaction.
    pub fn insert_wallet(&self, rec: &WalletRecord) -> Result<(), StoreError> {
        let sealed = self.encode("wallets", &rec.wallet_id, rec)?;
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(WALLETS).map_err(db_err)?;
            if t.get(rec.wallet_id.as_str()).map_err(db_err)?.is_some() {
                return Err(StoreError::Exists(format!("wallet {}", rec.wallet_id)));
            }
            t.insert(rec.wallet_id.as_str(), sealed.as_slice())
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Stores a finished enrollment (fails if the id exists). One transaction.
    pub fn insert_enrollment(&self, rec: &EnrollmentRecord) -> Result<(), StoreError> {
        let id = rec.enrollment_id.as_str();
        let sealed = self.encode("enrollments", id, rec)?;
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(ENROLLMENTS).map_err(db_err)?;
            if t.get(id).map_err(db_err)?.is_some() {
                return Err(StoreError::Exists(format!("enrollment {id}")));
            }
            t.insert(id, sealed.as_slice()).map_err(db_err)?;
            tx.open_table(ENROLLMENT_EXPIRY)
                .map_err(db_err)?
                .insert(id, rec.expires_at_ms)
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// An enrollment, spent or not (the caller checks [`EnrollmentRecord::usable`]).
    pub fn get_enrollment(&self, id: &str) -> Result<Option<EnrollmentRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(ENROLLMENTS).map_err(db_err)?;
        let Some(v) = t.get(id).map_err(db_err)? else {
            return Ok(None);
        };
        self.decode("enrollments", id, v.value()).map(Some)
    }

    /// Commits a new wallet created from the enrollment `enrollment_id` and marks the
    /// enrollment spent by it, in ONE transaction: of two wallets racing on one
    /// enrollment only one commits; the other gets [`StoreError::EnrollmentGone`] (as
    /// for an enrollment unknown or expired at `now_ms`). A wallet id that exists is
    /// [`StoreError::Exists`] and changes nothing.
    pub fn insert_wallet_from_enrollment(
        &self,
        rec: &WalletRecord,
        enrollment_id: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let sealed = self.encode("wallets", &rec.wallet_id, rec)?;
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut wallets = tx.open_table(WALLETS).map_err(db_err)?;
            if wallets
                .get(rec.wallet_id.as_str())
                .map_err(db_err)?
                .is_some()
            {
                return Err(StoreError::Exists(format!("wallet {}", rec.wallet_id)));
            }
            let mut enrollments = tx.open_table(ENROLLMENTS).map_err(db_err)?;
            let found = enrollments
                .get(enrollment_id)
                .map_err(db_err)?
                .map(|v| v.value().to_vec());
            let Some(found) = found else {
                return Err(StoreError::EnrollmentGone(enrollment_id.to_string()));
            };
            let mut enrollment: EnrollmentRecord =
                self.decode("enrollments", enrollment_id, &found)?;
            if !enrollment.usable(now_ms) {
                return Err(StoreError::EnrollmentGone(enrollment_id.to_string()));
            }
            enrollment.spent_by = Some(rec.wallet_id.clone());
            let spent = self.encode("enrollments", enrollment_id, &enrollment)?;
            enrollments
                .insert(enrollment_id, spent.as_slice())
                .map_err(db_err)?;
            wallets
                .insert(rec.wallet_id.as_str(), sealed.as_slice())
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Deletes the enrollments expired at `now_ms` (spent or not); returns how many.
    pub fn purge_enrollments(&self, now_ms: u64) -> Result<usize, StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let purged = {
            let mut expiry = tx.open_table(ENROLLMENT_EXPIRY).map_err(db_err)?;
            let mut expired = Vec::new();
            for e in expiry.iter().map_err(db_err)? {
                let (k, v) = e.map_err(db_err)?;
                if v.value() <= now_ms {
                    expired.push(k.value().to_string());
                }
            }
            let mut enrollments = tx.open_table(ENROLLMENTS).map_err(db_err)?;
            for id in &expired {
                expiry.remove(id.as_str()).map_err(db_err)?;
                enrollments.remove(id.as_str()).map_err(db_err)?;
            }
            expired.len()
        };
        if purged > 0 {
            tx.commit().map_err(db_err)?;
        } else {
            tx.abort().map_err(db_err)?;
        }
        Ok(purged)
    }

    /// Number of committed wallets.
    pub fn wallet_count(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        tx.open_table(WALLETS)
            .map_err(db_err)?
            .len()
            .map_err(db_err)
    }

    /// Number of unused presignatures (every wallet, account, party and path).
    pub fn presignature_count(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        tx.open_table(PRESIGS)
            .map_err(db_err)?
            .len()
            .map_err(db_err)
    }

    /// Atomically adds `amount` to the wallet's spend of `day` if the new total stays
    /// within `limit`. Returns `Ok(new_total)`, or `Err(current_total)` when refused.
    pub fn add_daily_spend(
        &self,
        wallet_id: &str,
        day: u64,
        amount: u128,
        limit: u128,
    ) -> Result<Result<u128, u128>, StoreError> {
        let key = format!("{wallet_id}/{day}");
        let tx = self.db.begin_write().map_err(db_err)?;
        let result = {
            let mut t = tx.open_table(SPEND).map_err(db_err)?;
            let current: u128 = match t.get(key.as_str()).map_err(db_err)? {
                Some(v) => {
                    let s: String = self.decode("daily_spend", &key, v.value())?;
                    s.parse()
                        .map_err(|_| StoreError::Malformed(format!("daily_spend/{key}"), s))?
                }
                None => 0,
            };
            match current.checked_add(amount) {
                Some(total) if total <= limit => {
                    let sealed = self.encode("daily_spend", &key, &total.to_string())?;
                    t.insert(key.as_str(), sealed.as_slice()).map_err(db_err)?;
                    Ok(total)
                }
                _ => Err(current),
            }
        };
        if result.is_ok() {
            tx.commit().map_err(db_err)?;
        } else {
            tx.abort().map_err(db_err)?;
        }
        Ok(result)
    }

    /// Atomically adds the external outputs `sats` of the Bitcoin transaction `txid` to
    /// the wallet's total of `day`, once per transaction: a txid already counted on
    /// `day` or the day before (a PSBT whose inputs are signed across midnight) adds
    /// nothing. Returns `Ok(new_total)`, or `Err(current_total)` when the new total
    /// would pass `limit` (nothing recorded).
    pub fn add_bitcoin_daily_spend(
        &self,
        wallet_id: &str,
        day: u64,
        txid: &str,
        sats: u64,
        limit: u64,
    ) -> Result<Result<u64, u64>, StoreError> {
        const TABLE: &str = "bitcoin_daily_spend";
        let key = format!("{wallet_id}/{day}");
        let tx = self.db.begin_write().map_err(db_err)?;
        let result = {
            let mut t = tx.open_table(BTC_SPEND).map_err(db_err)?;
            let mut today: BitcoinDay = match t.get(key.as_str()).map_err(db_err)? {
                Some(v) => self.decode(TABLE, &key, v.value())?,
                None => BitcoinDay::default(),
            };
            let counted_before = match day.checked_sub(1) {
                Some(prev) => {
                    let prev_key = format!("{wallet_id}/{prev}");
                    match t.get(prev_key.as_str()).map_err(db_err)? {
                        Some(v) => self
                            .decode::<BitcoinDay>(TABLE, &prev_key, v.value())?
                            .txids
                            .contains(txid),
                        None => false,
                    }
                }
                None => false,
            };
            if counted_before || today.txids.contains(txid) {
                Ok(today.total_sats)
            } else {
                match today.total_sats.checked_add(sats) {
                    Some(total) if total <= limit => {
                        today.total_sats = total;
                        today.txids.insert(txid.to_string());
                        let sealed = self.encode(TABLE, &key, &today)?;
                        t.insert(key.as_str(), sealed.as_slice()).map_err(db_err)?;
                        Ok(total)
                    }
                    _ => Err(today.total_sats),
                }
            }
        };
        tx.commit().map_err(db_err)?;
        Ok(result)
    }

    /// Adds a prime set to the persistent pool.
    pub fn push_primes(&self, set: &PrimeSet) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(PRIMES).map_err(db_err)?;
            let next = t
                .last()
                .map_err(db_err)?
                .map(|(k, _)| k.value() + 1)
                .unwrap_or(0);
            let sealed = self.encode("prime_pool", &next.to_string(), set)?;
            t.insert(next, sealed.as_slice()).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Takes (removes) one prime set from the pool; each set is used once. A record
    /// that fails to decrypt is removed too (and reported), so it cannot block the pool.
    pub fn pop_primes(&self) -> Result<Option<PrimeSet>, StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let out = {
            let mut t = tx.open_table(PRIMES).map_err(db_err)?;
            let popped = t
                .pop_first()
                .map_err(db_err)?
                .map(|(k, v)| (k.value(), v.value().to_vec()));
            popped.map(|(k, sealed)| self.decode::<PrimeSet>("prime_pool", &k.to_string(), &sealed))
        };
        tx.commit().map_err(db_err)?;
        out.transpose()
    }

    /// Number of prime sets in the pool.
    pub fn prime_count(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        tx.open_table(PRIMES).map_err(db_err)?.len().map_err(db_err)
    }

    /// Stores a finished presignature of (`wallet_id`, `account_id`, caller `party`)
    /// under `id`, encrypted. Refused ([`StoreError::Exists`]) if the id is present or
    /// was ever consumed. One transaction.
    pub fn put_presignature<T: Serialize>(
        &self,
        slot: &PresigSlot,
        id: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let key = slot.key(id)?;
        let sealed = self.encode("presignatures", &key, value)?;
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let used = tx.open_table(PRESIGS_USED).map_err(db_err)?;
            let mut t = tx.open_table(PRESIGS).map_err(db_err)?;
            if used.get(key.as_str()).map_err(db_err)?.is_some()
                || t.get(key.as_str()).map_err(db_err)?.is_some()
            {
                return Err(StoreError::Exists(format!("presignature {id}")));
            }
            // A session that finished after its party was revoked stores nothing.
            if self.party_revoked_in(&tx, &slot.wallet_id, slot.party)? {
                return Err(StoreError::Revoked {
                    wallet_id: slot.wallet_id.clone(),
                    party: slot.party,
                });
            }
            t.insert(key.as_str(), sealed.as_slice()).map_err(db_err)?;
            if slot.path != ROOT_PATH {
                let mut paths = tx.open_table(PRESIG_PATHS).map_err(db_err)?;
                paths
                    .insert(key.as_str(), slot.path.as_str())
                    .map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }

    /// Takes a presignature once: removes it and records its id as consumed in ONE
    /// committed (durable) transaction, and only then decrypts it. A crash after this
    /// returns can lose the presignature, never hand it out again. A presignature of
    /// another path than the slot's is not taken ([`PresigTake::OtherPath`]).
    pub fn take_presignature<T: for<'de> Deserialize<'de>>(
        &self,
        slot: &PresigSlot,
        id: &str,
        now_ms: u64,
    ) -> Result<PresigTake<T>, StoreError> {
        let key = slot.key(id)?;
        let tx = self.db.begin_write().map_err(db_err)?;
        let bound = {
            let paths = tx.open_table(PRESIG_PATHS).map_err(db_err)?;
            let exists = tx
                .open_table(PRESIGS)
                .map_err(db_err)?
                .get(key.as_str())
                .map_err(db_err)?
                .is_some();
            let bound = path_of(&paths, &key)?;
            (exists && bound != slot.path).then_some(bound)
        };
        if let Some(bound) = bound {
            tx.abort().map_err(db_err)?;
            return Ok(PresigTake::OtherPath(bound));
        }
        let sealed = {
            tx.open_table(PRESIG_PATHS)
                .map_err(db_err)?
                .remove(key.as_str())
                .map_err(db_err)?;
            let mut t = tx.open_table(PRESIGS).map_err(db_err)?;
            let removed = t
                .remove(key.as_str())
                .map_err(db_err)?
                .map(|v| v.value().to_vec());
            match removed {
                Some(v) => {
                    let mut used = tx.open_table(PRESIGS_USED).map_err(db_err)?;
                    used.insert(key.as_str(), now_ms).map_err(db_err)?;
                    let mut meta = tx.open_table(META).map_err(db_err)?;
                    let takes = match meta.get(META_PRESIGN_TAKES).map_err(db_err)? {
                        Some(t) => takes_from(t.value())?,
                        None => 0,
                    };
                    meta.insert(META_PRESIGN_TAKES, (takes + 1).to_be_bytes().as_slice())
                        .map_err(db_err)?;
                    Some(v)
                }
                None => None,
            }
        };
        let Some(sealed) = sealed else {
            let was_used = {
                let used = tx.open_table(PRESIGS_USED).map_err(db_err)?;
                let found = used.get(key.as_str()).map_err(db_err)?.is_some();
                found
            };
            tx.abort().map_err(db_err)?;
            return Ok(if was_used {
                PresigTake::Used
            } else {
                PresigTake::Unknown
            });
        };
        tx.commit().map_err(db_err)?;
        self.decode("presignatures", &key, &sealed)
            .map(PresigTake::Taken)
    }

    /// Whether presignature `id` is available, used or unknown, in ONE read transaction
    /// (it changes nothing: callers ask before any destructive take).
    pub fn presignature_state(
        &self,
        slot: &PresigSlot,
        id: &str,
    ) -> Result<PresigState, StoreError> {
        let key = slot.key(id)?;
        let tx = self.db.begin_read().map_err(db_err)?;
        let available = tx.open_table(PRESIGS).map_err(db_err)?;
        if available.get(key.as_str()).map_err(db_err)?.is_some() {
            let paths = tx.open_table(PRESIG_PATHS).map_err(db_err)?;
            let bound = path_of(&paths, &key)?;
            return Ok(if bound == slot.path {
                PresigState::Available
            } else {
                PresigState::OtherPath(bound)
            });
        }
        let used = tx.open_table(PRESIGS_USED).map_err(db_err)?;
        Ok(if used.get(key.as_str()).map_err(db_err)?.is_some() {
            PresigState::Used
        } else {
            PresigState::Unknown
        })
    }

    /// Ids of the unused presignatures of a slot (its path only), in key order.
    pub fn presignature_ids(&self, slot: &PresigSlot) -> Result<Vec<String>, StoreError> {
        let mut pools = self.presignature_pools(slot)?;
        Ok(pools.remove(&slot.path).unwrap_or_default())
    }

    /// The unused presignatures of a slot's wallet, account and party, per path (every
    /// path, whatever the slot's), ids in key order.
    pub fn presignature_pools(
        &self,
        slot: &PresigSlot,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, StoreError> {
        let prefix = slot.prefix();
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(PRESIGS).map_err(db_err)?;
        let paths = tx.open_table(PRESIG_PATHS).map_err(db_err)?;
        let mut pools: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for item in t.range::<&str>(prefix.as_str()..).map_err(db_err)? {
            let (k, _) = item.map_err(db_err)?;
            let k = k.value();
            match k.strip_prefix(prefix.as_str()) {
                Some(id) => pools
                    .entry(path_of(&paths, k)?)
                    .or_default()
                    .push(id.to_string()),
                None => break,
            }
        }
        Ok(pools)
    }

    /// Deletes presignatures the caller no longer holds (marking them consumed).
    /// Returns how many existed.
    pub fn release_presignatures(
        &self,
        slot: &PresigSlot,
        ids: &[String],
        now_ms: u64,
    ) -> Result<usize, StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let mut n = 0;
        {
            let mut t = tx.open_table(PRESIGS).map_err(db_err)?;
            let mut used = tx.open_table(PRESIGS_USED).map_err(db_err)?;
            let mut paths = tx.open_table(PRESIG_PATHS).map_err(db_err)?;
            for id in ids {
                let key = slot.key(id)?;
                paths.remove(key.as_str()).map_err(db_err)?;
                if t.remove(key.as_str()).map_err(db_err)?.is_some() {
                    n += 1;
                }
                used.insert(key.as_str(), now_ms).map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)?;
        Ok(n)
    }

    /// Deletes every unused presignature (marking each id used) and sets the take
    /// counter to `max(its value, at_least) + 1`, in one transaction: after a restore,
    /// nothing the old copy held can be used, and the counter moves past the anchor's.
    /// Returns how many presignatures were deleted and the new counter.
    pub fn purge_presignatures(
        &self,
        at_least: u64,
        now_ms: u64,
    ) -> Result<(usize, u64), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let (purged, takes) = {
            let mut t = tx.open_table(PRESIGS).map_err(db_err)?;
            let mut used = tx.open_table(PRESIGS_USED).map_err(db_err)?;
            let mut keys = Vec::new();
            for item in t.iter().map_err(db_err)? {
                let (k, _) = item.map_err(db_err)?;
                keys.push(k.value().to_string());
            }
            let mut paths = tx.open_table(PRESIG_PATHS).map_err(db_err)?;
            for k in &keys {
                t.remove(k.as_str()).map_err(db_err)?;
                paths.remove(k.as_str()).map_err(db_err)?;
                used.insert(k.as_str(), now_ms).map_err(db_err)?;
            }
            let mut meta = tx.open_table(META).map_err(db_err)?;
            let current = match meta.get(META_PRESIGN_TAKES).map_err(db_err)? {
                Some(t) => takes_from(t.value())?,
                None => 0,
            };
            let takes = current.max(at_least) + 1;
            meta.insert(META_PRESIGN_TAKES, takes.to_be_bytes().as_slice())
                .map_err(db_err)?;
            (keys.len(), takes)
        };
        tx.commit().map_err(db_err)?;
        Ok((purged, takes))
    }

    /// The unexpired request nonces (scope, nonce, expiry ms); the entries expired at
    /// `now_ms` are deleted on the way. A malformed entry is an error naming it.
    pub fn replay_load(&self, now_ms: u64) -> Result<Vec<ReplayEntry>, StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let live = {
            let mut t = tx.open_table(REPLAY).map_err(db_err)?;
            let mut live = Vec::new();
            let mut expired = Vec::new();
            for row in t.iter().map_err(db_err)? {
                let (k, v) = row.map_err(db_err)?;
                let (key, expiry) = (k.value().to_string(), v.value());
                let (scope, nonce) = parse_replay_key(&key)?;
                if expiry < now_ms {
                    expired.push(key);
                } else {
                    live.push(ReplayEntry {
                        scope,
                        nonce,
                        expiry_ms: expiry,
                    });
                }
            }
            for k in &expired {
                t.remove(k.as_str()).map_err(db_err)?;
            }
            live
        };
        tx.commit().map_err(db_err)?;
        Ok(live)
    }

    /// Records an accepted request's nonce until `expiry_ms` and deletes the `expired`
    /// entries, in one transaction.
    pub fn replay_record(
        &self,
        scope: &str,
        nonce: &[u8; 16],
        expiry_ms: u64,
        expired: &[(String, [u8; 16])],
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(REPLAY).map_err(db_err)?;
            for (s, n) in expired {
                t.remove(replay_key(s, n).as_str()).map_err(db_err)?;
            }
            t.insert(replay_key(scope, nonce).as_str(), expiry_ms)
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Deletes one nonce (its request was refused after all).
    pub fn replay_forget(&self, scope: &str, nonce: &[u8; 16]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(REPLAY).map_err(db_err)?;
            t.remove(replay_key(scope, nonce).as_str())
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Marks the registration credential `id` (hex) used until `expiry_ms`, in one
    /// transaction that also deletes the entries expired at `now_ms`. `false` (and no
    /// change) when it was used before.
    pub fn registration_consume(
        &self,
        id: &str,
        expiry_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let fresh = {
            let mut t = tx.open_table(REGISTRATIONS_USED).map_err(db_err)?;
            if t.get(id).map_err(db_err)?.is_some() {
                false
            } else {
                t.retain(|_, expiry| expiry >= now_ms).map_err(db_err)?;
                t.insert(id, expiry_ms).map_err(db_err)?;
                true
            }
        };
        if fresh {
            tx.commit().map_err(db_err)?;
        } else {
            tx.abort().map_err(db_err)?;
        }
        Ok(fresh)
    }

    /// Whether the registration credential `id` (hex) was used (read only).
    pub fn registration_used(&self, id: &str) -> Result<bool, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(REGISTRATIONS_USED).map_err(db_err)?;
        Ok(t.get(id).map_err(db_err)?.is_some())
    }

    /// Gives a consumed registration credential back (its wallet creation did not
    /// start after all).
    pub fn registration_release(&self, id: &str) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        tx.open_table(REGISTRATIONS_USED)
            .map_err(db_err)?
            .remove(id)
            .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    #[cfg(test)]
    pub(crate) fn replay_put_raw(&self, key: &str, expiry_ms: u64) {
        let tx = self.db.begin_write().unwrap();
        tx.open_table(REPLAY)
            .unwrap()
            .insert(key, expiry_ms)
            .unwrap();
        tx.commit().unwrap();
    }

    #[cfg(test)]
    fn edit_prime_record(&self, from: u64, to: u64, f: impl FnOnce(&mut Vec<u8>)) {
        let tx = self.db.begin_write().unwrap();
        {
            let mut t = tx.open_table(PRIMES).unwrap();
            let mut v = t.remove(from).unwrap().unwrap().value().to_vec();
            f(&mut v);
            t.insert(to, v.as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("sign-service-store-{}-{name}", std::process::id()));
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

    #[test]
    fn a_registration_credential_is_consumed_once_and_expired_ids_are_pruned() {
        let p = tmp("registrations");
        let s = Store::open(&p, &hex_key(1)).unwrap();
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
        let s = Store::open(&p, &hex_key(1)).unwrap();
        assert!(
            !s.registration_consume("aa", 2_000, 1_500).unwrap(),
            "persisted"
        );
        // Past its expiry the id is pruned by the next consume (the credential itself is
        // refused as expired by then).
        assert!(s.registration_consume("bb", 9_000, 3_000).unwrap());
        assert!(s.registration_consume("aa", 9_000, 3_000).unwrap());
    }

    #[test]
    fn replay_nonces_persist_expire_and_a_malformed_entry_is_named() {
        let p = tmp("replay");
        let s = Store::open(&p, &hex_key(1)).unwrap();
        s.replay_record("w/0", &[1; 16], 2_000, &[]).unwrap();
        s.replay_record("w/0", &[2; 16], 5_000, &[]).unwrap();
        s.replay_record("create/ab", &[3; 16], 5_000, &[("w/0".into(), [2; 16])])
            .unwrap();
        drop(s);
        let s = Store::open(&p, &hex_key(1)).unwrap();
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
            let tx = s.db.begin_write().unwrap();
            tx.open_table(REPLAY).unwrap().remove(bad).unwrap();
            tx.commit().unwrap();
        }
    }

    /// `rekey` moves every sealed record (wallets' spend, prime sets, presignatures,
    /// the identity, the key check) to the new key in one transaction: the old key no
    /// longer opens the store, the new one opens everything unchanged; a store with a
    /// damaged record is not rekeyed at all; a bad new key is refused before anything
    /// changes.
    #[test]
    fn rekey_moves_every_record_to_the_new_key_at_once() {
        let p = tmp("rekey");
        let s = Store::open(&p, &hex_key(1)).unwrap();
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
        assert!(matches!(
            Store::open(&p, &hex_key(1)),
            Err(StoreError::WrongKey)
        ));
        let new = KeySource::Passphrase(Zeroizing::new("a long new passphrase".into()));
        let s = Store::open(&p, &new).unwrap();
        assert_eq!(s.load_or_create_identity().unwrap().public(), id);
        assert_eq!(s.prime_count().unwrap(), 2);
        assert!(s.pop_primes().unwrap().is_some());
        assert_eq!(s.add_daily_spend("w", 7, 1, 100).unwrap(), Ok(6));
        assert!(matches!(
            s.take_presignature::<String>(&slot, "p1", 1).unwrap(),
            PresigTake::Taken(ref v) if v == "secret presignature"
        ));
        // A damaged record: nothing is rekeyed.
        let tx = s.db.begin_write().unwrap();
        tx.open_table(PRIMES)
            .unwrap()
            .insert(99u64, [RECORD_VERSION; 60].as_slice())
            .unwrap();
        tx.commit().unwrap();
        assert!(matches!(
            s.rekey(&hex_key(3)),
            Err(StoreError::Tampered { .. })
        ));
        drop(s);
        Store::open(&p, &new).expect("still under the passphrase key");
    }

    #[test]
    fn wrong_key_is_refused() {
        let p = tmp("wrongkey");
        let s = Store::open(&p, &hex_key(1)).unwrap();
        let id = s.load_or_create_identity().unwrap();
        drop(s);
        assert!(matches!(
            Store::open(&p, &hex_key(2)),
            Err(StoreError::WrongKey)
        ));
        assert!(matches!(
            Store::open(&p, &KeySource::InsecureDev),
            Err(StoreError::WrongKey)
        ));
        let s = Store::open(&p, &hex_key(1)).unwrap();
        assert_eq!(s.load_or_create_identity().unwrap().public(), id.public());
        assert!(matches!(
            Store::open(
                &tmp("badhex"),
                &KeySource::Hex(Zeroizing::new("abcd".into()))
            ),
            Err(StoreError::BadKey(_))
        ));
    }

    #[test]
    fn passphrase_key() {
        let p = tmp("pass");
        let pass = |s: &str| KeySource::Passphrase(Zeroizing::new(s.into()));
        Store::open(&p, &pass("correct horse battery"))
            .unwrap()
            .push_primes(&set(1))
            .unwrap();
        assert!(matches!(
            Store::open(&p, &pass("wrong horse battery")),
            Err(StoreError::WrongKey)
        ));
        let s = Store::open(&p, &pass("correct horse battery")).unwrap();
        assert_eq!(s.pop_primes().unwrap(), Some(set(1)));
        assert!(matches!(
            Store::open(&tmp("short"), &pass("short")),
            Err(StoreError::BadKey(_))
        ));
    }

    #[test]
    fn records_are_encrypted_and_authenticated() {
        let p = tmp("tamper");
        let s = Store::open(&p, &hex_key(3)).unwrap();
        s.push_primes(&set(0x10)).unwrap();
        s.push_primes(&set(0x20)).unwrap();
        s.push_primes(&set(0x30)).unwrap();
        assert_eq!(s.prime_count().unwrap(), 3);
        // Plaintext never reaches the file.
        drop(s);
        let raw = std::fs::read(&p).unwrap();
        assert!(!raw.windows(6).any(|w| w == b"\"10\",\""));
        let s = Store::open(&p, &hex_key(3)).unwrap();
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

    #[test]
    fn presignatures_are_taken_once_and_persist() {
        let p = tmp("presig");
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
        let s = Store::open(&p, &hex_key(5)).unwrap();
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
        let raw = std::fs::read(&p).unwrap();
        assert!(!raw.windows(8).any(|w| w == b"secret-b"));
        // After a restart: consumed stays consumed, can never come back.
        let s = Store::open(&p, &hex_key(5)).unwrap();
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
    #[test]
    fn presignatures_belong_to_their_path() {
        let p = tmp("presig-path");
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
        let s = Store::open(&p, &hex_key(7)).unwrap();
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
        let tx = s.db.begin_read().unwrap();
        assert_eq!(tx.open_table(PRESIG_PATHS).unwrap().len().unwrap(), 0);
    }

    /// Asking about an unknown or used id (or an available one) changes nothing: the
    /// same ids stay available, used and unknown, and a take still works once.
    #[test]
    fn presignature_state_is_read_only() {
        let p = tmp("presig-state");
        let slot = PresigSlot {
            wallet_id: "w1".into(),
            account_id: "account-0".into(),
            party: 0,
            path: ROOT_PATH.into(),
        };
        let s = Store::open(&p, &hex_key(6)).unwrap();
        s.put_presignature(&slot, "live", &"secret".to_string())
            .unwrap();
        s.put_presignature(&slot, "gone", &"old".to_string())
            .unwrap();
        assert_eq!(
            s.take_presignature::<String>(&slot, "gone", 1).unwrap(),
            PresigTake::Taken("old".into())
        );
        let snapshot = |s: &Store| {
            let tx = s.db.begin_read().unwrap();
            let a: Vec<(String, Vec<u8>)> = tx
                .open_table(PRESIGS)
                .unwrap()
                .iter()
                .unwrap()
                .map(|r| {
                    let (k, v) = r.unwrap();
                    (k.value().to_string(), v.value().to_vec())
                })
                .collect();
            let u: Vec<(String, u64)> = tx
                .open_table(PRESIGS_USED)
                .unwrap()
                .iter()
                .unwrap()
                .map(|r| {
                    let (k, v) = r.unwrap();
                    (k.value().to_string(), v.value())
                })
                .collect();
            (a, u)
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

    #[test]
    fn daily_spend_is_atomic_and_bounded() {
        let s = Store::open(&tmp("spend"), &hex_key(4)).unwrap();
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

    #[test]
    fn bitcoin_daily_spend_counts_a_txid_once_and_survives_a_reopen() {
        let path = tmp("btc-spend");
        {
            let s = Store::open(&path, &hex_key(4)).unwrap();
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
        let s = Store::open(&path, &hex_key(4)).unwrap();
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
        }
    }

    #[test]
    fn enrollments_persist_encrypted_and_are_spent_once() {
        let p = tmp("enroll");
        let s = Store::open(&p, &hex_key(5)).unwrap();
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
        let raw = std::fs::read(&p).unwrap();
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
        assert!(matches!(
            Store::open(&p, &hex_key(6)),
            Err(StoreError::WrongKey)
        ));
        let s = Store::open(&p, &hex_key(5)).unwrap();
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

    #[test]
    fn expired_enrollments_are_purged() {
        let s = Store::open(&tmp("enroll-purge"), &hex_key(7)).unwrap();
        s.insert_enrollment(&enrollment("old", 1_000)).unwrap();
        s.insert_enrollment(&enrollment("new", 9_000)).unwrap();
        assert_eq!(s.purge_enrollments(500).unwrap(), 0);
        assert_eq!(s.purge_enrollments(1_000).unwrap(), 1);
        assert!(s.get_enrollment("old").unwrap().is_none());
        assert!(s.get_enrollment("new").unwrap().is_some());
        assert_eq!(s.purge_enrollments(1_000).unwrap(), 0);
    }
}
