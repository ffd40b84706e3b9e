//! `sign-service` binary:
//! - `sign-service [--config FILE] [--port-file PATH]`: serve the API;
//! - `sign-service import FILE [--passphrase-file PATH] [--insecure-dev-primes]`:
//!   import key-gen's party-1 share file as a confirmed wallet (the service stopped);
//! - `sign-service store purge-presignatures`: after restoring the key store from a
//!   backup, delete every unused presignature and re-anchor (the service stopped);
//! - `sign-service store rekey --new-key-file PATH | --new-passphrase-file PATH`:
//!   re-encrypt the key store under a new key (the service stopped);
//! - `sign-service store migrate-to-postgres`: copy the redb key store into the empty
//!   PostgreSQL database of `store_url` (the service stopped);
//! - `sign-service audit verify [FILE]`: check the audit log's hash chain.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sign_service::audit::{AuditLog, AuditRecord};
use sign_service::config::{self, Config, LogFormat};
use sign_service::import::{import_bundle, ImportOptions};
use sign_service::store::postgres::{PgBackend, PgOptions};
use sign_service::store::{KeySource, Store};
use zeroize::Zeroizing;

/// Environment variable with the 32-byte store key (64 hex digits). Deprecated: use
/// `SIGN_SERVICE_STORE_KEY_FILE` / `store_key_file`.
const ENV_STORE_KEY: &str = "SIGN_SERVICE_STORE_KEY";
/// Environment variable with a passphrase the store key is derived from (Argon2id).
/// Deprecated: use `SIGN_SERVICE_STORE_PASSPHRASE_FILE` / `store_passphrase_file`.
const ENV_STORE_PASSPHRASE: &str = "SIGN_SERVICE_STORE_PASSPHRASE";
/// The passphrase of key-gen's `service_key_shares.json` (key-gen's own variable).
const ENV_SHARE_PASSPHRASE: &str = "WALLET_SERVICE_PASSPHRASE";

/// The wallet's cosigner (party 1): gRPC + gRPC-web API, GMP, encrypted key store.
/// Runs with no configuration file on 127.0.0.1:50051 (the store key must still be
/// given: SIGN_SERVICE_STORE_KEY or SIGN_SERVICE_STORE_PASSPHRASE).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// YAML configuration file (all keys optional; see config/sign-service.yaml).
    #[arg(long, short, env = "SIGN_SERVICE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Encrypt the key store under a fixed, PUBLIC key. Local tests only.
    #[arg(long, global = true)]
    insecure_dev_store_key: bool,
    /// Once listening, write `HOST:PORT` and a newline to this file (atomically: a
    /// temporary file renamed into place). With `port: 0` the system picks the port.
    #[arg(long, value_name = "PATH")]
    port_file: Option<PathBuf>,
    /// The same for the admin port (`admin_listen`), when there is one.
    #[arg(long, value_name = "PATH")]
    admin_port_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Import a party-1 key-share file written by key-gen (service_key_shares.json) as a
    /// confirmed wallet, then print one JSON line: wallet_id, cosigner_identity,
    /// insecure_dev_primes, accounts. Stop the service first (the store is locked
    /// while it runs).
    Import {
        /// The encrypted key-share file.
        file: PathBuf,
        /// File whose first line is the share file's passphrase (default: the
        /// WALLET_SERVICE_PASSPHRASE environment variable, as for key-gen).
        #[arg(long, value_name = "PATH")]
        passphrase_file: Option<PathBuf>,
        /// Accept a file whose aux info was built from the repository's PUBLIC dev
        /// primes (key-gen --insecure-dev-primes). Development only: the wallet is
        /// flagged in the store, the logs and the audit log.
        #[arg(long)]
        insecure_dev_primes: bool,
        /// Wallet label.
        #[arg(long, default_value = "imported")]
        label: String,
    },
    /// Key-store maintenance (stop the service first: the store is locked while it
    /// runs).
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Registration credentials: what a device needs to create a wallet here (runs
    /// beside the service; needs no store).
    Registration {
        #[command(subcommand)]
        command: RegistrationCommand,
    },
}

#[derive(Subcommand, Debug)]
enum RegistrationCommand {
    /// Create an issuer key (written to OUT, mode 600, never overwritten) and print its
    /// public identity as JSON: put that in the cosigner's `registration_issuers`.
    NewIssuer {
        /// Where to write the issuer's secret seed.
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue registration credentials (one per line, `wmreg1.…`), each good for one
    /// wallet creation before it expires.
    Issue {
        /// The issuer key file (`new-issuer`).
        #[arg(long)]
        issuer_key: PathBuf,
        /// Validity, seconds (at most 30 days).
        #[arg(long, default_value_t = 86_400)]
        ttl_secs: u64,
        /// The cosigner the credentials are for (its public identity, from Health);
        /// default: any cosigner that trusts the issuer.
        #[arg(long)]
        audience: Option<String>,
        /// How many credentials.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
}

#[derive(Subcommand, Debug)]
enum StoreCommand {
    /// After restoring the key store from a backup (the service refuses presignatures,
    /// "rollback detected"): delete every unused presignature, mark them used and
    /// re-anchor the store. Prints one JSON line: purged, presign_takes, anchor.
    PurgePresignatures,
    /// Rotate the store key: re-encrypt every record under a new key, in one
    /// transaction (a failure leaves the store under the old key). The old key comes
    /// from the usual place (store_key_file / store_passphrase_file or their
    /// variables); give the new one in a file. Prints one JSON line: records,
    /// key_source. Then point the configuration at the new key and start the service.
    Rekey {
        /// File whose first line is the new key (64 hex digits).
        #[arg(long, value_name = "PATH", conflicts_with = "new_passphrase_file")]
        new_key_file: Option<PathBuf>,
        /// File whose first line is the new passphrase (Argon2id, at least 12
        /// characters).
        #[arg(long, value_name = "PATH", conflicts_with = "new_pkcs11")]
        new_passphrase_file: Option<PathBuf>,
        /// Move the store to the PKCS#11 token of `store_pkcs11` (a fresh data key
        /// wrapped there); the old key then comes from the other key settings.
        #[arg(long, conflicts_with = "new_key_file")]
        new_pkcs11: bool,
    },
    /// Copy the redb key store (`key_store`) into the EMPTY PostgreSQL database of
    /// `store_url`: every table, records as they are (sealed: the same store key opens
    /// them), in one transaction, then checked table by table against the source. The
    /// redb file is then marked as migrated and the service refuses it. A target that
    /// already holds this very store (a run that failed after its commit) is checked
    /// and accepted: running it again is safe. Progress on stderr; one JSON line on
    /// stdout: records, tables, already, target. Keep the same store key settings,
    /// audit_log and rollback_anchor, set store_url, and start the service.
    MigrateToPostgres,
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Check the hash chain of the audit log (default: the configured `audit_log`):
    /// prints the head (records, hash) or names the first broken line and why (exit 1).
    Verify {
        /// The log file.
        file: Option<PathBuf>,
    },
}

/// `sign-service registration …`.
fn registration(command: RegistrationCommand) -> anyhow::Result<()> {
    use cosigner_api::registration;
    match command {
        RegistrationCommand::NewIssuer { out } => {
            let key = mpc_wire::IdentityKey::generate()
                .map_err(|e| anyhow::anyhow!("cannot generate a key: {e}"))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut f = options
                .open(&out)
                .with_context(|| format!("cannot create {} (it must not exist)", out.display()))?;
            use std::io::Write;
            writeln!(f, "{}", key.to_seed_hex().as_str())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "{}",
                serde_json::json!({
                    "issuer": key.public().to_string(),
                    "file": out.display().to_string(),
                })
            );
        }
        RegistrationCommand::Issue {
            issuer_key,
            ttl_secs,
            audience,
            count,
        } => {
            let seed = read_secret_file(&issuer_key, "issuer key")?;
            let key = mpc_wire::IdentityKey::from_seed_hex(&seed)
                .map_err(|e| anyhow::anyhow!("{}: not an issuer key: {e}", issuer_key.display()))?;
            let audience: Option<mpc_wire::PublicIdentity> = audience
                .map(|a| a.trim().parse())
                .transpose()
                .map_err(|e| anyhow::anyhow!("--audience: not a public identity: {e}"))?;
            let now = cosigner_api::auth::now_ms();
            for _ in 0..count {
                let c = registration::issue(
                    &key,
                    now,
                    ttl_secs.saturating_mul(1000),
                    audience.as_ref(),
                )?;
                println!("{c}");
            }
        }
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("sign-service: error: {e:#}");
        std::process::exit(1);
    }
}

/// Logs go to stdout when serving, to stderr for a command whose result is stdout.
fn init_logging(cfg: &Config, to_stderr: bool) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.logging.level)
        .with_context(|| format!("invalid logging.level {:?}", cfg.logging.level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let res = match (cfg.logging.format, to_stderr) {
        (LogFormat::Json, false) => builder.json().try_init(),
        (LogFormat::Pretty, false) => builder.try_init(),
        (LogFormat::Json, true) => builder.json().with_writer(std::io::stderr).try_init(),
        (LogFormat::Pretty, true) => builder.with_writer(std::io::stderr).try_init(),
    };
    res.map_err(|e| anyhow::anyhow!("cannot initialise logging: {e}"))
}

/// Reads a secret variable and removes it from the process environment (so that child
/// processes do not inherit it). Called before any thread starts. It stays visible in
/// `/proc/<pid>/environ` all the same: that is why the key files are preferred.
fn take_secret_env(name: &str) -> Option<Zeroizing<String>> {
    let v = std::env::var(name).ok().map(Zeroizing::new);
    if v.is_some() {
        std::env::remove_var(name);
    }
    v.filter(|s| !s.is_empty())
}

/// The first line of a secret file; warns when other users may read it.
fn read_secret_file(path: &Path, what: &str) -> anyhow::Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the {what} file {}", path.display()))?,
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    "the {what} file is readable by other users: chmod 600 it"
                );
            }
        }
    }
    let line = Zeroizing::new(text.lines().next().unwrap_or("").trim().to_string());
    if line.is_empty() {
        anyhow::bail!("the {what} file {} is empty", path.display());
    }
    Ok(line)
}

/// Where the store key comes from: `store_key_file` / `store_passphrase_file` (or their
/// `SIGN_SERVICE_STORE_*_FILE` variables), else the deprecated `SIGN_SERVICE_STORE_KEY`
/// / `SIGN_SERVICE_STORE_PASSPHRASE` variables (read, then removed from the
/// environment), else `--insecure-dev-store-key`. Exactly one.
fn key_source(cfg: &Config, insecure: bool) -> anyhow::Result<KeySource> {
    let key_env = take_secret_env(ENV_STORE_KEY);
    let pass_env = take_secret_env(ENV_STORE_PASSPHRASE);
    let mut sources = Vec::new();
    if let Some(path) = &cfg.store_key_file {
        sources.push(KeySource::Hex(read_secret_file(path, "store key")?));
    }
    if let Some(p) = &cfg.store_pkcs11 {
        sources.push(pkcs11_source(p)?);
    }
    if let Some(path) = &cfg.store_passphrase_file {
        sources.push(KeySource::Passphrase(read_secret_file(
            path,
            "store passphrase",
        )?));
    }
    for (name, v, file_var) in [
        (ENV_STORE_KEY, &key_env, config::ENV_STORE_KEY_FILE),
        (
            ENV_STORE_PASSPHRASE,
            &pass_env,
            config::ENV_STORE_PASSPHRASE_FILE,
        ),
    ] {
        if v.is_some() {
            tracing::warn!(
                "{name} is deprecated: any process of the same user can read it in \
                 /proc/<pid>/environ for the service's lifetime; put the secret in a file \
                 (chmod 600) and set {file_var} instead"
            );
        }
    }
    if let Some(k) = key_env {
        sources.push(KeySource::Hex(k));
    }
    if let Some(p) = pass_env {
        sources.push(KeySource::Passphrase(p));
    }
    match (sources.len(), insecure) {
        (1, _) => Ok(sources.remove(0)),
        (0, true) => Ok(KeySource::InsecureDev),
        (0, false) => anyhow::bail!(
            "no key-store key: set {} (a file whose first line is 64 hex digits, e.g. from \
             `openssl rand -hex 32`) or {} (store_key_file / store_passphrase_file in the \
             config); for local tests only, pass --insecure-dev-store-key",
            config::ENV_STORE_KEY_FILE,
            config::ENV_STORE_PASSPHRASE_FILE
        ),
        _ => anyhow::bail!(
            "the store key is given more than once: use only one of {}, {}, {ENV_STORE_KEY} \
             and {ENV_STORE_PASSPHRASE}",
            config::ENV_STORE_KEY_FILE,
            config::ENV_STORE_PASSPHRASE_FILE
        ),
    }
}

/// The PKCS#11 key source of `store_pkcs11` (its PIN read from its file).
fn pkcs11_source(p: &config::Pkcs11Store) -> anyhow::Result<KeySource> {
    Ok(KeySource::Pkcs11(sign_service::pkcs11::Pkcs11Key {
        module: p.module.clone(),
        token_label: p.token_label.clone(),
        key_label: p.key_label.clone(),
        pin: read_secret_file(&p.pin_file, "PKCS#11 PIN")?,
    }))
}

fn open_store(cfg: &Config, insecure_dev_store_key: bool) -> anyhow::Result<Store> {
    let source = key_source(cfg, insecure_dev_store_key)?;
    if matches!(source, KeySource::InsecureDev) {
        tracing::warn!(
            "INSECURE: the key store is encrypted under a fixed PUBLIC key (--insecure-dev-store-key). \
             Anyone with the file can read every key share. Local tests only."
        );
    }
    match &cfg.store_url {
        None => Store::open(&cfg.key_store, &source)
            .with_context(|| format!("cannot open the key store {}", cfg.key_store.display())),
        Some(url) => {
            let password = pg_password(cfg)?;
            let store = Store::open_postgres_with(
                url,
                &pg_options(cfg, password.as_ref().map(|p| p.as_bytes())),
                &source,
            )
            .context("cannot open the key store on PostgreSQL")?;
            tracing::info!(key_store = %store.describe(), "key store on PostgreSQL");
            Ok(store)
        }
    }
}

/// The PostgreSQL password of `store_password_file`, if set.
fn pg_password(cfg: &Config) -> anyhow::Result<Option<Zeroizing<String>>> {
    cfg.store_password_file
        .as_deref()
        .map(|p| read_secret_file(p, "PostgreSQL password"))
        .transpose()
}

/// The PostgreSQL connection options of the configuration.
fn pg_options<'a>(cfg: &'a Config, password: Option<&'a [u8]>) -> PgOptions<'a> {
    PgOptions {
        password,
        ca_file: cfg.store_ca_file.as_deref(),
        statement_timeout: std::time::Duration::from_millis(cfg.store_statement_timeout_ms),
        lock_timeout: std::time::Duration::from_millis(cfg.store_lock_timeout_ms),
    }
}

/// `sign-service store migrate-to-postgres`.
fn migrate_to_postgres(cfg: &Config, insecure_dev_store_key: bool) -> anyhow::Result<()> {
    let url = cfg.store_url.as_deref().context(
        "set store_url (SIGN_SERVICE_STORE_URL): the empty PostgreSQL database to migrate to",
    )?;
    if !cfg.key_store.is_file() {
        anyhow::bail!(
            "no redb key store at {} (key_store / SIGN_SERVICE_KEY_STORE): nothing to migrate",
            cfg.key_store.display()
        );
    }
    let source = key_source(cfg, insecure_dev_store_key)?;
    let backend = sign_service::store::redb::RedbBackend::open(&cfg.key_store)
        .with_context(|| format!("cannot open the key store {}", cfg.key_store.display()))?;
    // Not Store::open: a store marked as migrated is opened again to re-check a copy.
    let from = Store::with_backend(Box::new(backend), &source)
        .with_context(|| format!("cannot open the key store {}", cfg.key_store.display()))?;
    let password = pg_password(cfg)?;
    // No statement timeout: the copy reads and writes whole tables (the lock timeout
    // stays, should something else hold the target).
    let options = PgOptions {
        statement_timeout: std::time::Duration::ZERO,
        ..pg_options(cfg, password.as_ref().map(|p| p.as_bytes()))
    };
    let to = PgBackend::connect_with(url, &options).context("cannot open the PostgreSQL store")?;
    let now = cosigner_api::auth::now_ms();
    let done =
        sign_service::store::migrate::migrate(&from, Box::new(to), &source, now, &mut |line| {
            eprintln!("{line}")
        })
        .context("the migration to PostgreSQL failed")?;
    AuditLog::open(&cfg.audit_log)?.append(&AuditRecord {
        timestamp_ms: now,
        event: "store_migrate",
        outcome: Some(format!(
            "{} records of {} {} {}",
            done.records,
            cfg.key_store.display(),
            if done.already {
                "found already in"
            } else {
                "copied to"
            },
            done.target
        )),
        ..Default::default()
    })?;
    eprintln!(
        "done: {} records in {}; set store_url to it (keep the store key settings) and start \
         the service",
        done.records, done.target
    );
    let tables: serde_json::Map<String, serde_json::Value> = done
        .tables
        .iter()
        .map(|t| (t.table.name().to_string(), t.records.into()))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "records": done.records,
            "tables": tables,
            "already": done.already,
            "target": done.target,
        })
    );
    Ok(())
}

fn run(args: Args) -> anyhow::Result<()> {
    let cfg = Config::load(args.config.as_deref())?;
    init_logging(&cfg, args.command.is_some())?;
    match args.command {
        None => {}
        Some(Command::Import {
            file,
            passphrase_file,
            insecure_dev_primes,
            label,
        }) => {
            let store = open_store(&cfg, args.insecure_dev_store_key)?;
            return import(
                &cfg,
                &store,
                &file,
                passphrase_file.as_deref(),
                ImportOptions {
                    allow_dev_primes: insecure_dev_primes,
                    label,
                },
            );
        }
        Some(Command::Store {
            command: StoreCommand::PurgePresignatures,
        }) => {
            let store = open_store(&cfg, args.insecure_dev_store_key)?;
            return purge_presignatures(&cfg, &store);
        }
        Some(Command::Store {
            command:
                StoreCommand::Rekey {
                    new_key_file,
                    new_passphrase_file,
                    new_pkcs11,
                },
        }) => {
            let mut old_cfg = cfg.clone();
            let new = match (new_key_file, new_passphrase_file, new_pkcs11) {
                (Some(p), None, false) => (
                    KeySource::Hex(read_secret_file(&p, "new store key")?),
                    "hex",
                ),
                (None, Some(p), false) => (
                    KeySource::Passphrase(read_secret_file(&p, "new store passphrase")?),
                    "passphrase",
                ),
                (None, None, true) => {
                    let p = old_cfg.store_pkcs11.take().context(
                        "--new-pkcs11: configure store_pkcs11 (or the SIGN_SERVICE_STORE_PKCS11_* \
                         variables) with the token to move to",
                    )?;
                    (pkcs11_source(&p)?, "pkcs11")
                }
                _ => anyhow::bail!(
                    "give the new key: --new-key-file, --new-passphrase-file or --new-pkcs11"
                ),
            };
            let store = open_store(&old_cfg, args.insecure_dev_store_key)?;
            return rekey(&old_cfg, &store, &new.0, new.1);
        }
        Some(Command::Store {
            command: StoreCommand::MigrateToPostgres,
        }) => return migrate_to_postgres(&cfg, args.insecure_dev_store_key),
        Some(Command::Registration { command }) => return registration(command),
        Some(Command::Audit {
            command: AuditCommand::Verify { file },
        }) => {
            let path = file.unwrap_or_else(|| cfg.audit_log.clone());
            let head = sign_service::audit::verify(&path).map_err(|e| {
                anyhow::anyhow!("the audit log {} is broken at {e}", path.display())
            })?;
            println!(
                "{}",
                serde_json::json!({
                    "file": path.display().to_string(),
                    "records": head.records,
                    "head": head.hash,
                })
            );
            return Ok(());
        }
    }
    for note in cfg.policy.warnings() {
        tracing::warn!("{note}");
    }
    for wallet_id in cfg.policy.raw_wallets() {
        tracing::warn!(
            wallet_id,
            "RAW PAYLOADS ENABLED for wallet {wallet_id}: the cosigner co-signs opaque preimages \
             of this wallet that no policy rule decodes (a raw keccak-256 preimage can be any \
             Ethereum transaction, EIP-7702 authorization or EIP-712 permit)"
        );
    }
    if cfg.insecure_dev_primes {
        tracing::warn!(
            "INSECURE: insecure_dev_primes is set: aux info uses the PUBLIC test primes, so anyone \
             can break the Paillier layer of every wallet created now. Tests and demos only."
        );
    }
    let store = open_store(&cfg, args.insecure_dev_store_key)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let result = rt.block_on(serve(
        cfg,
        Arc::new(store),
        args.port_file,
        args.admin_port_file,
    ));
    // Do not wait for a background prime generation (CPU-bound, minutes) to finish.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

fn purge_presignatures(cfg: &Config, store: &Store) -> anyhow::Result<()> {
    let anchor = cfg.rollback_anchor_path();
    let now = cosigner_api::auth::now_ms();
    let audit = AuditLog::open(&cfg.audit_log)?;
    let (purged, takes) = sign_service::rollback::purge(&anchor, store, now)
        .map_err(|e| anyhow::anyhow!("cannot purge the presignatures: {e}"))?;
    audit.append(&AuditRecord {
        timestamp_ms: now,
        event: "presign_purge",
        outcome: Some(format!(
            "deleted {purged} unused presignatures; take counter {takes}; anchor {}",
            anchor.display()
        )),
        ..Default::default()
    })?;
    tracing::warn!(purged, presign_takes = takes, anchor = %anchor.display(), "presignatures purged and the store re-anchored");
    println!(
        "{}",
        serde_json::json!({
            "purged": purged,
            "presign_takes": takes,
            "anchor": anchor.display().to_string(),
        })
    );
    Ok(())
}

fn rekey(cfg: &Config, store: &Store, new: &KeySource, kind: &str) -> anyhow::Result<()> {
    let records = store
        .rekey(new)
        .with_context(|| format!("cannot rekey {}", store.describe()))?;
    AuditLog::open(&cfg.audit_log)?.append(&AuditRecord {
        timestamp_ms: cosigner_api::auth::now_ms(),
        event: "store_rekey",
        outcome: Some(format!(
            "{records} records re-encrypted under a new {kind} key"
        )),
        ..Default::default()
    })?;
    tracing::warn!(records, key_source = kind, "the key store is now encrypted under the new key: point store_key_file / store_passphrase_file at it");
    println!(
        "{}",
        serde_json::json!({ "records": records, "key_source": kind })
    );
    Ok(())
}

fn read_passphrase(file: Option<&Path>) -> anyhow::Result<Zeroizing<String>> {
    let pass = match file {
        Some(path) => {
            let text = Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
            );
            Zeroizing::new(text.lines().next().unwrap_or("").to_string())
        }
        None => Zeroizing::new(std::env::var(ENV_SHARE_PASSPHRASE).unwrap_or_default()),
    };
    if pass.is_empty() {
        anyhow::bail!(
            "no passphrase for the share file: give --passphrase-file or set {ENV_SHARE_PASSPHRASE}"
        );
    }
    Ok(pass)
}

fn import(
    cfg: &Config,
    store: &Store,
    file: &Path,
    passphrase_file: Option<&Path>,
    opts: ImportOptions,
) -> anyhow::Result<()> {
    let pass = read_passphrase(passphrase_file)?;
    let bundle = mpc_core::keystore::KeyShareBundle::load(file, &pass)
        .with_context(|| format!("cannot open {}", file.display()))?;
    let now = cosigner_api::auth::now_ms();
    let rec = import_bundle(store, bundle, &opts, now)
        .with_context(|| format!("cannot import {}", file.display()))?;
    let identity = store.load_or_create_identity()?.public();
    AuditLog::open(&cfg.audit_log)?.append(&AuditRecord {
        timestamp_ms: now,
        event: "import_wallet",
        wallet_id: rec.wallet_id.clone(),
        outcome: Some(format!("imported {} accounts", rec.accounts.len())),
        insecure_dev_primes: rec.insecure_dev_primes.then_some(true),
        ..Default::default()
    })?;
    if rec.insecure_dev_primes {
        tracing::warn!(wallet_id = %rec.wallet_id, "INSECURE: imported a wallet whose aux info uses the PUBLIC dev primes (development only)");
    }
    tracing::info!(wallet_id = %rec.wallet_id, accounts = rec.accounts.len(), "wallet imported");
    let accounts: Vec<serde_json::Value> = rec
        .accounts
        .values()
        .map(|a| {
            serde_json::json!({
                "account_id": a.id,
                "public_key": a.public_key,
                "ethereum_address": mpc_core::address::ethereum_address(&a.master_public_key()),
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "wallet_id": rec.wallet_id,
            "cosigner_identity": identity.to_string(),
            "insecure_dev_primes": rec.insecure_dev_primes,
            "accounts": accounts,
        })
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}

/// Writes `HOST:PORT\n` to `path` atomically (a temporary file renamed into place).
fn write_port_file(path: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("--port-file {} names no file", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, format!("{addr}\n"))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Binds the admin port (`admin_listen`), when configured.
async fn bind_admin(cfg: &Config) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = &cfg.admin_listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr.as_str())
        .await
        .with_context(|| format!("cannot listen on admin_listen {addr}"))?;
    Ok(Some(listener))
}

async fn serve(
    cfg: Config,
    store: Arc<Store>,
    port_file: Option<PathBuf>,
    admin_port_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let addr: SocketAddr = tokio::net::lookup_host((cfg.host.as_str(), cfg.port))
        .await
        .with_context(|| format!("cannot resolve host {:?}", cfg.host))?
        .next()
        .with_context(|| format!("host {:?} resolves to no address", cfg.host))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (the port is busy: is another sign-service running? choose another `port` in the \
             config file or set SIGN_SERVICE_PORT; port 0 lets the system pick one)"
        } else {
            ""
        };
        anyhow::anyhow!("cannot listen on {addr}: {e}{hint}")
    })?;
    let local = listener.local_addr().context("no local address")?;
    // Loaded before anything starts: a bad certificate or key stops the start-up with
    // the file named.
    let tls = match &cfg.tls {
        Some(t) => Some(
            server_tls::server_config(&t.cert_file, &t.key_file, server_tls::ALPN_H2_HTTP1)
                .context("tls")?,
        ),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let admin = bind_admin(&cfg).await?;
    let state = sign_service::State::new(cfg, store)?;
    let cfg = &state.cfg;
    if cfg.gateway_access_secret.is_none() {
        tracing::warn!(
            "no gateway access secret: room tokens are empty (the gateway must be open)"
        );
    }
    tracing::info!(
        listen = %local,
        %scheme,
        backend = mpc_core::BACKEND,
        identity = %state.public_identity(),
        gateway = %cfg.gateway_url,
        key_store = %state.store_description(),
        audit_log = %cfg.audit_log.display(),
        cors_origins = ?cfg.cors_origins,
        "sign-service listening (gRPC and gRPC-web)"
    );
    if mpc_core::BACKEND != "rug (GMP)" {
        tracing::warn!(
            backend = mpc_core::BACKEND,
            "not using GMP: feature unification enabled num-bigint"
        );
    }
    // The admin port serves until the process ends (through the drain: `/readyz`
    // answers 503 then, so load balancers stop sending work).
    if let Some(listener) = admin {
        let admin_addr = listener.local_addr().context("no local admin address")?;
        tracing::info!(admin = %admin_addr, "admin port listening (/healthz, /readyz, /metrics)");
        if let Some(path) = &admin_port_file {
            write_port_file(path, admin_addr)?;
        }
        let st = Arc::clone(&state);
        tokio::spawn(async move {
            if let Err(e) = sign_service::admin::serve(st, listener, std::future::pending()).await {
                tracing::error!(error = %e, "the admin port stopped");
            }
        });
    }
    if let Some(path) = &port_file {
        write_port_file(path, local)?;
    }
    // The machine-readable line (stderr; the logs go to stdout).
    eprintln!("sign-service listening on {local}");
    let st = Arc::clone(&state);
    match tls {
        Some(config) => {
            let incoming = server_tls::TlsListener::new(listener, config)
                .context("cannot start TLS")?
                .into_incoming();
            sign_service::serve_incoming(state, incoming, shutdown_signal()).await?
        }
        None => sign_service::serve(state, listener, shutdown_signal()).await?,
    }
    tracing::info!(active_sessions = st.active_sessions(), "stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret variable is gone from the environment once read (children do not
    /// inherit it).
    #[test]
    fn secret_variables_are_removed_after_reading() {
        let name = "SIGN_SERVICE_TEST_SECRET_VARIABLE";
        std::env::set_var(name, "secret");
        assert_eq!(
            take_secret_env(name).as_deref().map(String::as_str),
            Some("secret")
        );
        assert!(std::env::var_os(name).is_none());
        assert!(take_secret_env(name).is_none());
    }
}
