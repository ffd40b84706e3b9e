//! How the PostgreSQL store is reached: TLS (libpq's `sslmode` and `sslrootcert`,
//! with rustls and ring) and the per-connection timeouts.
//!
//! The `postgres` client knows `sslmode` disable / prefer / require only, and never
//! checks a certificate; this module reads libpq's names from the URL itself
//! ([`PgTarget::parse`]), removes them, and gives the client a rustls connector that
//! checks what the mode asks:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `require` | always | not checked (chain checked when a CA file is given: libpq's rule) |
//! | `verify-ca` | always | issued by the CA file's CA |
//! | `verify-full` | always | issued by the CA file's CA, for the host of the URL |
//! | (none) | loopback and Unix sockets: never; any other host: refused | |
//!
//! `allow` and `prefer` are refused: they fall back to plaintext without telling.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use postgres::config::Host;
use postgres::Config;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Default `statement_timeout` of every store connection, ms
/// (`store_statement_timeout_ms`).
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 5_000;
/// Default `lock_timeout` of every store connection, ms (`store_lock_timeout_ms`).
pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = 2_000;
/// [`DEFAULT_STATEMENT_TIMEOUT_MS`].
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_millis(DEFAULT_STATEMENT_TIMEOUT_MS);
/// [`DEFAULT_LOCK_TIMEOUT_MS`].
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_millis(DEFAULT_LOCK_TIMEOUT_MS);

/// libpq's `sslmode`, the values the store accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext.
    Disable,
    /// TLS, the certificate not checked.
    Require,
    /// TLS, the certificate issued by the trusted CA (any host name).
    VerifyCa,
    /// TLS, the certificate issued by the trusted CA for the host connected to.
    VerifyFull,
}

impl SslMode {
    /// libpq's name.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// What is wrong with the store's URL or TLS settings (the URL is never repeated: it
/// may hold a user name worth keeping out of logs, never a password).
#[derive(Debug, thiserror::Error)]
pub enum PgTargetError {
    /// The URL does not parse.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    /// `sslmode` has a value the store refuses.
    #[error("sslmode={0}: {1}")]
    SslMode(String, &'static str),
    /// A plaintext connection to another machine, not asked for.
    #[error(
        "the PostgreSQL host {0} is not on this machine and the URL gives no sslmode: the \
         connection would be plaintext. Add sslmode=verify-full to store_url (with store_ca_file, \
         the CA that issued the server's certificate), or sslmode=disable to accept a plaintext \
         connection explicitly (a private network, a TLS proxy)"
    )]
    PlaintextRemote(String),
    /// The CA file is given twice or missing.
    #[error("{0}")]
    Ca(String),
    /// The CA file cannot be read or holds no usable certificate.
    #[error("the CA file {path}: {reason}")]
    CaFile {
        /// File.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The store's database: the client's configuration (without libpq's TLS keys), and
/// how TLS is done.
pub struct PgTarget {
    /// The client's configuration.
    pub config: Config,
    /// The TLS mode chosen.
    pub mode: SslMode,
    /// The trusted CA file, if any.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("mode", &self.mode)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

/// Percent-decodes a URL query value (`+` stays `+`, as libpq reads it).
fn percent_decode(s: &str) -> Result<String, PgTargetError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| PgTargetError::Url("a bad %-escape in the query".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PgTargetError::Url("a query value is not UTF-8".into()))
}

/// Removes `sslmode` and `sslrootcert` from `url` (either form); returns the rest and
/// their values.
fn split_tls_keys(url: &str) -> Result<(String, Option<String>, Option<String>), PgTargetError> {
    let (mut mode, mut root) = (None, None);
    let mut take = |k: &str, v: String| -> Result<bool, PgTargetError> {
        let slot = match k {
            "sslmode" => &mut mode,
            "sslrootcert" => &mut root,
            _ => return Ok(false),
        };
        if slot.replace(v).is_some() {
            return Err(PgTargetError::Url(format!("{k} is given twice")));
        }
        Ok(true)
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_string(), None, None));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(&percent_decode(k)?, percent_decode(v)?)? {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, mode, root));
    }
    // key=value form: these two keys take plain or single-quoted values without spaces.
    let mut kept = Vec::new();
    for word in url.split_whitespace() {
        let (k, v) = word.split_once('=').unwrap_or((word, ""));
        let v = v.trim_matches('\'').to_string();
        if !take(k.trim(), v)? {
            kept.push(word);
        }
    }
    Ok((kept.join(" "), mode, root))
}

/// Whether every host of `config` is this machine (loopback addresses, `localhost`,
/// Unix sockets).
fn all_local(config: &Config) -> Result<(), String> {
    for h in config.get_hosts() {
        match h {
            Host::Tcp(name) => {
                let local = name.eq_ignore_ascii_case("localhost")
                    || name
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                if !local {
                    return Err(name.clone());
                }
            }
            #[cfg(unix)]
            Host::Unix(_) => {}
        }
    }
    for ip in config.get_hostaddrs() {
        if !ip.is_loopback() {
            return Err(ip.to_string());
        }
    }
    Ok(())
}

/// The client's configuration of `url`, libpq's TLS keys removed (not checked: see
/// [`PgTarget::parse`]).
pub fn client_config(url: &str) -> Result<Config, PgTargetError> {
    let (rest, _, _) = split_tls_keys(url)?;
    Config::from_str(&rest).map_err(|e| PgTargetError::Url(e.to_string()))
}

impl PgTarget {
    /// Reads `url` (`postgres://…?sslmode=…&sslrootcert=…` or the key=value form) and
    /// the CA file of the configuration (`store_ca_file`; the URL's `sslrootcert` is the
    /// same thing, give one). Checks the mode against the host: no `sslmode` means
    /// plaintext on loopback, `verify-full` with a CA file, and is refused for any other
    /// host. The CA file is read when connecting ([`PgTarget::connector`]).
    pub fn parse(url: &str, ca_file: Option<&Path>) -> Result<Self, PgTargetError> {
        let (rest, mode, root) = split_tls_keys(url)?;
        let config = Config::from_str(&rest).map_err(|e| PgTargetError::Url(e.to_string()))?;
        let ca_file = match (ca_file, root) {
            (Some(_), Some(_)) => {
                return Err(PgTargetError::Ca(
                    "the CA file is given twice: store_ca_file and sslrootcert in store_url; \
                     keep one"
                        .into(),
                ))
            }
            (Some(p), None) => Some(p.to_path_buf()),
            (None, Some(r)) if r == "system" => {
                return Err(PgTargetError::Ca(
                    "sslrootcert=system is not supported: give the CA file (store_ca_file)".into(),
                ))
            }
            (None, Some(r)) => Some(PathBuf::from(r)),
            (None, None) => None,
        };
        let mode = match mode.as_deref() {
            Some("disable") => SslMode::Disable,
            Some("require") if ca_file.is_some() => SslMode::VerifyCa,
            Some("require") => SslMode::Require,
            Some("verify-ca") => SslMode::VerifyCa,
            Some("verify-full") => SslMode::VerifyFull,
            Some(m @ ("allow" | "prefer")) => {
                return Err(PgTargetError::SslMode(
                    m.to_string(),
                    "it falls back to plaintext without telling: use require, verify-ca or \
                     verify-full (or disable, to accept plaintext explicitly)",
                ))
            }
            Some(m) => {
                return Err(PgTargetError::SslMode(
                    m.to_string(),
                    "unknown: use disable, require, verify-ca or verify-full",
                ))
            }
            None if ca_file.is_some() => SslMode::VerifyFull,
            None => {
                all_local(&config).map_err(PgTargetError::PlaintextRemote)?;
                SslMode::Disable
            }
        };
        match mode {
            SslMode::Disable if ca_file.is_some() => {
                return Err(PgTargetError::Ca(
                    "a CA file is given but sslmode=disable: remove one of them".into(),
                ))
            }
            SslMode::VerifyCa | SslMode::VerifyFull if ca_file.is_none() => {
                return Err(PgTargetError::Ca(format!(
                    "sslmode={} needs the CA that issued the server's certificate: set \
                     store_ca_file (SIGN_SERVICE_STORE_CA_FILE) to its PEM file",
                    mode.name()
                )))
            }
            _ => {}
        }
        let mut config = config;
        config.ssl_mode(match mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            _ => postgres::config::SslMode::Require,
        });
        Ok(PgTarget {
            config,
            mode,
            ca_file,
        })
    }

    /// The rustls connector of the mode (`None` for `disable`): reads the CA file.
    pub fn connector(&self) -> Result<Option<MakeRustlsConnect>, PgTargetError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| PgTargetError::Ca(format!("TLS: {e}")))?;
        let roots = || -> Result<Arc<RootCertStore>, PgTargetError> {
            let path = self
                .ca_file
                .as_deref()
                .ok_or_else(|| PgTargetError::Ca("no CA file".into()))?;
            load_roots(path).map(Arc::new)
        };
        let config = match self.mode {
            SslMode::Disable => return Ok(None),
            SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
            SslMode::VerifyCa => {
                let inner = WebPkiServerVerifier::builder_with_provider(roots()?, provider)
                    .build()
                    .map_err(|e| PgTargetError::Ca(format!("TLS: {e}")))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
                    .with_no_client_auth()
            }
            SslMode::VerifyFull => builder
                .with_root_certificates(roots()?)
                .with_no_client_auth(),
        };
        Ok(Some(MakeRustlsConnect::new(config)))
    }
}

/// The certificates of a PEM file, as trust anchors.
fn load_roots(path: &Path) -> Result<RootCertStore, PgTargetError> {
    let bad = |reason: String| PgTargetError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots
            .add(c)
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// `sslmode=require` without a CA: any certificate (libpq's meaning), the handshake's
/// signatures still checked. Encrypts against a passive eavesdropper only.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain checked against the CA, the host name not (webpki
/// checks the chain first, so a name error means the chain was good).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The TLS failure behind a connection error, if it is one: "TLS certificate problem:
/// …" when rustls refused the server's certificate, "TLS handshake failed: …" for
/// another rustls error.
pub fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(err) = next {
        let found = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        match found {
            Some(
                r @ (rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::UnsupportedNameType),
            ) => {
                return Some(format!(
                    "TLS certificate problem: the server's certificate is refused ({r}); \
                     check store_ca_file (the CA that issued it) and the host name of store_url"
                ))
            }
            Some(r) => return Some(format!("TLS handshake failed: {r}")),
            None => next = err.source(),
        }
    }
    None
}
