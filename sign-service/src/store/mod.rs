//! The encrypted key store: tables of records, every secret one sealed with
//! XChaCha20-Poly1305 under the store key, kept by a backend ([`StoreBackend`]): a redb
//! file (the default, one cosigner process) or a PostgreSQL database (several cosigner
//! instances sharing the wallets; `postgres.rs`).
//!
//! - Record format: `0x01 ‖ nonce (24) ‖ ciphertext+tag`, associated data
//!   `"wallet-mpc/sign-service/v1" 0x00 table 0x00 key`, so a record moved to another
//!   key or table fails to decrypt, as does any modified byte. Sealing and opening are
//!   done here, whatever the backend: a backend only ever sees sealed records.
//! - The store key is 32 bytes given in hex (`SIGN_SERVICE_STORE_KEY`) or derived once at
//!   start-up with Argon2id from a passphrase (`SIGN_SERVICE_STORE_PASSPHRASE`) and a
//!   random salt kept (unencrypted) in the database. A key-check record detects a wrong
//!   key at start-up.
//! - Every change is one write transaction of the backend (atomic, durable on commit,
//!   serializable: also across instances sharing a PostgreSQL database).

use std::collections::BTreeMap;
use std::path::Path;

pub mod backend;
#[cfg(any(test, feature = "test-hooks"))]
pub mod pg_server;
pub mod postgres;
pub mod redb;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use mpc_core::primes::PrimeSet;
use mpc_core::{Account, AccountKind, AuxInfo};
use mpc_wire::{IdentityKey, PublicIdentity};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use backend::{Outcome, StoreBackend, Table, Tx};

/// The root path as [`PresigSlot::path`] names it (a presignature at the root has no
/// [`Table::PresignaturePaths`] entry).
pub const ROOT_PATH: &str = "m";

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
    /// The database cannot be reached (PostgreSQL down, the connection lost): nothing
    /// was changed, or the change's fate is unknown; the operation may be retried.
    #[error("key store database unavailable: {0}")]
    Unavailable(String),
    /// A transaction conflicted with a concurrent one (another instance sharing a
    /// PostgreSQL store) as often as the backend retries it: nothing was changed; the
    /// operation may be retried.
    #[error("key store database busy: the transaction conflicted with concurrent ones ({0})")]
    Conflict(String),
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
/// and ids do not include the path ([`Table::PresignaturePaths`] records it).
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
/// no [`Table::PresignaturePaths`] entry).
fn path_of(tx: &mut dyn Tx, key: &str) -> Result<String, StoreError> {
    Ok(tx
        .get_text(Table::PresignaturePaths, key)?
        .unwrap_or_else(|| ROOT_PATH.to_string()))
}

/// The encrypted store.
pub struct Store {
    backend: Box<dyn StoreBackend>,
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
    /// Opens (or creates) the store in the redb file at `path` with the key from
    /// `source`.
    pub fn open(path: &Path, source: &KeySource) -> Result<Self, StoreError> {
        Self::with_backend(Box::new(redb::RedbBackend::open(path)?), source)
    }

    /// Opens (or creates) the store in the PostgreSQL database of `url` (see
    /// [`postgres::PgBackend::connect`]; `password` overrides the URL's) with the key
    /// from `source`. Blocking: call it outside async code.
    pub fn open_postgres(
        url: &str,
        password: Option<&[u8]>,
        source: &KeySource,
    ) -> Result<Self, StoreError> {
        Self::with_backend(
            Box::new(postgres::PgBackend::connect(url, password)?),
            source,
        )
    }

    /// Opens the store kept by `backend` (creating its metadata on first use) with the
    /// key from `source`: the KDF salt and store id are created once, the key is
    /// derived or unwrapped, and the key-check record refuses a wrong key.
    pub fn with_backend(
        backend: Box<dyn StoreBackend>,
        source: &KeySource,
    ) -> Result<Self, StoreError> {
        // The KDF salt and the store id, created once (one transaction: two instances
        // starting together agree on them).
        let mut fresh = [[0u8; 16]; 2];
        for f in &mut fresh {
            OsRng
                .try_fill_bytes(f)
                .map_err(|e| StoreError::Randomness(e.to_string()))?;
        }
        let mut init = None;
        backend.write(&mut |tx| {
            let salt = match tx.get(Table::Meta, "kdf_salt")? {
                Some(s) => s,
                None => {
                    tx.put(Table::Meta, "kdf_salt", &fresh[0])?;
                    fresh[0].to_vec()
                }
            };
            let id = match tx.get(Table::Meta, META_STORE_ID)? {
                Some(id) => id,
                None => {
                    tx.put(Table::Meta, META_STORE_ID, &fresh[1])?;
                    fresh[1].to_vec()
                }
            };
            let wrapped = tx.get(Table::Meta, META_PKCS11_WRAPPED)?;
            init = Some((salt, id, wrapped));
            Ok(Outcome::Commit)
        })?;
        let (salt, store_id, wrapped) = init.ok_or_else(no_result)?;
        let (key, new_wrapped) = data_key(source, &salt, &store_id, wrapped.as_deref())?;
        let key_bytes: &[u8; 32] = &key;
        let cipher = XChaCha20Poly1305::new(key_bytes.into());
        let store = Store { backend, cipher };
        // Key check (a store made under another key source fails it, and then nothing
        // is written); written with the token's wrapped key, if new, in one transaction.
        let sealed_check = store.seal("meta", "key_check", KEY_CHECK)?;
        let check = store.write(|tx| match tx.get(Table::Meta, "key_check")? {
            Some(sealed) => Ok((Some(sealed), Outcome::Abort)),
            None => {
                if let Some(w) = &new_wrapped {
                    tx.put(Table::Meta, META_PKCS11_WRAPPED, w)?;
                }
                tx.put(Table::Meta, "key_check", &sealed_check)?;
                Ok((None, Outcome::Commit))
            }
        })?;
        if let Some(sealed) = check {
            let plain = store
                .open_record("meta", "key_check", &sealed)
                .map_err(|_| StoreError::WrongKey)?;
            if plain.as_slice() != KEY_CHECK {
                return Err(StoreError::WrongKey);
            }
        }
        Ok(store)
    }

    /// Where the store is (a redb file, a PostgreSQL database), for logs and errors.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// Runs `body` in one read transaction; returns its value.
    fn read<R: Send>(
        &self,
        mut body: impl FnMut(&mut dyn Tx) -> Result<R, StoreError> + Send,
    ) -> Result<R, StoreError> {
        let mut out = None;
        self.backend.read(&mut |tx| {
            out = Some(body(tx)?);
            Ok(())
        })?;
        out.ok_or_else(no_result)
    }

    /// Runs `body` in one write transaction (committed or not as it says; possibly
    /// run again after a conflict); returns its value.
    fn write<R: Send>(
        &self,
        mut body: impl FnMut(&mut dyn Tx) -> Result<(R, Outcome), StoreError> + Send,
    ) -> Result<R, StoreError> {
        let mut out = None;
        self.backend.write(&mut |tx| {
            let (r, outcome) = body(tx)?;
            out = Some(r);
            Ok(outcome)
        })?;
        out.ok_or_else(no_result)
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
        self.read(|tx| tx.get(Table::Meta, key))
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
    /// with the old key (the service stopped: every instance, on PostgreSQL). Every
    /// record is opened first, so a damaged record stops the rekey before anything
    /// changes. Returns how many records were re-encrypted; reopen the store with the
    /// new key afterwards.
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
        self.write(|tx| {
            let mut count = 0u64;
            for t in [
                Table::Wallets,
                Table::DailySpend,
                Table::BitcoinDailySpend,
                Table::Presignatures,
                Table::Enrollments,
            ] {
                let mut resealed = Vec::new();
                for (k, v) in tx.entries(t, "")? {
                    let v = reseal(t.name(), &k, &v)?;
                    resealed.push((k, v));
                }
                for (k, v) in &resealed {
                    tx.put(t, k, v)?;
                }
                count += resealed.len() as u64;
            }
            let mut resealed = Vec::new();
            for (k, v) in tx.seq_entries()? {
                resealed.push((k, reseal("prime_pool", &k.to_string(), &v)?));
            }
            for (k, v) in &resealed {
                tx.seq_put(*k, v)?;
            }
            count += resealed.len() as u64;
            match &new_wrapped {
                Some(w) => tx.put(Table::Meta, META_PKCS11_WRAPPED, w)?,
                None => {
                    tx.remove(Table::Meta, META_PKCS11_WRAPPED)?;
                }
            }
            for name in ["key_check", "identity"] {
                if let Some(sealed) = tx.get(Table::Meta, name)? {
                    let v = reseal("meta", name, &sealed)?;
                    tx.put(Table::Meta, name, &v)?;
                    count += 1;
                }
            }
            Ok((count, Outcome::Commit))
        })
    }

    /// The cosigner's identity key, created on first use (in one transaction: two
    /// instances starting together on a new database get the same one).
    pub fn load_or_create_identity(&self) -> Result<IdentityKey, StoreError> {
        let key = IdentityKey::generate().map_err(|e| StoreError::Randomness(e.to_string()))?;
        let sealed_new = self.seal("meta", "identity", key.to_seed_hex().as_bytes())?;
        let existing = self.write(|tx| match tx.get(Table::Meta, "identity")? {
            Some(sealed) => Ok((Some(sealed), Outcome::Abort)),
            None => {
                tx.put(Table::Meta, "identity", &sealed_new)?;
                Ok((None, Outcome::Commit))
            }
        })?;
        let Some(sealed) = existing else {
            return Ok(key);
        };
        let seed = self.open_record("meta", "identity", &sealed)?;
        let s = std::str::from_utf8(&seed)
            .map_err(|e| StoreError::Malformed("meta/identity".into(), e.to_string()))?;
        IdentityKey::from_seed_hex(s)
            .map_err(|e| StoreError::Malformed("meta/identity".into(), e.to_string()))
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
        self.read(|tx| match tx.get(Table::Meta, META_PRESIGN_TAKES)? {
            Some(v) => takes_from(&v),
            None => Ok(0),
        })
    }

    /// A committed wallet.
    pub fn get_wallet(&self, wallet_id: &str) -> Result<Option<WalletRecord>, StoreError> {
        let Some(v) = self.read(|tx| tx.get(Table::Wallets, wallet_id))? else {
            return Ok(None);
        };
        self.decode("wallets", wallet_id, &v).map(Some)
    }

    /// Commits a new wallet (fails if the id exists). One transaction.
    pub fn insert_wallet(&self, rec: &WalletRecord) -> Result<(), StoreError> {
        let id = rec.wallet_id.as_str();
        let sealed = self.encode("wallets", id, rec)?;
        self.write(|tx| {
            if tx.get(Table::Wallets, id)?.is_some() {
                return Err(StoreError::Exists(format!("wallet {id}")));
            }
            tx.put(Table::Wallets, id, &sealed)?;
            Ok(((), Outcome::Commit))
        })
    }

    /// Stores a finished enrollment (fails if the id exists). One transaction.
    pub fn insert_enrollment(&self, rec: &EnrollmentRecord) -> Result<(), StoreError> {
        let id = rec.enrollment_id.as_str();
        let sealed = self.encode("enrollments", id, rec)?;
        self.write(|tx| {
            if tx.get(Table::Enrollments, id)?.is_some() {
                return Err(StoreError::Exists(format!("enrollment {id}")));
            }
            tx.put(Table::Enrollments, id, &sealed)?;
            tx.put_ms(Table::EnrollmentExpiry, id, rec.expires_at_ms)?;
            Ok(((), Outcome::Commit))
        })
    }

    /// An enrollment, spent or not (the caller checks [`EnrollmentRecord::usable`]).
    pub fn get_enrollment(&self, id: &str) -> Result<Option<EnrollmentRecord>, StoreError> {
        let Some(v) = self.read(|tx| tx.get(Table::Enrollments, id))? else {
            return Ok(None);
        };
        self.decode("enrollments", id, &v).map(Some)
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
        let wallet_id = rec.wallet_id.as_str();
        let sealed = self.encode("wallets", wallet_id, rec)?;
        self.write(|tx| {
            if tx.get(Table::Wallets, wallet_id)?.is_some() {
                return Err(StoreError::Exists(format!("wallet {wallet_id}")));
            }
            let Some(found) = tx.get(Table::Enrollments, enrollment_id)? else {
                return Err(StoreError::EnrollmentGone(enrollment_id.to_string()));
            };
            let mut enrollment: EnrollmentRecord =
                self.decode("enrollments", enrollment_id, &found)?;
            if !enrollment.usable(now_ms) {
                return Err(StoreError::EnrollmentGone(enrollment_id.to_string()));
            }
            enrollment.spent_by = Some(wallet_id.to_string());
            let spent = self.encode("enrollments", enrollment_id, &enrollment)?;
            tx.put(Table::Enrollments, enrollment_id, &spent)?;
            tx.put(Table::Wallets, wallet_id, &sealed)?;
            Ok(((), Outcome::Commit))
        })
    }

    /// Deletes the enrollments expired at `now_ms` (spent or not); returns how many.
    pub fn purge_enrollments(&self, now_ms: u64) -> Result<usize, StoreError> {
        self.write(|tx| {
            let expired: Vec<String> = tx
                .entries_ms(Table::EnrollmentExpiry)?
                .into_iter()
                .filter(|(_, expiry)| *expiry <= now_ms)
                .map(|(k, _)| k)
                .collect();
            for id in &expired {
                tx.remove(Table::EnrollmentExpiry, id)?;
                tx.remove(Table::Enrollments, id)?;
            }
            let outcome = if expired.is_empty() {
                Outcome::Abort
            } else {
                Outcome::Commit
            };
            Ok((expired.len(), outcome))
        })
    }

    /// Number of committed wallets.
    pub fn wallet_count(&self) -> Result<u64, StoreError> {
        self.read(|tx| tx.count(Table::Wallets))
    }

    /// Number of unused presignatures (every wallet, account, party and path).
    pub fn presignature_count(&self) -> Result<u64, StoreError> {
        self.read(|tx| tx.count(Table::Presignatures))
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
        self.write(|tx| {
            let current: u128 = match tx.get(Table::DailySpend, &key)? {
                Some(v) => {
                    let s: String = self.decode("daily_spend", &key, &v)?;
                    s.parse()
                        .map_err(|_| StoreError::Malformed(format!("daily_spend/{key}"), s))?
                }
                None => 0,
            };
            Ok(match current.checked_add(amount) {
                Some(total) if total <= limit => {
                    let sealed = self.encode("daily_spend", &key, &total.to_string())?;
                    tx.put(Table::DailySpend, &key, &sealed)?;
                    (Ok(total), Outcome::Commit)
                }
                _ => (Err(current), Outcome::Abort),
            })
        })
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
        self.write(|tx| {
            let mut today: BitcoinDay = match tx.get(Table::BitcoinDailySpend, &key)? {
                Some(v) => self.decode(TABLE, &key, &v)?,
                None => BitcoinDay::default(),
            };
            let counted_before = match day.checked_sub(1) {
                Some(prev) => {
                    let prev_key = format!("{wallet_id}/{prev}");
                    match tx.get(Table::BitcoinDailySpend, &prev_key)? {
                        Some(v) => self
                            .decode::<BitcoinDay>(TABLE, &prev_key, &v)?
                            .txids
                            .contains(txid),
                        None => false,
                    }
                }
                None => false,
            };
            if counted_before || today.txids.contains(txid) {
                return Ok((Ok(today.total_sats), Outcome::Abort));
            }
            Ok(match today.total_sats.checked_add(sats) {
                Some(total) if total <= limit => {
                    today.total_sats = total;
                    today.txids.insert(txid.to_string());
                    let sealed = self.encode(TABLE, &key, &today)?;
                    tx.put(Table::BitcoinDailySpend, &key, &sealed)?;
                    (Ok(total), Outcome::Commit)
                }
                _ => (Err(today.total_sats), Outcome::Abort),
            })
        })
    }

    /// Adds a prime set to the persistent pool.
    pub fn push_primes(&self, set: &PrimeSet) -> Result<(), StoreError> {
        self.write(|tx| {
            let next = tx.seq_last()?.map(|k| k + 1).unwrap_or(0);
            let sealed = self.encode("prime_pool", &next.to_string(), set)?;
            tx.seq_put(next, &sealed)?;
            Ok(((), Outcome::Commit))
        })
    }

    /// Takes (removes) one prime set from the pool; each set is used once. A record
    /// that fails to decrypt is removed too (and reported), so it cannot block the pool.
    pub fn pop_primes(&self) -> Result<Option<PrimeSet>, StoreError> {
        let popped = self.write(|tx| Ok((tx.seq_pop_first()?, Outcome::Commit)))?;
        popped
            .map(|(k, sealed)| self.decode::<PrimeSet>("prime_pool", &k.to_string(), &sealed))
            .transpose()
    }

    /// Number of prime sets in the pool.
    pub fn prime_count(&self) -> Result<u64, StoreError> {
        self.read(|tx| tx.count(Table::PrimePool))
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
        self.write(|tx| {
            if tx.get_ms(Table::PresignaturesUsed, &key)?.is_some()
                || tx.get(Table::Presignatures, &key)?.is_some()
            {
                return Err(StoreError::Exists(format!("presignature {id}")));
            }
            tx.put(Table::Presignatures, &key, &sealed)?;
            if slot.path != ROOT_PATH {
                tx.put_text(Table::PresignaturePaths, &key, &slot.path)?;
            }
            Ok(((), Outcome::Commit))
        })
    }

    /// Takes a presignature once: removes it and records its id as consumed in ONE
    /// committed (durable) transaction, and only then decrypts it. A crash after this
    /// returns can lose the presignature, never hand it out again (also with several
    /// instances on one PostgreSQL database: the transaction is serializable). A
    /// presignature of another path than the slot's is not taken
    /// ([`PresigTake::OtherPath`]).
    pub fn take_presignature<T: for<'de> Deserialize<'de>>(
        &self,
        slot: &PresigSlot,
        id: &str,
        now_ms: u64,
    ) -> Result<PresigTake<T>, StoreError> {
        let key = slot.key(id)?;
        let taken = self.write(|tx| {
            let Some(sealed) = tx.get(Table::Presignatures, &key)? else {
                let was_used = tx.get_ms(Table::PresignaturesUsed, &key)?.is_some();
                let state = if was_used {
                    PresigTake::Used
                } else {
                    PresigTake::Unknown
                };
                return Ok((state, Outcome::Abort));
            };
            let bound = path_of(tx, &key)?;
            if bound != slot.path {
                return Ok((PresigTake::OtherPath(bound), Outcome::Abort));
            }
            tx.remove(Table::PresignaturePaths, &key)?;
            tx.remove(Table::Presignatures, &key)?;
            tx.put_ms(Table::PresignaturesUsed, &key, now_ms)?;
            let takes = match tx.get(Table::Meta, META_PRESIGN_TAKES)? {
                Some(t) => takes_from(&t)?,
                None => 0,
            };
            tx.put(Table::Meta, META_PRESIGN_TAKES, &(takes + 1).to_be_bytes())?;
            Ok((PresigTake::Taken(sealed), Outcome::Commit))
        })?;
        Ok(match taken {
            PresigTake::Taken(sealed) => {
                PresigTake::Taken(self.decode("presignatures", &key, &sealed)?)
            }
            PresigTake::Used => PresigTake::Used,
            PresigTake::Unknown => PresigTake::Unknown,
            PresigTake::OtherPath(p) => PresigTake::OtherPath(p),
        })
    }

    /// Whether presignature `id` is available, used or unknown, in ONE read transaction
    /// (it changes nothing: callers ask before any destructive take).
    pub fn presignature_state(
        &self,
        slot: &PresigSlot,
        id: &str,
    ) -> Result<PresigState, StoreError> {
        let key = slot.key(id)?;
        self.read(|tx| {
            if tx.get(Table::Presignatures, &key)?.is_some() {
                let bound = path_of(tx, &key)?;
                return Ok(if bound == slot.path {
                    PresigState::Available
                } else {
                    PresigState::OtherPath(bound)
                });
            }
            Ok(if tx.get_ms(Table::PresignaturesUsed, &key)?.is_some() {
                PresigState::Used
            } else {
                PresigState::Unknown
            })
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
        self.read(|tx| {
            let mut pools: std::collections::BTreeMap<String, Vec<String>> = Default::default();
            for (k, _) in tx.entries(Table::Presignatures, &prefix)? {
                if let Some(id) = k.strip_prefix(prefix.as_str()) {
                    pools
                        .entry(path_of(tx, &k)?)
                        .or_default()
                        .push(id.to_string());
                }
            }
            Ok(pools)
        })
    }

    /// Deletes presignatures the caller no longer holds (marking them consumed).
    /// Returns how many existed.
    pub fn release_presignatures(
        &self,
        slot: &PresigSlot,
        ids: &[String],
        now_ms: u64,
    ) -> Result<usize, StoreError> {
        let keys = ids
            .iter()
            .map(|id| slot.key(id))
            .collect::<Result<Vec<_>, _>>()?;
        self.write(|tx| {
            let mut n = 0;
            for key in &keys {
                tx.remove(Table::PresignaturePaths, key)?;
                if tx.remove(Table::Presignatures, key)? {
                    n += 1;
                }
                tx.put_ms(Table::PresignaturesUsed, key, now_ms)?;
            }
            Ok((n, Outcome::Commit))
        })
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
        self.write(|tx| {
            let keys: Vec<String> = tx
                .entries(Table::Presignatures, "")?
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            for k in &keys {
                tx.remove(Table::Presignatures, k)?;
                tx.remove(Table::PresignaturePaths, k)?;
                tx.put_ms(Table::PresignaturesUsed, k, now_ms)?;
            }
            let current = match tx.get(Table::Meta, META_PRESIGN_TAKES)? {
                Some(t) => takes_from(&t)?,
                None => 0,
            };
            let takes = current.max(at_least) + 1;
            tx.put(Table::Meta, META_PRESIGN_TAKES, &takes.to_be_bytes())?;
            Ok(((keys.len(), takes), Outcome::Commit))
        })
    }

    /// The unexpired request nonces (scope, nonce, expiry ms); the entries expired at
    /// `now_ms` are deleted on the way. A malformed entry is an error naming it.
    pub fn replay_load(&self, now_ms: u64) -> Result<Vec<ReplayEntry>, StoreError> {
        self.write(|tx| {
            let mut live = Vec::new();
            let mut expired = Vec::new();
            for (key, expiry) in tx.entries_ms(Table::ReplayNonces)? {
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
                tx.remove(Table::ReplayNonces, k)?;
            }
            Ok((live, Outcome::Commit))
        })
    }

    /// Records an accepted request's nonce until `expiry_ms` and deletes the `expired`
    /// entries, in one transaction. `false` (and no change) when the nonce is recorded
    /// already: the request is a replay (one another instance sharing the store
    /// accepted, on PostgreSQL).
    pub fn replay_record(
        &self,
        scope: &str,
        nonce: &[u8; 16],
        expiry_ms: u64,
        expired: &[(String, [u8; 16])],
    ) -> Result<bool, StoreError> {
        let key = replay_key(scope, nonce);
        self.write(|tx| {
            if tx.get_ms(Table::ReplayNonces, &key)?.is_some() {
                return Ok((false, Outcome::Abort));
            }
            for (s, n) in expired {
                tx.remove(Table::ReplayNonces, &replay_key(s, n))?;
            }
            tx.put_ms(Table::ReplayNonces, &key, expiry_ms)?;
            Ok((true, Outcome::Commit))
        })
    }

    /// Deletes one nonce (its request was refused after all).
    pub fn replay_forget(&self, scope: &str, nonce: &[u8; 16]) -> Result<(), StoreError> {
        let key = replay_key(scope, nonce);
        self.write(|tx| {
            tx.remove(Table::ReplayNonces, &key)?;
            Ok(((), Outcome::Commit))
        })
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
        self.write(|tx| {
            if tx.get_ms(Table::RegistrationsUsed, id)?.is_some() {
                return Ok((false, Outcome::Abort));
            }
            for (k, expiry) in tx.entries_ms(Table::RegistrationsUsed)? {
                if expiry < now_ms {
                    tx.remove(Table::RegistrationsUsed, &k)?;
                }
            }
            tx.put_ms(Table::RegistrationsUsed, id, expiry_ms)?;
            Ok((true, Outcome::Commit))
        })
    }

    /// Whether the registration credential `id` (hex) was used (read only).
    pub fn registration_used(&self, id: &str) -> Result<bool, StoreError> {
        self.read(|tx| Ok(tx.get_ms(Table::RegistrationsUsed, id)?.is_some()))
    }

    /// Gives a consumed registration credential back (its wallet creation did not
    /// start after all).
    pub fn registration_release(&self, id: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.remove(Table::RegistrationsUsed, id)?;
            Ok(((), Outcome::Commit))
        })
    }

    #[cfg(test)]
    pub(crate) fn replay_put_raw(&self, key: &str, expiry_ms: u64) {
        self.write(|tx| {
            tx.put_ms(Table::ReplayNonces, key, expiry_ms)?;
            Ok(((), Outcome::Commit))
        })
        .unwrap();
    }

    #[cfg(test)]
    fn edit_prime_record(&self, from: u64, to: u64, f: impl Fn(&mut Vec<u8>) + Sync) {
        self.write(|tx| {
            let mut v = tx
                .seq_entries()?
                .into_iter()
                .find(|(k, _)| *k == from)
                .map(|(_, v)| v)
                .unwrap();
            tx.seq_remove(from)?;
            f(&mut v);
            tx.seq_put(to, &v)?;
            Ok(((), Outcome::Commit))
        })
        .unwrap();
    }
}

/// The error of a transaction body that handed nothing back (cannot happen: every
/// body returns a value or an error).
fn no_result() -> StoreError {
    StoreError::Db("the transaction returned no result".into())
}

#[cfg(test)]
mod tests {
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

    fn a_registration_credential_is_consumed_once_and_expired_ids_are_pruned(
        mk: &dyn Fn() -> Place,
    ) {
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

    /// The store's behaviour tests, on both backends: each on redb files, and all of
    /// them on one PostgreSQL server (a database each).
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
    );
}

/// Two cosigner instances on one PostgreSQL database: two [`Store`]s (each its own
/// connections) racing from many threads.
#[cfg(test)]
mod two_instances {
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
        assert_eq!(backend.schema_version().unwrap(), 1);
        let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        let rows = c.query("SELECT version FROM schema_version", &[]).unwrap();
        assert_eq!(rows.len(), 1, "migrated once");
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
}
