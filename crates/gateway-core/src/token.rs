//! Room tokens.
//!
//! - **Party tokens** (v2), `v2.<expiry>.<party>.<access>.<hex MAC>`: bound to one room,
//!   one party of the session (its keygen index) and an access right (`r` subscribe,
//!   `w` post and issue indices, `rw` both). The gateway keeps per-party accounts
//!   (bytes posted, open subscriptions) under [`crate::Limits`], so one party of a
//!   session cannot exhaust a room for the others, and a token that leaks from a reader
//!   cannot post.
//! - **Room tokens** (v1), `<expiry>.<hex MAC>`: bound to one room only, any party,
//!   read and write. Accepted unless the gateway is configured with
//!   `require_party_tokens`.
//!
//! The MAC is HMAC-SHA256 keyed by the gateway's access secret over
//! `domain || 0x00 || room_id || 0x00 || expiry` (v1, domain
//! `wallet-mpc-room-token-v1`) or `domain || 0x00 || room_id || 0x00 || expiry || 0x00 ||
//! party || 0x00 || access` (v2, domain `wallet-mpc-room-token-v2`), numbers in decimal
//! ASCII. Room ids cannot contain `0x00` (see [`crate::validate_room_id`]), so the
//! encodings are unambiguous. Whoever opens a room (the cosigner) issues the tokens with
//! the secret the gateway is configured with and hands each party its own.
//!
//! Tokens travel in `Authorization: Bearer`; the `token` query parameter exists only for
//! the browser's `EventSource`, which cannot set headers.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::GatewayError;

type HmacSha256 = Hmac<Sha256>;

const DOMAIN_V1: &[u8] = b"wallet-mpc-room-token-v1";
const DOMAIN_V2: &[u8] = b"wallet-mpc-room-token-v2";

/// What a token allows in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Subscribe.
    Read,
    /// Post messages and issue unique indices.
    Write,
    /// Both.
    ReadWrite,
}

impl Access {
    fn as_str(self) -> &'static str {
        match self {
            Access::Read => "r",
            Access::Write => "w",
            Access::ReadWrite => "rw",
        }
    }

    fn parse(s: &str) -> Option<Access> {
        match s {
            "r" => Some(Access::Read),
            "w" => Some(Access::Write),
            "rw" => Some(Access::ReadWrite),
            _ => None,
        }
    }

    /// Whether a token with this access may do what `needed` names.
    pub fn allows(self, needed: Access) -> bool {
        self == Access::ReadWrite || self == needed
    }
}

/// What a verified token says about its holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenClaims {
    /// Expiry, seconds since the Unix epoch.
    pub expiry: u64,
    /// The party the token was issued to (`None`: a v1 room token, any party).
    pub party: Option<u16>,
    /// What it allows.
    pub access: Access,
}

/// Who is asking, after [`authorize`]: the party of its token, if the token names one
/// (the gateway's per-party accounts key on it; `None` shares the room's account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caller {
    /// Keygen index of the token's party.
    pub party: Option<u16>,
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC accepts keys of any length, so this branch cannot happen; an all-zero
        // MAC is returned instead of panicking (no token string can match it by accident
        // any more than any other value).
        Err(_) => return [0u8; 32],
    };
    for (k, p) in parts.iter().enumerate() {
        if k > 0 {
            m.update(&[0]);
        }
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn mac_v1(secret: &[u8], room_id: &str, expiry_unix: u64) -> [u8; 32] {
    mac(
        secret,
        &[
            DOMAIN_V1,
            room_id.as_bytes(),
            expiry_unix.to_string().as_bytes(),
        ],
    )
}

fn mac_v2(secret: &[u8], room_id: &str, expiry_unix: u64, party: u16, access: Access) -> [u8; 32] {
    mac(
        secret,
        &[
            DOMAIN_V2,
            room_id.as_bytes(),
            expiry_unix.to_string().as_bytes(),
            party.to_string().as_bytes(),
            access.as_str().as_bytes(),
        ],
    )
}

/// Issues a v1 room token for `room_id` valid until `expiry_unix` (seconds since the
/// Unix epoch): any party, read and write.
///
/// ```
/// let t = gateway_core::issue_room_token(b"0123456789abcdef", "room-1", 2_000_000_000);
/// assert!(gateway_core::verify_room_token(b"0123456789abcdef", "room-1", &t, 1_700_000_000).is_ok());
/// ```
pub fn issue_room_token(secret: &[u8], room_id: &str, expiry_unix: u64) -> String {
    format!(
        "{expiry_unix}.{}",
        hex::encode(mac_v1(secret, room_id, expiry_unix))
    )
}

/// Issues a party token (v2) for `party` in `room_id` with `access`, valid until
/// `expiry_unix`.
///
/// ```
/// use gateway_core::{issue_party_token, verify_token, Access};
/// let t = issue_party_token(b"0123456789abcdef", "room-1", 2, Access::Read, 2_000_000_000);
/// let c = verify_token(b"0123456789abcdef", "room-1", &t, 1_700_000_000).unwrap();
/// assert_eq!((c.party, c.access), (Some(2), Access::Read));
/// ```
pub fn issue_party_token(
    secret: &[u8],
    room_id: &str,
    party: u16,
    access: Access,
    expiry_unix: u64,
) -> String {
    format!(
        "v2.{expiry_unix}.{party}.{}.{}",
        access.as_str(),
        hex::encode(mac_v2(secret, room_id, expiry_unix, party, access))
    )
}

/// A decimal number without sign or leading zeros (one string per value).
fn parse_canonical_u64(s: &str) -> Result<u64, GatewayError> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(GatewayError::TokenMalformed);
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(GatewayError::TokenMalformed);
    }
    s.parse().map_err(|_| GatewayError::TokenMalformed)
}

fn parse_mac(s: &str) -> Result<Vec<u8>, GatewayError> {
    if s.len() != 64 {
        return Err(GatewayError::TokenMalformed);
    }
    hex::decode(s).map_err(|_| GatewayError::TokenMalformed)
}

/// Verifies a v1 or v2 `token` for `room_id` at time `now_unix` (seconds) and returns
/// what it says.
///
/// Errors: [`GatewayError::TokenMalformed`] (401), [`GatewayError::TokenExpired`] (401),
/// [`GatewayError::TokenInvalid`] (403: wrong room, wrong secret or forged). The MAC is
/// checked before the expiry, so an expired forged token reports `TokenInvalid`. The
/// comparison is constant-time.
pub fn verify_token(
    secret: &[u8],
    room_id: &str,
    token: &str,
    now_unix: u64,
) -> Result<TokenClaims, GatewayError> {
    let (claims, given, expected) = if let Some(rest) = token.strip_prefix("v2.") {
        let mut it = rest.split('.');
        let (Some(expiry), Some(party), Some(access), Some(mac_hex), None) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            return Err(GatewayError::TokenMalformed);
        };
        let expiry = parse_canonical_u64(expiry)?;
        let party =
            u16::try_from(parse_canonical_u64(party)?).map_err(|_| GatewayError::TokenMalformed)?;
        let access = Access::parse(access).ok_or(GatewayError::TokenMalformed)?;
        let given = parse_mac(mac_hex)?;
        let claims = TokenClaims {
            expiry,
            party: Some(party),
            access,
        };
        (
            claims,
            given,
            mac_v2(secret, room_id, expiry, party, access),
        )
    } else {
        let (expiry, mac_hex) = token.split_once('.').ok_or(GatewayError::TokenMalformed)?;
        let expiry = parse_canonical_u64(expiry)?;
        let given = parse_mac(mac_hex)?;
        let claims = TokenClaims {
            expiry,
            party: None,
            access: Access::ReadWrite,
        };
        (claims, given, mac_v1(secret, room_id, expiry))
    };
    if !bool::from(expected.as_slice().ct_eq(given.as_slice())) {
        return Err(GatewayError::TokenInvalid);
    }
    if now_unix >= claims.expiry {
        return Err(GatewayError::TokenExpired);
    }
    Ok(claims)
}

/// Verifies `token` (v1 or v2) for `room_id` at time `now_unix` (seconds). Returns the
/// token's expiry. See [`verify_token`].
pub fn verify_room_token(
    secret: &[u8],
    room_id: &str,
    token: &str,
    now_unix: u64,
) -> Result<u64, GatewayError> {
    verify_token(secret, room_id, token, now_unix).map(|c| c.expiry)
}

/// Extracts the token from an `Authorization` header value (`Bearer <token>`, scheme
/// case-insensitive) or, failing that, from a `token` query parameter value.
///
/// Returns `Err(TokenMalformed)` for an `Authorization` header with another scheme.
pub fn extract_token<'a>(
    authorization: Option<&'a str>,
    query_token: Option<&'a str>,
) -> Result<Option<&'a str>, GatewayError> {
    if let Some(h) = authorization {
        let h = h.trim();
        let (scheme, rest) = h.split_once(' ').ok_or(GatewayError::TokenMalformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(GatewayError::TokenMalformed);
        }
        let t = rest.trim();
        if t.is_empty() {
            return Err(GatewayError::TokenMalformed);
        }
        return Ok(Some(t));
    }
    Ok(query_token.filter(|t| !t.is_empty()))
}

/// How a gateway checks tokens.
#[derive(Debug, Clone, Copy)]
pub struct AccessPolicy<'a> {
    /// The access secret; `None`: the gateway is open (local development only) and every
    /// request is allowed as an unbound caller.
    pub secret: Option<&'a [u8]>,
    /// Refuse v1 room tokens: every caller must hold a party token.
    pub require_party_tokens: bool,
}

/// The access check of both gateways: with no secret, everything is allowed; with a
/// secret, a valid token for `room_id` that allows `needed` is required (and a party
/// token when the policy says so). Returns who is asking.
pub fn authorize(
    policy: AccessPolicy<'_>,
    room_id: &str,
    authorization: Option<&str>,
    query_token: Option<&str>,
    now_unix: u64,
    needed: Access,
) -> Result<Caller, GatewayError> {
    let Some(secret) = policy.secret else {
        return Ok(Caller::default());
    };
    let token = extract_token(authorization, query_token)?.ok_or(GatewayError::TokenMissing)?;
    let claims = verify_token(secret, room_id, token, now_unix)?;
    if claims.party.is_none() && policy.require_party_tokens {
        return Err(GatewayError::TokenNotAllowed(
            "this gateway requires party tokens (v2)",
        ));
    }
    if !claims.access.allows(needed) {
        return Err(GatewayError::TokenNotAllowed(match needed {
            Access::Read => "the token does not allow subscribing",
            _ => "the token does not allow posting",
        }));
    }
    Ok(Caller {
        party: claims.party,
    })
}

/// [`authorize`] for read and write, v1 tokens allowed (kept for callers that only need
/// a yes or no).
pub fn check_access(
    secret: Option<&[u8]>,
    room_id: &str,
    authorization: Option<&str>,
    query_token: Option<&str>,
    now_unix: u64,
) -> Result<(), GatewayError> {
    authorize(
        AccessPolicy {
            secret,
            require_party_tokens: false,
        },
        room_id,
        authorization,
        query_token,
        now_unix,
        Access::ReadWrite,
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &[u8] = b"0123456789abcdef0123";

    #[test]
    fn roundtrip_and_failures() {
        let t = issue_room_token(S, "r1", 1000);
        assert_eq!(verify_room_token(S, "r1", &t, 999), Ok(1000));
        assert_eq!(
            verify_room_token(S, "r1", &t, 1000),
            Err(GatewayError::TokenExpired)
        );
        assert_eq!(
            verify_room_token(S, "r2", &t, 10),
            Err(GatewayError::TokenInvalid)
        );
        assert_eq!(
            verify_room_token(b"another-secret-xxxx", "r1", &t, 10),
            Err(GatewayError::TokenInvalid)
        );
        // Tampered expiry: MAC no longer matches.
        let forged = t.replacen("1000", "9000", 1);
        assert_eq!(
            verify_room_token(S, "r1", &forged, 10),
            Err(GatewayError::TokenInvalid)
        );
        for bad in [
            "", ".", "abc", "1000.", "1000.zz", "01000.00", "-1.00", "1.2.3",
        ] {
            assert_eq!(
                verify_room_token(S, "r1", bad, 10),
                Err(GatewayError::TokenMalformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn extraction() {
        assert_eq!(extract_token(Some("Bearer abc"), None), Ok(Some("abc")));
        assert_eq!(
            extract_token(Some("bearer  abc "), Some("q")),
            Ok(Some("abc"))
        );
        assert_eq!(extract_token(None, Some("q")), Ok(Some("q")));
        assert_eq!(extract_token(None, Some("")), Ok(None));
        assert_eq!(
            extract_token(Some("Basic abc"), None),
            Err(GatewayError::TokenMalformed)
        );
        assert_eq!(extract_token(None, None), Ok(None));
    }

    #[test]
    fn party_tokens() {
        let t = issue_party_token(S, "r1", 2, Access::Write, 1000);
        assert!(t.starts_with("v2.1000.2.w."));
        let c = verify_token(S, "r1", &t, 999).unwrap();
        assert_eq!(
            c,
            TokenClaims {
                expiry: 1000,
                party: Some(2),
                access: Access::Write
            }
        );
        assert_eq!(
            verify_token(S, "r1", &t, 1000),
            Err(GatewayError::TokenExpired)
        );
        assert_eq!(
            verify_token(S, "r2", &t, 1),
            Err(GatewayError::TokenInvalid)
        );
        // Changing the party or the access right breaks the MAC.
        for forged in [
            t.replacen(".2.w.", ".1.w.", 1),
            t.replacen(".2.w.", ".2.rw.", 1),
        ] {
            assert_eq!(
                verify_token(S, "r1", &forged, 1),
                Err(GatewayError::TokenInvalid)
            );
        }
        for bad in [
            "v2.",
            "v2.1000.2.w",
            "v2.1000.2.x.00",
            "v2.1000.70000.w.00",
            "v2.1000.02.w.00",
            "v2.1000.2.w.zz.extra",
        ] {
            assert_eq!(
                verify_token(S, "r1", bad, 1),
                Err(GatewayError::TokenMalformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn authorize_checks_access_and_party_requirement() {
        let open = AccessPolicy {
            secret: None,
            require_party_tokens: true,
        };
        assert_eq!(
            authorize(open, "r", None, None, 0, Access::Write),
            Ok(Caller::default())
        );
        let lax = AccessPolicy {
            secret: Some(S),
            require_party_tokens: false,
        };
        let strict = AccessPolicy {
            secret: Some(S),
            require_party_tokens: true,
        };
        let reader = issue_party_token(S, "r", 0, Access::Read, 100);
        let writer = issue_party_token(S, "r", 1, Access::Write, 100);
        let v1 = issue_room_token(S, "r", 100);
        assert_eq!(
            authorize(strict, "r", None, Some(&reader), 0, Access::Read),
            Ok(Caller { party: Some(0) })
        );
        assert!(matches!(
            authorize(strict, "r", None, Some(&reader), 0, Access::Write),
            Err(GatewayError::TokenNotAllowed(_))
        ));
        assert!(matches!(
            authorize(strict, "r", None, Some(&writer), 0, Access::Read),
            Err(GatewayError::TokenNotAllowed(_))
        ));
        assert_eq!(
            authorize(lax, "r", None, Some(&v1), 0, Access::Write),
            Ok(Caller { party: None })
        );
        assert!(matches!(
            authorize(strict, "r", None, Some(&v1), 0, Access::Read),
            Err(GatewayError::TokenNotAllowed(_))
        ));
        assert_eq!(GatewayError::TokenNotAllowed("x").status(), 403);
    }

    #[test]
    fn access() {
        assert!(check_access(None, "r", None, None, 0).is_ok());
        assert_eq!(
            check_access(Some(S), "r", None, None, 0),
            Err(GatewayError::TokenMissing)
        );
        let t = issue_room_token(S, "r", 100);
        assert!(check_access(Some(S), "r", None, Some(&t), 0).is_ok());
        let h = format!("Bearer {t}");
        assert!(check_access(Some(S), "r", Some(&h), None, 0).is_ok());
    }
}
