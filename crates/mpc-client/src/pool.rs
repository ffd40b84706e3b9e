//! The local presignature pool of one party: a directory next to the key-share file
//! (`<stem>.presign/`), one encrypted file per presignature.
//!
//! - File names: `<hex(account id)>.<signer>-<signer>.<presignature id>.pre`; nothing
//!   secret is in a name. Contents: `0x01 ‖ nonce (24) ‖ XChaCha20-Poly1305 ciphertext`
//!   under a key derived (HKDF-SHA256) from the party's identity secret, which lives in
//!   the encrypted key-share file; the associated data binds the wallet, the party and
//!   the file name, so a file renamed or moved to another pool fails to decrypt.
//! - **Take-once**: [`PoolDir::take`] renames `….pre` to `….used` (atomic: of two
//!   concurrent takers, in this process or another, exactly one succeeds), syncs the
//!   directory, and only then reads the presignature and erases the file's contents. A
//!   crash can therefore lose a presignature, never hand it out twice. The empty
//!   `….used` file stays as a tombstone: the same id is never stored again.
//! - New presignatures are written to a temporary file, synced, then hard-linked to
//!   their final name (which fails if the name exists) and the directory is synced.

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use mpc_core::keystore::KeyShareBundle;
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{io_error, MpcError};

const KEY_SALT: &[u8] = b"wallet-mpc/presign-pool/v1";
const AAD_DOMAIN: &[u8] = b"wallet-mpc/presign/v1";
const VERSION: u8 = 1;
const PRE: &str = "pre";
const USED: &str = "used";

/// The pool directory of a key-share file: `dir/stem.presign`.
pub fn pool_dir_path(share_path: &Path) -> PathBuf {
    let stem = share_path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "key_shares".into());
    share_path.with_file_name(format!("{stem}.presign"))
}

/// One party's presignature pool directory.
pub(crate) struct PoolDir {
    dir: PathBuf,
    cipher: XChaCha20Poly1305,
    wallet_id: String,
    party: u16,
}

fn pair(signers: &[u16]) -> String {
    signers
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join("-")
}

impl PoolDir {
    /// The pool of `party` of `wallet_id` for the share file at `share_path`; its key
    /// derives from the party's identity secret in `bundle`.
    pub fn new(share_path: &Path, wallet_id: &str, party: u16, bundle: &KeyShareBundle) -> Self {
        // The identity seed as `IdentityKey::to_seed_hex` spells it (lowercase hex).
        let seed = Zeroizing::new(
            bundle
                .identity_secret
                .as_deref()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase(),
        );
        let hk = Hkdf::<Sha256>::new(Some(KEY_SALT), seed.as_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        let mut info = wallet_id.as_bytes().to_vec();
        info.push(0);
        info.extend_from_slice(&party.to_be_bytes());
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(&info, key.as_mut());
        PoolDir {
            dir: pool_dir_path(share_path),
            cipher: XChaCha20Poly1305::new((&*key).into()),
            wallet_id: wallet_id.to_string(),
            party,
        }
    }

    /// The directory.
    #[cfg(test)]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn stem(&self, account_id: &str, signers: &[u16], id: &str) -> Result<String, MpcError> {
        if !wallet_types::valid_presignature_id(id) {
            return Err(MpcError::input(format!(
                "presignature id {id:?} is not 1..=128 characters of A-Z a-z 0-9 _ : -"
            )));
        }
        Ok(format!(
            "{}.{}.{id}",
            hex::encode(account_id.as_bytes()),
            pair(signers)
        ))
    }

    fn aad(&self, stem: &str) -> Vec<u8> {
        let mut a = AAD_DOMAIN.to_vec();
        a.push(0);
        a.extend_from_slice(self.wallet_id.as_bytes());
        a.push(0);
        a.extend_from_slice(&self.party.to_be_bytes());
        a.push(0);
        a.extend_from_slice(stem.as_bytes());
        a
    }

    fn io(&self, e: std::io::Error) -> MpcError {
        io_error(&self.dir, e)
    }

    fn sync_dir(&self) -> Result<(), MpcError> {
        mpc_core::keystore::sync_dir(&self.dir).map_err(|e| self.io(e))
    }

    /// Stores a presignature (`plain` is its serialized form). Refused if the id is
    /// present or was ever taken.
    pub fn put(
        &self,
        account_id: &str,
        signers: &[u16],
        id: &str,
        plain: &[u8],
    ) -> Result<(), MpcError> {
        let stem = self.stem(account_id, signers, id)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| self.io(e))?;
        let final_path = self.dir.join(format!("{stem}.{PRE}"));
        if self.dir.join(format!("{stem}.{USED}")).exists() || final_path.exists() {
            return Err(MpcError::input(format!(
                "presignature {id} was stored or used before; refusing to store it again"
            )));
        }
        let mut nonce = [0u8; 24];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| MpcError::internal(format!("randomness unavailable: {e}")))?;
        let aad = self.aad(&stem);
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| MpcError::internal("presignature encryption failed"))?;
        let mut bytes = Vec::with_capacity(1 + 24 + ct.len());
        bytes.push(VERSION);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ct);
        let tmp = self.dir.join(format!(
            ".{stem}.tmp-{}-{}",
            std::process::id(),
            hex::encode(&nonce[..4])
        ));
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(|e| self.io(e))?;
            f.write_all(&bytes).map_err(|e| self.io(e))?;
            f.sync_all().map_err(|e| self.io(e))?;
        }
        // hard_link never overwrites: an existing name is an error.
        let linked = std::fs::hard_link(&tmp, &final_path);
        let _ = std::fs::remove_file(&tmp);
        linked.map_err(|e| self.io(e))?;
        self.sync_dir()
    }

    /// Ids of the unused presignatures of an account and signer pair, oldest first.
    pub fn list(&self, account_id: &str, signers: &[u16]) -> Result<Vec<String>, MpcError> {
        let prefix = format!("{}.{}.", hex::encode(account_id.as_bytes()), pair(signers));
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| self.io(e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            if let Some(id) = rest.strip_suffix(&format!(".{PRE}")) {
                let modified = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                out.push((modified, id.to_string()));
            } else if rest.ends_with(&format!(".{USED}")) {
                // A crash between the rename and the erase leaves the secret in a
                // tombstone: erase it now.
                if entry.metadata().map(|m| m.len() > 0).unwrap_or(false) {
                    let _ = std::fs::OpenOptions::new()
                        .write(true)
                        .truncate(true)
                        .open(entry.path())
                        .and_then(|f| f.sync_all());
                }
            }
        }
        out.sort();
        Ok(out.into_iter().map(|(_, id)| id).collect())
    }

    /// Takes a presignature once (see the [module docs](self)). `Ok(None)` if it is not
    /// (or no longer) in the pool.
    pub fn take(
        &self,
        account_id: &str,
        signers: &[u16],
        id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, MpcError> {
        let stem = self.stem(account_id, signers, id)?;
        let from = self.dir.join(format!("{stem}.{PRE}"));
        let to = self.dir.join(format!("{stem}.{USED}"));
        // Read before the rename: a `.pre` file is complete from the moment it has its
        // name and nobody changes it while it has that name. After the rename the
        // tombstone may be erased at any time by a concurrent `list` (which cannot tell
        // a fresh take from a crashed one), so reading it then would race.
        let sealed = match std::fs::read(&from) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            // Taken by someone else between the read and the rename: the bytes read
            // are dropped (and zeroized) unused.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        }
        // The removal is durable before the presignature is used.
        self.sync_dir()?;
        // Erase the contents (not synced: the take is already durable, and `list`
        // erases any tombstone a crash left with contents).
        let erased = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&to)
            .map(drop);
        if let Err(e) = erased {
            tracing::warn!(file = %to.display(), error = %e, "cannot erase a used presignature file");
        }
        let corrupt = |reason: &str| MpcError::corrupt(to.display(), reason);
        if sealed.len() < 1 + 24 + 16 || sealed[0] != VERSION {
            return Err(corrupt("not a presignature file"));
        }
        let aad = self.aad(&stem);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(&sealed[1..25]),
                Payload {
                    msg: &sealed[25..],
                    aad: &aad,
                },
            )
            .map_err(|_| {
                corrupt("presignature failed to decrypt (tampered, moved or another wallet's)")
            })?;
        Ok(Some(Zeroizing::new(plain)))
    }
}

/// A presignature taken from the pool: its id and its plaintext.
pub(crate) type Taken = (String, Zeroizing<Vec<u8>>);

impl PoolDir {
    /// Takes the oldest presignature of an account and signer pair once (see
    /// [`PoolDir::take`]), with its id; `None` when the pool is empty.
    pub fn take_oldest(
        &self,
        account_id: &str,
        signers: &[u16],
    ) -> Result<Option<Taken>, MpcError> {
        for id in self.list(account_id, signers)? {
            // `None`: taken meanwhile by another signer of this pool; try the next.
            if let Some(plain) = self.take(account_id, signers, &id)? {
                return Ok(Some((id, plain)));
            }
        }
        Ok(None)
    }

    /// Marks a taken presignature's signature attempt as over (signed, refused or
    /// failed): its tombstone is backdated, so [`PoolDir::in_flight`] no longer reports
    /// it and the next refill may release the cosigner's copy. A missing tombstone is
    /// not an error.
    pub fn settle(&self, account_id: &str, signers: &[u16], id: &str) -> Result<(), MpcError> {
        let stem = self.stem(account_id, signers, id)?;
        let path = self.dir.join(format!("{stem}.{USED}"));
        match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(f) => f
                .set_modified(std::time::SystemTime::UNIX_EPOCH)
                .map_err(|e| self.io(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Ids taken less than `within` ago (their tombstones are that young): a signature
    /// may still be using them, so a refill must not release them at the cosigner.
    pub fn in_flight(
        &self,
        account_id: &str,
        signers: &[u16],
        within: std::time::Duration,
    ) -> Result<Vec<String>, MpcError> {
        let prefix = format!("{}.{}.", hex::encode(account_id.as_bytes()), pair(signers));
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        };
        let now = std::time::SystemTime::now();
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| self.io(e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(id) = name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(&format!(".{USED}")))
            else {
                continue;
            };
            let young = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_none_or(|age| age < within);
            if young {
                out.push(id.to_string());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(dir: &Path, wallet: &str, seed: u8) -> PoolDir {
        let mut bundle = KeyShareBundle::new(0);
        bundle.identity_secret = Some(
            mpc_wire::IdentityKey::from_seed(&[seed; 32])
                .to_seed_hex()
                .to_string(),
        );
        PoolDir::new(&dir.join("client_key_shares.json"), wallet, 0, &bundle)
    }

    #[test]
    fn a_settled_presignature_is_no_longer_in_flight() {
        let tmp = tempfile::tempdir().unwrap();
        let p = pool(tmp.path(), "w1", 1);
        let hour = std::time::Duration::from_secs(3600);
        p.put("a", &[0, 1], "aa", b"one").unwrap();
        p.put("a", &[0, 1], "bb", b"two").unwrap();
        p.take("a", &[0, 1], "aa").unwrap().unwrap();
        p.take("a", &[0, 1], "bb").unwrap().unwrap();
        let mut young = p.in_flight("a", &[0, 1], hour).unwrap();
        young.sort();
        assert_eq!(young, vec!["aa", "bb"]);
        p.settle("a", &[0, 1], "aa").unwrap();
        assert_eq!(p.in_flight("a", &[0, 1], hour).unwrap(), vec!["bb"]);
        // Still taken: never stored or taken again.
        assert!(p.take("a", &[0, 1], "aa").unwrap().is_none());
        assert!(p.put("a", &[0, 1], "aa", b"again").is_err());
        // Unknown ids: nothing to do.
        p.settle("a", &[0, 1], "zz").unwrap();
    }

    #[test]
    fn take_once_persists_across_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let p = pool(tmp.path(), "w1", 1);
        assert_eq!(p.dir(), tmp.path().join("client_key_shares.presign"));
        assert!(p.list("account-0", &[0, 1]).unwrap().is_empty());
        p.put("account-0", &[0, 1], "aa", b"secret one").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        p.put("account-0", &[0, 1], "bb", b"secret two").unwrap();
        p.put("account-1", &[0, 1], "cc", b"other account").unwrap();
        assert_eq!(p.list("account-0", &[0, 1]).unwrap(), vec!["aa", "bb"]);
        assert!(p.list("account-0", &[1, 2]).unwrap().is_empty());
        // Nothing secret on disk in clear.
        for e in std::fs::read_dir(p.dir()).unwrap() {
            let b = std::fs::read(e.unwrap().path()).unwrap();
            assert!(!b.windows(6).any(|w| w == b"secret"));
        }
        assert_eq!(
            p.take("account-0", &[0, 1], "aa")
                .unwrap()
                .unwrap()
                .as_slice(),
            b"secret one"
        );
        // Taken: gone for this handle, for a new handle (another process), and it can
        // never be stored again.
        assert!(p.take("account-0", &[0, 1], "aa").unwrap().is_none());
        let again = pool(tmp.path(), "w1", 1);
        assert!(again.take("account-0", &[0, 1], "aa").unwrap().is_none());
        assert_eq!(again.list("account-0", &[0, 1]).unwrap(), vec!["bb"]);
        assert!(again.put("account-0", &[0, 1], "aa", b"restored").is_err());
        assert!(again.put("account-0", &[0, 1], "bb", b"dup").is_err());
        // The tombstone holds no secret.
        let used = p
            .dir()
            .join(format!("{}.0-1.aa.used", hex::encode("account-0")));
        assert_eq!(std::fs::metadata(used).unwrap().len(), 0);
        // Bad ids are refused.
        assert!(p.put("account-0", &[0, 1], "../x", b"x").is_err());
        assert!(p.put("account-0", &[0, 1], "a.b", b"x").is_err());
    }

    #[test]
    fn wrong_key_or_moved_file_fails_to_decrypt() {
        let tmp = tempfile::tempdir().unwrap();
        let p = pool(tmp.path(), "w1", 1);
        p.put("account-0", &[0, 1], "aa", b"secret").unwrap();
        p.put("account-0", &[0, 1], "bb", b"secret").unwrap();
        let other_key = pool(tmp.path(), "w1", 2);
        assert!(matches!(
            other_key.take("account-0", &[0, 1], "aa"),
            Err(MpcError::CorruptFile { .. })
        ));
        // The tombstone of "aa" is young: in flight.
        assert_eq!(
            other_key
                .in_flight("account-0", &[0, 1], std::time::Duration::from_secs(60))
                .unwrap(),
            vec!["aa".to_string()]
        );
        assert!(other_key
            .in_flight("account-0", &[0, 1], std::time::Duration::ZERO)
            .unwrap()
            .is_empty());
        // A file renamed to another id does not decrypt either.
        let stem = |id: &str| format!("{}.0-1.{id}", hex::encode("account-0"));
        std::fs::rename(
            p.dir().join(format!("{}.pre", stem("bb"))),
            p.dir().join(format!("{}.pre", stem("zz"))),
        )
        .unwrap();
        assert!(p.take("account-0", &[0, 1], "zz").is_err());
    }

    #[test]
    fn concurrent_takers_get_each_presignature_once() {
        let tmp = tempfile::tempdir().unwrap();
        let p = std::sync::Arc::new(pool(tmp.path(), "w1", 1));
        for i in 0..20 {
            p.put("a", &[0, 1], &format!("id{i}"), format!("s{i}").as_bytes())
                .unwrap();
        }
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    for i in 0..20 {
                        if let Some(v) = p.take("a", &[0, 1], &format!("id{i}")).unwrap() {
                            got.push(String::from_utf8(v.to_vec()).unwrap());
                        }
                    }
                    got
                })
            })
            .collect();
        let mut all: Vec<String> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 20, "every presignature taken exactly once");
        p.put("a", &[0, 1], "late", b"late").unwrap();
        let (id, v) = p.take_oldest("a", &[0, 1]).unwrap().unwrap();
        assert_eq!((id.as_str(), v.as_slice()), ("late", &b"late"[..]));
        assert!(p.take_oldest("a", &[0, 1]).unwrap().is_none());
        assert!(p.list("a", &[0, 1]).unwrap().is_empty());
    }

    /// A refill lists the pool (and erases tombstones left with contents) while a
    /// signer takes: the take must still read its presignature whole. Before the fix
    /// the lister could truncate a fresh tombstone between the taker's rename and its
    /// read, and the take failed as "not a presignature file".
    #[test]
    fn a_concurrent_list_never_spoils_a_take() {
        let tmp = tempfile::tempdir().unwrap();
        let p = std::sync::Arc::new(pool(tmp.path(), "w1", 1));
        let n = 150;
        for i in 0..n {
            p.put(
                "a",
                &[0, 1],
                &format!("id{i:03}"),
                format!("s{i}").as_bytes(),
            )
            .unwrap();
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let lister = {
            let (p, stop) = (p.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    p.list("a", &[0, 1]).unwrap();
                }
            })
        };
        let mut got = Vec::new();
        while let Some((id, v)) = p.take_oldest("a", &[0, 1]).unwrap() {
            got.push((id, String::from_utf8(v.to_vec()).unwrap()));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        lister.join().unwrap();
        assert_eq!(got.len(), n);
        for (i, (id, v)) in got.iter().enumerate() {
            assert_eq!(
                (id.as_str(), v.as_str()),
                (format!("id{i:03}").as_str(), format!("s{i}").as_str())
            );
        }
    }
}
