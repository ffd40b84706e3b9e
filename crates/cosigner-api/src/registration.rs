//! Registration credentials: what lets a device create a wallet on a cosigner.
//!
//! A cosigner does not let just anyone start a wallet creation (each one costs a
//! session, a safe-prime set and minutes of CPU). Its operator (or the operator's
//! backend, after its own sign-up checks) issues a **registration credential** for each
//! wallet to create: a short token signed by an *issuer key* the cosigner trusts, with a
//! random id, an expiry and the cosigner it is for. The device passes it in
//! `CreateWalletRequest.registration_credential` (signed into the request), and the
//! cosigner accepts it once: it records the id as used until the credential expires.
//!
//! ```text
//! wmreg1.<base64url(payload)>.<base64url(ed25519 signature)>
//! payload = "wallet-mpc/registration/v1" 0x00 ‖ id (16) ‖ issued_at_ms (u64 BE)
//!           ‖ expires_at_ms (u64 BE) ‖ audience (64 bytes: the cosigner's public
//!           identity, or 64 zero bytes = any cosigner trusting the issuer)
//! ```
//!
//! The issuer key is an `mpc-wire` identity key (its ed25519 half signs, as for
//! requests): [`issue`] makes a credential, [`verify`] checks one for a cosigner.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use mpc_wire::{IdentityKey, PublicIdentity};
use rand_core::{OsRng, RngCore};

use crate::auth::{sign_bytes, verify_bytes, AuthError};

/// Prefix of the text form (the format's version).
pub const PREFIX: &str = "wmreg1";
/// Domain of the signed payload.
pub const DOMAIN: &[u8] = b"wallet-mpc/registration/v1";
/// Longest credential text accepted (a real one is ~220 characters).
pub const MAX_LEN: usize = 512;
/// Longest validity an issuer may give (a credential is for one imminent sign-up).
pub const MAX_TTL_MS: u64 = 30 * 24 * 3600 * 1000;

const ID_LEN: usize = 16;
const AUDIENCE_LEN: usize = mpc_wire::PUBLIC_IDENTITY_LEN;
const PAYLOAD_LEN: usize = DOMAIN.len() + 1 + ID_LEN + 8 + 8 + AUDIENCE_LEN;

/// A decoded, verified registration credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Random id: the cosigner records it as used.
    pub id: [u8; ID_LEN],
    /// When it was issued (ms since the Unix epoch).
    pub issued_at_ms: u64,
    /// When it stops being accepted (ms since the Unix epoch).
    pub expires_at_ms: u64,
    /// The cosigner it is for (`None`: any cosigner that trusts the issuer).
    pub audience: Option<PublicIdentity>,
    /// The issuer whose signature verified.
    pub issuer: PublicIdentity,
}

impl Credential {
    /// The id as lowercase hex (how stores and audit records name it).
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

/// Why a credential is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// No credential was given.
    #[error("no registration credential: this cosigner creates wallets only with a credential its operator issued")]
    Missing,
    /// The text is not a credential (prefix, encoding, length).
    #[error("malformed registration credential: {0}")]
    Malformed(&'static str),
    /// No trusted issuer signed it.
    #[error("the registration credential is not signed by an issuer this cosigner trusts")]
    UnknownIssuer,
    /// It expired.
    #[error("the registration credential expired at {expires_at_ms} (now {now_ms})")]
    Expired {
        /// Its expiry.
        expires_at_ms: u64,
        /// The cosigner's clock.
        now_ms: u64,
    },
    /// It names another cosigner.
    #[error("the registration credential is for another cosigner ({0})")]
    WrongAudience(String),
    /// Its id was used before.
    #[error("the registration credential was used already (each creates one wallet)")]
    Used,
    /// Issuing failed (a bad TTL, no randomness).
    #[error("cannot issue a registration credential: {0}")]
    Issue(String),
}

fn payload(
    id: &[u8; ID_LEN],
    issued: u64,
    expires: u64,
    audience: Option<&PublicIdentity>,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(PAYLOAD_LEN);
    m.extend_from_slice(DOMAIN);
    m.push(0);
    m.extend_from_slice(id);
    m.extend_from_slice(&issued.to_be_bytes());
    m.extend_from_slice(&expires.to_be_bytes());
    match audience {
        Some(a) => m.extend_from_slice(&a.to_bytes()),
        None => m.extend_from_slice(&[0u8; AUDIENCE_LEN]),
    }
    m
}

/// Issues a credential signed by `issuer`, valid from `now_ms` for `ttl_ms`, for the
/// cosigner `audience` (`None`: any cosigner that trusts this issuer).
pub fn issue(
    issuer: &IdentityKey,
    now_ms: u64,
    ttl_ms: u64,
    audience: Option<&PublicIdentity>,
) -> Result<String, RegistrationError> {
    if ttl_ms == 0 || ttl_ms > MAX_TTL_MS {
        return Err(RegistrationError::Issue(format!(
            "the validity must be 1 ms ..= {} days",
            MAX_TTL_MS / 86_400_000
        )));
    }
    let mut id = [0u8; ID_LEN];
    OsRng
        .try_fill_bytes(&mut id)
        .map_err(|e| RegistrationError::Issue(e.to_string()))?;
    let expires = now_ms.saturating_add(ttl_ms);
    let m = payload(&id, now_ms, expires, audience);
    let sig =
        sign_bytes(issuer, &m).map_err(|e: AuthError| RegistrationError::Issue(e.to_string()))?;
    Ok(format!(
        "{PREFIX}.{}.{}",
        URL_SAFE_NO_PAD.encode(&m[DOMAIN.len() + 1..]),
        URL_SAFE_NO_PAD.encode(sig)
    ))
}

/// Decodes and verifies `text` for the cosigner `me` at `now_ms`: signed by one of
/// `issuers`, not expired, for `me` (or for any cosigner). Whether its id was used
/// before is the caller's to check (and record) with [`Credential::id`].
pub fn verify(
    text: &str,
    issuers: &[PublicIdentity],
    me: &PublicIdentity,
    now_ms: u64,
) -> Result<Credential, RegistrationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(RegistrationError::Missing);
    }
    if text.len() > MAX_LEN {
        return Err(RegistrationError::Malformed("too long"));
    }
    let mut parts = text.split('.');
    let (Some(prefix), Some(body), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RegistrationError::Malformed(
            "expected wmreg1.<payload>.<signature>",
        ));
    };
    if prefix != PREFIX {
        return Err(RegistrationError::Malformed(
            "unknown prefix (expected wmreg1)",
        ));
    }
    let body = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| RegistrationError::Malformed("payload is not base64url"))?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| RegistrationError::Malformed("signature is not base64url"))?;
    if body.len() != PAYLOAD_LEN - DOMAIN.len() - 1 {
        return Err(RegistrationError::Malformed("payload has the wrong length"));
    }
    let mut m = Vec::with_capacity(PAYLOAD_LEN);
    m.extend_from_slice(DOMAIN);
    m.push(0);
    m.extend_from_slice(&body);
    let issuer = issuers
        .iter()
        .find(|i| verify_bytes(i, &m, &sig))
        .copied()
        .ok_or(RegistrationError::UnknownIssuer)?;
    // Signed by a trusted issuer from here on: the fields are the issuer's.
    let (id, rest) = body.split_at(ID_LEN);
    let (issued, rest) = rest.split_at(8);
    let (expires, audience) = rest.split_at(8);
    let be = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
    let expires_at_ms = be(expires);
    let audience = if audience.iter().all(|&b| b == 0) {
        None
    } else {
        let bytes: [u8; AUDIENCE_LEN] = audience
            .try_into()
            .map_err(|_| RegistrationError::Malformed("audience has the wrong length"))?;
        Some(
            PublicIdentity::from_bytes(&bytes)
                .map_err(|_| RegistrationError::Malformed("audience is not a public identity"))?,
        )
    };
    if let Some(a) = &audience {
        if a != me {
            return Err(RegistrationError::WrongAudience(a.to_string()));
        }
    }
    if now_ms >= expires_at_ms {
        return Err(RegistrationError::Expired {
            expires_at_ms,
            now_ms,
        });
    }
    let mut id_arr = [0u8; ID_LEN];
    id_arr.copy_from_slice(id);
    Ok(Credential {
        id: id_arr,
        issued_at_ms: be(issued),
        expires_at_ms,
        audience,
        issuer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> IdentityKey {
        IdentityKey::generate().unwrap()
    }

    #[test]
    fn an_issued_credential_verifies_for_its_cosigner_only() {
        let (issuer, me, other) = (key(), key().public(), key().public());
        let c = issue(&issuer, 1_000, 60_000, Some(&me)).unwrap();
        assert!(c.starts_with("wmreg1.") && c.len() < MAX_LEN, "{c}");
        let v = verify(&c, &[other, issuer.public()], &me, 2_000).unwrap();
        assert_eq!(v.issuer, issuer.public());
        assert_eq!((v.issued_at_ms, v.expires_at_ms), (1_000, 61_000));
        assert_eq!(v.audience, Some(me));
        assert_eq!(
            verify(&c, &[issuer.public()], &other, 2_000),
            Err(RegistrationError::WrongAudience(me.to_string()))
        );
        // Any-cosigner credentials verify everywhere the issuer is trusted.
        let any = issue(&issuer, 1_000, 60_000, None).unwrap();
        assert!(verify(&any, &[issuer.public()], &other, 2_000).is_ok());
        // Two credentials never share an id.
        let again = verify(
            &issue(&issuer, 1_000, 60_000, Some(&me)).unwrap(),
            &[issuer.public()],
            &me,
            2_000,
        )
        .unwrap();
        assert_ne!(again.id, v.id);
    }

    #[test]
    fn forged_expired_and_malformed_credentials_are_refused() {
        let (issuer, me) = (key(), key().public());
        let c = issue(&issuer, 1_000, 60_000, Some(&me)).unwrap();
        // Another issuer's key (an attacker's own) is not trusted.
        let forged = issue(&key(), 1_000, 60_000, Some(&me)).unwrap();
        assert_eq!(
            verify(&forged, &[issuer.public()], &me, 2_000),
            Err(RegistrationError::UnknownIssuer)
        );
        // A trusted credential with its expiry pushed out no longer verifies.
        let mut parts: Vec<String> = c.split('.').map(String::from).collect();
        let mut body = URL_SAFE_NO_PAD.decode(&parts[1]).unwrap();
        body[ID_LEN + 8] ^= 0x01;
        parts[1] = URL_SAFE_NO_PAD.encode(&body);
        assert_eq!(
            verify(&parts.join("."), &[issuer.public()], &me, 2_000),
            Err(RegistrationError::UnknownIssuer)
        );
        assert!(matches!(
            verify(&c, &[issuer.public()], &me, 61_000),
            Err(RegistrationError::Expired { .. })
        ));
        assert_eq!(
            verify(" ", &[issuer.public()], &me, 0),
            Err(RegistrationError::Missing)
        );
        for bad in [
            "wmreg1",
            "wmreg2.AA.AA",
            "wmreg1.!!.AA",
            "wmreg1.AA.AA.AA",
            "wmreg1.AAAA.AAAA",
        ] {
            assert!(
                matches!(
                    verify(bad, &[issuer.public()], &me, 0),
                    Err(RegistrationError::Malformed(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            verify(&"a".repeat(MAX_LEN + 1), &[issuer.public()], &me, 0),
            Err(RegistrationError::Malformed("too long"))
        ));
        assert!(issue(&issuer, 0, 0, None).is_err());
        assert!(issue(&issuer, 0, MAX_TTL_MS + 1, None).is_err());
    }
}
