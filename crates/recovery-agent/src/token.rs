//! The pairing token: a shared secret between the agent and the web page, sent as
//! `Authorization: Bearer <token>`.

use std::path::Path;

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::SetupError;

/// Shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest token accepted.
pub const MAX_TOKEN_LEN: usize = 512;

/// The expected token, kept only as its SHA-256 digest so that the comparison is
/// constant-time and independent of the presented token's length.
#[derive(Clone)]
pub struct PairingToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for PairingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairingToken(..)")
    }
}

impl PairingToken {
    /// Accepts a token after checking its length and characters (visible ASCII).
    pub fn new(token: &str) -> Result<Self, SetupError> {
        let t = token.trim();
        if t.len() < MIN_TOKEN_LEN || t.len() > MAX_TOKEN_LEN {
            return Err(SetupError::Config(format!(
                "the pairing token must have {MIN_TOKEN_LEN}..={MAX_TOKEN_LEN} characters"
            )));
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SetupError::Config(
                "the pairing token must be visible ASCII without spaces".into(),
            ));
        }
        Ok(PairingToken {
            digest: Sha256::digest(t.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the token (constant time).
    pub fn verify(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(d.ct_eq(&self.digest))
    }

    /// Checks an `Authorization` header value (`Bearer <token>`).
    pub fn verify_header(&self, value: Option<&str>) -> bool {
        match value.and_then(|v| v.strip_prefix("Bearer ")) {
            Some(t) => self.verify(t.trim()),
            None => false,
        }
    }
}

/// A fresh random token: 32 bytes, hex.
pub fn generate() -> Zeroizing<String> {
    let mut b = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut b[..]);
    Zeroizing::new(hex::encode(&b[..]))
}

/// Reads a token file; when it does not exist, writes a fresh token to it (mode 0600)
/// and returns `(token, true)`.
pub fn load_or_create_file(path: &Path) -> Result<(Zeroizing<String>, bool), SetupError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok((Zeroizing::new(t.trim().to_string()), false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let t = generate();
            mpc_core::keystore::write_atomically(path, format!("{}\n", t.as_str()).as_bytes())
                .map_err(|e| SetupError::io(path, e))?;
            Ok((t, true))
        }
        Err(e) => Err(SetupError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_token() {
        let t = PairingToken::new("0123456789abcdef0123").unwrap();
        assert!(t.verify("0123456789abcdef0123"));
        assert!(!t.verify("0123456789abcdef012"));
        assert!(!t.verify(""));
        assert!(t.verify_header(Some("Bearer 0123456789abcdef0123")));
        assert!(!t.verify_header(Some("bearer 0123456789abcdef0123")));
        assert!(!t.verify_header(Some("0123456789abcdef0123")));
        assert!(!t.verify_header(None));
        assert!(PairingToken::new("short").is_err());
        assert!(PairingToken::new("has a space in the token").is_err());
        assert_eq!(generate().len(), 64);
    }

    #[test]
    fn token_file_is_created_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        let (a, created) = load_or_create_file(&p).unwrap();
        assert!(created);
        let (b, created) = load_or_create_file(&p).unwrap();
        assert!(!created);
        assert_eq!(a.as_str(), b.as_str());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
