//! [`MpcClient`]'s key-lifecycle operations: refresh the shares, replace the device,
//! settle pending files after a crash.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use client_core::lifecycle::{
    LifecyclePlan, LifecycleRun, NewDeviceParams, NewDeviceTemplate, PendingShares, StartLifecycle,
};
use mpc_wire::{IdentityKey, PublicIdentity};
use serde::{Deserialize, Serialize};
use wallet_types::ErrorCode;

use crate::driver::{emit, now_ms};
use crate::error::{io_error, MpcError};
use crate::lifecycle::{self as lc, PendingOutcome};
use crate::store::{kdf, meta_path, PartyFiles, WalletMeta, WALLET_META_FORMAT};
use crate::types::{AccountInfo, NoProgress, PartyRole, Progress};
use crate::MpcClient;

/// The result of a refresh or a device replacement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleResult {
    /// `refresh` or `replace-device`.
    pub kind: String,
    /// The wallet.
    pub wallet_id: String,
    /// The lifecycle session.
    pub lifecycle_id: String,
    /// The share epoch now in effect.
    pub epoch: u64,
    /// The accounts (public keys and addresses unchanged).
    pub accounts: Vec<AccountInfo>,
    /// The key-share files now at the new epoch.
    pub files: Vec<String>,
    /// The cosigner's audit reference.
    pub request_id: String,
    /// Wall time, in milliseconds.
    pub elapsed_ms: u64,
}

/// How the recovery party alone opens a lifecycle session.
#[derive(Debug, Clone)]
pub enum RecoveryLifecycle {
    /// StartRefresh.
    Refresh,
    /// ReplaceDevice, with the new device's proof of possession.
    ReplaceDevice(Box<PossessionProof>),
}

/// A new device's proof of possession of its identity for a replacement.
#[derive(Debug, Clone)]
pub struct PossessionProof {
    /// The new device's identity.
    pub new_device: PublicIdentity,
    /// The auth timestamp the proof covers.
    pub timestamp_ms: u64,
    /// The auth nonce the proof covers.
    pub nonce: [u8; 16],
    /// The proof (ed25519 by the new identity).
    pub signature: [u8; 64],
    /// For the cosigner's audit log.
    pub reason: String,
}

/// A lifecycle session the recovery party opened.
#[derive(Debug, Clone)]
pub struct OpenedLifecycle {
    /// The checked plan.
    pub plan: LifecyclePlan,
    /// The cosigner's `LifecycleResponse`, protobuf bytes.
    pub response: Vec<u8>,
    /// A replacement's template for the new device.
    pub template: Option<NewDeviceTemplate>,
}

/// What happened to one key-share file's pending file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingStatus {
    /// The key-share file.
    pub path: String,
    /// Promoted, discarded, kept, or none.
    pub outcome: PendingOutcome,
}

impl MpcClient {
    /// Settles the pending file of `path` (if any) before the file is opened: promotes
    /// it when the cosigner committed its epoch, deletes it when the session expired
    /// uncommitted. A cosigner that cannot be reached leaves it for later.
    pub(crate) async fn settle_before_load(&self, path: &Path, passphrase: &str) {
        if !lc::pending_path(path).exists() {
            return;
        }
        let outcome = match self.cosigner().await {
            Ok(c) => lc::settle(&c, path, passphrase).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(o) => tracing::info!(path = %path.display(), outcome = ?o, "pending shares settled"),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "pending shares left unsettled")
            }
        }
    }

    /// Settles the pending files of the configured key-share files (device, and recovery
    /// when configured), left by a refresh or replacement interrupted after the new
    /// shares were stored: each is promoted if the cosigner's accounts show its epoch,
    /// deleted if not and the lifecycle session expired, kept otherwise.
    pub async fn resume_lifecycle(&self) -> Result<Vec<PendingStatus>, MpcError> {
        let mut files = vec![(self.device_path(), self.config.passphrase.clone())];
        if let Some(p) = &self.config.recovery_path {
            files.push((PathBuf::from(p), self.recovery_passphrase()?));
        }
        let cosigner = self.cosigner().await?;
        let mut out = Vec::new();
        for (path, pass) in files {
            let outcome = lc::settle(&cosigner, &path, &pass).await?;
            out.push(PendingStatus {
                path: path.display().to_string(),
                outcome,
            });
        }
        self.cache.lock().await.clear();
        Ok(out)
    }

    /// A proactive refresh of every share of the wallet (all accounts): the device and
    /// the recovery party (both files must be configured) re-randomize their shares with
    /// the cosigner's. Addresses, public keys and chain codes stay; the old shares and
    /// every presignature become useless. The active party (`role`) asks. The new shares
    /// are stored as pending files, confirmed, then promoted; see `lifecycle` for the
    /// crash safety.
    pub async fn refresh_shares(
        &self,
        progress: Option<Progress>,
    ) -> Result<LifecycleResult, MpcError> {
        let started = std::time::Instant::now();
        let progress: Progress = progress.unwrap_or_else(|| Arc::new(NoProgress));
        let (device, recovery) = tokio::try_join!(self.party(0), self.party(2))?;
        let cosigner = self.cosigner().await?;
        let starter = match self.config.role {
            PartyRole::Recovery => &recovery,
            _ => &device,
        };
        emit(&progress, "refresh", 0, 3, false);
        let plan = lc::open(&cosigner, StartLifecycle::refresh(&starter.party)?).await?;
        let settings = self.settings(self.config.setup_timeout_secs);
        let (pd, pr) = tokio::try_join!(
            lc::run(
                LifecycleRun::start(&device.party, &plan, None)?,
                &settings,
                &progress
            ),
            lc::run(
                LifecycleRun::start(&recovery.party, &plan, None)?,
                &settings,
                &progress
            ),
        )?;
        emit(&progress, "refresh", 1, 3, false);
        let stored = [
            (device.path.clone(), self.config.passphrase.clone(), pd),
            (recovery.path.clone(), self.recovery_passphrase()?, pr),
        ];
        self.finish_lifecycle(&cosigner, &stored, &progress).await?;
        Ok(LifecycleResult {
            kind: plan.kind.as_str().into(),
            wallet_id: device.party.wallet_id().to_string(),
            lifecycle_id: plan.lifecycle_id.clone(),
            epoch: plan.next_epoch(),
            accounts: device.party.accounts(),
            files: vec![
                device.path.display().to_string(),
                recovery.path.display().to_string(),
            ],
            request_id: plan.request_id.clone(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Replaces the device keeping every address: the recovery party (its file must be
    /// configured) and the cosigner rebuild index 0's share for a NEW device (a fresh
    /// identity key) written to `new_path` under `new_passphrase`, then all three
    /// refresh, with new aux info. The old device identity is revoked by the cosigner at
    /// once; its files (`key_share_path`) are left alone: delete them. Afterwards use
    /// `new_path` as the device's key-share file.
    pub async fn replace_device(
        &self,
        new_path: String,
        new_passphrase: String,
        reason: String,
        progress: Option<Progress>,
    ) -> Result<LifecycleResult, MpcError> {
        let started = std::time::Instant::now();
        let progress: Progress = progress.unwrap_or_else(|| Arc::new(NoProgress));
        let new_path = PathBuf::from(new_path);
        self.check_new_device_path(&new_path, &new_passphrase, false)?;
        let recovery = self.party(2).await?;
        let cosigner = self.cosigner().await?;
        let identity = IdentityKey::generate().map_err(|e| MpcError::internal(e.to_string()))?;
        let (device_primes, recovery_primes) = self.load_primes(&progress).await?;
        emit(&progress, "replace-device", 0, 3, false);
        let start = StartLifecycle::replace_device(&recovery.party, &identity, &reason)?;
        let plan = lc::open(&cosigner, start).await?;
        let params = NewDeviceParams::from_recovery(&recovery.party, identity, device_primes)?;
        let settings = self.settings(self.config.setup_timeout_secs);
        let (pn, pr) = tokio::try_join!(
            lc::run(
                LifecycleRun::new_device(params, &plan)?,
                &settings,
                &progress
            ),
            lc::run(
                LifecycleRun::start(&recovery.party, &plan, Some(recovery_primes))?,
                &settings,
                &progress
            ),
        )?;
        emit(&progress, "replace-device", 1, 3, false);
        let label = WalletMeta::load(&recovery.path)
            .map(|m| m.label)
            .unwrap_or_default();
        let meta = WalletMeta {
            format: WALLET_META_FORMAT.into(),
            wallet_id: recovery.party.wallet_id().to_string(),
            party_index: 0,
            cosigner_url: self.config.cosigner_url.clone(),
            label,
            created_at_ms: now_ms(),
        };
        meta.save(&new_path)?;
        let stored = [
            (new_path.clone(), new_passphrase, pn),
            (recovery.path.clone(), self.recovery_passphrase()?, pr),
        ];
        if let Err(e) = self.finish_lifecycle(&cosigner, &stored, &progress).await {
            // No shares for the new device (none written, or discarded): no metadata
            // either, so that the replacement can run again at the same path.
            if !new_path.exists() && !lc::pending_path(&new_path).exists() {
                let _ = std::fs::remove_file(meta_path(&new_path));
            }
            return Err(e);
        }
        Ok(LifecycleResult {
            kind: plan.kind.as_str().into(),
            wallet_id: recovery.party.wallet_id().to_string(),
            lifecycle_id: plan.lifecycle_id.clone(),
            epoch: plan.next_epoch(),
            accounts: recovery.party.accounts(),
            files: vec![
                new_path.display().to_string(),
                recovery.path.display().to_string(),
            ],
            request_id: plan.request_id.clone(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// The recovery party alone (the recovery agent, whose device runs elsewhere: a
    /// browser page) opens a lifecycle session: StartRefresh, or ReplaceDevice with the
    /// new device's proof of possession made by that device. Returns the checked plan,
    /// the cosigner's answer as bytes and, for a replacement, the template the new
    /// device needs; the other party joins with them, then
    /// [`MpcClient::run_recovery_lifecycle`] runs this party's half.
    pub async fn open_recovery_lifecycle(
        &self,
        start: RecoveryLifecycle,
    ) -> Result<OpenedLifecycle, MpcError> {
        let recovery = self.party(2).await?;
        let cosigner = self.cosigner().await?;
        let (step, replace) = match start {
            RecoveryLifecycle::Refresh => (StartLifecycle::refresh(&recovery.party)?, false),
            RecoveryLifecycle::ReplaceDevice(p) => (
                StartLifecycle::replace_device_with_possession(
                    &recovery.party,
                    p.new_device,
                    p.timestamp_ms,
                    p.nonce,
                    p.signature,
                    &p.reason,
                )?,
                true,
            ),
        };
        let (plan, response) = lc::open_with_response(&cosigner, step).await?;
        let template = replace.then(|| NewDeviceTemplate::from_recovery(&recovery.party));
        Ok(OpenedLifecycle {
            plan,
            response,
            template,
        })
    }

    /// What a new device signs to prove possession of `new_device` for a replacement
    /// this recovery party asks at `timestamp_ms` with `nonce`: the auth audience (the
    /// wallet's cosigner identity, hex) and the message.
    pub async fn possession_message(
        &self,
        new_device: PublicIdentity,
        timestamp_ms: u64,
        nonce: &[u8; 16],
    ) -> Result<(String, Vec<u8>), MpcError> {
        let recovery = self.party(2).await?;
        let audience = recovery
            .party
            .bundle()
            .peers
            .get(&wallet_types::COSIGNER)
            .cloned()
            .unwrap_or_default();
        let msg =
            StartLifecycle::possession_message(&recovery.party, new_device, timestamp_ms, nonce)?;
        Ok((audience, msg))
    }

    /// Runs the recovery party's half of `plan` (opened by
    /// [`MpcClient::open_recovery_lifecycle`]) while the other user party runs its own
    /// elsewhere: the sessions, then its pending file stored, confirmed, promoted. A
    /// replacement runs new aux info: give this party's `primes`.
    pub async fn run_recovery_lifecycle(
        &self,
        plan: &LifecyclePlan,
        primes: Option<mpc_core::primes::PrimeSet>,
        progress: Option<Progress>,
    ) -> Result<LifecycleResult, MpcError> {
        let started = std::time::Instant::now();
        let progress: Progress = progress.unwrap_or_else(|| Arc::new(NoProgress));
        let recovery = self.party(2).await?;
        let cosigner = self.cosigner().await?;
        let settings = self.settings(self.config.setup_timeout_secs);
        let step = LifecycleRun::start(&recovery.party, plan, primes)?;
        let pending = lc::run(step, &settings, &progress).await?;
        emit(&progress, plan.kind.as_str(), 1, 3, false);
        let stored = [(recovery.path.clone(), self.recovery_passphrase()?, pending)];
        self.finish_lifecycle(&cosigner, &stored, &progress).await?;
        Ok(LifecycleResult {
            kind: plan.kind.as_str().into(),
            wallet_id: recovery.party.wallet_id().to_string(),
            lifecycle_id: plan.lifecycle_id.clone(),
            epoch: plan.next_epoch(),
            accounts: recovery.party.accounts(),
            files: vec![recovery.path.display().to_string()],
            request_id: plan.request_id.clone(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// The device's half of a refresh the recovery party opened elsewhere (the recovery
    /// agent): `plan` is the cosigner's `LifecycleResponse` bytes it shows, checked here
    /// against the device's shares; then the sessions, the pending file stored,
    /// confirmed, promoted.
    pub async fn join_refresh(
        &self,
        plan: &[u8],
        progress: Option<Progress>,
    ) -> Result<LifecycleResult, MpcError> {
        let started = std::time::Instant::now();
        let progress: Progress = progress.unwrap_or_else(|| Arc::new(NoProgress));
        let device = self.party(0).await?;
        let cosigner = self.cosigner().await?;
        let plan = LifecyclePlan::from_bytes_for_party(
            client_core::lifecycle::LifecycleKind::Refresh,
            plan,
            &device.party,
        )?;
        let settings = self.settings(self.config.setup_timeout_secs);
        let step = LifecycleRun::start(&device.party, &plan, None)?;
        let pending = lc::run(step, &settings, &progress).await?;
        let stored = [(device.path.clone(), self.config.passphrase.clone(), pending)];
        self.finish_lifecycle(&cosigner, &stored, &progress).await?;
        Ok(LifecycleResult {
            kind: plan.kind.as_str().into(),
            wallet_id: device.party.wallet_id().to_string(),
            lifecycle_id: plan.lifecycle_id.clone(),
            epoch: plan.next_epoch(),
            accounts: device.party.accounts(),
            files: vec![device.path.display().to_string()],
            request_id: plan.request_id.clone(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// A NEW device joining a replacement the recovery party opened elsewhere (the
    /// recovery agent): `identity` is the fresh key whose proof of possession the
    /// recovery party sent, `template` and `plan` (the cosigner's `LifecycleResponse`
    /// bytes) what it shows; the new share is written to `new_path` under
    /// `new_passphrase` (pending, confirmed, promoted). Uses no configured key-share
    /// file.
    #[allow(clippy::too_many_arguments)]
    pub async fn join_replacement(
        &self,
        new_path: String,
        new_passphrase: String,
        identity: IdentityKey,
        template: &NewDeviceTemplate,
        plan: &[u8],
        primes: mpc_core::primes::PrimeSet,
        progress: Option<Progress>,
    ) -> Result<LifecycleResult, MpcError> {
        let started = std::time::Instant::now();
        let progress: Progress = progress.unwrap_or_else(|| Arc::new(NoProgress));
        let new_path = PathBuf::from(new_path);
        self.check_new_device_path(&new_path, &new_passphrase, true)?;
        let cosigner = self.cosigner().await?;
        let plan = LifecyclePlan::from_bytes_for_new_device(plan, template, identity.public())?;
        let params = NewDeviceParams::from_template(template, identity, primes)?;
        let settings = self.settings(self.config.setup_timeout_secs);
        let pending = lc::run(
            LifecycleRun::new_device(params, &plan)?,
            &settings,
            &progress,
        )
        .await?;
        let accounts: Vec<AccountInfo> = pending
            .bundle
            .accounts
            .values()
            .map(AccountInfo::from)
            .collect();
        let meta = WalletMeta {
            format: WALLET_META_FORMAT.into(),
            wallet_id: template.wallet_id.clone(),
            party_index: 0,
            cosigner_url: self.config.cosigner_url.clone(),
            label: String::new(),
            created_at_ms: now_ms(),
        };
        meta.save(&new_path)?;
        let stored = [(new_path.clone(), new_passphrase, pending)];
        self.finish_lifecycle(&cosigner, &stored, &progress).await?;
        Ok(LifecycleResult {
            kind: plan.kind.as_str().into(),
            wallet_id: template.wallet_id.clone(),
            lifecycle_id: plan.lifecycle_id.clone(),
            epoch: plan.next_epoch(),
            accounts,
            files: vec![new_path.display().to_string()],
            request_id: plan.request_id.clone(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// The new device's file: a strong passphrase, not one of the configured files
    /// (unless `configured_ok`: a client configured for the new device itself), nothing
    /// there yet; its directory is created.
    fn check_new_device_path(
        &self,
        new_path: &Path,
        passphrase: &str,
        configured_ok: bool,
    ) -> Result<(), MpcError> {
        if passphrase.is_empty() {
            return Err(MpcError::config("the new device's passphrase is empty"));
        }
        if !(self.config.allow_weak_passphrase || self.config.insecure_fast_kdf) {
            mpc_core::keystore::check_passphrase(passphrase).map_err(|e| {
                MpcError::config(format!(
                    "the new device's passphrase: {e} (allow_weak_passphrase overrides)"
                ))
            })?;
        }
        let taken = [Some(self.device_path()), self.recovery_path().ok()];
        if !configured_ok && taken.iter().flatten().any(|p| p == new_path) {
            return Err(MpcError::config(
                "the new device's file must be a new file (the old device's and the recovery \
                 files stay as they are)",
            ));
        }
        for f in [
            new_path.to_path_buf(),
            meta_path(new_path),
            lc::pending_path(new_path),
        ] {
            if f.exists() {
                return Err(MpcError::WalletExists {
                    path: f.display().to_string(),
                });
            }
        }
        if let Some(dir) = new_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
        Ok(())
    }

    /// Stores both parties' pending shares, confirms both, and promotes them once the
    /// cosigner committed. A failed session (the cosigner ended the lifecycle session)
    /// deletes the pending files; any other failure keeps them for
    /// [`MpcClient::resume_lifecycle`].
    async fn finish_lifecycle(
        &self,
        cosigner: &crate::CosignerClient,
        stored: &[(PathBuf, String, PendingShares)],
        progress: &Progress,
    ) -> Result<(), MpcError> {
        let fast = self.config.insecure_fast_kdf;
        for (path, pass, pending) in stored {
            let (path, pass, pending) = (path.clone(), pass.clone(), pending.clone());
            tokio::task::spawn_blocking(move || {
                lc::write_pending(&path, &pending, &pass, kdf(fast))
            })
            .await
            .map_err(|e| MpcError::internal(format!("storage task failed: {e}")))??;
        }
        emit(progress, "pending-stored", 1, 1, true);
        let confirmed = futures_util::future::try_join_all(
            stored
                .iter()
                .map(|(_, _, pending)| lc::confirm(cosigner, pending, progress)),
        )
        .await;
        if let Err(e) = confirmed {
            if e.code() == ErrorCode::SessionFailed {
                for (path, _, _) in stored {
                    lc::discard(path)?;
                }
            }
            return Err(e);
        }
        // Background refills work on the old epoch's pool: let them end first.
        self.wait_refills().await;
        for (path, _, _) in stored {
            lc::promote(path)?;
        }
        self.cache.lock().await.clear();
        emit(progress, "committed", 1, 1, true);
        Ok(())
    }

    /// Opens the files of party 0 or 2, settling a pending file first.
    pub(crate) async fn load_party_files(
        &self,
        path: PathBuf,
        pass: String,
        index: u16,
    ) -> Result<PartyFiles, MpcError> {
        self.settle_before_load(&path, &pass).await;
        // Argon2 takes a second: keep it off the async threads.
        tokio::task::spawn_blocking(move || PartyFiles::load(&path, &pass, index))
            .await
            .map_err(|e| MpcError::internal(format!("loading task failed: {e}")))?
    }
}
