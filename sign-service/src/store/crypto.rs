//! Record encryption, done by the store whatever its backend: the store key from its
//! source (hex, Argon2id passphrase, PKCS#11-wrapped data key, the insecure dev key)
//! and sealing with XChaCha20-Poly1305, the table and key as associated data.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use super::StoreError;

pub(super) const AAD_DOMAIN: &[u8] = b"wallet-mpc/sign-service/v1";
pub(super) const RECORD_VERSION: u8 = 1;
pub(super) const KEY_CHECK: &[u8] = b"wallet-mpc sign-service store key check v1";
pub(super) const INSECURE_DEV_KEY_LABEL: &[u8] = b"wallet-mpc/sign-service/INSECURE-dev-store-key";

/// Where the store key comes from.
pub enum KeySource {
    /// 64 hex digits.
    Hex(Zeroizing<String>),
    /// A passphrase stretched with Argon2id.
    Passphrase(Zeroizing<String>),
    /// A fixed, public key: local tests only.
    InsecureDev,
    /// A random data key kept wrapped by an AES key on a PKCS#11 token
    /// ([`crate::pkcs11`]).
    Pkcs11(crate::pkcs11::Pkcs11Key),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeySource::Hex(_) => "KeySource::Hex(..)",
            KeySource::Passphrase(_) => "KeySource::Passphrase(..)",
            KeySource::InsecureDev => "KeySource::InsecureDev",
            KeySource::Pkcs11(_) => "KeySource::Pkcs11(..)",
        })
    }
}

pub(super) fn derive_key(
    source: &KeySource,
    salt: &[u8],
) -> Result<Zeroizing<[u8; 32]>, StoreError> {
    let mut key = Zeroizing::new([0u8; 32]);
    match source {
        KeySource::Hex(h) => {
            let h = h.trim();
            if h.len() != 64 {
                return Err(StoreError::BadKey(format!(
                    "SIGN_SERVICE_STORE_KEY must be 64 hex digits (32 bytes), got {} characters",
                    h.len()
                )));
            }
            hex::decode_to_slice(h, key.as_mut())
                .map_err(|_| StoreError::BadKey("SIGN_SERVICE_STORE_KEY is not hex".into()))?;
        }
        KeySource::Passphrase(p) => {
            if p.len() < 12 {
                return Err(StoreError::BadKey(
                    "SIGN_SERVICE_STORE_PASSPHRASE must be at least 12 characters".into(),
                ));
            }
            let params = argon2::Params::new(64 * 1024, 3, 1, Some(32))
                .map_err(|e| StoreError::BadKey(e.to_string()))?;
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into(p.as_bytes(), salt, key.as_mut())
                .map_err(|e| StoreError::BadKey(e.to_string()))?;
        }
        KeySource::InsecureDev => {
            use sha2_lite::sha256;
            *key = sha256(INSECURE_DEV_KEY_LABEL);
        }
        KeySource::Pkcs11(_) => {
            return Err(StoreError::BadKey(
                "a PKCS#11 key is unwrapped, not derived".into(),
            ))
        }
    }
    Ok(key)
}

/// A data key, and its wrapping when a token just made it.
pub(super) type DataKey = (Zeroizing<[u8; 32]>, Option<Vec<u8>>);

/// The data key of a store from `source`: derived (hex, passphrase, dev), or unwrapped
/// by the token from `wrapped`; for a token and no `wrapped` yet, a fresh random key
/// and its wrapping (for the caller to store once the key is accepted).
pub(super) fn data_key(
    source: &KeySource,
    salt: &[u8],
    store_id: &[u8],
    wrapped: Option<&[u8]>,
) -> Result<DataKey, StoreError> {
    match (source, wrapped) {
        (KeySource::Pkcs11(p), Some(w)) => Ok((p.unwrap(w, store_id)?, None)),
        (KeySource::Pkcs11(p), None) => {
            let mut k = Zeroizing::new([0u8; 32]);
            OsRng
                .try_fill_bytes(k.as_mut())
                .map_err(|e| StoreError::Randomness(e.to_string()))?;
            let w = p.wrap(&k, store_id)?;
            Ok((k, Some(w)))
        }
        (other, _) => Ok((derive_key(other, salt)?, None)),
    }
}

/// A tiny SHA-256 wrapper (the insecure dev key is a hash of a public label).
mod sha2_lite {
    pub fn sha256(b: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(b).into()
    }
}

pub(super) fn aad(table: &str, key: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_DOMAIN.len() + table.len() + key.len() + 2);
    a.extend_from_slice(AAD_DOMAIN);
    a.push(0);
    a.extend_from_slice(table.as_bytes());
    a.push(0);
    a.extend_from_slice(key.as_bytes());
    a
}

/// Seals `plain` as record `key` of `table` under `cipher`: version byte, random
/// 24-byte nonce, XChaCha20-Poly1305 ciphertext with the table and key as associated
/// data (a record moved to another key or table does not open).
pub(super) fn seal_with(
    cipher: &XChaCha20Poly1305,
    table: &str,
    key: &str,
    plain: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let mut nonce = [0u8; 24];
    OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(|e| StoreError::Randomness(e.to_string()))?;
    let aad = aad(table, key);
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        .map_err(|_| StoreError::Db("encryption failed".into()))?;
    let mut out = Vec::with_capacity(1 + 24 + ct.len());
    out.push(RECORD_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}
