//! Wallet-creation jobs: their state and progress as the HTTP API reports them, the
//! limit on concurrent jobs, wallet-id reservations, and expiry of finished jobs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use serde::Serialize;

use crate::error::{ApiError, ErrorBody};

/// Most jobs (running and finished) remembered at once.
pub const MAX_REMEMBERED_JOBS: usize = 256;

/// `running` | `done` | `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// In progress.
    Running,
    /// The share is durably written.
    Done,
    /// Failed; nothing was written.
    Failed,
}

/// Where a job is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobProgress {
    /// `queued`, `primes`, `aux-info`, `keygen`, `saving`, `done`, `failed`.
    pub stage: String,
    /// 0..=100.
    pub percent: u8,
}

/// The answer of `GET /v1/jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobView {
    /// State.
    pub state: JobState,
    /// Progress.
    pub progress: JobProgress,
    /// Public keys by account id (compressed SEC1 hex), when done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_keys: Option<BTreeMap<String, String>>,
    /// Why it failed, when failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

struct Job {
    wallet_id: String,
    view: JobView,
    finished_at: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<String, Job>,
    /// Wallet ids with a running job.
    in_flight: HashSet<String>,
}

/// The job registry.
pub struct Jobs {
    inner: Mutex<Inner>,
    max_running: usize,
    ttl: Duration,
}

impl Jobs {
    /// A registry allowing `max_running` concurrent jobs and keeping finished ones for
    /// `ttl`.
    pub fn new(max_running: usize, ttl: Duration) -> Self {
        Jobs {
            inner: Mutex::new(Inner::default()),
            max_running,
            ttl,
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, ApiError> {
        self.inner
            .lock()
            .map_err(|_| ApiError::Internal("job registry poisoned".into()))
    }

    /// Registers a new running job for `wallet_id`. `held` says whether the wallet's
    /// files already exist (checked under the registry lock, so two requests for the
    /// same wallet cannot both start).
    pub fn start(&self, wallet_id: &str, held: impl Fn() -> bool) -> Result<String, ApiError> {
        let mut inner = self.lock()?;
        self.purge(&mut inner);
        if inner.in_flight.contains(wallet_id) || held() {
            return Err(ApiError::WalletExists(wallet_id.to_string()));
        }
        if inner.in_flight.len() >= self.max_running {
            return Err(ApiError::TooManyJobs(self.max_running));
        }
        if inner.jobs.len() >= MAX_REMEMBERED_JOBS {
            return Err(ApiError::TooManyJobs(self.max_running));
        }
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        let id = hex::encode(id);
        inner.in_flight.insert(wallet_id.to_string());
        inner.jobs.insert(
            id.clone(),
            Job {
                wallet_id: wallet_id.to_string(),
                view: JobView {
                    state: JobState::Running,
                    progress: JobProgress {
                        stage: "queued".into(),
                        percent: 0,
                    },
                    public_keys: None,
                    error: None,
                },
                finished_at: None,
            },
        );
        Ok(id)
    }

    /// Updates the progress of a running job (percent never goes back).
    pub fn progress(&self, id: &str, stage: &str, percent: u8) {
        if let Ok(mut inner) = self.inner.lock() {
            if let Some(j) = inner.jobs.get_mut(id) {
                if j.view.state == JobState::Running {
                    j.view.progress.stage = stage.to_string();
                    j.view.progress.percent = percent.min(99).max(j.view.progress.percent);
                }
            }
        }
    }

    /// Marks a job done (after its files are written).
    pub fn finish(&self, id: &str, public_keys: BTreeMap<String, String>) {
        self.end(id, |v| {
            v.state = JobState::Done;
            v.progress = JobProgress {
                stage: "done".into(),
                percent: 100,
            };
            v.public_keys = Some(public_keys);
        });
    }

    /// Marks an enrollment job done (it has no public keys).
    pub fn finish_enrollment(&self, id: &str) {
        self.end(id, |v| {
            v.state = JobState::Done;
            v.progress = JobProgress {
                stage: "done".into(),
                percent: 100,
            };
        });
    }

    /// Marks a job failed.
    pub fn fail(&self, id: &str, error: ErrorBody) {
        self.end(id, |v| {
            v.state = JobState::Failed;
            v.progress.stage = "failed".into();
            v.error = Some(error);
        });
    }

    fn end(&self, id: &str, f: impl FnOnce(&mut JobView)) {
        if let Ok(mut inner) = self.inner.lock() {
            let wallet = match inner.jobs.get_mut(id) {
                Some(j) => {
                    f(&mut j.view);
                    j.finished_at = Some(Instant::now());
                    j.wallet_id.clone()
                }
                None => return,
            };
            inner.in_flight.remove(&wallet);
        }
    }

    /// The view of a job.
    pub fn get(&self, id: &str) -> Result<JobView, ApiError> {
        let mut inner = self.lock()?;
        self.purge(&mut inner);
        inner
            .jobs
            .get(id)
            .map(|j| j.view.clone())
            .ok_or_else(|| ApiError::UnknownJob(truncate(id)))
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.inner.lock().map(|i| i.in_flight.len()).unwrap_or(0)
    }

    /// Drops finished jobs older than the TTL.
    pub fn expire(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            self.purge(&mut inner);
        }
    }

    fn purge(&self, inner: &mut Inner) {
        let ttl = self.ttl;
        inner
            .jobs
            .retain(|_, j| j.finished_at.is_none_or(|t| t.elapsed() < ttl));
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err() -> ErrorBody {
        ErrorBody {
            code: "x".into(),
            message: "y".into(),
        }
    }

    #[test]
    fn lifecycle_and_limits() {
        // Finished jobs are kept for an hour: nothing here races the clock.
        let jobs = Jobs::new(2, Duration::from_secs(3600));
        let a = jobs.start("w1", || false).unwrap();
        assert_eq!(
            jobs.start("w1", || false).unwrap_err(),
            ApiError::WalletExists("w1".into())
        );
        assert!(matches!(
            jobs.start("held", || true),
            Err(ApiError::WalletExists(_))
        ));
        let b = jobs.start("w2", || false).unwrap();
        assert!(matches!(
            jobs.start("w3", || false),
            Err(ApiError::TooManyJobs(2))
        ));
        jobs.progress(&a, "aux-info", 40);
        jobs.progress(&a, "aux-info", 30);
        assert_eq!(jobs.get(&a).unwrap().progress.percent, 40);
        jobs.progress(&a, "keygen", 100);
        assert_eq!(jobs.get(&a).unwrap().progress.percent, 99);
        jobs.fail(&b, err());
        assert_eq!(jobs.get(&b).unwrap().state, JobState::Failed);
        // The failed wallet may be retried.
        let c = jobs.start("w2", || false).unwrap();
        jobs.finish(&a, BTreeMap::from([("acct".into(), "02ab".into())]));
        let v = jobs.get(&a).unwrap();
        assert_eq!(v.state, JobState::Done);
        assert_eq!(v.progress.percent, 100);
        assert_eq!(jobs.running(), 1);
        let json = serde_json::to_value(jobs.get(&c).unwrap()).unwrap();
        assert_eq!(json["state"], "running");
        assert!(json.get("public_keys").is_none() && json.get("error").is_none());
    }

    #[test]
    fn finished_jobs_expire_running_ones_never() {
        // A zero TTL: every finished job is past it at once, whatever the clock says;
        // running jobs are never purged.
        let jobs = Jobs::new(2, Duration::ZERO);
        let a = jobs.start("w1", || false).unwrap();
        let b = jobs.start("w2", || false).unwrap();
        jobs.finish(&a, BTreeMap::from([("acct".into(), "02ab".into())]));
        jobs.fail(&b, err());
        let c = jobs.start("w3", || false).unwrap();
        assert!(matches!(jobs.get(&a), Err(ApiError::UnknownJob(_))));
        assert!(matches!(jobs.get(&b), Err(ApiError::UnknownJob(_))));
        jobs.expire();
        assert_eq!(jobs.get(&c).unwrap().state, JobState::Running);
        assert_eq!(jobs.running(), 1);
    }
}
