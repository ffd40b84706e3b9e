//! Stored enrollments: each party's [`Enrollment`] (client-core's encrypted file
//! format) in an `enrollments/` directory next to its key-share file, named
//! `<enrollment id>.<device|recovery>.json`, until a wallet is created from it.

use std::path::{Path, PathBuf};

use client_core::{validate_enrollment_id, Enrollment, EnrollmentHeader};
use mpc_core::keystore::write_atomically;
use serde::{Deserialize, Serialize};
use wallet_types::{DEVICE, RECOVERY};

use crate::error::{io_error, keystore_error, MpcError};
use crate::store::kdf;

/// A stored enrollment, as listed (its clear header; not decrypted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentInfo {
    /// The cosigner's enrollment id (`create --enrollment ID`).
    pub enrollment_id: String,
    /// The cosigner forgets it then (ms since the Unix epoch; 0: unknown).
    pub expires_at_ms: u64,
    /// The device's enrollment file.
    pub path: String,
}

/// The enrollments directory next to a key-share file.
pub fn enrollments_dir(share_path: &Path) -> PathBuf {
    share_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("enrollments")
}

/// Where party `party`'s enrollment `enrollment_id` is stored, next to its key-share
/// file `share_path`.
pub fn enrollment_path(
    share_path: &Path,
    enrollment_id: &str,
    party: u16,
) -> Result<PathBuf, MpcError> {
    validate_enrollment_id(enrollment_id)?;
    let who = match party {
        DEVICE => "device",
        RECOVERY => "recovery",
        other => {
            return Err(MpcError::internal(format!(
                "no enrollment of party {other}"
            )))
        }
    };
    Ok(enrollments_dir(share_path).join(format!("{enrollment_id}.{who}.json")))
}

/// Encrypts `enrollment` under `passphrase` and writes it to `path` atomically (never
/// over an existing file). Blocking (Argon2).
pub fn save_enrollment(
    path: &Path,
    passphrase: &str,
    insecure_fast_kdf: bool,
    enrollment: &Enrollment,
) -> Result<(), MpcError> {
    if path.exists() {
        return Err(MpcError::WalletExists {
            path: path.display().to_string(),
        });
    }
    let text = enrollment.encrypt(passphrase, kdf(insecure_fast_kdf))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    write_atomically(path, text.as_bytes()).map_err(|e| keystore_error(path, e))
}

/// Reads and decrypts the enrollment at `path`, checking it is of `party`. Blocking
/// (Argon2).
pub fn load_enrollment(path: &Path, passphrase: &str, party: u16) -> Result<Enrollment, MpcError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MpcError::input(format!(
                "no stored enrollment at {} (enroll the device first)",
                path.display()
            )))
        }
        Err(e) => return Err(io_error(path, e)),
    };
    let e = Enrollment::decrypt(&text, passphrase, &path.display().to_string())?;
    if e.party_index != party {
        return Err(MpcError::corrupt(
            path.display(),
            format!(
                "the enrollment of party {}, expected {party}",
                e.party_index
            ),
        ));
    }
    Ok(e)
}

/// Removes an enrollment file (gone already is fine).
pub fn remove_enrollment(path: &Path) -> Result<(), MpcError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path, e)),
    }
}

/// The device's stored enrollments next to `share_path`, soonest to expire first
/// (files that are not enrollments are skipped).
pub fn list_enrollments(share_path: &Path) -> Result<Vec<EnrollmentInfo>, MpcError> {
    let dir = enrollments_dir(share_path);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(&dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| io_error(&dir, e))?.path();
        let is_device = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".device.json") && !n.starts_with('.'));
        if !is_device {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        match EnrollmentHeader::read(&text, &path.display().to_string()) {
            Ok(h) if h.party_index == DEVICE => out.push(EnrollmentInfo {
                enrollment_id: h.enrollment_id,
                expires_at_ms: h.expires_at_ms,
                path: path.display().to_string(),
            }),
            _ => continue,
        }
    }
    out.sort_by(|a, b| {
        (a.expires_at_ms, &a.enrollment_id).cmp(&(b.expires_at_ms, &b.enrollment_id))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked_and_listing_skips_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("device.json");
        let p = enrollment_path(&share, "enrollment-1", DEVICE).unwrap();
        assert_eq!(p, dir.path().join("enrollments/enrollment-1.device.json"));
        for bad in ["", "..", "a/b", "../x"] {
            assert!(enrollment_path(&share, bad, DEVICE).is_err(), "{bad}");
        }
        assert!(enrollment_path(&share, "e", 1).is_err());
        assert!(list_enrollments(&share).unwrap().is_empty());
        std::fs::create_dir_all(enrollments_dir(&share)).unwrap();
        std::fs::write(enrollments_dir(&share).join("junk.device.json"), "{").unwrap();
        std::fs::write(
            enrollments_dir(&share).join("e2.device.json"),
            r#"{"format":"wallet-mpc/enrollment","version":1,"party_index":0,
               "enrollment_id":"e2","expires_at_ms":5,"shares":{}}"#,
        )
        .unwrap();
        let l = list_enrollments(&share).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].enrollment_id, "e2");
        assert_eq!(l[0].expires_at_ms, 5);
        let e = load_enrollment(&enrollments_dir(&share).join("none.json"), "pw", DEVICE);
        assert_eq!(e.unwrap_err().code(), wallet_types::ErrorCode::InvalidInput);
        remove_enrollment(&enrollments_dir(&share).join("none.json")).unwrap();
    }
}
