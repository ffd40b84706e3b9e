//! The tokio driver of the core's flows: it performs the effects each step asks for
//! (tonic calls, sessions over the gateway with `mpc-party`'s runner, the pool's files,
//! the clock) and nothing else. The flows themselves live in `client-core`.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use client_core::create::{Persist, RecoveryJob};
use client_core::offline::OfflineStep;
use client_core::refill::RefillStep;
use client_core::{
    CreateParams, CreateStep, CreatedWallet, EnrollParams, EnrollRecoveryJob, EnrollStep,
    Enrollment, Join, JoinParams, JoinStep, Joined, Party, PresignPoolStatus, SessionSpec,
    SignStep, Signed, TakenPresignature,
};
use futures_util::StreamExt;
use gateway_client::{ClientOptions, GatewayClient};
use mpc_core::primes::PrimeSet;
use mpc_core::SessionOutput;
use mpc_party::{PartyError, Transport};
use mpc_wire::PublicIdentity;

use crate::cosigner::CosignerClient;
use crate::error::MpcError;
use crate::pool::PoolDir;
use crate::types::{Progress, ProgressEvent};

/// Milliseconds since the Unix epoch (the driver's clock).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How this client runs sessions.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Gateway URL to use instead of the one the cosigner announces.
    pub gateway_url: Option<String>,
    /// A PEM file of extra CA certificates trusted for an `https://` gateway.
    pub ca_file: Option<String>,
    /// Deadline of each session.
    pub timeout: Duration,
}

pub(crate) fn emit(progress: &Progress, stage: &str, done: u32, total: u32, finished: bool) {
    progress.on_progress(ProgressEvent {
        stage: stage.into(),
        party: None,
        account_id: None,
        done,
        total,
        finished,
    });
}

/// Runs one session of this party over the gateway (its CPU work on its own thread).
pub(crate) async fn run_spec(
    spec: SessionSpec,
    settings: &SessionSettings,
    progress: &Progress,
) -> Result<SessionOutput, PartyError> {
    let room = spec.room().clone();
    let url = settings
        .gateway_url
        .clone()
        .unwrap_or_else(|| room.gateway_url.clone());
    if url.trim().is_empty() {
        return Err(PartyError::Gateway(
            "the cosigner announced no gateway URL; set gateway_url".into(),
        ));
    }
    let opts = ClientOptions {
        ca_file: settings.ca_file.as_ref().map(PathBuf::from),
        ..ClientOptions::default()
    };
    let gateway = GatewayClient::with_options(&url, opts)
        .map_err(|e| PartyError::Gateway(format!("{url}: {e}")))?;
    let transport = Transport {
        gateway,
        token: room.token().map(str::to_string),
        room: room.room,
        timeout: settings.timeout,
        stop: None,
    };
    let (stage, party, account) = (
        spec.stage(),
        spec.me(),
        spec.account_id().map(str::to_string),
    );
    let progress = Arc::clone(progress);
    mpc_party::drive(
        transport,
        move || spec.open(),
        move |p| {
            progress.on_progress(ProgressEvent {
                stage: stage.into(),
                party: Some(party),
                account_id: account.clone(),
                done: u32::from(p.round.min(p.total_rounds)),
                total: u32::from(p.total_rounds),
                finished: p.finished,
            })
        },
    )
    .await
}

/// This party's half of a signing by the device and the recovery party without the
/// cosigner (the core's [`client_core::PairSign`]), in a room the recovery agent hosts.
pub async fn pair_sign(
    party: &Party,
    params: client_core::PairSignParams,
    settings: &SessionSettings,
    progress: &Progress,
) -> Result<client_core::SignedResult, MpcError> {
    let started = std::time::Instant::now();
    let mut step = client_core::PairSign::start(party, params)?;
    loop {
        step = match step {
            client_core::PairStep::RunSession(run) => {
                let (spec, running) = run.start();
                running.finished(run_spec(spec, settings, progress).await)?
            }
            client_core::PairStep::Done(mut r) => {
                r.elapsed_ms = started.elapsed().as_millis() as u64;
                return Ok(*r);
            }
        };
    }
}

/// One party's aux info and DKGs (the core's [`Join`]), sessions over the gateway.
pub async fn join(
    params: JoinParams,
    settings: &SessionSettings,
    progress: &Progress,
) -> Result<Joined, MpcError> {
    let mut step = Join::start(params)?;
    loop {
        step = match step {
            JoinStep::RunSession(run) => {
                let (spec, running) = run.start();
                running.finished(run_spec(spec, settings, progress).await)?
            }
            JoinStep::Done(j) => return Ok(j),
        };
    }
}

/// The effects of a wallet creation that depend on where the parties live and what
/// they store. [`crate::MpcClient::create_wallet`] runs the recovery party in this
/// process; a browser-like caller has a recovery agent run it.
pub trait CreateEffects: Send {
    /// The recovery party's public identity.
    fn recovery_identity(
        &mut self,
    ) -> impl Future<Output = Result<PublicIdentity, MpcError>> + Send;
    /// The device's safe primes.
    fn device_primes(&mut self) -> impl Future<Output = Result<PrimeSet, MpcError>> + Send;
    /// Starts the recovery party on `job` (it runs alongside the device's sessions).
    fn start_recovery(
        &mut self,
        job: RecoveryJob,
    ) -> impl Future<Output = Result<(), MpcError>> + Send;
    /// Waits for the recovery party; its public keys by account id.
    fn await_recovery(
        &mut self,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, MpcError>> + Send;
    /// Stores the device's bundle durably.
    fn persist(&mut self, p: &Persist) -> impl Future<Output = Result<(), MpcError>> + Send;
}

/// Creates a wallet as the device (the core's [`client_core::Create`]).
pub async fn create_wallet(
    cosigner: &CosignerClient,
    params: CreateParams,
    effects: &mut impl CreateEffects,
    settings: &SessionSettings,
    progress: &Progress,
) -> Result<CreatedWallet, MpcError> {
    let step = client_core::Create::start(params)?;
    drive_create(step, cosigner, effects, settings, progress).await
}

/// Creates a wallet as the device from its enrollment (the core's
/// [`client_core::Create::from_enrollment`]): the keygens only. `effects` starts the
/// recovery party on a [`RecoveryJob`] with `enrollment_id` set (it joins with its own
/// enrollment); [`CreateEffects::recovery_identity`] and
/// [`CreateEffects::device_primes`] are not called.
pub async fn create_wallet_from_enrollment(
    cosigner: &CosignerClient,
    params: CreateParams,
    enrollment: Enrollment,
    effects: &mut impl CreateEffects,
    settings: &SessionSettings,
    progress: &Progress,
) -> Result<CreatedWallet, MpcError> {
    let step = client_core::Create::from_enrollment(params, enrollment)?;
    drive_create(step, cosigner, effects, settings, progress).await
}

async fn drive_create(
    mut step: CreateStep,
    cosigner: &CosignerClient,
    effects: &mut impl CreateEffects,
    settings: &SessionSettings,
    progress: &Progress,
) -> Result<CreatedWallet, MpcError> {
    loop {
        step = match step {
            CreateStep::CallCosigner(call) => {
                let confirm = call.method() == client_core::CosignerMethod::ConfirmWallet;
                if confirm {
                    emit(progress, "confirm", 0, 1, false);
                }
                let (req, awaiting) = call.send(now_ms())?;
                awaiting.reply(cosigner.call(req).await)?
            }
            CreateStep::RecoveryIdentity(r) => r.provide(effects.recovery_identity().await?)?,
            CreateStep::Primes(p) => p.provide(effects.device_primes().await?)?,
            CreateStep::StartRecovery(s) => {
                effects.start_recovery(s.job().clone()).await?;
                s.started()?
            }
            CreateStep::RunSession(run) => {
                let (spec, running) = run.start();
                running.finished(run_spec(spec, settings, progress).await)?
            }
            CreateStep::AwaitRecovery(a) => a.finished(effects.await_recovery().await?)?,
            CreateStep::Persist(p) => {
                effects.persist(&p).await?;
                p.persisted()?
            }
            CreateStep::Wait(w) => {
                tokio::time::sleep(Duration::from_millis(w.millis())).await;
                w.done()?
            }
            CreateStep::Done(created) => {
                emit(progress, "confirm", 1, 1, true);
                return Ok(created);
            }
        };
    }
}

/// The effects of a device enrollment that depend on where the parties live and what
/// they store. [`crate::MpcClient::enroll_device`] runs the recovery party in this
/// process.
pub trait EnrollEffects: Send {
    /// The recovery party's public identity.
    fn recovery_identity(
        &mut self,
    ) -> impl Future<Output = Result<PublicIdentity, MpcError>> + Send;
    /// The device's safe primes.
    fn device_primes(&mut self) -> impl Future<Output = Result<PrimeSet, MpcError>> + Send;
    /// Starts the recovery party on `job` (it joins the aux-info room alongside the
    /// device's session).
    fn start_recovery(
        &mut self,
        job: EnrollRecoveryJob,
    ) -> impl Future<Output = Result<(), MpcError>> + Send;
    /// Waits for the recovery party to finish and store its enrollment.
    fn await_recovery(&mut self) -> impl Future<Output = Result<(), MpcError>> + Send;
    /// Stores the device's enrollment durably (encrypted).
    fn persist(
        &mut self,
        enrollment: &Enrollment,
    ) -> impl Future<Output = Result<(), MpcError>> + Send;
}

/// Enrolls the device (the core's [`client_core::Enroll`]): aux info ahead of wallet
/// creation. Progress: `primes` (from the effects), `enroll` (0/1 at the EnrollDevice
/// call, 1/1 when done), `aux-info` rounds of the device's session.
pub async fn enroll_device(
    cosigner: &CosignerClient,
    params: EnrollParams,
    effects: &mut impl EnrollEffects,
    settings: &SessionSettings,
    progress: &Progress,
) -> Result<Enrollment, MpcError> {
    let mut step = client_core::Enroll::start(params)?;
    loop {
        step = match step {
            EnrollStep::CallCosigner(call) => {
                if call.method() == client_core::CosignerMethod::EnrollDevice {
                    emit(progress, "enroll", 0, 1, false);
                }
                let (req, awaiting) = call.send(now_ms())?;
                awaiting.reply(cosigner.call(req).await)?
            }
            EnrollStep::RecoveryIdentity(r) => r.provide(effects.recovery_identity().await?)?,
            EnrollStep::Primes(p) => p.provide(effects.device_primes().await?)?,
            EnrollStep::StartRecovery(s) => {
                effects.start_recovery(s.job().clone()).await?;
                s.started()?
            }
            EnrollStep::RunSession(run) => {
                let (spec, running) = run.start();
                running.finished(run_spec(spec, settings, progress).await)?
            }
            EnrollStep::AwaitRecovery(a) => {
                effects.await_recovery().await?;
                a.finished()?
            }
            EnrollStep::Persist(p) => {
                effects.persist(p.enrollment()).await?;
                p.persisted()?
            }
            EnrollStep::Done(enrollment) => {
                emit(progress, "enroll", 1, 1, true);
                return Ok(enrollment);
            }
        };
    }
}

/// Signs as `party` (the core's [`client_core::Sign`]): the fast path from `pool`, or
/// a signing session, aborted if the cosigner stops answering its health checks.
/// `bitcoin` names the PSBT input of a [`wallet_types::PayloadKind::BitcoinPsbtInput`].
#[allow(clippy::too_many_arguments)] // the flow's inputs and the run's settings
pub(crate) async fn sign(
    cosigner: &CosignerClient,
    party: &Party,
    pool: &PoolDir,
    params: client_core::SignParams,
    bitcoin: Option<client_core::BitcoinInput>,
    settings: &SessionSettings,
    progress: &Progress,
) -> Result<Signed, MpcError> {
    let started = std::time::Instant::now();
    // The presignature this signature took, if any: once the attempt is over (either
    // way) it is no longer in flight, so the next refill may release the cosigner's
    // copy at once (e.g. after a policy refusal, which leaves it unused there).
    let mut taken_id: Option<(String, Vec<u16>, String)> = None;
    let out = sign_steps(
        cosigner,
        party,
        pool,
        (params, bitcoin),
        settings,
        progress,
        &mut taken_id,
    )
    .await;
    if let Some((account, signers, id)) = taken_id {
        if let Err(e) = pool.settle(&account, &signers, &id) {
            tracing::warn!(presignature_id = %id, error = %e, "cannot mark a used presignature settled");
        }
    }
    let mut signed = out?;
    signed.result.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(signed)
}

async fn sign_steps(
    cosigner: &CosignerClient,
    party: &Party,
    pool: &PoolDir,
    (params, bitcoin): (client_core::SignParams, Option<client_core::BitcoinInput>),
    settings: &SessionSettings,
    progress: &Progress,
    taken_id: &mut Option<(String, Vec<u16>, String)>,
) -> Result<Signed, MpcError> {
    let mut step = client_core::Sign::start_with(party, params, bitcoin)?;
    loop {
        step = match step {
            SignStep::TakePresignature(take) => {
                let taken = pool
                    .take_oldest(&take.pool(), take.signers())?
                    .map(|(id, plaintext)| TakenPresignature { id, plaintext });
                if let Some(t) = &taken {
                    *taken_id = Some((take.pool(), take.signers().to_vec(), t.id.clone()));
                }
                take.taken(taken)?
            }
            SignStep::CallCosigner(call) => {
                let (req, awaiting) = call.send(now_ms())?;
                awaiting.reply(cosigner.call(req).await)?
            }
            SignStep::RunSession(run) => {
                let (spec, running) = run.start();
                let sid = spec.session_id().to_string();
                tokio::select! {
                    out = run_spec(spec, settings, progress) => running.finished(out)?,
                    e = cosigner.watch(Duration::from_secs(1), 3) => {
                        return Err(MpcError::CosignerUnavailable {
                            reason: format!(
                                "the cosigner stopped responding during signing session {sid} ({e}); nothing was signed, try again"
                            ),
                        })
                    }
                }
            }
            SignStep::Done(signed) => {
                for (id, why) in &signed.fast_path.discarded {
                    tracing::warn!(presignature_id = %id, reason = ?why, "presignature discarded");
                }
                return Ok(signed);
            }
        };
    }
}

/// Which pool a refill fills, how far, how fast.
pub(crate) struct PoolJob<'a> {
    pub pool: Arc<PoolDir>,
    pub account_id: &'a str,
    /// The derivation path of the pool (`m`: the root).
    pub path: &'a str,
    /// `None`: only report the status.
    pub target: Option<u32>,
    /// Sessions run at once.
    pub concurrency: u32,
}

/// Refills (or, with no target, reports) the pool of an account (the core's
/// [`client_core::Refill`]), running at most `concurrency` sessions at once.
pub(crate) async fn refill(
    cosigner: &CosignerClient,
    party: &Party,
    job: PoolJob<'_>,
    settings: &SessionSettings,
    progress: &Progress,
) -> Result<PresignPoolStatus, MpcError> {
    let started = std::time::Instant::now();
    let PoolJob {
        pool,
        account_id,
        path,
        target,
        concurrency,
    } = job;
    let mut step = match target {
        Some(t) => client_core::Refill::start_at(party, account_id, path, t)?,
        None => client_core::Refill::status_at(party, account_id, path)?,
    };
    loop {
        step = match step {
            RefillStep::CallCosigner(call) => {
                let (req, awaiting) = call.send(now_ms())?;
                awaiting.reply(cosigner.call(req).await)?
            }
            RefillStep::ListPresignatures(list) => {
                let ids = pool.list(&list.pool(), list.signers())?;
                let in_flight = pool.in_flight(
                    &list.pool(),
                    list.signers(),
                    Duration::from_millis(client_core::refill::IN_FLIGHT_MS),
                )?;
                list.listed(ids, in_flight)?
            }
            RefillStep::DiscardPresignatures(d) => {
                let mut n = 0;
                for id in d.ids() {
                    if pool.take(&d.pool(), d.signers(), id)?.is_some() {
                        n += 1;
                    }
                }
                d.discarded(n)?
            }
            RefillStep::RunPresigns(mut batch) => {
                let outcomes: Vec<_> = futures_util::stream::iter(batch.jobs())
                    .map(|job| {
                        let pool = Arc::clone(&pool);
                        async move {
                            let (spec, end) = job.start();
                            let store = match end.finished(run_spec(spec, settings, progress).await)
                            {
                                Ok(s) => s,
                                Err(outcome) => return outcome,
                            };
                            let put = {
                                let (a, s, id) =
                                    (store.pool.clone(), store.signers.clone(), store.id.clone());
                                let plain = store.plaintext.clone();
                                tokio::task::spawn_blocking(move || pool.put(&a, &s, &id, &plain))
                                    .await
                                    .map_err(|e| {
                                        MpcError::internal(format!("pool task failed: {e}"))
                                    })
                                    .and_then(|r| r)
                            };
                            store.stored(put)
                        }
                    })
                    .buffer_unordered(concurrency.max(1) as usize)
                    .collect()
                    .await;
                for o in outcomes {
                    if let Some(e) = o.error() {
                        tracing::warn!(error = %e, "a presignature session failed");
                    }
                    batch.report(o);
                }
                batch.done()?
            }
            RefillStep::Wait(w) => {
                tokio::time::sleep(Duration::from_millis(w.millis())).await;
                w.done()?
            }
            RefillStep::Done(mut status) => {
                status.elapsed_ms = started.elapsed().as_millis() as u64;
                return Ok(status);
            }
        };
    }
}

/// A wallet-control request (the core's [`client_core::Control`]): one call.
pub(crate) async fn control(
    cosigner: &CosignerClient,
    party: &Party,
    action: client_core::ControlAction,
) -> Result<client_core::WalletControls, MpcError> {
    let mut step = client_core::Control::start(party, action)?;
    loop {
        step = match step {
            client_core::ControlStep::CallCosigner(call) => {
                let (req, awaiting) = call.send(now_ms())?;
                awaiting.reply(cosigner.call(req).await)?
            }
            client_core::ControlStep::Done(c) => return Ok(c),
        };
    }
}

/// Signs with both user parties in this process (the core's
/// [`client_core::OfflineSign`]), the sessions on a blocking thread.
pub(crate) async fn offline_sign(
    device: &Party,
    recovery: &Party,
    params: client_core::OfflineParams,
) -> Result<client_core::SignedResult, MpcError> {
    let started = std::time::Instant::now();
    let mut step = client_core::OfflineSign::start(device, recovery, params)?;
    loop {
        step = match step {
            OfflineStep::RunLocal(run) => {
                let (sessions, flow) = run.start();
                let out = tokio::task::spawn_blocking(move || {
                    let sessions = sessions.open().map_err(|e| (wallet_types::DEVICE, e))?;
                    mpc_core::local::run_sessions(sessions, None)
                })
                .await
                .map_err(|e| MpcError::internal(format!("signing task failed: {e}")))?;
                flow.finished(out)?
            }
            OfflineStep::Done(mut r) => {
                r.elapsed_ms = started.elapsed().as_millis() as u64;
                return Ok(r);
            }
        };
    }
}
