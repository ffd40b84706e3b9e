//! What a database must offer the store: tables of keyed records and transactions over
//! them. The store's logic (which records, sealed how, checked and changed together)
//! is written once in [`super::Store`] against [`Tx`]; a backend only keeps bytes.
//!
//! Backends: [`super::redb::RedbBackend`] (embedded, one process) and
//! [`super::postgres::PgBackend`] (shared by several cosigner instances).

use super::StoreError;

/// How a table's values are typed (and stored: redb value types, PostgreSQL columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bytes (sealed records, or plain metadata): redb `&[u8]`, PostgreSQL `bytea`.
    Bytes,
    /// A number (ms since the epoch): redb `u64`, PostgreSQL `bigint`.
    Ms,
    /// Text (a derivation path): redb `&str`, PostgreSQL `text`.
    Text,
    /// The prime pool: keyed by a sequence number (redb `u64`, PostgreSQL `bigint`),
    /// values are bytes.
    Sequence,
}

/// A table of the store. The names are redb's table names and PostgreSQL's table names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Metadata: the KDF salt, the store id, the key check, the identity, the take
    /// counter, a PKCS#11-wrapped data key.
    Meta,
    /// Wallets by id: sealed [`super::WalletRecord`]s.
    Wallets,
    /// EVM spend per `wallet/day`: sealed totals.
    DailySpend,
    /// Bitcoin spend per `wallet/day`: sealed totals and txids.
    BitcoinDailySpend,
    /// Prime sets by sequence number: sealed.
    PrimePool,
    /// Unused presignatures (`wallet/account/party/id`): sealed.
    Presignatures,
    /// Consumed presignature ids -> ms.
    PresignaturesUsed,
    /// Derivation path of each unused presignature that has one.
    PresignaturePaths,
    /// Request nonces (`scope nonce-hex`) -> expiry ms.
    ReplayNonces,
    /// Registration credentials used -> expiry ms.
    RegistrationsUsed,
    /// Enrollments by id: sealed.
    Enrollments,
    /// Each enrollment's expiry ms.
    EnrollmentExpiry,
    /// Each wallet's controls (revoked identities, freeze): sealed.
    WalletControls,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 13] = [
        Table::Meta,
        Table::Wallets,
        Table::DailySpend,
        Table::BitcoinDailySpend,
        Table::PrimePool,
        Table::Presignatures,
        Table::PresignaturesUsed,
        Table::PresignaturePaths,
        Table::ReplayNonces,
        Table::RegistrationsUsed,
        Table::Enrollments,
        Table::EnrollmentExpiry,
        Table::WalletControls,
    ];

    /// The table's name (redb and PostgreSQL; also the record encryption's associated
    /// data).
    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Wallets => "wallets",
            Table::DailySpend => "daily_spend",
            Table::BitcoinDailySpend => "bitcoin_daily_spend",
            Table::PrimePool => "prime_pool",
            Table::Presignatures => "presignatures",
            Table::PresignaturesUsed => "presignatures_used",
            Table::PresignaturePaths => "presignature_paths",
            Table::ReplayNonces => "replay_nonces",
            Table::RegistrationsUsed => "registrations_used",
            Table::Enrollments => "enrollments",
            Table::EnrollmentExpiry => "enrollment_expiry",
            Table::WalletControls => "wallet_controls",
        }
    }

    /// The table's name if its values are of `kind`; else a [`StoreError::Db`] naming
    /// both (a backend call on a table of another kind is a bug).
    pub fn typed(self, kind: Kind) -> Result<&'static str, StoreError> {
        if self.kind() == kind {
            Ok(self.name())
        } else {
            Err(StoreError::Db(format!(
                "table {} holds {:?} values, not {kind:?}",
                self.name(),
                self.kind()
            )))
        }
    }

    /// How its values are typed.
    pub fn kind(self) -> Kind {
        match self {
            Table::PrimePool => Kind::Sequence,
            Table::PresignaturesUsed
            | Table::ReplayNonces
            | Table::RegistrationsUsed
            | Table::EnrollmentExpiry => Kind::Ms,
            Table::PresignaturePaths => Kind::Text,
            _ => Kind::Bytes,
        }
    }
}

/// One transaction's view of the tables. Keys are compared bytewise (listings are in
/// key order). Calling a method on a table of another [`Kind`] is an error
/// ([`StoreError::Db`]); so is a change in a read-only transaction.
pub trait Tx {
    /// A [`Kind::Bytes`] value.
    fn get(&mut self, t: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Inserts or replaces a [`Kind::Bytes`] value.
    fn put(&mut self, t: Table, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// A [`Kind::Ms`] value.
    fn get_ms(&mut self, t: Table, key: &str) -> Result<Option<u64>, StoreError>;
    /// Inserts or replaces a [`Kind::Ms`] value.
    fn put_ms(&mut self, t: Table, key: &str, value: u64) -> Result<(), StoreError>;
    /// A [`Kind::Text`] value.
    fn get_text(&mut self, t: Table, key: &str) -> Result<Option<String>, StoreError>;
    /// Inserts or replaces a [`Kind::Text`] value.
    fn put_text(&mut self, t: Table, key: &str, value: &str) -> Result<(), StoreError>;
    /// Removes a key of any text-keyed table; whether it was there.
    fn remove(&mut self, t: Table, key: &str) -> Result<bool, StoreError>;
    /// Every entry of a [`Kind::Bytes`] table whose key starts with `prefix`, in key
    /// order.
    fn entries(&mut self, t: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Every entry of a [`Kind::Ms`] table, in key order.
    fn entries_ms(&mut self, t: Table) -> Result<Vec<(String, u64)>, StoreError>;
    /// Every entry of a [`Kind::Text`] table, in key order.
    fn entries_text(&mut self, t: Table) -> Result<Vec<(String, String)>, StoreError>;
    /// Number of entries of any table.
    fn count(&mut self, t: Table) -> Result<u64, StoreError>;
    /// The highest sequence number of the prime pool.
    fn seq_last(&mut self) -> Result<Option<u64>, StoreError>;
    /// Inserts or replaces a prime-pool entry.
    fn seq_put(&mut self, n: u64, value: &[u8]) -> Result<(), StoreError>;
    /// Removes and returns the prime-pool entry with the lowest sequence number.
    fn seq_pop_first(&mut self) -> Result<Option<(u64, Vec<u8>)>, StoreError>;
    /// Removes one prime-pool entry; whether it was there.
    fn seq_remove(&mut self, n: u64) -> Result<bool, StoreError>;
    /// Every prime-pool entry, by sequence number.
    fn seq_entries(&mut self) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
}

/// What a write transaction's body decides: keep its changes or drop them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Commit (durably) the changes.
    Commit,
    /// Roll back every change.
    Abort,
}

/// A database holding the store's tables. Object safe: the store holds a
/// `Box<dyn StoreBackend>`. Every call blocks (callers run on blocking threads).
pub trait StoreBackend: Send + Sync {
    /// Runs `body` in one read-only transaction (one consistent snapshot).
    fn read(
        &self,
        body: &mut (dyn FnMut(&mut dyn Tx) -> Result<(), StoreError> + Send),
    ) -> Result<(), StoreError>;

    /// Runs `body` in one write transaction, committed when it returns
    /// [`Outcome::Commit`], rolled back on [`Outcome::Abort`] or an error. Write
    /// transactions are serializable: the result is as if they ran one at a time, also
    /// across processes sharing the database. A backend may run `body` more than once
    /// (PostgreSQL after a serialization conflict), so it must not have effects outside
    /// the transaction other than values it hands back.
    fn write(
        &self,
        body: &mut (dyn FnMut(&mut dyn Tx) -> Result<Outcome, StoreError> + Send),
    ) -> Result<(), StoreError>;

    /// Where the data is, for logs and errors (never a password).
    fn describe(&self) -> String;
}
