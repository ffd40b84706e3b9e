//! The key lifecycle natively (`docs/lifecycle.md`): the tokio driver of the core's
//! lifecycle flows, and the crash-safe storage of the new shares.
//!
//! Storage: a party's new shares are written as a PENDING file next to its current one
//! (`<file>.pending`, encrypted exactly like a key-share file, under the same
//! passphrase) with a public sidecar (`<file>.pending.json`: wallet, lifecycle id,
//! epoch, expiry), durably, BEFORE ConfirmLifecycle; the pending file replaces the
//! current one (atomic rename) only once the cosigner answered committed. After a crash,
//! [`settle`] promotes a pending file when the cosigner's accounts show its epoch, and
//! deletes it when they do not and the lifecycle expired: either the old or the new
//! epoch stays usable, never neither. The presignature pool of a promoted file (made
//! with the old epoch's shares) is deleted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use client_core::lifecycle::{
    ConfirmLifecycle, ConfirmParams, ConfirmStep, EpochCheck, EpochStep, LifecyclePlan,
    LifecycleStep, PendingShares, StartStep,
};
use client_core::{Committed, Party};
use mpc_core::keystore::{sync_dir, write_atomically, KdfParams, KeyShareBundle};
use serde::{Deserialize, Serialize};
use wallet_types::ErrorCode;

use crate::cosigner::CosignerClient;
use crate::driver::{emit, now_ms, run_spec, SessionSettings};
use crate::error::{io_error, keystore_error, MpcError};
use crate::pool::pool_dir_path;
use crate::types::Progress;

/// The `format` of a pending sidecar.
pub const PENDING_FORMAT: &str = "wallet-mpc/pending-shares/v1";

/// The pending key-share file of `share_path`: `<file>.pending`.
pub fn pending_path(share_path: &Path) -> PathBuf {
    let mut s = share_path.as_os_str().to_owned();
    s.push(".pending");
    PathBuf::from(s)
}

/// The public sidecar of a pending file: `<file>.pending.json`.
pub fn pending_meta_path(share_path: &Path) -> PathBuf {
    let mut s = share_path.as_os_str().to_owned();
    s.push(".pending.json");
    PathBuf::from(s)
}

/// Public facts about a pending file (nothing secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingMeta {
    /// Always [`PENDING_FORMAT`].
    pub format: String,
    /// The wallet.
    pub wallet_id: String,
    /// The party whose shares these are.
    pub party_index: u16,
    /// The lifecycle session that produced them.
    pub lifecycle_id: String,
    /// Their epoch.
    pub epoch: u64,
    /// When the lifecycle session expires (ms since the Unix epoch).
    pub expires_at_ms: u64,
}

/// What [`settle`] did with a pending file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingOutcome {
    /// No pending file.
    None,
    /// The cosigner is at the pending epoch: the pending file replaced the current one.
    Promoted,
    /// The cosigner is not at the pending epoch and the session expired: deleted.
    Discarded,
    /// The session may still commit: kept (ask again later).
    Kept,
}

/// Writes `pending`'s bundle as the pending file of `share_path` (encrypted under
/// `passphrase`) and its sidecar, durably.
pub(crate) fn write_pending(
    share_path: &Path,
    pending: &PendingShares,
    passphrase: &str,
    kdf: KdfParams,
) -> Result<(), MpcError> {
    let path = pending_path(share_path);
    let text = pending
        .bundle
        .encrypt(passphrase, kdf)
        .map_err(|e| keystore_error(&path, e))?;
    write_atomically(&path, text.as_bytes()).map_err(|e| keystore_error(&path, e))?;
    let meta = PendingMeta {
        format: PENDING_FORMAT.into(),
        wallet_id: pending.wallet_id.clone(),
        party_index: pending.bundle.party_index,
        lifecycle_id: pending.lifecycle_id.clone(),
        epoch: pending.epoch,
        expires_at_ms: pending.expires_at_ms,
    };
    let mpath = pending_meta_path(share_path);
    let json =
        serde_json::to_string_pretty(&meta).map_err(|e| MpcError::internal(e.to_string()))?;
    write_atomically(&mpath, json.as_bytes()).map_err(|e| keystore_error(&mpath, e))
}

/// Replaces the key-share file with its pending file (atomic rename, directory
/// synced), then deletes the sidecar and the presignature pool of the old epoch.
pub(crate) fn promote(share_path: &Path) -> Result<(), MpcError> {
    let pending = pending_path(share_path);
    std::fs::rename(&pending, share_path).map_err(|e| io_error(&pending, e))?;
    if let Some(dir) = share_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir).map_err(|e| io_error(dir, e))?;
    }
    remove_if_present(&pending_meta_path(share_path))?;
    let pool = pool_dir_path(share_path);
    match std::fs::remove_dir_all(&pool) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(&pool, e)),
    }
}

/// Deletes the pending file and its sidecar.
pub(crate) fn discard(share_path: &Path) -> Result<(), MpcError> {
    remove_if_present(&pending_path(share_path))?;
    remove_if_present(&pending_meta_path(share_path))
}

fn remove_if_present(p: &Path) -> Result<(), MpcError> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(p, e)),
    }
}

fn read_meta(share_path: &Path) -> Result<PendingMeta, MpcError> {
    let p = pending_meta_path(share_path);
    let text = std::fs::read_to_string(&p).map_err(|e| io_error(&p, e))?;
    let meta: PendingMeta = serde_json::from_str(&text)
        .map_err(|e| MpcError::corrupt(p.display(), format!("not a pending sidecar: {e}")))?;
    if meta.format != PENDING_FORMAT {
        return Err(MpcError::corrupt(p.display(), "unknown format"));
    }
    Ok(meta)
}

/// Settles the pending file of `share_path`, if any: asks the cosigner (as the pending
/// shares' own identity) which epoch the wallet is at, then promotes, discards or keeps
/// it. A pending file without its sidecar (a crash between the two writes) is discarded:
/// nothing was confirmed with it.
pub(crate) async fn settle(
    cosigner: &CosignerClient,
    share_path: &Path,
    passphrase: &str,
) -> Result<PendingOutcome, MpcError> {
    let pending = pending_path(share_path);
    if !pending.exists() {
        return Ok(PendingOutcome::None);
    }
    let meta = match read_meta(share_path) {
        Ok(m) => m,
        Err(_) => {
            discard(share_path)?;
            return Ok(PendingOutcome::Discarded);
        }
    };
    let (path, pass) = (pending.clone(), passphrase.to_string());
    let bundle = tokio::task::spawn_blocking(move || KeyShareBundle::load(&path, &pass))
        .await
        .map_err(|e| MpcError::internal(format!("loading task failed: {e}")))?
        .map_err(|e| keystore_error(&pending, e))?;
    if bundle.share_epoch != meta.epoch {
        return Err(MpcError::corrupt(
            pending.display(),
            "its epoch differs from its sidecar's",
        ));
    }
    let party = Party::new(
        meta.wallet_id.clone(),
        bundle,
        pending.display().to_string(),
    )?;
    let epoch = match cosigner_epoch(cosigner, &party).await {
        Ok(e) => Some(e),
        // A new device's identity is unknown to the cosigner until the commit.
        Err(e) if e.code() == ErrorCode::Unauthorized && party.index() == 0 => None,
        Err(e) => return Err(e),
    };
    if epoch.is_some_and(|e| e >= meta.epoch) {
        promote(share_path)?;
        return Ok(PendingOutcome::Promoted);
    }
    if now_ms() > meta.expires_at_ms {
        discard(share_path)?;
        return Ok(PendingOutcome::Discarded);
    }
    Ok(PendingOutcome::Kept)
}

/// The share epoch of the wallet's accounts at the cosigner.
pub(crate) async fn cosigner_epoch(
    cosigner: &CosignerClient,
    party: &Party,
) -> Result<u64, MpcError> {
    let mut step = EpochCheck::start(party);
    loop {
        step = match step {
            EpochStep::CallCosigner(call) => {
                let (req, awaiting) = call.send(now_ms())?;
                awaiting.reply(cosigner.call(req).await)?
            }
            EpochStep::Done(e) => return Ok(e),
        };
    }
}

/// Opens the lifecycle session (StartRefresh or ReplaceDevice).
pub(crate) async fn open(
    cosigner: &CosignerClient,
    step: StartStep,
) -> Result<LifecyclePlan, MpcError> {
    open_with_response(cosigner, step)
        .await
        .map(|(plan, _)| plan)
}

/// Opens the lifecycle session; also returns the cosigner's `LifecycleResponse` as
/// protobuf bytes (what a party running elsewhere checks for itself).
pub(crate) async fn open_with_response(
    cosigner: &CosignerClient,
    mut step: StartStep,
) -> Result<(LifecyclePlan, Vec<u8>), MpcError> {
    let mut response = Vec::new();
    loop {
        step = match step {
            StartStep::CallCosigner(call) => {
                let (req, awaiting) = call.send(now_ms())?;
                let reply = cosigner.call(req).await;
                if let Ok(client_core::CosignerResponse::Lifecycle(_, r)) = &reply {
                    response = prost::Message::encode_to_vec(r);
                }
                awaiting.reply(reply)?
            }
            StartStep::Done(plan) => return Ok((*plan, response)),
        };
    }
}

/// Runs one party's sessions of the lifecycle session.
pub(crate) async fn run(
    mut step: LifecycleStep,
    settings: &SessionSettings,
    progress: &Progress,
) -> Result<PendingShares, MpcError> {
    loop {
        step = match step {
            LifecycleStep::RunSession(run) => {
                let (spec, running) = run.start();
                running.finished(run_spec(spec, settings, progress).await)?
            }
            LifecycleStep::Done(p) => return Ok(*p),
        };
    }
}

/// Confirms a party's stored pending shares until the cosigner commits.
pub(crate) async fn confirm(
    cosigner: &CosignerClient,
    pending: &PendingShares,
    progress: &Progress,
) -> Result<Committed, MpcError> {
    let mut step = ConfirmLifecycle::start(&pending.bundle, ConfirmParams::from(pending))?;
    let mut calls = 0u32;
    loop {
        step = match step {
            ConfirmStep::CallCosigner(call) => {
                calls += 1;
                emit(progress, "confirm", calls, 0, false);
                let (req, awaiting) = call.send(now_ms())?;
                awaiting.reply(cosigner.call(req).await)?
            }
            ConfirmStep::Wait(w) => {
                tokio::time::sleep(Duration::from_millis(w.millis())).await;
                w.done()?
            }
            ConfirmStep::Done(c) => {
                emit(progress, "confirm", calls, calls, true);
                return Ok(c);
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_paths_sit_next_to_the_share_file() {
        let p = Path::new("/w/client_key_shares.json");
        assert_eq!(
            pending_path(p),
            PathBuf::from("/w/client_key_shares.json.pending")
        );
        assert_eq!(
            pending_meta_path(p),
            PathBuf::from("/w/client_key_shares.json.pending.json")
        );
    }

    #[test]
    fn promote_replaces_the_file_and_drops_the_pool_discard_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("k.json");
        std::fs::write(&share, "old").unwrap();
        std::fs::create_dir_all(pool_dir_path(&share)).unwrap();
        std::fs::write(pending_path(&share), "new").unwrap();
        std::fs::write(pending_meta_path(&share), "{}").unwrap();
        discard(&share).unwrap();
        assert_eq!(std::fs::read_to_string(&share).unwrap(), "old");
        assert!(!pending_path(&share).exists() && !pending_meta_path(&share).exists());
        assert!(pool_dir_path(&share).exists());
        std::fs::write(pending_path(&share), "new").unwrap();
        std::fs::write(pending_meta_path(&share), "{}").unwrap();
        promote(&share).unwrap();
        assert_eq!(std::fs::read_to_string(&share).unwrap(), "new");
        assert!(!pending_path(&share).exists() && !pending_meta_path(&share).exists());
        assert!(!pool_dir_path(&share).exists());
    }
}
