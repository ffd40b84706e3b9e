//! `sign-gateway` configuration: optional YAML file plus environment overrides.

use std::path::{Path, PathBuf};

use gateway_core::{GatewayConfig, Limits};
use serde::{Deserialize, Serialize};

/// Environment variable holding the room-token secret (overrides the file).
pub const ENV_ACCESS_SECRET: &str = "SIGN_GATEWAY_ACCESS_SECRET";
/// Environment variable overriding `host`.
pub const ENV_HOST: &str = "SIGN_GATEWAY_HOST";
/// Environment variable overriding `port`.
pub const ENV_PORT: &str = "SIGN_GATEWAY_PORT";
/// Environment variable overriding `logging.level`.
pub const ENV_LOG_LEVEL: &str = "SIGN_GATEWAY_LOG";
/// Environment variable overriding `logging.format` (`json` or `pretty`).
pub const ENV_LOG_FORMAT: &str = "SIGN_GATEWAY_LOG_FORMAT";
/// Environment variable overriding `cors_origins`: comma-separated browser origins
/// (e.g. `http://localhost:5173,https://wallet.example`, or `*`); empty disables CORS.
pub const ENV_CORS_ORIGINS: &str = "SIGN_GATEWAY_CORS_ORIGINS";

/// Environment variable overriding `tls.cert_file` (with `SIGN_GATEWAY_TLS_KEY_FILE`).
pub const ENV_TLS_CERT_FILE: &str = "SIGN_GATEWAY_TLS_CERT_FILE";
/// Environment variable overriding `tls.key_file` (with `SIGN_GATEWAY_TLS_CERT_FILE`).
pub const ENV_TLS_KEY_FILE: &str = "SIGN_GATEWAY_TLS_KEY_FILE";

/// Environment variable overriding `rooms` (`memory` or `redis`).
pub const ENV_ROOMS: &str = "SIGN_GATEWAY_ROOMS";
/// Environment variable overriding `redis_url` (it may hold a password: prefer it to
/// the file).
pub const ENV_REDIS_URL: &str = "SIGN_GATEWAY_REDIS_URL";
/// Environment variable overriding `redis_key_prefix`.
pub const ENV_REDIS_KEY_PREFIX: &str = "SIGN_GATEWAY_REDIS_KEY_PREFIX";

/// Where rooms live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RoomBackend {
    /// In this process (default): one gateway instance serves a room.
    #[default]
    Memory,
    /// In Redis Streams (`redis_url`): any number of instances serve the same rooms.
    Redis,
}

/// Serve HTTPS with this certificate and key (PEM files) instead of plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain: the server's certificate first, then intermediates.
    pub cert_file: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (for log shippers).
    Json,
    /// Human-readable (default).
    #[default]
    Pretty,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Logging {
    /// `tracing` filter, e.g. `info` or `sign_gateway=debug,info` (default `info`).
    pub level: String,
    /// `json` or `pretty` (default `pretty`).
    pub format: LogFormat,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            level: "info".into(),
            format: LogFormat::Pretty,
        }
    }
}

/// The whole configuration. Every field is optional in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1`).
    pub host: String,
    /// Port to listen on (default 8080; 0: a free port chosen by the system, reported by
    /// `--port-file` and the "listening on" log line).
    pub port: u16,
    /// CORS origins (see [`GatewayConfig::cors_origins`]).
    pub cors_origins: Vec<String>,
    /// Logging.
    pub logging: Logging,
    /// SSE keep-alive interval in seconds (default 15).
    pub keepalive_secs: u64,
    /// Room-token secret; prefer the `SIGN_GATEWAY_ACCESS_SECRET` environment variable.
    /// Absent: the gateway is open (local embedded default only).
    pub access_secret: Option<String>,
    /// Refuse v1 room tokens: only party tokens (bound to one party and to read or
    /// write) open rooms (see [`GatewayConfig::require_party_tokens`]).
    pub require_party_tokens: bool,
    /// Resource limits.
    pub limits: Limits,
    /// Serve HTTPS with this certificate and key. Absent (the default): plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Where rooms live: `memory` (default) or `redis`.
    pub rooms: RoomBackend,
    /// Redis for `rooms: redis`: `redis://[user:password@]host:port[/db]`; prefer the
    /// `SIGN_GATEWAY_REDIS_URL` environment variable when it holds a password.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key of the gateway (default `sign-gateway:`): gateways
    /// sharing one prefix share their rooms.
    pub redis_key_prefix: String,
}

impl Default for Config {
    fn default() -> Self {
        let g = GatewayConfig::default();
        Config {
            host: "127.0.0.1".into(),
            port: 8080,
            cors_origins: g.cors_origins,
            logging: Logging::default(),
            keepalive_secs: g.keepalive_secs,
            access_secret: g.access_secret,
            require_party_tokens: g.require_party_tokens,
            limits: g.limits,
            tls: None,
            rooms: RoomBackend::Memory,
            redis_url: None,
            redis_key_prefix: crate::rooms::redis::DEFAULT_KEY_PREFIX.into(),
        }
    }
}

/// Configuration errors, all with a readable message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid YAML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// File path.
        path: String,
        /// Cause (with line and column).
        source: serde_yaml::Error,
    },
    /// An environment variable has an invalid value.
    #[error("invalid environment variable {name}={value:?}: {reason}")]
    Env {
        /// Variable name.
        name: &'static str,
        /// Its value.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads `path` (if given), then applies environment overrides, then validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut cfg = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Config::from_yaml(&text).map_err(|source| ConfigError::Parse {
                    path: p.display().to_string(),
                    source,
                })?
            }
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses YAML text (an empty document gives the defaults).
    pub fn from_yaml(text: &str) -> Result<Config, serde_yaml::Error> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_yaml::from_str(text)
    }

    /// Applies overrides from `get` (the environment in production).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(h) = get(ENV_HOST).filter(|v| !v.is_empty()) {
            self.host = h;
        }
        if let Some(p) = get(ENV_PORT).filter(|v| !v.is_empty()) {
            self.port = p.trim().parse().map_err(|e| ConfigError::Env {
                name: ENV_PORT,
                value: p.clone(),
                reason: format!("{e}"),
            })?;
        }
        if let Some(s) = get(ENV_ACCESS_SECRET).filter(|v| !v.is_empty()) {
            self.access_secret = Some(s);
        }
        if let Some(o) = get(ENV_CORS_ORIGINS) {
            self.cors_origins = split_origins(&o);
        }
        let cert = get(ENV_TLS_CERT_FILE).filter(|v| !v.is_empty());
        let key = get(ENV_TLS_KEY_FILE).filter(|v| !v.is_empty());
        match (cert, key, self.tls.as_mut()) {
            (None, None, _) => {}
            (cert, key, Some(tls)) => {
                if let Some(c) = cert {
                    tls.cert_file = c.into();
                }
                if let Some(k) = key {
                    tls.key_file = k.into();
                }
            }
            (Some(c), Some(k), None) => {
                self.tls = Some(TlsFiles {
                    cert_file: c.into(),
                    key_file: k.into(),
                })
            }
            (Some(c), None, None) => {
                return Err(ConfigError::Env {
                    name: ENV_TLS_CERT_FILE,
                    value: c,
                    reason: format!("set {ENV_TLS_KEY_FILE} as well"),
                })
            }
            (None, Some(k), None) => {
                return Err(ConfigError::Env {
                    name: ENV_TLS_KEY_FILE,
                    value: k,
                    reason: format!("set {ENV_TLS_CERT_FILE} as well"),
                })
            }
        }
        if let Some(r) = get(ENV_ROOMS).filter(|v| !v.is_empty()) {
            self.rooms = match r.as_str() {
                "memory" => RoomBackend::Memory,
                "redis" => RoomBackend::Redis,
                _ => {
                    return Err(ConfigError::Env {
                        name: ENV_ROOMS,
                        value: r,
                        reason: "expected memory or redis".into(),
                    })
                }
            };
        }
        if let Some(u) = get(ENV_REDIS_URL).filter(|v| !v.is_empty()) {
            self.redis_url = Some(u);
        }
        if let Some(p) = get(ENV_REDIS_KEY_PREFIX).filter(|v| !v.is_empty()) {
            self.redis_key_prefix = p;
        }
        if let Some(l) = get(ENV_LOG_LEVEL).filter(|v| !v.is_empty()) {
            self.logging.level = l;
        }
        if let Some(f) = get(ENV_LOG_FORMAT).filter(|v| !v.is_empty()) {
            self.logging.format = match f.as_str() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                _ => {
                    return Err(ConfigError::Env {
                        name: ENV_LOG_FORMAT,
                        value: f,
                        reason: "expected json or pretty".into(),
                    })
                }
            };
        }
        Ok(())
    }

    /// Checks value ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.host.trim().is_empty() {
            return Err(ConfigError::Invalid("host must not be empty".into()));
        }
        if self.rooms == RoomBackend::Redis && self.redis_url.is_none() {
            return Err(ConfigError::Invalid(format!(
                "rooms: redis needs redis_url (or {ENV_REDIS_URL})"
            )));
        }
        self.gateway().validate().map_err(ConfigError::Invalid)
    }

    /// The part shared with the edge gateway.
    pub fn gateway(&self) -> GatewayConfig {
        GatewayConfig {
            cors_origins: self.cors_origins.clone(),
            keepalive_secs: self.keepalive_secs,
            access_secret: self.access_secret.clone(),
            require_party_tokens: self.require_party_tokens,
            limits: self.limits.clone(),
        }
    }
}

/// Splits a comma-separated origin list (trailing `/` removed, blanks dropped).
fn split_origins(list: &str) -> Vec<String> {
    list.split(',')
        .map(|o| o.trim().trim_end_matches('/').to_string())
        .filter(|o| !o.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins_from_env() {
        let mut c = Config::from_yaml("cors_origins: [\"http://a.example\"]").unwrap();
        c.apply_env(|k| {
            (k == ENV_CORS_ORIGINS).then(|| " http://localhost:5173/ , https://w.example ,".into())
        })
        .unwrap();
        assert_eq!(
            c.cors_origins,
            vec!["http://localhost:5173", "https://w.example"]
        );
        assert!(c.validate().is_ok());
        c.apply_env(|k| (k == ENV_CORS_ORIGINS).then(String::new))
            .unwrap();
        assert!(c.cors_origins.is_empty());
        c.apply_env(|k| (k == ENV_CORS_ORIGINS).then(|| "localhost:5173".into()))
            .unwrap();
        assert!(c.validate().is_err(), "origin without scheme accepted");
    }

    #[test]
    fn defaults_and_env() {
        let mut c = Config::from_yaml("").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8080));
        c.apply_env(|k| match k {
            ENV_PORT => Some("9000".into()),
            ENV_ACCESS_SECRET => Some("0123456789abcdef".into()),
            ENV_LOG_FORMAT => Some("json".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.logging.format, LogFormat::Json);
        assert!(c.validate().is_ok());
        assert!(c
            .apply_env(|k| (k == ENV_PORT).then(|| "http".to_string()))
            .is_err());
    }

    #[test]
    fn tls_from_file_and_env() {
        let c = Config::from_yaml("tls:\n  cert_file: /c.pem\n  key_file: /k.pem\n").unwrap();
        let tls = c.tls.clone().unwrap();
        assert_eq!(tls.cert_file, PathBuf::from("/c.pem"));
        assert!(Config::from_yaml("tls:\n  cert_file: /c.pem\n").is_err());
        let mut c = Config::from_yaml("").unwrap();
        assert!(c.tls.is_none());
        assert!(c
            .apply_env(|k| (k == ENV_TLS_CERT_FILE).then(|| "/c.pem".into()))
            .is_err());
        c.apply_env(|k| match k {
            ENV_TLS_CERT_FILE => Some("/c.pem".into()),
            ENV_TLS_KEY_FILE => Some("/k.pem".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.tls.unwrap().key_file, PathBuf::from("/k.pem"));
    }

    #[test]
    fn rooms_backend_from_file_and_env() {
        let c = Config::from_yaml("").unwrap();
        assert_eq!(c.rooms, RoomBackend::Memory);
        assert_eq!(c.redis_key_prefix, "sign-gateway:");
        let mut c = Config::from_yaml("rooms: redis\n").unwrap();
        assert!(c.validate().is_err(), "redis without a URL accepted");
        c.apply_env(|k| match k {
            ENV_REDIS_URL => Some("redis://127.0.0.1:6379/".into()),
            ENV_REDIS_KEY_PREFIX => Some("gw-a:".into()),
            _ => None,
        })
        .unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.redis_key_prefix, "gw-a:");
        c.apply_env(|k| (k == ENV_ROOMS).then(|| "memory".into()))
            .unwrap();
        assert_eq!(c.rooms, RoomBackend::Memory);
        assert!(c
            .apply_env(|k| (k == ENV_ROOMS).then(|| "postgres".into()))
            .is_err());
        assert!(Config::from_yaml("rooms: disk\n").is_err());
    }

    #[test]
    fn port_zero_is_accepted() {
        let mut c = Config::from_yaml("port: 0").unwrap();
        assert_eq!(c.port, 0);
        assert!(c.validate().is_ok());
        c.apply_env(|k| (k == ENV_PORT).then(|| "0".into()))
            .unwrap();
        assert_eq!(c.port, 0);
    }

    #[test]
    fn sample_file_parses() {
        let text = include_str!("../../../config/sign-gateway.yaml");
        let c = Config::from_yaml(text).unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.port, 8080);
    }

    #[test]
    fn bad_yaml_is_an_error_with_location() {
        let e = Config::from_yaml("port: [").unwrap_err();
        assert!(e.location().is_some());
        assert!(Config::from_yaml("prot: 1").is_err());
    }
}
