//! `sign-service` configuration: YAML file (every key optional), then environment
//! overrides, then validation. With no file at all the service runs on
//! 127.0.0.1:50051 against the gateway at http://127.0.0.1:8080.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::policy::config::{
    parse_address, ConfigAddress, Erc20Policy, Erc20Token, EthereumPolicy, PolicyConfig,
    TokenAmount, WalletPolicy, Wei,
};

/// Gateway room-token secret (shared with `sign-gateway`).
pub const ENV_ACCESS_SECRET: &str = "SIGN_GATEWAY_ACCESS_SECRET";
/// Listen host.
pub const ENV_HOST: &str = "SIGN_SERVICE_HOST";
/// Listen port.
pub const ENV_PORT: &str = "SIGN_SERVICE_PORT";
/// Gateway URL.
pub const ENV_GATEWAY_URL: &str = "SIGN_SERVICE_GATEWAY_URL";
/// Key store path.
pub const ENV_KEY_STORE: &str = "SIGN_SERVICE_KEY_STORE";
/// Audit log path.
pub const ENV_AUDIT_LOG: &str = "SIGN_SERVICE_AUDIT_LOG";
/// Log filter.
pub const ENV_LOG: &str = "SIGN_SERVICE_LOG";
/// Log format (`json` | `pretty`).
pub const ENV_LOG_FORMAT: &str = "SIGN_SERVICE_LOG_FORMAT";
/// `true` to use the public test primes (never in production).
pub const ENV_INSECURE_DEV_PRIMES: &str = "SIGN_SERVICE_INSECURE_DEV_PRIMES";
/// The presignature rollback anchor file.
pub const ENV_ROLLBACK_ANCHOR: &str = "SIGN_SERVICE_ROLLBACK_ANCHOR";
/// The key store on PostgreSQL: its URL (`postgres://user@host:port/db`, no password).
pub const ENV_STORE_URL: &str = "SIGN_SERVICE_STORE_URL";
/// File holding the PostgreSQL password (first line) of `store_url`.
pub const ENV_STORE_PASSWORD_FILE: &str = "SIGN_SERVICE_STORE_PASSWORD_FILE";
/// Environment override of `store_ca_file` (the CA of the PostgreSQL server's
/// certificate).
pub const ENV_STORE_CA_FILE: &str = "SIGN_SERVICE_STORE_CA_FILE";
/// Environment override of `store_statement_timeout_ms`.
pub const ENV_STORE_STATEMENT_TIMEOUT_MS: &str = "SIGN_SERVICE_STORE_STATEMENT_TIMEOUT_MS";
/// Environment override of `store_lock_timeout_ms`.
pub const ENV_STORE_LOCK_TIMEOUT_MS: &str = "SIGN_SERVICE_STORE_LOCK_TIMEOUT_MS";
/// File holding the 32-byte store key (64 hex digits, first line).
pub const ENV_STORE_KEY_FILE: &str = "SIGN_SERVICE_STORE_KEY_FILE";
/// File holding the store passphrase (first line).
pub const ENV_STORE_PASSPHRASE_FILE: &str = "SIGN_SERVICE_STORE_PASSPHRASE_FILE";
/// Browser origins allowed to call gRPC-web (comma-separated, or `*`; empty: none).
pub const ENV_CORS_ORIGINS: &str = "SIGN_SERVICE_CORS_ORIGINS";
/// Environment variable: `true` lets anyone create wallets without a registration
/// credential (development only).
pub const ENV_DEV_OPEN_REGISTRATION: &str = "SIGN_SERVICE_DEV_OPEN_REGISTRATION";
/// PEM certificate chain to serve TLS with (with `SIGN_SERVICE_TLS_KEY_FILE`).
pub const ENV_TLS_CERT_FILE: &str = "SIGN_SERVICE_TLS_CERT_FILE";
/// PEM private key of the TLS certificate (with `SIGN_SERVICE_TLS_CERT_FILE`).
pub const ENV_TLS_KEY_FILE: &str = "SIGN_SERVICE_TLS_KEY_FILE";
/// PEM file of extra CA certificates trusted for an `https://` gateway.
pub const ENV_GATEWAY_CA_FILE: &str = "SIGN_SERVICE_GATEWAY_CA_FILE";
/// Environment variable: trusted registration issuers, comma-separated.
pub const ENV_REGISTRATION_ISSUERS: &str = "SIGN_SERVICE_REGISTRATION_ISSUERS";
/// Environment overrides of `store_pkcs11` (all four together).
pub const ENV_STORE_PKCS11_MODULE: &str = "SIGN_SERVICE_STORE_PKCS11_MODULE";
/// See [`ENV_STORE_PKCS11_MODULE`].
pub const ENV_STORE_PKCS11_TOKEN: &str = "SIGN_SERVICE_STORE_PKCS11_TOKEN";
/// See [`ENV_STORE_PKCS11_MODULE`].
pub const ENV_STORE_PKCS11_KEY_LABEL: &str = "SIGN_SERVICE_STORE_PKCS11_KEY_LABEL";
/// See [`ENV_STORE_PKCS11_MODULE`].
pub const ENV_STORE_PKCS11_PIN_FILE: &str = "SIGN_SERVICE_STORE_PKCS11_PIN_FILE";
/// Environment override of `admin_listen` (empty: no admin port).
pub const ENV_ADMIN_LISTEN: &str = "SIGN_SERVICE_ADMIN_LISTEN";

/// A configuration problem, with the offending key named.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The YAML is malformed or has unknown keys / wrong types.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Parser message (names the key and line).
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid config value `{key}`: {reason}")]
    Invalid {
        /// Key.
        key: String,
        /// Why.
        reason: String,
    },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Checks `store_url`: a `postgres://` or `postgresql://` URL the client accepts,
/// without a password (it would end up in process listings, configuration backups and
/// error messages: `store_password_file` holds it), with TLS settings that make sense
/// (`sslmode`: a plaintext connection to another machine must be asked for with
/// `sslmode=disable`; `store_ca_file`). The error never repeats the URL.
fn check_store_url(url: &str, ca_file: Option<&Path>) -> Result<(), ConfigError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(invalid(
            "store_url",
            "must be a postgres:// or postgresql:// URL (unset it for the redb file key_store)",
        ));
    }
    let parsed = crate::store::pg_tls::client_config(url)
        .map_err(|e| invalid("store_url", format!("not a PostgreSQL URL: {e}")))?;
    if parsed.get_password().is_some() {
        return Err(invalid(
            "store_url",
            "holds a password: put it in store_password_file (SIGN_SERVICE_STORE_PASSWORD_FILE)",
        ));
    }
    if parsed.get_dbname().is_none() {
        return Err(invalid(
            "store_url",
            "names no database (postgres://user@host/DATABASE)",
        ));
    }
    crate::store::pg_tls::PgTarget::parse(url, ca_file)
        .map_err(|e| invalid("store_url", e.to_string()))?;
    Ok(())
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (default).
    #[default]
    Json,
    /// Human-readable.
    Pretty,
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Logging {
    /// `tracing` filter, e.g. `info` or `sign_service=debug,info`.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

impl Default for Logging {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Json,
        }
    }
}

/// Rate limits, enforced after a request's signature verified (an unauthenticated
/// request cannot spend anyone's budget). A refused request is `rate_limited`
/// (retryable) and names the limit.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Wallet creations one device identity may start per hour.
    pub create_per_identity_per_hour: u32,
    /// Wallet creations the cosigner starts per minute, all identities together.
    pub create_global_per_minute: u32,
    /// Authenticated requests (signing, presignatures, queries) one wallet party may
    /// make per second, sustained.
    pub requests_per_identity_per_second: u32,
    /// Requests one wallet party may make at once above the sustained rate.
    pub requests_burst_per_identity: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            create_per_identity_per_hour: 10,
            create_global_per_minute: 30,
            requests_per_identity_per_second: 100,
            requests_burst_per_identity: 500,
        }
    }
}

/// Serve TLS with this certificate and key (PEM files) instead of plain HTTP/2.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain: the server's certificate first, then intermediates.
    pub cert_file: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// The store key kept wrapped by an AES key on a PKCS#11 token (an HSM).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Store {
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The label of the AES key on the token.
    pub key_label: String,
    /// A file whose first line is the user PIN (chmod 600).
    pub pin_file: PathBuf,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen host.
    pub host: String,
    /// Listen port (gRPC and gRPC-web on the same port).
    pub port: u16,
    /// Gateway the cosigner joins rooms on.
    pub gateway_url: String,
    /// Gateway URL returned to callers (when they reach it under another name);
    /// defaults to `gateway_url`.
    pub public_gateway_url: Option<String>,
    /// A PEM file of CA certificates trusted for an `https://` gateway beside the web
    /// PKI roots (a gateway whose certificate a private CA issued).
    pub gateway_ca_file: Option<PathBuf>,
    /// Serve gRPC and gRPC-web over TLS with this certificate and key. Absent (the
    /// default): plain HTTP/2 and HTTP/1.1.
    pub tls: Option<TlsFiles>,
    /// `HOST:PORT` of the admin port (plain HTTP: `/healthz`, `/readyz`, `/metrics`),
    /// e.g. `127.0.0.1:9090`; bind it to a private interface. Absent (the default): no
    /// admin port (the gRPC health service on the API port still answers).
    pub admin_listen: Option<String>,
    /// Seconds between the readiness checks that keep `grpc.health.v1` current.
    pub health_check_interval_secs: u64,
    /// On SIGTERM, how long running sessions may take to finish before they are
    /// stopped (their peers then get `cosigner_unavailable`, retryable).
    pub drain_deadline_secs: u64,
    /// How long after an UnfreezeWallet (signed by the recovery identity) the freeze
    /// ends: the owner's window to notice a thawing they did not ask for and freeze
    /// again (which cancels it). Default 86 400 (a day); 0 thaws at once.
    pub unfreeze_delay_secs: u64,
    /// The proactive refresh schedule: a wallet's next refresh (StartRefresh) is due
    /// this many days after its last refresh or device replacement (or its creation);
    /// clients read it as `WalletControls.refresh_due_at_ms`. 0 (the default): no
    /// schedule (`refresh_due_at_ms` 0).
    pub refresh_interval_days: u64,
    /// Deadline of a refresh or device replacement (every session of it), seconds; the
    /// pending session expires then (nothing changes).
    pub lifecycle_timeout_secs: u64,
    /// Safe-prime sets the pool must hold for the cosigner to be ready (0, the
    /// default: an empty pool, which only delays new wallets, is reported, not
    /// required).
    pub readiness_min_prime_sets: u64,
    /// This party's keygen index (must be 1).
    pub party_index: u16,
    /// Signers needed (must be 2).
    pub threshold: u16,
    /// Parties (must be 3).
    pub total_participants: u16,
    /// Key store (redb database file), when `store_url` is not set.
    pub key_store: PathBuf,
    /// The key store on PostgreSQL instead of the redb file `key_store`:
    /// `postgres://user@host:port/database` (or `postgresql://`; query parameters such
    /// as `connect_timeout`, `options=-csearch_path%3Dcosigner` are passed on). Several
    /// cosigner instances may share it. No password in it: see `store_password_file`.
    /// TLS as libpq's `sslmode` in the URL says: `verify-full` (with `store_ca_file`),
    /// `verify-ca`, `require` or `disable`. Without `sslmode`, a loopback host or a Unix
    /// socket is reached without TLS and any other host is refused: a plaintext
    /// connection over the network needs an explicit `sslmode=disable`.
    pub store_url: Option<String>,
    /// File whose first line is the PostgreSQL password of `store_url` (if the server
    /// asks for one).
    pub store_password_file: Option<PathBuf>,
    /// PEM file of the CA that issued the PostgreSQL server's certificate (for
    /// `sslmode=verify-full` / `verify-ca`; the URL's `sslrootcert` is the same
    /// setting). Given without `sslmode`, it means `verify-full`.
    pub store_ca_file: Option<PathBuf>,
    /// PostgreSQL `statement_timeout` of every store connection, ms (default 5000;
    /// 0: none). A statement that runs longer is cancelled and the request answered
    /// `cosigner_unavailable` (retryable), instead of hanging.
    pub store_statement_timeout_ms: u64,
    /// PostgreSQL `lock_timeout` of every store connection, ms (default 2000; 0: none,
    /// a lock wait then ends at the statement timeout): a row or table locked by
    /// someone else for longer fails the operation, retryable.
    pub store_lock_timeout_ms: u64,
    /// Append-only audit log (JSON lines).
    pub audit_log: PathBuf,
    /// The presignature rollback anchor (a small file OUTSIDE the key store; keep it off
    /// the store's backups). Unset: `sign-service-rollback-anchor.json` next to the
    /// audit log.
    pub rollback_anchor: Option<PathBuf>,
    /// File whose first line is the store key (64 hex digits). Prefer it to the
    /// `SIGN_SERVICE_STORE_KEY` variable, which other processes of the same user can
    /// read in `/proc/<pid>/environ`.
    pub store_key_file: Option<PathBuf>,
    /// File whose first line is the store passphrase (Argon2id).
    pub store_passphrase_file: Option<PathBuf>,
    /// The store key wrapped on a PKCS#11 token instead (the HSM): module, token, key
    /// label and PIN file.
    pub store_pkcs11: Option<Pkcs11Store>,
    /// Browser origins allowed to call the API with gRPC-web (`*` for any).
    pub cors_origins: Vec<String>,
    /// Gateway room-token secret (prefer the `SIGN_GATEWAY_ACCESS_SECRET` env var).
    /// Unset: the gateway is open and room tokens are empty.
    pub gateway_access_secret: Option<String>,
    /// Deadline of one signing session, seconds.
    pub session_timeout_secs: u64,
    /// Deadline of a wallet creation (aux info + every DKG), seconds.
    pub wallet_creation_timeout_secs: u64,
    /// How long ConfirmWallet waits for the cosigner's DKG to finish, seconds.
    pub confirm_wait_secs: u64,
    /// How long a finished but unconfirmed wallet is kept after its creation deadline.
    pub pending_wallet_ttl_secs: u64,
    /// How long an enrollment (EnrollDevice) stays usable for creating a wallet,
    /// seconds from the EnrollDevice request (default 30 days). Expired enrollments are
    /// purged from the store; a device must then enroll again.
    pub enrollment_ttl_secs: u64,
    /// Allowed clock skew of authenticated requests, seconds.
    pub clock_skew_secs: u64,
    /// Request nonces remembered per signing identity (a wallet's party, or the device
    /// identity of a CreateWallet) within the clock-skew window; one more request by
    /// that identity in the window is refused (`rate_limited`), other identities are not
    /// affected. Only verified requests are remembered; they are persisted in the store
    /// so a restart does not forget them. Default 10,000 (83 requests a second by one
    /// party of one wallet, sustained over the default 120 s window).
    pub replay_nonces_per_identity: usize,
    /// Concurrent signing sessions at most (StartSign and presignature sessions; wallet
    /// creations have their own budget, `max_concurrent_creations`).
    pub max_concurrent_sessions: usize,
    /// Wallet creations (aux info + DKG) computing at once, a budget apart from the
    /// signing sessions' so that creations never hold a signing slot. A creation takes
    /// its slot only once every other party has proved it is live (has posted its first
    /// aux-info message); until then it holds nothing but a pending entry.
    pub max_concurrent_creations: usize,
    /// Pending wallet creations at most (started, not confirmed or expired yet).
    pub max_pending_creations: usize,
    /// Public identities (128 hex chars, `sign-service registration new-issuer`) whose
    /// registration credentials this cosigner accepts: CreateWallet needs one, used once
    /// and before it expires (`sign-service registration issue`).
    pub registration_issuers: Vec<String>,
    /// Development only: CreateWallet without a registration credential (anyone who
    /// can reach the cosigner may create wallets, within the rate limits). Logged as a
    /// warning at start-up.
    pub dev_open_registration: bool,
    /// Rate limits (per identity and global).
    pub rate_limits: RateLimits,
    /// Number of fresh safe-prime sets (one per wallet) kept ready.
    pub prime_pool_size: usize,
    /// Use the PUBLIC test primes for aux info. Insecure: tests and demos only.
    pub insecure_dev_primes: bool,
    /// Presignature sessions the cosigner runs at once (its bounded background pool);
    /// further sessions wait for a slot.
    pub presign_workers: usize,
    /// Presignature sessions ONE wallet runs at once (all its accounts and parties).
    /// Sessions over it wait while other wallets' sessions get the free workers, taken
    /// round-robin between wallets. Unset: half of `presign_workers` (at least 1), so
    /// one wallet never holds every worker while there are two or more.
    pub presign_workers_per_wallet: Option<usize>,
    /// A presignature session whose caller has not sent its first-round messages this
    /// many seconds after the cosigner started it is ended and its worker freed; the
    /// sessions of the same StartPresign still waiting for a worker end with it (the
    /// caller runs them in order, after this one). Capped by `session_timeout_secs`.
    pub presign_join_deadline_secs: u64,
    /// Most presignatures kept per account and signer pair (finished + running).
    /// 0 disables presignatures.
    pub presign_pool_cap: u32,
    /// Most presignature sessions one StartPresign may open.
    pub presign_max_per_request: u32,
    /// Most distinct derivation paths with a presignature pool per HD account and
    /// signer pair (each path has its own pool of `presign_pool_cap`). A StartPresign
    /// for one more path is `pool_full` until a pool of another path is empty.
    pub presign_max_paths_per_account: u32,
    /// Logging.
    pub logging: Logging,
    /// Signing policy.
    pub policy: PolicyConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 50051,
            gateway_url: "http://127.0.0.1:8080".into(),
            public_gateway_url: None,
            gateway_ca_file: None,
            tls: None,
            admin_listen: None,
            health_check_interval_secs: 5,
            drain_deadline_secs: 30,
            unfreeze_delay_secs: 86_400,
            refresh_interval_days: 0,
            lifecycle_timeout_secs: 1800,
            readiness_min_prime_sets: 0,
            party_index: 1,
            threshold: 2,
            total_participants: 3,
            key_store: PathBuf::from("./data/sign-service.redb"),
            store_url: None,
            store_password_file: None,
            store_ca_file: None,
            store_statement_timeout_ms: crate::store::pg_tls::DEFAULT_STATEMENT_TIMEOUT_MS,
            store_lock_timeout_ms: crate::store::pg_tls::DEFAULT_LOCK_TIMEOUT_MS,
            audit_log: PathBuf::from("./data/sign-service-audit.jsonl"),
            rollback_anchor: None,
            store_key_file: None,
            store_passphrase_file: None,
            store_pkcs11: None,
            cors_origins: Vec::new(),
            gateway_access_secret: None,
            session_timeout_secs: 120,
            wallet_creation_timeout_secs: 1800,
            confirm_wait_secs: 60,
            pending_wallet_ttl_secs: 3600,
            enrollment_ttl_secs: 30 * 86_400,
            clock_skew_secs: 120,
            replay_nonces_per_identity: cosigner_api::auth::DEFAULT_NONCES_PER_IDENTITY,
            max_concurrent_sessions: 64,
            max_concurrent_creations: 4,
            max_pending_creations: 256,
            registration_issuers: Vec::new(),
            dev_open_registration: false,
            rate_limits: RateLimits::default(),
            prime_pool_size: 2,
            insecure_dev_primes: false,
            presign_workers: 4,
            presign_workers_per_wallet: None,
            presign_join_deadline_secs: 15,
            presign_pool_cap: 32,
            presign_max_per_request: 16,
            presign_max_paths_per_account: 8,
            logging: Logging::default(),
            policy: PolicyConfig::default(),
        }
    }
}

impl Config {
    /// Loads `path` (or defaults when `None`), applies the environment and validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut cfg = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                Self::from_yaml(&text).map_err(|message| ConfigError::Parse {
                    path: p.to_path_buf(),
                    message,
                })?
            }
            None => Self::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses YAML (an empty document gives the defaults). Not validated.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies environment overrides read through `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get(ENV_HOST) {
            self.host = v;
        }
        if let Some(v) = get(ENV_PORT) {
            self.port = v
                .trim()
                .parse()
                .map_err(|_| invalid(ENV_PORT, format!("{v:?} is not a port number")))?;
        }
        if let Some(v) = get(ENV_GATEWAY_URL) {
            self.gateway_url = v;
        }
        if let Some(v) = get(ENV_GATEWAY_CA_FILE).filter(|v| !v.is_empty()) {
            self.gateway_ca_file = Some(PathBuf::from(v));
        }
        let cert = get(ENV_TLS_CERT_FILE).filter(|v| !v.is_empty());
        let key = get(ENV_TLS_KEY_FILE).filter(|v| !v.is_empty());
        match (cert, key, self.tls.as_mut()) {
            (None, None, _) => {}
            (cert, key, Some(tls)) => {
                if let Some(c) = cert {
                    tls.cert_file = PathBuf::from(c);
                }
                if let Some(k) = key {
                    tls.key_file = PathBuf::from(k);
                }
            }
            (Some(c), Some(k), None) => {
                self.tls = Some(TlsFiles {
                    cert_file: PathBuf::from(c),
                    key_file: PathBuf::from(k),
                })
            }
            (Some(_), None, None) => {
                return Err(invalid(
                    ENV_TLS_CERT_FILE,
                    format!("set {ENV_TLS_KEY_FILE} as well"),
                ))
            }
            (None, Some(_), None) => {
                return Err(invalid(
                    ENV_TLS_KEY_FILE,
                    format!("set {ENV_TLS_CERT_FILE} as well"),
                ))
            }
        }
        let pkcs11 = [
            ENV_STORE_PKCS11_MODULE,
            ENV_STORE_PKCS11_TOKEN,
            ENV_STORE_PKCS11_KEY_LABEL,
            ENV_STORE_PKCS11_PIN_FILE,
        ]
        .map(|k| get(k).filter(|v| !v.is_empty()));
        match pkcs11 {
            [None, None, None, None] => {}
            [Some(module), Some(token_label), Some(key_label), Some(pin)] => {
                self.store_pkcs11 = Some(Pkcs11Store {
                    module: PathBuf::from(module),
                    token_label,
                    key_label,
                    pin_file: PathBuf::from(pin),
                })
            }
            _ => {
                return Err(invalid(
                    ENV_STORE_PKCS11_MODULE,
                    format!(
                        "set all of {ENV_STORE_PKCS11_MODULE}, {ENV_STORE_PKCS11_TOKEN}, \
                         {ENV_STORE_PKCS11_KEY_LABEL} and {ENV_STORE_PKCS11_PIN_FILE}, or none"
                    ),
                ))
            }
        }
        if let Some(v) = get(ENV_ADMIN_LISTEN) {
            self.admin_listen = Some(v.trim().to_string()).filter(|v| !v.is_empty());
        }
        if let Some(v) = get(ENV_KEY_STORE) {
            self.key_store = PathBuf::from(v);
        }
        if let Some(v) = get(ENV_STORE_URL) {
            self.store_url = Some(v.trim().to_string()).filter(|v| !v.is_empty());
        }
        if let Some(v) = get(ENV_STORE_PASSWORD_FILE).filter(|v| !v.is_empty()) {
            self.store_password_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get(ENV_STORE_CA_FILE).filter(|v| !v.is_empty()) {
            self.store_ca_file = Some(PathBuf::from(v));
        }
        for (name, slot) in [
            (
                ENV_STORE_STATEMENT_TIMEOUT_MS,
                &mut self.store_statement_timeout_ms,
            ),
            (ENV_STORE_LOCK_TIMEOUT_MS, &mut self.store_lock_timeout_ms),
        ] {
            if let Some(v) = get(name).filter(|v| !v.trim().is_empty()) {
                *slot = v
                    .trim()
                    .parse()
                    .map_err(|_| invalid(name, format!("{v:?} is not a number of ms")))?;
            }
        }
        if let Some(v) = get(ENV_AUDIT_LOG) {
            self.audit_log = PathBuf::from(v);
        }
        if let Some(v) = get(ENV_ROLLBACK_ANCHOR) {
            self.rollback_anchor = Some(PathBuf::from(v));
        }
        if let Some(v) = get(ENV_STORE_KEY_FILE).filter(|v| !v.is_empty()) {
            self.store_key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get(ENV_STORE_PASSPHRASE_FILE).filter(|v| !v.is_empty()) {
            self.store_passphrase_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get(ENV_LOG) {
            self.logging.level = v;
        }
        if let Some(v) = get(ENV_LOG_FORMAT) {
            self.logging.format = match v.trim().to_ascii_lowercase().as_str() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                _ => {
                    return Err(invalid(
                        ENV_LOG_FORMAT,
                        format!("{v:?}: use json or pretty"),
                    ))
                }
            };
        }
        if let Some(v) = get(ENV_ACCESS_SECRET) {
            if !v.is_empty() {
                self.gateway_access_secret = Some(v);
            }
        }
        if let Some(v) = get(ENV_CORS_ORIGINS) {
            self.cors_origins = v
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_string())
                .filter(|o| !o.is_empty())
                .collect();
        }
        let flag = |name: &str, v: String| match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" | "" => Ok(false),
            _ => Err(invalid(name, format!("{v:?}: use true or false"))),
        };
        if let Some(v) = get(ENV_INSECURE_DEV_PRIMES) {
            self.insecure_dev_primes = flag(ENV_INSECURE_DEV_PRIMES, v)?;
        }
        if let Some(v) = get(ENV_DEV_OPEN_REGISTRATION) {
            self.dev_open_registration = flag(ENV_DEV_OPEN_REGISTRATION, v)?;
        }
        if let Some(v) = get(ENV_REGISTRATION_ISSUERS) {
            self.registration_issuers = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        Ok(())
    }

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.party_index != 1 {
            return Err(invalid(
                "party_index",
                format!("{}: the cosigner is party 1", self.party_index),
            ));
        }
        if self.threshold != 2 || self.total_participants != 3 {
            return Err(invalid(
                "threshold",
                format!(
                    "{}-of-{}: only 2-of-3 wallets are supported",
                    self.threshold, self.total_participants
                ),
            ));
        }
        if self.host.trim().is_empty() {
            return Err(invalid("host", "empty"));
        }
        if let Some(a) = &self.admin_listen {
            let ok = a
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(invalid(
                    "admin_listen",
                    format!("{a:?}: use HOST:PORT, e.g. 127.0.0.1:9090"),
                ));
            }
        }
        gateway_client::GatewayClient::new(&self.gateway_url)
            .map_err(|e| invalid("gateway_url", e.to_string()))?;
        if let Some(u) = &self.public_gateway_url {
            gateway_client::GatewayClient::new(u)
                .map_err(|e| invalid("public_gateway_url", e.to_string()))?;
        }
        if let Some(s) = &self.gateway_access_secret {
            if s.len() < 16 {
                return Err(invalid("gateway_access_secret", "at least 16 bytes"));
            }
        }
        for (key, v, lo, hi) in [
            ("session_timeout_secs", self.session_timeout_secs, 1, 86_400),
            (
                "wallet_creation_timeout_secs",
                self.wallet_creation_timeout_secs,
                1,
                7 * 86_400,
            ),
            ("confirm_wait_secs", self.confirm_wait_secs, 0, 3_600),
            (
                "pending_wallet_ttl_secs",
                self.pending_wallet_ttl_secs,
                1,
                7 * 86_400,
            ),
            (
                "enrollment_ttl_secs",
                self.enrollment_ttl_secs,
                60,
                365 * 86_400,
            ),
            ("clock_skew_secs", self.clock_skew_secs, 1, 3_600),
            (
                "health_check_interval_secs",
                self.health_check_interval_secs,
                1,
                3_600,
            ),
            ("drain_deadline_secs", self.drain_deadline_secs, 0, 3_600),
            (
                "unfreeze_delay_secs",
                self.unfreeze_delay_secs,
                0,
                90 * 86_400,
            ),
            (
                "refresh_interval_days",
                self.refresh_interval_days,
                0,
                3_650,
            ),
            (
                "lifecycle_timeout_secs",
                self.lifecycle_timeout_secs,
                10,
                7 * 86_400,
            ),
            (
                "readiness_min_prime_sets",
                self.readiness_min_prime_sets,
                0,
                1_000,
            ),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(invalid(key, format!("{v} not in {lo}..={hi}")));
            }
        }
        if self.replay_nonces_per_identity == 0 || self.replay_nonces_per_identity > 1_000_000 {
            return Err(invalid(
                "replay_nonces_per_identity",
                "must be in 1..=1000000",
            ));
        }
        if self.max_concurrent_sessions == 0 || self.max_concurrent_sessions > 10_000 {
            return Err(invalid("max_concurrent_sessions", "must be in 1..=10000"));
        }
        if self.max_concurrent_creations == 0 || self.max_concurrent_creations > 1_000 {
            return Err(invalid("max_concurrent_creations", "must be in 1..=1000"));
        }
        if self.max_pending_creations == 0 || self.max_pending_creations > 100_000 {
            return Err(invalid("max_pending_creations", "must be in 1..=100000"));
        }
        self.registration_issuers()?;
        let r = &self.rate_limits;
        for (key, v) in [
            (
                "rate_limits.create_per_identity_per_hour",
                r.create_per_identity_per_hour,
            ),
            (
                "rate_limits.create_global_per_minute",
                r.create_global_per_minute,
            ),
            (
                "rate_limits.requests_per_identity_per_second",
                r.requests_per_identity_per_second,
            ),
            (
                "rate_limits.requests_burst_per_identity",
                r.requests_burst_per_identity,
            ),
        ] {
            if v == 0 || v > 1_000_000 {
                return Err(invalid(key, format!("{v} not in 1..=1000000")));
            }
        }
        if self.presign_workers == 0 || self.presign_workers > 256 {
            return Err(invalid("presign_workers", "must be in 1..=256"));
        }
        if let Some(n) = self.presign_workers_per_wallet {
            if n == 0 || n > self.presign_workers {
                return Err(invalid(
                    "presign_workers_per_wallet",
                    format!("{n} not in 1..=presign_workers ({})", self.presign_workers),
                ));
            }
        }
        if !(1..=3_600).contains(&self.presign_join_deadline_secs) {
            return Err(invalid(
                "presign_join_deadline_secs",
                format!("{} not in 1..=3600", self.presign_join_deadline_secs),
            ));
        }
        if self.presign_pool_cap > 10_000 {
            return Err(invalid("presign_pool_cap", "at most 10000"));
        }
        if self.presign_max_per_request == 0 || self.presign_max_per_request > 1_000 {
            return Err(invalid("presign_max_per_request", "must be in 1..=1000"));
        }
        if self.presign_max_paths_per_account == 0 || self.presign_max_paths_per_account > 1_000 {
            return Err(invalid(
                "presign_max_paths_per_account",
                "must be in 1..=1000",
            ));
        }
        if self.prime_pool_size > 64 {
            return Err(invalid("prime_pool_size", "at most 64"));
        }
        for o in &self.cors_origins {
            if o != "*" {
                wallet_types::origin::parse_origin(o)
                    .map_err(|e| invalid("cors_origins", e.to_string()))?;
            }
        }
        if self.store_key_file.is_some() && self.store_passphrase_file.is_some() {
            return Err(invalid(
                "store_key_file",
                "give only one of store_key_file and store_passphrase_file",
            ));
        }
        if let Some(url) = &self.store_url {
            check_store_url(url, self.store_ca_file.as_deref())?;
        } else if self.store_password_file.is_some() {
            return Err(invalid(
                "store_password_file",
                "is the password of store_url, which is not set",
            ));
        } else if self.store_ca_file.is_some() {
            return Err(invalid(
                "store_ca_file",
                "is the CA of store_url's server, and store_url is not set",
            ));
        }
        for (key, v) in [
            (
                "store_statement_timeout_ms",
                self.store_statement_timeout_ms,
            ),
            ("store_lock_timeout_ms", self.store_lock_timeout_ms),
        ] {
            if v > 3_600_000 {
                return Err(invalid(key, format!("{v} ms: at most 3600000 (an hour)")));
            }
        }
        if self.rollback_anchor_path() == self.key_store {
            return Err(invalid(
                "rollback_anchor",
                "must be another file than the key store",
            ));
        }
        self.policy
            .check(self.insecure_dev_primes)
            .map_err(|(key, reason)| invalid(&key, reason))?;
        Ok(())
    }

    /// The trusted registration issuers, parsed.
    pub fn registration_issuers(&self) -> Result<Vec<mpc_wire::PublicIdentity>, ConfigError> {
        self.registration_issuers
            .iter()
            .map(|s| {
                s.trim().parse().map_err(|e| {
                    invalid(
                        "registration_issuers",
                        format!("{s:?} is not a public identity (128 hex chars): {e}"),
                    )
                })
            })
            .collect()
    }

    /// The rollback anchor's path (`rollback_anchor`, or next to the audit log).
    pub fn rollback_anchor_path(&self) -> PathBuf {
        self.rollback_anchor.clone().unwrap_or_else(|| {
            self.audit_log
                .with_file_name("sign-service-rollback-anchor.json")
        })
    }

    /// Presignature sessions one wallet may run at once (`presign_workers_per_wallet`,
    /// or half of `presign_workers`, at least 1).
    pub fn presign_wallet_workers(&self) -> usize {
        self.presign_workers_per_wallet
            .unwrap_or(self.presign_workers / 2)
            .clamp(1, self.presign_workers.max(1))
    }

    /// How long a presignature session waits for its caller's first messages.
    pub fn presign_join_deadline(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.presign_join_deadline_secs
                .min(self.session_timeout_secs)
                .max(1),
        )
    }

    /// The gateway URL handed to callers.
    pub fn public_gateway_url(&self) -> &str {
        self.public_gateway_url
            .as_deref()
            .unwrap_or(&self.gateway_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::from_yaml("").unwrap();
        c.validate().unwrap();
        assert_eq!(c.port, 50051);
        assert_eq!(c.party_index, 1);
        assert!(!c.insecure_dev_primes);
    }

    #[test]
    fn enrollment_ttl_defaults_to_30_days_and_is_bounded() {
        let c = Config::from_yaml("").unwrap();
        assert_eq!(c.enrollment_ttl_secs, 30 * 86_400);
        let c = Config::from_yaml("enrollment_ttl_secs: 3600").unwrap();
        c.validate().unwrap();
        assert_eq!(c.enrollment_ttl_secs, 3600);
        for bad in ["0", "59", "31536001"] {
            let c = Config::from_yaml(&format!("enrollment_ttl_secs: {bad}")).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("enrollment_ttl_secs"), "{bad}: {e}");
        }
    }

    #[test]
    fn seed_file_parses() {
        let text = include_str!("../../config/sign-service.yaml");
        let c = Config::from_yaml(text).unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn store_url_from_file_and_env_and_refused_with_a_password() {
        let c = Config::from_yaml(
            "store_url: postgres://cosigner@db:5432/wallet?sslmode=verify-full\n\
             store_ca_file: /ca.pem\nstore_statement_timeout_ms: 800\nstore_lock_timeout_ms: 0\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.store_ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            (c.store_statement_timeout_ms, c.store_lock_timeout_ms),
            (800, 0)
        );
        let d = Config::default();
        assert_eq!(
            (d.store_statement_timeout_ms, d.store_lock_timeout_ms),
            (5_000, 2_000)
        );
        let mut c = Config::default();
        c.apply_env(|k| match k {
            ENV_STORE_URL => Some("postgresql://cosigner@127.0.0.1/wallet".into()),
            ENV_STORE_PASSWORD_FILE => Some("/run/secrets/pg".into()),
            _ => None,
        })
        .unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.store_url.as_deref(),
            Some("postgresql://cosigner@127.0.0.1/wallet")
        );
        assert_eq!(
            c.store_password_file,
            Some(PathBuf::from("/run/secrets/pg"))
        );
        for (bad, why) in [
            ("postgres://cosigner:hunter2@db/wallet", "password"),
            ("mysql://db/wallet", "postgres://"),
            ("postgres://cosigner@db", "database"),
            // Plaintext to another machine only when asked for.
            ("postgres://cosigner@db/wallet", "sslmode=disable"),
            ("postgres://cosigner@db/wallet?sslmode=prefer", "plaintext"),
            (
                "postgres://cosigner@db/wallet?sslmode=verify-full",
                "store_ca_file",
            ),
            (
                "postgres://cosigner@db/wallet?sslmode=verify-everything",
                "unknown",
            ),
        ] {
            let c = Config::from_yaml(&format!("store_url: {bad}\n")).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("store_url") && e.contains(why), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        let c = Config::from_yaml("store_password_file: /p\n").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("store_password_file"));
        for ok in [
            "postgres://cosigner@db/wallet?sslmode=disable",
            "postgres://cosigner@db/wallet?sslmode=require",
            "postgres://cosigner@localhost/wallet",
            "postgres://cosigner@[::1]:5433/wallet",
            "postgres://cosigner@%2Frun%2Fpostgresql/wallet",
        ] {
            let c = Config::from_yaml(&format!("store_url: \"{ok}\"\n")).unwrap();
            c.validate().unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let mut c = Config::default();
        c.apply_env(|k| match k {
            ENV_STORE_URL => Some("postgres://cosigner@db/wallet".into()),
            ENV_STORE_CA_FILE => Some("/run/secrets/pg-ca.pem".into()),
            ENV_STORE_STATEMENT_TIMEOUT_MS => Some("1500".into()),
            ENV_STORE_LOCK_TIMEOUT_MS => Some("300".into()),
            _ => None,
        })
        .unwrap();
        c.validate().expect("a CA file alone means verify-full");
        assert_eq!(
            (c.store_statement_timeout_ms, c.store_lock_timeout_ms),
            (1_500, 300)
        );
    }

    #[test]
    fn tls_and_the_gateway_ca_from_file_and_env() {
        let c = Config::from_yaml(
            "tls:\n  cert_file: /c.pem\n  key_file: /k.pem\ngateway_ca_file: /ca.pem\n",
        )
        .unwrap();
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert_file: "/c.pem".into(),
                key_file: "/k.pem".into()
            })
        );
        assert_eq!(c.gateway_ca_file, Some(PathBuf::from("/ca.pem")));
        assert!(Config::from_yaml("tls:\n  cert_file: /c.pem\n").is_err());
        let mut c = Config::default();
        assert!(c.tls.is_none());
        let e = c
            .apply_env(|k| (k == ENV_TLS_KEY_FILE).then(|| "/k.pem".into()))
            .unwrap_err();
        assert!(e.to_string().contains(ENV_TLS_CERT_FILE), "{e}");
        c.apply_env(|k| match k {
            ENV_TLS_CERT_FILE => Some("/c.pem".into()),
            ENV_TLS_KEY_FILE => Some("/k.pem".into()),
            ENV_GATEWAY_CA_FILE => Some("/ca.pem".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.tls.map(|t| t.cert_file), Some(PathBuf::from("/c.pem")));
        assert_eq!(c.gateway_ca_file, Some(PathBuf::from("/ca.pem")));
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::from_yaml("prot: 1").unwrap_err();
        assert!(e.contains("prot"), "{e}");
        // The test-only pause is not a configuration key (see src/hooks.rs).
        let e = Config::from_yaml("testing_pause_after_presign_take_ms: 1").unwrap_err();
        assert!(e.contains("testing_pause_after_presign_take_ms"), "{e}");
        let e = Config::from_yaml("port: lots").unwrap_err();
        assert!(e.contains("port"), "{e}");
        let c = Config::from_yaml("party_index: 0").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("party_index"));
        let c = Config::from_yaml("threshold: 3").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("2-of-3"));
        let c = Config::from_yaml("gateway_url: ftp://x").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("gateway_url"));
        let c = Config::from_yaml("gateway_access_secret: short").unwrap();
        assert!(c.validate().is_err());
        let c = Config::from_yaml("policy:\n  ethereum:\n    allowed_destinations: [\"0x12\"]")
            .unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("allowed_destinations"));
        let e = Config::from_yaml("policy:\n  ethereum:\n    max_value_per_tx_wei: \"1e18\"")
            .unwrap_err();
        assert!(e.contains("wei"), "{e}");
        for bad in [
            "localhost",
            "chrome-extension://*",
            "chrome-extension://short",
            "https://a.example/path",
        ] {
            let c = Config::from_yaml(&format!("cors_origins: [\"{bad}\"]")).unwrap();
            assert!(c.validate().is_err(), "{bad}");
        }
        let c = Config::from_yaml(
            "cors_origins: [\"chrome-extension://abcdefghijklmnopabcdefghijklmnop\", \"*\"]",
        )
        .unwrap();
        c.validate()
            .expect("an exact extension origin, and * for development");
        let c = Config::from_yaml("presign_workers: 0").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("presign_workers"));
        let c = Config::from_yaml("presign_max_per_request: 0").unwrap();
        assert!(c.validate().is_err());
        let c = Config::from_yaml("presign_pool_cap: 8\npresign_workers: 4").unwrap();
        c.validate().unwrap();
        assert_eq!((c.presign_pool_cap, c.presign_workers), (8, 4));
        assert_eq!(c.presign_wallet_workers(), 2);
        let c = Config::from_yaml("presign_workers: 2\npresign_workers_per_wallet: 3").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("presign_workers_per_wallet"));
        let c = Config::from_yaml("presign_workers: 1").unwrap();
        c.validate().unwrap();
        assert_eq!(c.presign_wallet_workers(), 1);
        let c = Config::from_yaml("presign_join_deadline_secs: 0").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("presign_join_deadline_secs"));
        let c =
            Config::from_yaml("presign_join_deadline_secs: 600\nsession_timeout_secs: 60").unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.presign_join_deadline(),
            std::time::Duration::from_secs(60)
        );
    }

    #[test]
    fn wei_amounts_and_env() {
        let c = Config::from_yaml(
            "policy:\n  ethereum:\n    max_value_per_tx_wei: \"1000000000000000000000\"\n    daily_value_limit_wei: 5",
        )
        .unwrap();
        assert_eq!(
            c.policy.ethereum.max_value_per_tx_wei,
            Some(Wei(10u128.pow(21)))
        );
        assert_eq!(c.policy.ethereum.daily_value_limit_wei, Some(Wei(5)));
        let mut c = Config::default();
        c.apply_env(|k| match k {
            ENV_PORT => Some("6000".into()),
            ENV_ACCESS_SECRET => Some("0123456789abcdef0123".into()),
            ENV_INSECURE_DEV_PRIMES => Some("true".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.port, 6000);
        assert!(c.insecure_dev_primes);
        assert!(c.gateway_access_secret.is_some());
        let mut c = Config::default();
        assert!(c
            .apply_env(|k| (k == ENV_PORT).then(|| "x".into()))
            .is_err());
    }

    #[test]
    fn cors_origins_from_env() {
        let mut c = Config::default();
        c.apply_env(|k| {
            (k == ENV_CORS_ORIGINS).then(|| "http://localhost:5173/, https://w.example".into())
        })
        .unwrap();
        assert_eq!(
            c.cors_origins,
            vec!["http://localhost:5173", "https://w.example"]
        );
        c.apply_env(|k| (k == ENV_CORS_ORIGINS).then(|| "localhost".into()))
            .unwrap();
        assert!(c.validate().is_err(), "origin without scheme accepted");
    }
}
