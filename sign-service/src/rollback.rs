//! Rollback detection for presignatures.
//!
//! The ids of used presignatures live in the key store. An older copy of the store
//! (a restored backup, a snapshot rolled back) has them as unused again, and two
//! partial signatures from one presignature on different messages give the device the
//! whole private key. So the store counts its presignature takes (in the same
//! transaction as each take) and a small file OUTSIDE the store, the *rollback
//! anchor*, remembers the count: it is rewritten and fsynced after every take, before
//! the partial signature is computed. A store whose count is below its anchor's (or
//! whose anchor is missing although it has taken presignatures, or belongs to another
//! store) is older than the cosigner's history: presignature signing and refills are
//! refused (`presignature_unavailable`, so clients fall back to full signing) until an
//! operator runs `sign-service store purge-presignatures`, which deletes every unused
//! presignature and moves the count past the anchor's. The check runs at start-up and
//! again, under one lock with the take, before every presignature is used.
//!
//! Keep the anchor off the store's backups (its default place is next to the audit log,
//! `rollback_anchor` in the configuration): restoring both together defeats the check.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::CosignerError;
use crate::store::{PresigSlot, PresigTake, Store, StoreError};

/// The anchor file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct AnchorFile {
    /// The store it belongs to (`Store::store_id`).
    store_id: String,
    /// Presignature takes the store had committed when it was written.
    presign_takes: u64,
}

/// Reads the anchor: `Ok(None)` when the file does not exist.
fn read_anchor(path: &Path) -> Result<Option<AnchorFile>, String> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| format!("the rollback anchor {} is unreadable: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "the rollback anchor {} cannot be read: {e}",
            path.display()
        )),
    }
}

/// Writes the anchor durably: a temporary file, fsynced, renamed into place, and the
/// directory fsynced.
fn write_anchor(path: &Path, anchor: &AnchorFile) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "anchor".into())
    ));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(anchor).map_err(std::io::Error::other)?)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Compares the store with its anchor: `Ok(())`, or why presignatures are suspended.
/// A store ahead of its anchor (a crash between a take and the anchor's write) is fine.
fn compare(path: &Path, store_id: &str, takes: u64) -> Result<(), String> {
    match read_anchor(path)? {
        None if takes == 0 => Ok(()),
        None => Err(format!(
            "rollback suspected: no rollback anchor at {} although the key store has taken {takes} \
             presignatures (a store restored or moved without its anchor is treated as older \
             than its history)",
            path.display()
        )),
        Some(a) if a.store_id != store_id => Err(format!(
            "rollback suspected: the rollback anchor {} belongs to another key store ({}, this \
             store is {store_id})",
            path.display(),
            a.store_id
        )),
        Some(a) if takes < a.presign_takes => Err(format!(
            "rollback detected: the key store is older than its rollback anchor ({takes} \
             presignature takes in the store, {} in the anchor {}): it was restored from a \
             backup or rolled back, and presignatures it lists as unused may have been used",
            a.presign_takes,
            path.display()
        )),
        Some(_) => Ok(()),
    }
}

/// The guard of one store and its anchor file.
#[derive(Debug)]
pub struct RollbackGuard {
    path: PathBuf,
    store_id: String,
    /// Serializes takes and anchor writes (the anchor only grows).
    lock: Mutex<()>,
}

/// The error of a suspended presignature RPC.
fn suspended(reason: String) -> CosignerError {
    CosignerError::PresignaturesSuspended(reason)
}

impl RollbackGuard {
    /// Checks `store` against the anchor at `path`. On success the anchor is brought up
    /// to the store (written when missing on a store that never took a presignature,
    /// raised when the store is ahead). Returns the guard and, when presignatures are
    /// suspended, why (logged by the caller; every presignature RPC is refused then).
    pub fn open(path: &Path, store: &Store) -> Result<(Self, Option<String>), StoreError> {
        let store_id = store.store_id()?;
        let guard = RollbackGuard {
            path: path.to_path_buf(),
            store_id,
            lock: Mutex::new(()),
        };
        let takes = store.presign_takes()?;
        let problem = match compare(path, &guard.store_id, takes) {
            Ok(()) => guard.advance(takes).err().map(|e| e.to_string()),
            Err(why) => Some(why),
        };
        Ok((guard, problem))
    }

    /// The anchor's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Raises the anchor to `takes` (never lowers it).
    fn advance(&self, takes: u64) -> Result<(), CosignerError> {
        let current = read_anchor(&self.path).map_err(CosignerError::internal)?;
        if current
            .as_ref()
            .is_some_and(|a| a.store_id == self.store_id && a.presign_takes >= takes)
        {
            return Ok(());
        }
        write_anchor(
            &self.path,
            &AnchorFile {
                store_id: self.store_id.clone(),
                presign_takes: takes,
            },
        )
        .map_err(|e| {
            CosignerError::internal(format!(
                "cannot write the rollback anchor {}: {e}",
                self.path.display()
            ))
        })
    }

    /// Refuses presignature work when the store is older than its anchor. Under the
    /// take's lock: a take of this instance between the read of the store's count and
    /// the read of the anchor would otherwise show an anchor ahead of the store (a
    /// rollback that is not one; seen with concurrent takes on PostgreSQL).
    pub fn check(&self, store: &Store) -> Result<(), CosignerError> {
        let _serial = self.lock();
        self.check_locked(store)
    }

    /// [`Self::check`] with the lock held by the caller.
    fn check_locked(&self, store: &Store) -> Result<(), CosignerError> {
        if crate::hooks::rollback_guard_disabled() {
            return Ok(());
        }
        let takes = store.presign_takes()?;
        compare(&self.path, &self.store_id, takes).map_err(suspended)
    }

    /// Takes presignature `id` once (`Store::take_presignature`) after checking the
    /// store against its anchor, and raises the anchor before returning it: the
    /// partial signature is computed only from a take the anchor remembers.
    pub fn take<T: for<'de> Deserialize<'de>>(
        &self,
        store: &Store,
        slot: &PresigSlot,
        id: &str,
        now_ms: u64,
    ) -> Result<PresigTake<T>, CosignerError> {
        let _serial = self.lock();
        self.check_locked(store)?;
        let taken = store.take_presignature(slot, id, now_ms)?;
        if matches!(taken, PresigTake::Taken(_)) {
            self.advance(store.presign_takes()?)?;
        }
        Ok(taken)
    }
}

/// `sign-service store purge-presignatures`: deletes every unused presignature of the
/// store (marking them used), moves its take counter past the anchor's and rewrites the
/// anchor. Returns how many presignatures were deleted and the new counter.
pub fn purge(path: &Path, store: &Store, now_ms: u64) -> Result<(usize, u64), String> {
    let store_id = store.store_id().map_err(|e| e.to_string())?;
    let anchored = match read_anchor(path) {
        Ok(Some(a)) => a.presign_takes,
        Ok(None) => 0,
        // An unreadable anchor is replaced; the counter still moves past the store's.
        Err(e) => {
            tracing::warn!("{e}; it is replaced");
            0
        }
    };
    let (purged, takes) = store
        .purge_presignatures(anchored, now_ms)
        .map_err(|e| e.to_string())?;
    write_anchor(
        path,
        &AnchorFile {
            store_id,
            presign_takes: takes,
        },
    )
    .map_err(|e| format!("cannot write the rollback anchor {}: {e}", path.display()))?;
    Ok((purged, takes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeySource;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sign-service-rollback-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn slot() -> PresigSlot {
        PresigSlot {
            wallet_id: "w".into(),
            account_id: "a".into(),
            party: 0,
            path: crate::store::ROOT_PATH.into(),
        }
    }

    /// A restored copy of the store is detected, refused, and accepted again only after
    /// a purge that deletes what it held.
    #[test]
    fn a_restored_store_is_refused_until_purged() {
        let d = dir("restore");
        let (db, backup, anchor) = (d.join("s.redb"), d.join("backup"), d.join("anchor.json"));
        let store = Store::open(&db, &KeySource::InsecureDev).unwrap();
        store.put_presignature(&slot(), "p1", &1u8).unwrap();
        let (guard, problem) = RollbackGuard::open(&anchor, &store).unwrap();
        assert_eq!(problem, None);
        drop(store);
        std::fs::copy(&db, &backup).unwrap();
        let store = Store::open(&db, &KeySource::InsecureDev).unwrap();
        assert_eq!(
            guard.take::<u8>(&store, &slot(), "p1", 1).unwrap(),
            PresigTake::Taken(1)
        );
        assert_eq!(read_anchor(&anchor).unwrap().unwrap().presign_takes, 1);
        drop((store, guard));
        std::fs::copy(&backup, &db).unwrap();
        let store = Store::open(&db, &KeySource::InsecureDev).unwrap();
        let (guard, problem) = RollbackGuard::open(&anchor, &store).unwrap();
        assert!(problem.unwrap().contains("older than"));
        assert!(matches!(
            guard.take::<u8>(&store, &slot(), "p1", 2),
            Err(CosignerError::PresignaturesSuspended(_))
        ));
        assert_eq!(purge(&anchor, &store, 3).unwrap(), (1, 2));
        let (guard, problem) = RollbackGuard::open(&anchor, &store).unwrap();
        assert_eq!(problem, None);
        assert_eq!(
            guard.take::<u8>(&store, &slot(), "p1", 4).unwrap(),
            PresigTake::Used
        );
    }

    #[test]
    fn missing_or_foreign_anchors() {
        let d = dir("missing");
        let anchor = d.join("anchor.json");
        let store = Store::open(&d.join("s.redb"), &KeySource::InsecureDev).unwrap();
        // A fresh store writes its anchor.
        let (_, problem) = RollbackGuard::open(&anchor, &store).unwrap();
        assert_eq!(problem, None);
        assert!(anchor.exists());
        // A store that took presignatures, without its anchor: suspended.
        store.put_presignature(&slot(), "p", &1u8).unwrap();
        store.take_presignature::<u8>(&slot(), "p", 1).unwrap();
        std::fs::remove_file(&anchor).unwrap();
        let (_, problem) = RollbackGuard::open(&anchor, &store).unwrap();
        assert!(problem.unwrap().contains("no rollback anchor"));
        // Another store's anchor: suspended.
        let other = Store::open(&d.join("other.redb"), &KeySource::InsecureDev).unwrap();
        RollbackGuard::open(&anchor, &other).unwrap();
        let (_, problem) = RollbackGuard::open(&anchor, &store).unwrap();
        assert!(problem.unwrap().contains("another key store"));
        // A store ahead of its anchor (a crash before the anchor's write): fine, raised.
        let anchor2 = d.join("anchor2.json");
        write_anchor(
            &anchor2,
            &AnchorFile {
                store_id: store.store_id().unwrap(),
                presign_takes: 0,
            },
        )
        .unwrap();
        let (_, problem) = RollbackGuard::open(&anchor2, &store).unwrap();
        assert_eq!(problem, None);
        assert_eq!(read_anchor(&anchor2).unwrap().unwrap().presign_takes, 1);
    }
}
