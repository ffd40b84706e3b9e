//! The versioned key-share file: many accounts of one party, encrypted at rest.
//!
//! On disk (JSON):
//! ```json
//! { "format": "wallet-mpc/key-shares", "version": 1, "party_index": 0,
//!   "kdf":  { "name": "argon2id", "m_cost_kib": 65536, "t_cost": 3, "p_cost": 1, "salt": "…" },
//!   "aead": { "name": "xchacha20poly1305", "nonce": "…" },
//!   "ciphertext": "…" }
//! ```
//! The ciphertext holds a [`KeyShareBundle`] as JSON. The header (everything but the
//! ciphertext) is bound as associated data, so editing it is detected like a wrong
//! passphrase. Key material is zeroised after use.

use std::collections::BTreeMap;

use argon2::{Algorithm, Argon2, Params, Version};
use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::account::Account;
use crate::{AuxInfo, PartyIndex};

/// The `format` field of every key-share file.
pub const FORMAT: &str = "wallet-mpc/key-shares";
/// The newest file version this build writes and reads.
pub const VERSION: u32 = 1;

/// Errors reading or writing key-share files.
#[derive(Debug, Error)]
pub enum KeystoreError {
    /// Decryption failed: the passphrase is wrong or the file was altered.
    #[error("wrong passphrase, or the key-share file was modified")]
    WrongPassphrase,
    /// The file is not a key-share file or is damaged.
    #[error("corrupt key-share file: {0}")]
    Corrupt(String),
    /// The file was written by a newer (or unknown) version.
    #[error("unsupported key-share file version {found} (this build reads version {VERSION}); upgrade wallet-mpc")]
    UnknownVersion {
        /// Version found in the file.
        found: u64,
    },
    /// KDF parameters are out of the accepted range.
    #[error("invalid key-derivation parameters: {0}")]
    BadKdfParams(String),
    /// The passphrase is empty.
    #[error("the passphrase must not be empty")]
    EmptyPassphrase,
    /// The passphrase is too weak to protect a key share ([`check_passphrase`]).
    #[error("the passphrase is too weak: {0} (choose a longer one; the check can be overridden explicitly)")]
    WeakPassphrase(String),
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Parallelism.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane (above OWASP's minimum; about a second in a browser).
    fn default() -> Self {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Cheap parameters for tests only.
    pub fn insecure_for_tests() -> Self {
        KdfParams {
            m_cost_kib: 256,
            t_cost: 1,
            p_cost: 1,
        }
    }

    fn check(&self) -> Result<(), KeystoreError> {
        // Bounds keep a hostile file from making us allocate gigabytes.
        if !(8..=4 * 1024 * 1024).contains(&self.m_cost_kib) {
            return Err(KeystoreError::BadKdfParams(format!(
                "m_cost_kib {} out of range",
                self.m_cost_kib
            )));
        }
        if !(1..=64).contains(&self.t_cost) || !(1..=16).contains(&self.p_cost) {
            return Err(KeystoreError::BadKdfParams(format!(
                "t_cost {} / p_cost {} out of range",
                self.t_cost, self.p_cost
            )));
        }
        Ok(())
    }
}

/// Everything one party keeps secret, decrypted.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyShareBundle {
    /// This party's keygen index.
    pub party_index: PartyIndex,
    /// This party's aux info, shared by all its accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux_info: Option<AuxInfo>,
    /// Accounts by id.
    pub accounts: BTreeMap<String, Account>,
    /// This party's identity secret for message envelopes (hex), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_secret: Option<String>,
    /// Public identities of the other parties, by keygen index (hex).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub peers: BTreeMap<PartyIndex, String>,
    /// The epoch of the shares (0 at creation; +1 per refresh or device replacement,
    /// `docs/lifecycle.md`). Files written before epochs existed read as 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub share_epoch: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl std::fmt::Debug for KeyShareBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyShareBundle")
            .field("party_index", &self.party_index)
            .field("accounts", &self.accounts.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KeyShareBundle {
    /// An empty bundle for a party.
    pub fn new(party_index: PartyIndex) -> Self {
        KeyShareBundle {
            party_index,
            aux_info: None,
            accounts: BTreeMap::new(),
            identity_secret: None,
            peers: BTreeMap::new(),
            share_epoch: 0,
        }
    }

    /// Encrypts the bundle under `passphrase`.
    pub fn encrypt(&self, passphrase: &str, params: KdfParams) -> Result<String, KeystoreError> {
        if passphrase.is_empty() {
            return Err(KeystoreError::EmptyPassphrase);
        }
        params.check()?;
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let mut nonce = [0u8; 24];
        OsRng.fill_bytes(&mut nonce);
        let header = Header {
            format: FORMAT.into(),
            version: u64::from(VERSION),
            party_index: self.party_index,
            kdf: KdfHeader {
                name: "argon2id".into(),
                m_cost_kib: params.m_cost_kib,
                t_cost: params.t_cost,
                p_cost: params.p_cost,
                salt: B64.encode(salt),
            },
            aead: AeadHeader {
                name: "xchacha20poly1305".into(),
                nonce: B64.encode(nonce),
            },
        };
        let aad = header.aad()?;
        let key = derive_key(passphrase, &salt, params)?;
        let plaintext = Zeroizing::new(
            serde_json::to_vec(self)
                .map_err(|e| KeystoreError::Corrupt(format!("cannot serialise: {e}")))?,
        );
        let cipher = XChaCha20Poly1305::new(key.as_ref().into());
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| KeystoreError::Corrupt("encryption failed".into()))?;
        let file = FileRepr {
            header,
            ciphertext: B64.encode(ciphertext),
        };
        serde_json::to_string_pretty(&file).map_err(|e| KeystoreError::Corrupt(e.to_string()))
    }

    /// Decrypts a key-share file.
    pub fn decrypt(file: &str, passphrase: &str) -> Result<Self, KeystoreError> {
        let value: serde_json::Value = serde_json::from_str(file)
            .map_err(|e| KeystoreError::Corrupt(format!("not JSON: {e}")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(KeystoreError::Corrupt(format!(
                "not a key-share file (missing \"format\": \"{FORMAT}\")"
            )));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(VERSION) => {}
            Some(v) => return Err(KeystoreError::UnknownVersion { found: v }),
            None => return Err(KeystoreError::Corrupt("missing version".into())),
        }
        let file: FileRepr =
            serde_json::from_value(value).map_err(|e| KeystoreError::Corrupt(e.to_string()))?;
        let h = &file.header;
        if h.kdf.name != "argon2id" || h.aead.name != "xchacha20poly1305" {
            return Err(KeystoreError::Corrupt(format!(
                "unsupported algorithms {} / {}",
                h.kdf.name, h.aead.name
            )));
        }
        let params = KdfParams {
            m_cost_kib: h.kdf.m_cost_kib,
            t_cost: h.kdf.t_cost,
            p_cost: h.kdf.p_cost,
        };
        params.check()?;
        let salt = B64
            .decode(&h.kdf.salt)
            .map_err(|e| KeystoreError::Corrupt(format!("salt: {e}")))?;
        let nonce = B64
            .decode(&h.aead.nonce)
            .map_err(|e| KeystoreError::Corrupt(format!("nonce: {e}")))?;
        if nonce.len() != 24 || salt.len() < 8 {
            return Err(KeystoreError::Corrupt("bad nonce or salt length".into()));
        }
        let ciphertext = B64
            .decode(&file.ciphertext)
            .map_err(|e| KeystoreError::Corrupt(format!("ciphertext: {e}")))?;
        let key = derive_key(passphrase, &salt, params)?;
        let cipher = XChaCha20Poly1305::new(key.as_ref().into());
        let aad = h.aad()?;
        let plaintext = Zeroizing::new(
            cipher
                .decrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: &ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| KeystoreError::WrongPassphrase)?,
        );
        let bundle: KeyShareBundle = serde_json::from_slice(&plaintext)
            .map_err(|e| KeystoreError::Corrupt(format!("decrypted content: {e}")))?;
        if bundle.party_index != h.party_index {
            return Err(KeystoreError::Corrupt("party index mismatch".into()));
        }
        Ok(bundle)
    }

    /// Reads and decrypts a key-share file.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: &std::path::Path, passphrase: &str) -> Result<Self, KeystoreError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeystoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::decrypt(&text, passphrase)
    }

    /// Encrypts and writes atomically (temporary file, fsync, rename), mode 0600 on Unix.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(
        &self,
        path: &std::path::Path,
        passphrase: &str,
        params: KdfParams,
    ) -> Result<(), KeystoreError> {
        let text = self.encrypt(passphrase, params)?;
        write_atomically(path, text.as_bytes())
    }
}

/// Writes `bytes` to `path` atomically: a sibling temporary file with an unpredictable
/// name, created exclusively (`O_EXCL`, mode 0600 on Unix), is written, synced and
/// renamed over the target, then the directory is synced so that the rename itself is
/// durable. A crash leaves either the old or the new file; a failure removes the
/// temporary file.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    use std::io::Write;
    let io = |source| KeystoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // tempfile: random name, O_CREAT|O_EXCL, 0600; removed on drop unless persisted.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    sync_dir(dir).map_err(io)
}

/// Syncs a directory's entries (a rename is durable only then). A no-op off Unix.
#[cfg(not(target_arch = "wasm32"))]
pub fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The shortest passphrase [`check_passphrase`] accepts, in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// Checks that a passphrase can protect a key share against an offline guessing attack
/// on a copied file (Argon2id slows each guess, it does not make a short passphrase
/// long): at least [`MIN_PASSPHRASE_CHARS`] characters, at least 6 different ones, and
/// not one shorter pattern repeated. Callers apply it to passphrases
/// chosen for new files and let the user override it explicitly.
pub fn check_passphrase(passphrase: &str) -> Result<(), KeystoreError> {
    if passphrase.is_empty() {
        return Err(KeystoreError::EmptyPassphrase);
    }
    let chars: Vec<char> = passphrase.chars().collect();
    if chars.len() < MIN_PASSPHRASE_CHARS {
        return Err(KeystoreError::WeakPassphrase(format!(
            "{} characters, at least {MIN_PASSPHRASE_CHARS} are needed",
            chars.len()
        )));
    }
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 6 {
        return Err(KeystoreError::WeakPassphrase(format!(
            "only {} different characters, at least 6 are needed",
            distinct.len()
        )));
    }
    // One shorter pattern repeated ("abcdefabcdef").
    if (1..=chars.len() / 2)
        .any(|n| chars.len().is_multiple_of(n) && chars.chunks(n).all(|c| c == &chars[..n]))
    {
        return Err(KeystoreError::WeakPassphrase(
            "a short pattern repeated".to_string(),
        ));
    }
    Ok(())
}

fn derive_key(
    passphrase: &str,
    salt: &[u8],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    if passphrase.is_empty() {
        return Err(KeystoreError::EmptyPassphrase);
    }
    let p = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
        .map_err(|e| KeystoreError::BadKdfParams(e.to_string()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|e| KeystoreError::BadKdfParams(e.to_string()))?;
    Ok(key)
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u64,
    party_index: PartyIndex,
    kdf: KdfHeader,
    aead: AeadHeader,
}

impl Header {
    fn aad(&self) -> Result<Vec<u8>, KeystoreError> {
        serde_json::to_vec(self).map_err(|e| KeystoreError::Corrupt(e.to_string()))
    }
}

#[derive(Serialize, Deserialize)]
struct KdfHeader {
    name: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct AeadHeader {
    name: String,
    nonce: String,
}

#[derive(Serialize, Deserialize)]
struct FileRepr {
    #[serde(flatten)]
    header: Header,
    ciphertext: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> KeyShareBundle {
        let mut b = KeyShareBundle::new(2);
        b.identity_secret = Some("00".repeat(32));
        b
    }

    #[test]
    fn share_epoch_defaults_to_zero_and_roundtrips() {
        let p = KdfParams::insecure_for_tests();
        // A file from before epochs existed has no field: it reads as epoch 0.
        let old = serde_json::to_value(sample()).unwrap();
        assert!(old.get("share_epoch").is_none());
        let back: KeyShareBundle = serde_json::from_value(old).unwrap();
        assert_eq!(back.share_epoch, 0);
        let mut b = sample();
        b.share_epoch = 3;
        let text = b.encrypt("correct horse", p).unwrap();
        assert_eq!(
            KeyShareBundle::decrypt(&text, "correct horse")
                .unwrap()
                .share_epoch,
            3
        );
    }

    #[test]
    fn roundtrip_and_errors() {
        let p = KdfParams::insecure_for_tests();
        let text = sample().encrypt("correct horse", p).unwrap();
        let back = KeyShareBundle::decrypt(&text, "correct horse").unwrap();
        assert_eq!(back.party_index, 2);
        assert_eq!(back.identity_secret, sample().identity_secret);

        assert!(matches!(
            KeyShareBundle::decrypt(&text, "wrong"),
            Err(KeystoreError::WrongPassphrase)
        ));
        assert!(matches!(
            KeyShareBundle::decrypt(&text, ""),
            Err(KeystoreError::EmptyPassphrase)
        ));
        assert!(matches!(
            KeyShareBundle::decrypt("{not json", "x"),
            Err(KeystoreError::Corrupt(_))
        ));
        assert!(matches!(
            KeyShareBundle::decrypt("{}", "x"),
            Err(KeystoreError::Corrupt(_))
        ));

        // Header tampering (party index) is detected as an authentication failure.
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["party_index"] = 0.into();
        assert!(matches!(
            KeyShareBundle::decrypt(&v.to_string(), "correct horse"),
            Err(KeystoreError::WrongPassphrase)
        ));

        // Unknown version.
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["version"] = 99.into();
        let e = KeyShareBundle::decrypt(&v.to_string(), "correct horse").unwrap_err();
        assert!(
            matches!(e, KeystoreError::UnknownVersion { found: 99 }),
            "{e}"
        );

        // Ciphertext bit flip.
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut ct = B64.decode(v["ciphertext"].as_str().unwrap()).unwrap();
        ct[3] ^= 1;
        v["ciphertext"] = B64.encode(ct).into();
        assert!(matches!(
            KeyShareBundle::decrypt(&v.to_string(), "correct horse"),
            Err(KeystoreError::WrongPassphrase)
        ));

        // Hostile KDF parameters are refused before any work.
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["kdf"]["m_cost_kib"] = u32::MAX.into();
        assert!(matches!(
            KeyShareBundle::decrypt(&v.to_string(), "correct horse"),
            Err(KeystoreError::BadKdfParams(_))
        ));
        // Truncated file.
        assert!(matches!(
            KeyShareBundle::decrypt(&text[..text.len() / 2], "correct horse"),
            Err(KeystoreError::Corrupt(_))
        ));
    }

    #[test]
    fn atomic_save_and_load() {
        let dir = std::env::temp_dir().join(format!("mpc-core-ks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("shares.json");
        sample()
            .save(&path, "pw", KdfParams::insecure_for_tests())
            .unwrap();
        assert_eq!(KeyShareBundle::load(&path, "pw").unwrap().party_index, 2);
        let missing = KeyShareBundle::load(&dir.join("nope.json"), "pw").unwrap_err();
        assert!(missing.to_string().contains("nope.json"), "{missing}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn weak_passphrases_are_refused_by_name() {
        for (p, why) in [
            ("", "empty"),
            ("short pass", "characters"),
            ("aaaaaaaaaaaaaaaa", "different characters"),
            ("abababababab", "different characters"),
            ("abcdefabcdefabcdef", "pattern"),
        ] {
            let e = check_passphrase(p).unwrap_err();
            assert!(
                e.to_string().contains(why) || matches!(e, KeystoreError::EmptyPassphrase),
                "{p:?}: {e}"
            );
        }
        for p in [
            "correct horse battery",
            "Tr0ub4dor&3xyz",
            "ünïcödé pässwörd",
        ] {
            check_passphrase(p).unwrap();
        }
    }

    #[cfg(unix)]
    #[test]
    fn atomic_writes_leave_no_temporary_files_and_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("share.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("share.json")]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A predictable name planted by someone else (the old `.name.tmp-PID` scheme
        // followed it) is neither followed nor overwritten.
        let planted = dir
            .path()
            .join(format!(".share.json.tmp-{}", std::process::id()));
        std::fs::write(&planted, b"attacker").unwrap();
        write_atomically(&path, b"three").unwrap();
        assert_eq!(std::fs::read(&planted).unwrap(), b"attacker");
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
    }
}
