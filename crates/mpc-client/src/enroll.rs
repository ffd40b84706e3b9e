//! Device enrollment natively: both user parties in this process, like wallet creation
//! ([`MpcClient::enroll_device`]), and the stored enrollments a creation uses
//! ([`MpcClient::create_wallet_with`]).

use std::path::PathBuf;
use std::sync::Arc;

use client_core::{EnrollParams, EnrollRecoveryJob, Enrollment, Joined};
use mpc_core::primes::PrimeSet;
use mpc_wire::{IdentityKey, PublicIdentity};
use wallet_types::{DEVICE, RECOVERY};

use crate::driver::{self, EnrollEffects, SessionSettings};
use crate::enrollments::{self, enrollment_path, EnrollmentInfo};
use crate::error::MpcError;
use crate::types::{NoProgress, Progress};
use crate::MpcClient;

/// Both parties' stored enrollments, decrypted.
pub(crate) struct StoredEnrollments {
    pub device: Enrollment,
    pub recovery: Enrollment,
    /// Their files (device, recovery).
    pub files: [PathBuf; 2],
}

impl MpcClient {
    /// Enrolls this device with the cosigner ahead of wallet creation: generates the
    /// device's and the recovery party's identity keys, registers them
    /// (`EnrollDevice`, with the configured registration credential, consumed here),
    /// runs both parties' aux info (the minutes of Paillier work: primes, then the
    /// aux-info protocol; both parties in this process) and stores each party's
    /// enrollment encrypted under its passphrase in an `enrollments/` directory next
    /// to its key-share file. A later [`Self::create_wallet_with`] with the enrollment
    /// id runs only the DKGs.
    ///
    /// Progress: `primes` (8 steps, when generated), `enroll` (0/1 at the cosigner
    /// call), `aux-info` (rounds, per party), `enroll` 1/1 when stored.
    pub async fn enroll_device(
        &self,
        progress: Option<Progress>,
    ) -> Result<EnrollmentInfo, MpcError> {
        let progress: Progress = progress.unwrap_or_else(|| Arc::new(NoProgress));
        let (device_path, recovery_path, recovery_pass) = self.prepare_new_files()?;
        let cosigner = self.cosigner().await?;
        let settings = self.settings(self.config.setup_timeout_secs);
        let mut effects = LocalEnrollment {
            client: self,
            progress: Arc::clone(&progress),
            recovery_key: IdentityKey::generate().map_err(|e| MpcError::internal(e.to_string()))?,
            recovery_primes: None,
            task: None,
            settings: settings.clone(),
            files: [
                (device_path.clone(), self.config.passphrase.clone()),
                (recovery_path, recovery_pass),
            ],
            saved: Vec::new(),
        };
        let params = EnrollParams {
            registration_credential: self.config.registration_credential.clone(),
        };
        let enrollment =
            driver::enroll_device(&cosigner, params, &mut effects, &settings, &progress).await?;
        effects.saved.clear();
        Ok(EnrollmentInfo {
            path: enrollment_path(&device_path, &enrollment.enrollment_id, DEVICE)?
                .display()
                .to_string(),
            enrollment_id: enrollment.enrollment_id,
            expires_at_ms: enrollment.expires_at_ms,
        })
    }

    /// The device's stored enrollments (listed without decrypting), soonest to expire
    /// first.
    pub fn list_enrollments(&self) -> Result<Vec<EnrollmentInfo>, MpcError> {
        enrollments::list_enrollments(&self.device_path())
    }

    /// Loads both parties' enrollment `id` (each under its passphrase) and checks that
    /// they belong together.
    pub(crate) async fn load_enrollments(&self, id: &str) -> Result<StoredEnrollments, MpcError> {
        let device_file = enrollment_path(&self.device_path(), id, DEVICE)?;
        let recovery_file = enrollment_path(&self.recovery_path()?, id, RECOVERY)?;
        let (dp, rp) = (self.config.passphrase.clone(), self.recovery_passphrase()?);
        let (df, rf) = (device_file.clone(), recovery_file.clone());
        let (device, recovery) = tokio::task::spawn_blocking(move || {
            Ok::<_, MpcError>((
                enrollments::load_enrollment(&df, &dp, DEVICE)?,
                enrollments::load_enrollment(&rf, &rp, RECOVERY)?,
            ))
        })
        .await
        .map_err(|e| MpcError::internal(format!("loading task failed: {e}")))??;
        if device.enrollment_id != id
            || recovery.enrollment_id != id
            || device.recovery_identity() != recovery.recovery_identity()
            || device.device_identity() != recovery.device_identity()
            || device.cosigner_identity() != recovery.cosigner_identity()
        {
            return Err(MpcError::corrupt(
                device_file.display(),
                format!(
                    "the device's and the recovery party's enrollment files of {id} do not belong together"
                ),
            ));
        }
        if device.is_expired(crate::driver::now_ms()) {
            return Err(MpcError::EnrollmentUnusable {
                enrollment_id: id.to_string(),
                code: wallet_types::ErrorCode::NotFound,
                reason: "expired".into(),
            });
        }
        Ok(StoredEnrollments {
            device,
            recovery,
            files: [device_file, recovery_file],
        })
    }
}

/// Enrollment with both user parties in this process: the recovery party is a
/// [`client_core::Join`] of the aux-info room on a tokio task.
struct LocalEnrollment<'a> {
    client: &'a MpcClient,
    progress: Progress,
    recovery_key: IdentityKey,
    recovery_primes: Option<PrimeSet>,
    task: Option<(
        tokio::task::JoinHandle<Result<Joined, MpcError>>,
        EnrollRecoveryJob,
    )>,
    settings: SessionSettings,
    /// (key-share path, passphrase) of the device and the recovery party.
    files: [(PathBuf, String); 2],
    /// Enrollment files written so far (removed again if the enrollment fails).
    saved: Vec<PathBuf>,
}

impl Drop for LocalEnrollment<'_> {
    fn drop(&mut self) {
        if let Some((t, _)) = self.task.take() {
            t.abort();
        }
        // An enrollment that failed half-way is of no use.
        for f in self.saved.drain(..) {
            let _ = enrollments::remove_enrollment(&f);
        }
    }
}

impl LocalEnrollment<'_> {
    async fn save(&mut self, which: usize, e: &Enrollment) -> Result<(), MpcError> {
        let (share, pass) = self.files[which].clone();
        let path = enrollment_path(&share, &e.enrollment_id, e.party_index)?;
        let (p, e, fast) = (
            path.clone(),
            e.clone(),
            self.client.config.insecure_fast_kdf,
        );
        tokio::task::spawn_blocking(move || enrollments::save_enrollment(&p, &pass, fast, &e))
            .await
            .map_err(|e| MpcError::internal(format!("saving task failed: {e}")))??;
        self.saved.push(path);
        Ok(())
    }
}

impl EnrollEffects for LocalEnrollment<'_> {
    async fn recovery_identity(&mut self) -> Result<PublicIdentity, MpcError> {
        Ok(self.recovery_key.public())
    }

    async fn device_primes(&mut self) -> Result<PrimeSet, MpcError> {
        let (device, recovery) = self.client.load_primes(&self.progress).await?;
        self.recovery_primes = Some(recovery);
        Ok(device)
    }

    async fn start_recovery(&mut self, job: EnrollRecoveryJob) -> Result<(), MpcError> {
        let primes = self
            .recovery_primes
            .take()
            .ok_or_else(|| MpcError::internal("no recovery primes"))?;
        let params = job.join_params(self.recovery_key.clone(), primes)?;
        let (settings, progress) = (self.settings.clone(), Arc::clone(&self.progress));
        let task = tokio::spawn(async move { driver::join(params, &settings, &progress).await });
        self.task = Some((task, job));
        Ok(())
    }

    async fn await_recovery(&mut self) -> Result<(), MpcError> {
        let (task, job) = self
            .task
            .take()
            .ok_or_else(|| MpcError::internal("the recovery party was not started"))?;
        let joined = task
            .await
            .map_err(|e| MpcError::internal(format!("recovery task failed: {e}")))??;
        let enrollment = job.enrollment(&joined)?;
        self.save(1, &enrollment).await
    }

    async fn persist(&mut self, enrollment: &Enrollment) -> Result<(), MpcError> {
        self.save(0, enrollment).await
    }
}
