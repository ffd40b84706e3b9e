//! `sign-service` configuration: YAML file (every key optional), then environment
//! overrides, then validation. With no file at all the service runs on
//! 127.0.0.1:50051 against the gateway at http://127.0.0.1:8080.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

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
/// Browser origins allowed to call gRPC-web (comma-separated, or `*`; empty: none).
pub const ENV_CORS_ORIGINS: &str = "SIGN_SERVICE_CORS_ORIGINS";

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

/// An amount of wei (YAML integer or decimal string, since amounts exceed 64 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wei(pub u128);

impl<'de> Deserialize<'de> for Wei {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(v) => Ok(Wei(u128::from(v))),
            Raw::Str(s) => s
                .trim()
                .replace('_', "")
                .parse::<u128>()
                .map(Wei)
                .map_err(|e| serde::de::Error::custom(format!("not a wei amount {s:?}: {e}"))),
        }
    }
}

/// Rules applied to Ethereum transactions before co-signing.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EthereumPolicy {
    /// Allowed `to` addresses (hex, any case). Empty: any destination.
    pub allowed_destinations: Vec<String>,
    /// Whether contract creation (no `to`) is allowed. Unset: allowed only when
    /// `allowed_destinations` is empty.
    pub allow_contract_creation: Option<bool>,
    /// Largest `value` of one transaction, in wei.
    pub max_value_per_tx_wei: Option<Wei>,
    /// Largest sum of `value` per wallet per UTC day, in wei.
    pub daily_value_limit_wei: Option<Wei>,
}

impl EthereumPolicy {
    /// Contract creation is allowed when explicitly enabled, or by default when no
    /// destination list restricts transfers.
    pub fn contract_creation_allowed(&self) -> bool {
        self.allow_contract_creation
            .unwrap_or(self.allowed_destinations.is_empty())
    }
}

/// Signing policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Whether `PAYLOAD_KIND_RAW` (opaque preimages, e.g. Bitcoin sighashes) may be
    /// co-signed. A raw keccak-256 preimage could be an Ethereum transaction that
    /// bypasses the Ethereum rules, so deployments with Ethereum rules should set this
    /// to false or restrict raw payloads to non-keccak digests (see
    /// `raw_keccak256_allowed`).
    pub allow_raw_payloads: bool,
    /// Whether a raw payload may use the keccak-256 digest (the Ethereum one).
    pub raw_keccak256_allowed: bool,
    /// Ethereum transaction rules.
    pub ethereum: EthereumPolicy,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            allow_raw_payloads: true,
            raw_keccak256_allowed: true,
            ethereum: EthereumPolicy::default(),
        }
    }
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
    /// This party's keygen index (must be 1).
    pub party_index: u16,
    /// Signers needed (must be 2).
    pub threshold: u16,
    /// Parties (must be 3).
    pub total_participants: u16,
    /// Key store (redb database file).
    pub key_store: PathBuf,
    /// Append-only audit log (JSON lines).
    pub audit_log: PathBuf,
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
    /// Allowed clock skew of authenticated requests, seconds.
    pub clock_skew_secs: u64,
    /// Concurrent protocol sessions at most.
    pub max_concurrent_sessions: usize,
    /// Number of fresh safe-prime sets (one per wallet) kept ready.
    pub prime_pool_size: usize,
    /// Use the PUBLIC test primes for aux info. Insecure: tests and demos only.
    pub insecure_dev_primes: bool,
    /// Presignature sessions the cosigner runs at once (its bounded background pool);
    /// further sessions wait for a slot.
    pub presign_workers: usize,
    /// Most presignatures kept per account and signer pair (finished + running).
    /// 0 disables presignatures.
    pub presign_pool_cap: u32,
    /// Most presignature sessions one StartPresign may open.
    pub presign_max_per_request: u32,
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
            party_index: 1,
            threshold: 2,
            total_participants: 3,
            key_store: PathBuf::from("./data/sign-service.redb"),
            audit_log: PathBuf::from("./data/sign-service-audit.jsonl"),
            cors_origins: Vec::new(),
            gateway_access_secret: None,
            session_timeout_secs: 120,
            wallet_creation_timeout_secs: 1800,
            confirm_wait_secs: 60,
            pending_wallet_ttl_secs: 3600,
            clock_skew_secs: 120,
            max_concurrent_sessions: 64,
            prime_pool_size: 2,
            insecure_dev_primes: false,
            presign_workers: 2,
            presign_pool_cap: 32,
            presign_max_per_request: 16,
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
        if let Some(v) = get(ENV_KEY_STORE) {
            self.key_store = PathBuf::from(v);
        }
        if let Some(v) = get(ENV_AUDIT_LOG) {
            self.audit_log = PathBuf::from(v);
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
        if let Some(v) = get(ENV_INSECURE_DEV_PRIMES) {
            self.insecure_dev_primes = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" | "" => false,
                _ => {
                    return Err(invalid(
                        ENV_INSECURE_DEV_PRIMES,
                        format!("{v:?}: use true or false"),
                    ))
                }
            };
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
            ("clock_skew_secs", self.clock_skew_secs, 1, 3_600),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(invalid(key, format!("{v} not in {lo}..={hi}")));
            }
        }
        if self.max_concurrent_sessions == 0 || self.max_concurrent_sessions > 10_000 {
            return Err(invalid("max_concurrent_sessions", "must be in 1..=10000"));
        }
        if self.presign_workers == 0 || self.presign_workers > 256 {
            return Err(invalid("presign_workers", "must be in 1..=256"));
        }
        if self.presign_pool_cap > 10_000 {
            return Err(invalid("presign_pool_cap", "at most 10000"));
        }
        if self.presign_max_per_request == 0 || self.presign_max_per_request > 1_000 {
            return Err(invalid("presign_max_per_request", "must be in 1..=1000"));
        }
        if self.prime_pool_size > 64 {
            return Err(invalid("prime_pool_size", "at most 64"));
        }
        for o in &self.cors_origins {
            if o != "*" && http::HeaderValue::from_str(o).is_err() {
                return Err(invalid(
                    "cors_origins",
                    format!("{o:?} is not a valid origin"),
                ));
            }
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(invalid(
                    "cors_origins",
                    format!("{o:?}: use scheme://host[:port] or *"),
                ));
            }
        }
        for a in &self.policy.ethereum.allowed_destinations {
            parse_address(a).map_err(|r| invalid("policy.ethereum.allowed_destinations", r))?;
        }
        Ok(())
    }

    /// The gateway URL handed to callers.
    pub fn public_gateway_url(&self) -> &str {
        self.public_gateway_url
            .as_deref()
            .unwrap_or(&self.gateway_url)
    }
}

/// Parses a 20-byte hex address (`0x` optional, any case).
pub fn parse_address(s: &str) -> Result<[u8; 20], String> {
    let h = s.trim().trim_start_matches("0x").trim_start_matches("0X");
    let mut out = [0u8; 20];
    hex::decode_to_slice(h, &mut out).map_err(|_| format!("{s:?} is not a 20-byte hex address"))?;
    Ok(out)
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
    fn seed_file_parses() {
        let text = include_str!("../../config/sign-service.yaml");
        let c = Config::from_yaml(text).unwrap();
        c.validate().unwrap();
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
        let c = Config::from_yaml("cors_origins: [\"localhost\"]").unwrap();
        assert!(c.validate().is_err());
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
