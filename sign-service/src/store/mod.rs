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
mod controls;
mod crypto;
mod lifecycle;
pub mod migrate;
pub mod pg_tls;
/// The throwaway PostgreSQL server of the tests (the `test-servers` crate's).
#[cfg(any(test, feature = "test-hooks"))]
pub use test_servers::postgres as pg_server;
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
pub use controls::{ControlAction, ControlChange, ControlOutcome, WalletControls};
pub use crypto::KeySource;
use crypto::{aad, data_key, seal_with, KEY_CHECK, RECORD_VERSION};
pub use lifecycle::{LifecycleCommit, LifecycleOutcome};

/// The root path as [`PresigSlot::path`] names it (a presignature at the root has no
/// [`Table::PresignaturePaths`] entry).
pub const ROOT_PATH: &str = "m";

/// `meta` key of the store's random identity (16 bytes, plain: not a secret).
const META_STORE_ID: &str = "store_id";
/// `meta` key of the number of presignature takes ever committed (u64 big-endian). It
/// grows in the same transaction as each take; the rollback anchor (`rollback.rs`),
/// a file outside the store, remembers it, so an older copy of the store is detected.
const META_PRESIGN_TAKES: &str = "presign_takes";

/// One wallet's Bitcoin spend of one UTC day ([`Store::add_bitcoin_daily_spend`]).
#[derive(Debug, Default, Serialize, Deserialize)]
struct BitcoinDay {
    /// Sum of the external outputs of the transactions counted.
    total_sats: u64,
    /// Their txids.
    txids: std::collections::BTreeSet<String>,
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
    /// The record a change needs does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The store was copied to PostgreSQL (`sign-service store migrate-to-postgres`):
    /// this copy must not be used again (its presignatures live on there).
    #[error(
        "this key store was migrated to {0}: it must not be used again (its presignatures \
         live on there); set store_url to use the PostgreSQL store"
    )]
    Moved(String),
    /// A migration's target holds records already (of another store, or of this one
    /// changed since).
    #[error("the target store is not empty: {0}")]
    TargetNotEmpty(String),
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
    /// The epoch of every account's share: 0 at creation, + 1 per committed refresh or
    /// device replacement (ConfirmLifecycle). Presignatures record the epoch they were
    /// made at; one of another epoch never signs.
    #[serde(default)]
    pub share_epoch: u64,
    /// When the last refresh or replacement was committed, ms since the Unix epoch
    /// (the refresh schedule counts from it, or from the creation).
    #[serde(default)]
    pub last_refresh_at_ms: Option<u64>,
    /// Device identities replaced by ReplaceDevice (no longer registered: they can
    /// never authenticate again), kept for the audit.
    #[serde(default)]
    pub retired_device_identities: Vec<RetiredIdentity>,
}

/// A device identity a replacement retired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredIdentity {
    /// The identity.
    pub identity: PublicIdentity,
    /// When the replacement was committed, ms since the Unix epoch.
    pub retired_at_ms: u64,
    /// The share epoch the replacement produced.
    pub epoch: u64,
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

/// Deletes every unused presignature whose key starts with `prefix` (`""`: all of them,
/// `"<wallet>/"`: one wallet's), marking each id used so it can never be stored or
/// taken again. Returns how many.
pub(crate) fn consume_presignatures(
    tx: &mut dyn Tx,
    prefix: &str,
    now_ms: u64,
) -> Result<usize, StoreError> {
    let keys: Vec<String> = tx
        .entries(Table::Presignatures, prefix)?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for k in &keys {
        tx.remove(Table::Presignatures, k)?;
        tx.remove(Table::PresignaturePaths, k)?;
        tx.put_ms(Table::PresignaturesUsed, k, now_ms)?;
    }
    Ok(keys.len())
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

/// The meta entry of a data key wrapped on a PKCS#11 token.
const META_PKCS11_WRAPPED: &str = "pkcs11_wrapped_key";

fn takes_from(b: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(b).map(u64::from_be_bytes).map_err(|_| {
        StoreError::Malformed(format!("meta/{META_PRESIGN_TAKES}"), "not 8 bytes".into())
    })
}

impl Store {
    /// Opens (or creates) the store in the redb file at `path` with the key from
    /// `source`. A store migrated to PostgreSQL is refused ([`StoreError::Moved`]).
    pub fn open(path: &Path, source: &KeySource) -> Result<Self, StoreError> {
        let backend = redb::RedbBackend::open(path)?;
        if let Some(to) = migrate::moved_to(&backend)? {
            return Err(StoreError::Moved(to));
        }
        Self::with_backend(Box::new(backend), source)
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

    /// [`Store::open_postgres`] with every connection option (TLS, timeouts).
    pub fn open_postgres_with(
        url: &str,
        options: &postgres::PgOptions<'_>,
        source: &KeySource,
    ) -> Result<Self, StoreError> {
        Self::with_backend(
            Box::new(postgres::PgBackend::connect_with(url, options)?),
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

    /// The backend (its sealed records as they are).
    pub(crate) fn backend(&self) -> &dyn StoreBackend {
        self.backend.as_ref()
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
                Table::WalletControls,
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
            // A session that finished after its party was revoked stores nothing.
            if self.party_revoked_in(tx, &slot.wallet_id, slot.party)? {
                return Err(StoreError::Revoked {
                    wallet_id: slot.wallet_id.clone(),
                    party: slot.party,
                });
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
            let deleted = consume_presignatures(tx, "", now_ms)?;
            let current = match tx.get(Table::Meta, META_PRESIGN_TAKES)? {
                Some(t) => takes_from(&t)?,
                None => 0,
            };
            let takes = current.max(at_least) + 1;
            tx.put(Table::Meta, META_PRESIGN_TAKES, &takes.to_be_bytes())?;
            Ok(((deleted, takes), Outcome::Commit))
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
mod tests;

/// Two cosigner instances on one PostgreSQL database.
#[cfg(test)]
mod two_instances;

/// TLS, timeouts and the migration from redb, on real PostgreSQL servers.
#[cfg(test)]
mod pg_ops_tests;
