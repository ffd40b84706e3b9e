//! The agent's persistent identity key (the recovery party's envelope identity).
//!
//! Stored in `<data dir>/identity.key`, encrypted under the recovery passphrase with the
//! same format and Argon2id parameters as key-share files (an `mpc-core` key-share
//! bundle of party 2 with no accounts, only `identity_secret`), written atomically with
//! mode 0600. Every wallet the agent joins uses this identity; each wallet's share file
//! also holds a copy (so `client --role recovery` works with the share file alone).

use std::path::Path;

use mpc_core::keystore::{KdfParams, KeyShareBundle, KeystoreError};
use mpc_wire::IdentityKey;

use crate::error::SetupError;

/// Party index of the recovery party.
pub const RECOVERY_INDEX: u16 = 2;

/// Loads the identity at `path`, or creates one there if the file does not exist.
/// Returns the key and whether it was created.
pub fn load_or_create(
    path: &Path,
    passphrase: &str,
    insecure_fast_kdf: bool,
) -> Result<(IdentityKey, bool), SetupError> {
    let err = |reason: String| SetupError::Identity {
        path: path.display().to_string(),
        reason,
    };
    match KeyShareBundle::load(path, passphrase) {
        Ok(bundle) => {
            if bundle.party_index != RECOVERY_INDEX {
                return Err(err(format!(
                    "holds party {}, expected {RECOVERY_INDEX}",
                    bundle.party_index
                )));
            }
            let secret = bundle
                .identity_secret
                .as_deref()
                .ok_or_else(|| err("has no identity secret".into()))?;
            let key = IdentityKey::from_seed_hex(secret).map_err(|e| err(e.to_string()))?;
            Ok((key, false))
        }
        Err(KeystoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let key = IdentityKey::generate().map_err(|e| err(e.to_string()))?;
            let mut bundle = KeyShareBundle::new(RECOVERY_INDEX);
            bundle.identity_secret = Some(key.to_seed_hex().to_string());
            let kdf = if insecure_fast_kdf {
                KdfParams::insecure_for_tests()
            } else {
                KdfParams::default()
            };
            bundle
                .save(path, passphrase, kdf)
                .map_err(|e| err(e.to_string()))?;
            Ok((key, true))
        }
        Err(KeystoreError::WrongPassphrase) => Err(err(
            "the recovery passphrase does not open it (wrong passphrase, or the file was modified)"
                .into(),
        )),
        Err(e) => Err(err(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("identity.key");
        let (a, created) = load_or_create(&p, "pass", true).unwrap();
        assert!(created);
        let (b, created) = load_or_create(&p, "pass", true).unwrap();
        assert!(!created);
        assert_eq!(a.public(), b.public());
        let e = load_or_create(&p, "other", true).unwrap_err();
        assert!(e.to_string().contains("passphrase"), "{e}");
        std::fs::write(&p, "garbage").unwrap();
        assert!(load_or_create(&p, "pass", true).is_err());
    }
}
