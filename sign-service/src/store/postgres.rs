//! The shared backend: PostgreSQL, so that several cosigner instances serve the same
//! wallets. One table per redb table (same names, same sealed values: PostgreSQL never
//! sees a plaintext share), created by the migrations of `sign-service/migrations/`.
//!
//! Every write transaction runs at `SERIALIZABLE` isolation and is retried on a
//! serialization failure or a deadlock: each store operation (a presignature take, a
//! daily-spend check-and-add, a nonce or a registration recorded once, a prime set
//! popped) behaves as if the instances ran them one at a time. Reads run at
//! `REPEATABLE READ, READ ONLY` (one snapshot, never a conflict).
//!
//! Client: the synchronous `postgres` crate, a few pooled connections. Each connection
//! runs a small runtime of its own, which must not be driven from a thread of the
//! service's tokio runtime: a call made with a runtime entered (an async task, or a
//! `spawn_blocking` thread) runs on a short-lived thread of its own and blocks the
//! caller like a redb call does.
//!
//! Connections: TLS as libpq's `sslmode` says (`pg_tls.rs`: rustls; plaintext only to
//! loopback or when `sslmode=disable` is explicit); every connection gets a
//! `statement_timeout` and a `lock_timeout` ([`PgOptions`]), so a stuck statement or a
//! lock held elsewhere fails the operation as [`StoreError::Unavailable`] (retryable)
//! instead of blocking the caller.

use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, Config, IsolationLevel, NoTls, Transaction};
use rand_core::{OsRng, RngCore};

use super::backend::{Kind, Outcome, StoreBackend, Table, Tx};
use super::pg_tls::{self, PgTarget, SslMode};
use super::StoreError;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The schema migrations, in order: (version, name, SQL). Each runs once, in the
/// transaction that records it in `schema_version`.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "store", include_str!("../../migrations/0001_store.sql")),
    (
        2,
        "wallet_controls",
        include_str!("../../migrations/0002_wallet_controls.sql"),
    ),
];

/// The advisory lock that serializes migrations of concurrent starts.
const MIGRATION_LOCK: i64 = 0x7369_676e_2d73_7663; // "sign-svc"

/// Attempts of one write transaction (serialization conflicts under contention).
const MAX_ATTEMPTS: u32 = 200;

/// Idle connections kept.
const MAX_IDLE: usize = 8;

/// Connections open at once (in use or idle) per store: more callers wait for one.
pub const MAX_CONNECTIONS: usize = 16;

/// How long a caller waits for a connection when all are in use.
const CONNECTION_WAIT: Duration = Duration::from_secs(30);

/// An idle connection older than this is checked before use (the server may have
/// restarted).
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(5);

/// The connect timeout when the URL gives none.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach the database besides its URL.
#[derive(Debug, Clone, Copy)]
pub struct PgOptions<'a> {
    /// The password (else the URL's, if any).
    pub password: Option<&'a [u8]>,
    /// The PEM file of the CA that issued the server's certificate (`store_ca_file`;
    /// or `sslrootcert` in the URL).
    pub ca_file: Option<&'a Path>,
    /// `statement_timeout` of every connection (zero: none).
    pub statement_timeout: Duration,
    /// `lock_timeout` of every connection (zero: none; then a lock wait ends at the
    /// statement timeout).
    pub lock_timeout: Duration,
}

impl Default for PgOptions<'_> {
    fn default() -> Self {
        PgOptions {
            password: None,
            ca_file: None,
            statement_timeout: pg_tls::DEFAULT_STATEMENT_TIMEOUT,
            lock_timeout: pg_tls::DEFAULT_LOCK_TIMEOUT,
        }
    }
}

/// The store in a PostgreSQL database.
pub struct PgBackend {
    config: Config,
    /// The rustls connector (`None`: plaintext, `sslmode=disable` or loopback).
    tls: Option<MakeRustlsConnect>,
    /// The `SET`s run on every new connection (the timeouts).
    session_setup: String,
    idle: Mutex<Vec<(Client, Instant)>>,
    /// Connections handed out (or being opened) now.
    leased: Mutex<usize>,
    returned: Condvar,
    label: String,
}

/// A connection handed out by [`PgBackend::client`], given back when dropped.
struct Lease<'a> {
    backend: &'a PgBackend,
    client: Option<Client>,
    /// Taken from the idle connections (it may have died since).
    reused: bool,
}

impl std::ops::Deref for Lease<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a lease holds its client until dropped")
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("a lease holds its client until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            self.backend.give_back(c);
        }
    }
}

fn pg_err(label: &str) -> impl Fn(postgres::Error) -> StoreError + '_ {
    move |e| {
        if matches!(
            e.code(),
            Some(&SqlState::T_R_SERIALIZATION_FAILURE) | Some(&SqlState::T_R_DEADLOCK_DETECTED)
        ) {
            return StoreError::Conflict(e.to_string());
        }
        // A statement cancelled by `statement_timeout` (57014) or a lock not granted
        // within `lock_timeout` (55P03): nothing of the transaction is kept; retryable.
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            if *code == SqlState::QUERY_CANCELED || *code == SqlState::LOCK_NOT_AVAILABLE {
                return StoreError::Unavailable(format!(
                    "PostgreSQL {label}: {} ({}; see store_statement_timeout_ms and \
                     store_lock_timeout_ms)",
                    db.message(),
                    code.code()
                ));
            }
        }
        // The driver's error names the kind ("error connecting to server", "db error"),
        // the server's message is its source.
        if let Some(db) = e.as_db_error() {
            let msg = format!(
                "PostgreSQL {label}: {} ({})",
                db.message(),
                db.code().code()
            );
            // Class 08 (connection exception), 57P0x (the server shutting down).
            let code = db.code().code();
            return if code.starts_with("08") || code.starts_with("57P0") {
                StoreError::Unavailable(msg)
            } else {
                StoreError::Db(msg)
            };
        }
        let mut msg = format!("PostgreSQL {label}: {e}");
        if let Some(src) = std::error::Error::source(&e) {
            msg.push_str(&format!(": {src}"));
        }
        // No server error: the connection failed or was lost.
        StoreError::Unavailable(msg)
    }
}

fn to_i64(what: &str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v)
        .map_err(|_| StoreError::Malformed(what.to_string(), format!("{v} is out of range")))
}

fn to_u64(what: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Malformed(what.to_string(), format!("{v} < 0")))
}

impl PgBackend {
    /// Connects to the database of `url` (`postgres://user@host:port/db?...`, or the
    /// key=value form), with `password` if given (else the URL's, if any), and brings
    /// its schema up to date; the default [`PgOptions`] otherwise.
    pub fn connect(url: &str, password: Option<&[u8]>) -> Result<Self, StoreError> {
        Self::connect_with(
            url,
            &PgOptions {
                password,
                ..PgOptions::default()
            },
        )
    }

    /// Connects to the database of `url` as `options` say (TLS from the URL's
    /// `sslmode` and the CA file: [`PgTarget::parse`]), and brings its schema up to
    /// date. The URL is never logged with a password.
    pub fn connect_with(url: &str, options: &PgOptions<'_>) -> Result<Self, StoreError> {
        let target = PgTarget::parse(url, options.ca_file)
            .map_err(|e| StoreError::Db(format!("store_url: {e}")))?;
        let tls = target
            .connector()
            .map_err(|e| StoreError::Db(format!("store_url: {e}")))?;
        let mode = target.mode;
        let mut config = target.config;
        if let Some(p) = options.password {
            config.password(p);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("sign-service");
        }
        let label = describe(&config, mode);
        let session_setup = format!(
            "SET statement_timeout = {}; SET lock_timeout = {}",
            options.statement_timeout.as_millis(),
            options.lock_timeout.as_millis()
        );
        let backend = PgBackend {
            config,
            tls,
            session_setup,
            idle: Mutex::new(Vec::new()),
            leased: Mutex::new(0),
            returned: Condvar::new(),
            label,
        };
        off_runtime(|| backend.migrate())?;
        Ok(backend)
    }

    /// The schema version of the database (after [`PgBackend::connect`]: the latest).
    pub fn schema_version(&self) -> Result<i32, StoreError> {
        off_runtime(|| self.schema_version_here())
    }

    fn schema_version_here(&self) -> Result<i32, StoreError> {
        let mut client = self.client()?;
        let err = pg_err(&self.label);
        let v: Option<i32> = client
            .query_one("SELECT max(version) FROM schema_version", &[])
            .map_err(&err)?
            .try_get(0)
            .map_err(&err)?;
        Ok(v.unwrap_or(0))
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let err = pg_err(&self.label);
        let mut tx = client.transaction().map_err(&err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(&err)?;
        // Created only when missing: a role without CREATE can run a migrated database.
        let exists: bool = tx
            .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
            .map_err(&err)?
            .try_get(0)
            .map_err(&err)?;
        if !exists {
            tx.batch_execute(
                "CREATE TABLE schema_version (\
                   version integer PRIMARY KEY, \
                   name text NOT NULL, \
                   applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .map_err(&err)?;
        }
        let current: Option<i32> = tx
            .query_one("SELECT max(version) FROM schema_version", &[])
            .map_err(&err)?
            .try_get(0)
            .map_err(&err)?;
        let current = current.unwrap_or(0);
        let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        if current > latest {
            return Err(StoreError::Db(format!(
                "PostgreSQL {}: the schema is at version {current}, newer than this \
                 sign-service knows ({latest}): run a newer sign-service",
                self.label
            )));
        }
        for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
            tx.batch_execute(sql).map_err(&err)?;
            tx.execute(
                "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .map_err(&err)?;
            tracing::info!(version, name, store = %self.label, "store schema migrated");
        }
        tx.commit().map_err(&err)?;
        Ok(())
    }

    /// A pooled connection, or a new one, once fewer than [`MAX_CONNECTIONS`] are
    /// handed out.
    fn client(&self) -> Result<Lease<'_>, StoreError> {
        {
            let leased = self
                .leased
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let (mut leased, timeout) = self
                .returned
                .wait_timeout_while(leased, CONNECTION_WAIT, |n| *n >= MAX_CONNECTIONS)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if timeout.timed_out() && *leased >= MAX_CONNECTIONS {
                return Err(StoreError::Unavailable(format!(
                    "PostgreSQL {}: all {MAX_CONNECTIONS} connections busy for {CONNECTION_WAIT:?}",
                    self.label
                )));
            }
            *leased += 1;
        }
        match self.connection() {
            Ok((c, reused)) => Ok(Lease {
                backend: self,
                client: Some(c),
                reused,
            }),
            Err(e) => {
                self.release();
                Err(e)
            }
        }
    }

    /// An idle connection (`true`) or a new one (`false`).
    fn connection(&self) -> Result<(Client, bool), StoreError> {
        loop {
            let next = self
                .idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .pop();
            let Some((mut c, since)) = next else { break };
            if c.is_closed() {
                continue;
            }
            if since.elapsed() > CHECK_IDLE_AFTER && c.is_valid(Duration::from_secs(2)).is_err() {
                continue;
            }
            return Ok((c, true));
        }
        let connected = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        };
        let mut c = connected.map_err(|e| {
            let why = pg_tls::tls_failure(&e).unwrap_or_else(|| {
                // The driver's error names the kind; its source says why.
                match std::error::Error::source(&e) {
                    Some(src) if !e.to_string().contains(&src.to_string()) => {
                        format!("{e}: {src}")
                    }
                    _ => e.to_string(),
                }
            });
            StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL {}: {why}",
                self.label
            ))
        })?;
        c.batch_execute(&self.session_setup)
            .map_err(pg_err(&self.label))?;
        Ok((c, false))
    }

    fn release(&self) {
        let mut leased = self
            .leased
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *leased = leased.saturating_sub(1);
        self.returned.notify_one();
    }

    fn give_back(&self, c: Client) {
        if !c.is_closed() {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push((c, Instant::now()));
            }
        }
        self.release();
    }

    fn backoff(attempt: u32) {
        let cap_ms = 1u64 << attempt.min(6);
        let ms = 1 + u64::from(OsRng.next_u32()) % cap_ms;
        std::thread::sleep(Duration::from_millis(ms));
    }
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        // Each connection owns a small runtime, which must not be dropped on an async
        // thread: drop them on a thread of their own.
        let idle = std::mem::take(
            self.idle
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}

/// `postgres://user@host:port/db (TLS verify-full)`, without the password.
fn describe(c: &Config, mode: SslMode) -> String {
    let host = match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let tls = match mode {
        SslMode::Disable => "no TLS".to_string(),
        m => format!("TLS {}", m.name()),
    };
    format!(
        "postgres://{}@{host}:{port}/{} ({tls})",
        c.get_user().unwrap_or(""),
        c.get_dbname().unwrap_or("")
    )
}

/// Runs `f` where the client's own runtime may run: on this thread when no tokio
/// runtime is entered here, else on a scoped thread (the caller waits).
fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

impl StoreBackend for PgBackend {
    fn read(
        &self,
        body: &mut (dyn FnMut(&mut dyn Tx) -> Result<(), StoreError> + Send),
    ) -> Result<(), StoreError> {
        off_runtime(|| self.read_here(body))
    }

    fn write(
        &self,
        body: &mut (dyn FnMut(&mut dyn Tx) -> Result<Outcome, StoreError> + Send),
    ) -> Result<(), StoreError> {
        off_runtime(|| self.write_here(body))
    }

    fn describe(&self) -> String {
        self.label.clone()
    }
}

impl PgBackend {
    fn read_here(
        &self,
        body: &mut (dyn FnMut(&mut dyn Tx) -> Result<(), StoreError> + Send),
    ) -> Result<(), StoreError> {
        self.transaction(IsolationLevel::RepeatableRead, true, &mut |tx| {
            body(tx)?;
            Ok(Outcome::Commit)
        })
    }

    fn write_here(
        &self,
        body: &mut (dyn FnMut(&mut dyn Tx) -> Result<Outcome, StoreError> + Send),
    ) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            match self.transaction(IsolationLevel::Serializable, false, body) {
                Err(StoreError::Conflict(_)) if attempt + 1 < MAX_ATTEMPTS => {
                    attempt += 1;
                    Self::backoff(attempt);
                }
                other => return other,
            }
        }
    }

    /// Runs `body` in one transaction. A pooled connection that turns out dead at
    /// `BEGIN` (the server restarted since it was used: nothing of the body ran) is
    /// dropped and the transaction starts again on another one.
    fn transaction(
        &self,
        isolation: IsolationLevel,
        read_only: bool,
        body: &mut (dyn FnMut(&mut dyn Tx) -> Result<Outcome, StoreError> + Send),
    ) -> Result<(), StoreError> {
        let err = pg_err(&self.label);
        let mut dead = 0;
        loop {
            let mut lease = self.client()?;
            let reused = lease.reused;
            let tx = match lease
                .build_transaction()
                .isolation_level(isolation)
                .read_only(read_only)
                .start()
            {
                Ok(tx) => tx,
                Err(e) => match err(e) {
                    StoreError::Unavailable(_) if reused && dead < MAX_IDLE => {
                        dead += 1;
                        continue;
                    }
                    other => return Err(other),
                },
            };
            let mut view = PgTx {
                tx,
                label: &self.label,
                read_only,
            };
            return match body(&mut view)? {
                Outcome::Commit => view.tx.commit().map_err(&err),
                Outcome::Abort => view.tx.rollback().map_err(&err),
            };
        }
    }
}

struct PgTx<'a> {
    tx: Transaction<'a>,
    label: &'a str,
    read_only: bool,
}

impl PgTx<'_> {
    fn writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            Err(StoreError::Db("a change in a read-only transaction".into()))
        } else {
            Ok(())
        }
    }

    fn rows(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, StoreError> {
        let label = self.label;
        self.tx.query(sql, params).map_err(pg_err(label))
    }

    fn exec(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let label = self.label;
        self.tx.execute(sql, params).map_err(pg_err(label))
    }

    fn col<'r, T: postgres::types::FromSql<'r>>(
        &self,
        row: &'r postgres::Row,
        i: usize,
    ) -> Result<T, StoreError> {
        row.try_get(i).map_err(pg_err(self.label))
    }
}

impl Tx for PgTx<'_> {
    fn get(&mut self, t: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = t.typed(Kind::Bytes)?;
        let rows = self.rows(&format!("SELECT value FROM {name} WHERE key = $1"), &[&key])?;
        rows.first().map(|r| self.col(r, 0)).transpose()
    }

    fn put(&mut self, t: Table, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.writable()?;
        let name = t.typed(Kind::Bytes)?;
        self.exec(
            &format!(
                "INSERT INTO {name} (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            &[&key, &value],
        )?;
        Ok(())
    }

    fn get_ms(&mut self, t: Table, key: &str) -> Result<Option<u64>, StoreError> {
        let name = t.typed(Kind::Ms)?;
        let rows = self.rows(&format!("SELECT value FROM {name} WHERE key = $1"), &[&key])?;
        match rows.first() {
            Some(r) => Ok(Some(to_u64(name, self.col(r, 0)?)?)),
            None => Ok(None),
        }
    }

    fn put_ms(&mut self, t: Table, key: &str, value: u64) -> Result<(), StoreError> {
        self.writable()?;
        let name = t.typed(Kind::Ms)?;
        let v = to_i64(name, value)?;
        self.exec(
            &format!(
                "INSERT INTO {name} (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            &[&key, &v],
        )?;
        Ok(())
    }

    fn get_text(&mut self, t: Table, key: &str) -> Result<Option<String>, StoreError> {
        let name = t.typed(Kind::Text)?;
        let rows = self.rows(&format!("SELECT value FROM {name} WHERE key = $1"), &[&key])?;
        rows.first().map(|r| self.col(r, 0)).transpose()
    }

    fn put_text(&mut self, t: Table, key: &str, value: &str) -> Result<(), StoreError> {
        self.writable()?;
        let name = t.typed(Kind::Text)?;
        self.exec(
            &format!(
                "INSERT INTO {name} (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            &[&key, &value],
        )?;
        Ok(())
    }

    fn remove(&mut self, t: Table, key: &str) -> Result<bool, StoreError> {
        self.writable()?;
        if t.kind() == Kind::Sequence {
            return Err(StoreError::Db(format!(
                "table {} is keyed by numbers",
                t.name()
            )));
        }
        let n = self.exec(&format!("DELETE FROM {} WHERE key = $1", t.name()), &[&key])?;
        Ok(n > 0)
    }

    fn entries(&mut self, t: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let name = t.typed(Kind::Bytes)?;
        let rows = self.rows(
            &format!("SELECT key, value FROM {name} WHERE starts_with(key, $1) ORDER BY key"),
            &[&prefix],
        )?;
        rows.iter()
            .map(|r| Ok((self.col(r, 0)?, self.col(r, 1)?)))
            .collect()
    }

    fn entries_ms(&mut self, t: Table) -> Result<Vec<(String, u64)>, StoreError> {
        let name = t.typed(Kind::Ms)?;
        let rows = self.rows(&format!("SELECT key, value FROM {name} ORDER BY key"), &[])?;
        rows.iter()
            .map(|r| Ok((self.col(r, 0)?, to_u64(name, self.col(r, 1)?)?)))
            .collect()
    }

    fn entries_text(&mut self, t: Table) -> Result<Vec<(String, String)>, StoreError> {
        let name = t.typed(Kind::Text)?;
        let rows = self.rows(&format!("SELECT key, value FROM {name} ORDER BY key"), &[])?;
        rows.iter()
            .map(|r| Ok((self.col(r, 0)?, self.col(r, 1)?)))
            .collect()
    }

    fn count(&mut self, t: Table) -> Result<u64, StoreError> {
        let rows = self.rows(&format!("SELECT count(*) FROM {}", t.name()), &[])?;
        let n: i64 = match rows.first() {
            Some(r) => self.col(r, 0)?,
            None => 0,
        };
        to_u64(t.name(), n)
    }

    fn seq_last(&mut self) -> Result<Option<u64>, StoreError> {
        let rows = self.rows("SELECT max(key) FROM prime_pool", &[])?;
        let n: Option<i64> = match rows.first() {
            Some(r) => self.col(r, 0)?,
            None => None,
        };
        n.map(|n| to_u64("prime_pool", n)).transpose()
    }

    fn seq_put(&mut self, n: u64, value: &[u8]) -> Result<(), StoreError> {
        self.writable()?;
        let n = to_i64("prime_pool", n)?;
        self.exec(
            "INSERT INTO prime_pool (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&n, &value],
        )?;
        Ok(())
    }

    fn seq_pop_first(&mut self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.writable()?;
        let rows = self.rows(
            "DELETE FROM prime_pool WHERE key = (SELECT min(key) FROM prime_pool) \
             RETURNING key, value",
            &[],
        )?;
        match rows.first() {
            Some(r) => Ok(Some((
                to_u64("prime_pool", self.col(r, 0)?)?,
                self.col(r, 1)?,
            ))),
            None => Ok(None),
        }
    }

    fn seq_remove(&mut self, n: u64) -> Result<bool, StoreError> {
        self.writable()?;
        let n = to_i64("prime_pool", n)?;
        Ok(self.exec("DELETE FROM prime_pool WHERE key = $1", &[&n])? > 0)
    }

    fn seq_entries(&mut self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let rows = self.rows("SELECT key, value FROM prime_pool ORDER BY key", &[])?;
        rows.iter()
            .map(|r| Ok((to_u64("prime_pool", self.col(r, 0)?)?, self.col(r, 1)?)))
            .collect()
    }
}
