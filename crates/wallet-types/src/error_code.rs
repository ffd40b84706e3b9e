//! The error codes of the whole system.

use std::fmt;
use std::str::FromStr;

/// `google.rpc.ErrorInfo.domain` of every error the cosigner sends.
pub const ERROR_DOMAIN: &str = "cosigner.wallet-mpc";

macro_rules! error_codes {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident = $text:literal, retryable: $retry:literal;
    )+) => {
        /// Why an operation failed: a stable, machine-readable code.
        ///
        /// Callers switch on the code (never on message text). The text form
        /// ([`ErrorCode::as_str`], `snake_case`) is the same everywhere: on the wire, in
        /// JSON, in the bindings and in TypeScript. New codes may be added: a client
        /// reads a peer's code with [`ErrorCode::from_wire`], which maps a code it does
        /// not know to [`ErrorCode::CosignerRejected`] (a refusal it cannot interpret).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl ErrorCode {
            /// Every code, in declaration order (for the documentation table and tests).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The code's text form, e.g. `policy_denied`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)+
                }
            }

            /// Whether trying the same operation again later may succeed without any
            /// change by the caller (the service was unavailable, busy or slow).
            pub const fn retryable(self) -> bool {
                match self {
                    $(ErrorCode::$variant => $retry,)+
                }
            }

            /// One-line description (the documentation table's text).
            pub fn description(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => concat!($($doc),+).trim(),)+
                }
            }
        }

        impl FromStr for ErrorCode {
            type Err = UnknownErrorCode;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(ErrorCode::$variant),)+
                    other => Err(UnknownErrorCode(other.chars().take(64).collect())),
                }
            }
        }
    };
}

error_codes! {
    // ---- the caller's side: configuration, arguments, local storage
    /// The configuration is incomplete or inconsistent (missing URL, bad option).
    Config = "config", retryable: false;
    /// An argument is invalid (hex, derivation path, transaction bytes, oversized data).
    InvalidInput = "invalid_input", retryable: false;
    /// No wallet is stored here yet: create or import one first.
    NoWallet = "no_wallet", retryable: false;
    /// A wallet is stored here already; refusing to overwrite key shares.
    WalletExists = "wallet_exists", retryable: false;
    /// The account is not part of this wallet.
    UnknownAccount = "unknown_account", retryable: false;
    /// The passphrase does not open the key shares (or the file was modified).
    WrongPassphrase = "wrong_passphrase", retryable: false;
    /// Local storage failed or holds unusable data (file, IndexedDB, damaged record).
    Storage = "storage", retryable: false;
    /// This platform lacks something the operation needs (e.g. IndexedDB, WebCrypto).
    Unsupported = "unsupported", retryable: false;
    /// The caller cancelled the operation.
    Aborted = "aborted", retryable: false;

    // ---- reaching the other parties
    /// The cosigner cannot be reached, is shutting down, went away mid-operation, or
    /// cannot reach its key store's database (PostgreSQL down).
    CosignerUnavailable = "cosigner_unavailable", retryable: true;
    /// The message gateway cannot be reached or refused the connection.
    GatewayUnavailable = "gateway_unavailable", retryable: true;
    /// The recovery agent cannot be reached.
    AgentUnavailable = "agent_unavailable", retryable: true;
    /// The recovery agent refused the pairing token or origin.
    AgentUnauthorized = "agent_unauthorized", retryable: false;
    /// The recovery agent failed its part of the job.
    AgentFailed = "agent_failed", retryable: false;
    /// A TLS connection to a server (cosigner, gateway, agent) failed: its certificate
    /// is not trusted (unknown CA: configure the CA file; wrong host name; expired) or
    /// the TLS handshake failed (e.g. `https` to a plain-HTTP port).
    TlsFailed = "tls_failed", retryable: false;

    // ---- the cosigner's answers (these travel in google.rpc.ErrorInfo.reason)
    /// The request is not authenticated: bad or replayed request signature, stale
    /// timestamp, unknown or revoked identity, wrong party.
    Unauthorized = "unauthorized", retryable: false;
    /// Creating a wallet needs a registration credential issued by the cosigner's
    /// operator: none was given, or it is forged, expired, for another cosigner or
    /// used already.
    RegistrationRequired = "registration_required", retryable: false;
    /// The wallet or account is not known to the cosigner.
    NotFound = "not_found", retryable: false;
    /// The wallet exists but cannot sign yet (creation not confirmed) or is frozen.
    WalletNotReady = "wallet_not_ready", retryable: false;
    /// The cosigner's policy refused to co-sign; the rule is named in the details.
    PolicyDenied = "policy_denied", retryable: false;
    /// The presignature taken is not usable (unknown to the cosigner, already used, or
    /// none left in `require` mode); the details say which. Nothing was signed with it.
    PresignatureUnavailable = "presignature_unavailable", retryable: false;
    /// The cosigner's presignature pool for this account is full.
    PoolFull = "pool_full", retryable: false;
    /// The cosigner has no free session slot right now.
    Busy = "busy", retryable: true;
    /// Too many requests from this identity or in total; slow down.
    RateLimited = "rate_limited", retryable: true;
    /// The cosigner refused for a reason this client does not know.
    CosignerRejected = "cosigner_rejected", retryable: false;

    // ---- the protocol and its results
    /// A protocol session failed: a peer misbehaved, aborted or sent garbage (the
    /// details name the party when the protocol can tell).
    SessionFailed = "session_failed", retryable: false;
    /// An operation or protocol session did not finish in time.
    Timeout = "timeout", retryable: true;
    /// The cosigner announced a different digest than the one computed locally: it is
    /// not signing what was asked. Nothing was signed.
    DigestMismatch = "digest_mismatch", retryable: false;
    /// A signature does not verify against the expected key.
    VerificationFailed = "verification_failed", retryable: false;
    /// A service answered with something malformed (wrong signer set, bad encoding).
    InvalidResponse = "invalid_response", retryable: false;
    /// A bug.
    Internal = "internal", retryable: false;
}

impl ErrorCode {
    /// The code named by a peer (the cosigner's `ErrorInfo.reason`). A code this build
    /// does not know is a refusal it cannot interpret: [`ErrorCode::CosignerRejected`].
    pub fn from_wire(reason: &str) -> ErrorCode {
        reason.parse().unwrap_or(ErrorCode::CosignerRejected)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A code text this build does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code {0:?}")]
pub struct UnknownErrorCode(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_is_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for &c in ErrorCode::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(
                s.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'),
                "{s} is not snake_case"
            );
            assert_eq!(s.parse::<ErrorCode>().unwrap(), c);
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{s}\""));
            assert_eq!(
                serde_json::from_str::<ErrorCode>(&format!("\"{s}\"")).unwrap(),
                c
            );
            assert!(!c.description().is_empty());
        }
    }

    #[test]
    fn the_documented_table_lists_every_code() {
        let table = include_str!("../../../docs/errors.md");
        for &c in ErrorCode::ALL {
            let row = format!(
                "| `{}` | {} | {} |",
                c,
                c.description(),
                if c.retryable() { "yes" } else { "no" }
            );
            assert!(table.contains(&row), "docs/errors.md lacks the row {row}");
        }
    }

    #[test]
    fn unknown_codes_from_a_peer_are_refusals() {
        assert_eq!(
            ErrorCode::from_wire("policy_denied"),
            ErrorCode::PolicyDenied
        );
        assert_eq!(
            ErrorCode::from_wire("something_new"),
            ErrorCode::CosignerRejected
        );
        assert_eq!(ErrorCode::from_wire(""), ErrorCode::CosignerRejected);
        let long = "x".repeat(10_000);
        let err = long.parse::<ErrorCode>().unwrap_err();
        assert_eq!(err.0.len(), 64);
    }

    #[test]
    fn only_availability_and_time_are_retryable() {
        let retryable: Vec<_> = ErrorCode::ALL
            .iter()
            .filter(|c| c.retryable())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(
            retryable,
            [
                "cosigner_unavailable",
                "gateway_unavailable",
                "agent_unavailable",
                "busy",
                "rate_limited",
                "timeout"
            ]
        );
    }
}
