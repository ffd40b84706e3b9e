//! Room tokens: `<expiry_unix_secs>.<hex HMAC-SHA256>`.
//!
//! The MAC is HMAC-SHA256 keyed by the gateway's access secret over
//! `"wallet-mpc-room-token-v1" || 0x00 || room_id || 0x00 || expiry (decimal ASCII)`.
//! Room ids cannot contain `0x00` (see [`crate::validate_room_id`]), so the encoding is
//! unambiguous. Whoever opens a room (the cosigner) calls [`issue_room_token`] with the
//! same secret the gateway is configured with and hands the token to the parties.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::GatewayError;

type HmacSha256 = Hmac<Sha256>;

const DOMAIN: &[u8] = b"wallet-mpc-room-token-v1";

fn mac(secret: &[u8], room_id: &str, expiry_unix: u64) -> [u8; 32] {
    let mut m = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC accepts keys of any length, so this branch cannot happen; an all-zero
        // MAC is returned instead of panicking (no token string can match it by accident
        // any more than any other value).
        Err(_) => return [0u8; 32],
    };
    m.update(DOMAIN);
    m.update(&[0]);
    m.update(room_id.as_bytes());
    m.update(&[0]);
    m.update(expiry_unix.to_string().as_bytes());
    m.finalize().into_bytes().into()
}

/// Issues a token for `room_id` valid until `expiry_unix` (seconds since the Unix epoch).
///
/// ```
/// let t = gateway_core::issue_room_token(b"0123456789abcdef", "room-1", 2_000_000_000);
/// assert!(gateway_core::verify_room_token(b"0123456789abcdef", "room-1", &t, 1_700_000_000).is_ok());
/// ```
pub fn issue_room_token(secret: &[u8], room_id: &str, expiry_unix: u64) -> String {
    format!(
        "{expiry_unix}.{}",
        hex::encode(mac(secret, room_id, expiry_unix))
    )
}

/// Verifies `token` for `room_id` at time `now_unix` (seconds). Returns the token's expiry.
///
/// Errors: [`GatewayError::TokenMalformed`] (401), [`GatewayError::TokenExpired`] (401),
/// [`GatewayError::TokenInvalid`] (403: wrong room, wrong secret or forged).
/// The MAC is checked before the expiry, so an expired forged token reports
/// `TokenInvalid`. The comparison is constant-time.
pub fn verify_room_token(
    secret: &[u8],
    room_id: &str,
    token: &str,
    now_unix: u64,
) -> Result<u64, GatewayError> {
    let (expiry, mac_hex) = token.split_once('.').ok_or(GatewayError::TokenMalformed)?;
    if expiry.is_empty() || expiry.len() > 20 || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return Err(GatewayError::TokenMalformed);
    }
    // Reject leading zeros so that one (room, expiry) has exactly one token string.
    if expiry.len() > 1 && expiry.starts_with('0') {
        return Err(GatewayError::TokenMalformed);
    }
    let expiry: u64 = expiry.parse().map_err(|_| GatewayError::TokenMalformed)?;
    if mac_hex.len() != 64 {
        return Err(GatewayError::TokenMalformed);
    }
    let given = hex::decode(mac_hex).map_err(|_| GatewayError::TokenMalformed)?;
    let expected = mac(secret, room_id, expiry);
    if !bool::from(expected.as_slice().ct_eq(given.as_slice())) {
        return Err(GatewayError::TokenInvalid);
    }
    if now_unix >= expiry {
        return Err(GatewayError::TokenExpired);
    }
    Ok(expiry)
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

/// Full access check used by both gateways: with no secret, everything is allowed; with
/// a secret, a valid token for `room_id` is required.
pub fn check_access(
    secret: Option<&[u8]>,
    room_id: &str,
    authorization: Option<&str>,
    query_token: Option<&str>,
    now_unix: u64,
) -> Result<(), GatewayError> {
    let Some(secret) = secret else {
        return Ok(());
    };
    let token = extract_token(authorization, query_token)?.ok_or(GatewayError::TokenMissing)?;
    verify_room_token(secret, room_id, token, now_unix).map(|_| ())
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
