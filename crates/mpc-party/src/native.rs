//! The tokio runner: a [`PartySession`] on its own thread, the gateway on the runtime.

use std::future::{ready, Future};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use gateway_client::GatewayClient;
use mpc_core::session::Progress;
use mpc_core::{Session, SessionError, SessionOutput};
use mpc_wire::{IdentityKey, Roster, SessionId, StopNotice};
use tokio::sync::{mpsc, watch};

use crate::driver::{run, Event, PartyIo};
use crate::party::{PartyError, PartySession};
use crate::relay::Stall;

/// The receiving end of [`stop_signal`]: given to sessions ([`PartyContext::stop`],
/// [`Transport::stop`]) that a host may end early.
#[derive(Clone, Debug)]
pub struct StopSignal(watch::Receiver<Option<StopNotice>>);

/// The sending end of [`stop_signal`]: held by the host (a server draining).
#[derive(Debug)]
pub struct StopSender(watch::Sender<Option<StopNotice>>);

/// A way for a host to end every running session that holds the signal: each posts
/// `notice` as its last envelope (so its peers fail at once with the notice's code,
/// e.g. `cosigner_unavailable`: retry) and returns [`PartyError::Stopped`]. Sessions
/// started after the stop are stopped at once.
pub fn stop_signal() -> (StopSender, StopSignal) {
    let (tx, rx) = watch::channel(None);
    (StopSender(tx), StopSignal(rx))
}

impl StopSender {
    /// Stops every session holding the signal, with `notice`.
    pub fn stop(&self, notice: StopNotice) {
        self.0.send_replace(Some(notice));
    }
}

impl StopSignal {
    /// Waits until the host stops the sessions; never returns when it cannot anymore.
    async fn stopped(&mut self) -> StopNotice {
        loop {
            if let Some(n) = self.0.borrow_and_update().clone() {
                return n;
            }
            if self.0.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Waits for `stop`, forever when there is none.
async fn stop_requested(stop: &mut Option<StopSignal>) -> StopNotice {
    match stop {
        Some(s) => s.stopped().await,
        None => std::future::pending().await,
    }
}

/// How long a stopped session's thread may take to post its stop notice (it may be
/// inside a protocol step) before the runner returns without it.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where a session's messages travel: a room on the gateway.
#[derive(Clone)]
pub struct Transport {
    /// Gateway client.
    pub gateway: GatewayClient,
    /// Room on the gateway (one room per session).
    pub room: String,
    /// Room token, when the gateway requires one.
    pub token: Option<String>,
    /// Deadline for the whole session.
    pub timeout: Duration,
    /// Lets the host end the session early ([`stop_signal`]).
    pub stop: Option<StopSignal>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("room", &self.room)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Where and as whom a session runs (the transport plus the party's identity).
#[derive(Clone)]
pub struct PartyContext {
    /// Gateway client.
    pub gateway: GatewayClient,
    /// Room on the gateway (one room per session).
    pub room: String,
    /// Room token, when the gateway requires one.
    pub token: Option<String>,
    /// Session id bound into every envelope (all parties use the same).
    pub session_id: SessionId,
    /// This party's keygen index.
    pub me: u16,
    /// This party's identity key.
    pub identity: IdentityKey,
    /// Identities of all parties of the session (including this one).
    pub roster: Roster,
    /// Deadline for the whole session.
    pub timeout: Duration,
    /// Lets the host end the session early ([`stop_signal`]).
    pub stop: Option<StopSignal>,
}

impl std::fmt::Debug for PartyContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartyContext")
            .field("room", &self.room)
            .field("session_id", &self.session_id)
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

/// Runs the session built by `make_session` (on a dedicated thread) over the gateway,
/// as the party of `ctx`. `progress` is called whenever the session reaches a new round.
pub async fn run_session<F>(
    ctx: PartyContext,
    make_session: F,
    progress: impl Fn(Progress) + Send + 'static,
) -> Result<SessionOutput, PartyError>
where
    F: FnOnce() -> Result<Session, SessionError> + Send + 'static,
{
    let PartyContext {
        gateway,
        room,
        token,
        session_id,
        me,
        identity,
        roster,
        timeout,
        stop,
    } = ctx;
    let transport = Transport {
        gateway,
        room,
        token,
        timeout,
        stop,
    };
    drive(
        transport,
        move || PartySession::open(session_id, me, identity, roster, make_session),
        progress,
    )
    .await
}

/// What the runner hands the session thread.
enum Inbound {
    /// A gateway event.
    Event(u64, String),
    /// The host stops the session.
    Stop(StopNotice),
}

/// What the session thread reports.
enum Outbound {
    Post(String),
    Progress(Progress),
    Done(Result<SessionOutput, PartyError>),
}

/// What the runner and its session thread share: the cancel flag the thread checks
/// between protocol steps, and what the session waits for (for the timeout error the
/// runner returns at the deadline without waiting for the thread).
struct Shared {
    cancel: AtomicBool,
    stall: Mutex<Stall>,
}

impl Shared {
    fn timed_out(&self, after: Duration) -> PartyError {
        let stall = match self.stall.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        PartyError::timeout(stall, after)
    }

    fn publish(&self, party: &PartySession) {
        if let Ok(mut s) = self.stall.lock() {
            *s = party.stall();
        }
    }
}

/// Runs the [`PartySession`] that `open` builds (on a dedicated thread: protocol steps
/// are CPU-heavy and sessions are not `Send`) over `transport`, until its output, an
/// error, or the deadline. `progress` is called whenever the session reaches a new
/// round.
///
/// **Cancellation.** The deadline is `transport.timeout` from the call. At the deadline
/// this returns [`PartyError::Timeout`] at once, even while the session thread is in the
/// middle of a protocol step: whatever the caller holds for the session (a permit, a
/// slot) is freed at the deadline. The thread checks the cancel flag (and the deadline)
/// between protocol steps and stops at the next one; a step is one unit of the
/// library's work, bounded by the size checks on peers' messages
/// ([`mpc_core::session::MAX_PAILLIER_MODULUS_BITS`]). The same holds when the run ends
/// early for another reason (a gateway error): the thread is told to stop, not waited
/// for.
pub async fn drive<F>(
    transport: Transport,
    open: F,
    progress: impl Fn(Progress) + Send + 'static,
) -> Result<SessionOutput, PartyError>
where
    F: FnOnce() -> Result<PartySession, PartyError> + Send + 'static,
{
    let Transport {
        gateway,
        room,
        token,
        timeout,
        mut stop,
    } = transport;
    let deadline = tokio::time::Instant::now() + timeout;
    let (in_tx, in_rx) = std_mpsc::channel::<Inbound>();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Outbound>();
    let shared = Arc::new(Shared {
        cancel: AtomicBool::new(false),
        stall: Mutex::new(Stall {
            session: room.clone(),
            round: 0,
            waiting_for: Vec::new(),
            rejected: Vec::new(),
        }),
    });

    // Subscribe first, so nothing a fast peer sends is missed (the room keeps its log
    // anyway; subscribing from the start replays it).
    let mut stream = Box::pin(gateway.subscribe(&room, token.as_deref(), None));

    let thread_shared = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name(format!("mpc-session-{room}"))
        .spawn(move || session_thread(open, in_rx, out_tx, &thread_shared, timeout))
        .map_err(|e| PartyError::Internal(format!("cannot spawn session thread: {e}")))?;

    let mut thread_done = false;
    // Once the host stops the session: until when the thread may take to post its
    // notice and report.
    let mut stopping: Option<(tokio::time::Instant, String)> = None;
    let result = loop {
        tokio::select! {
            biased;
            msg = out_rx.recv() => match msg {
                Some(Outbound::Post(text)) => {
                    if let Err(e) = gateway.broadcast(&room, token.as_deref(), &text).await {
                        break Err(gateway_error(e));
                    }
                }
                Some(Outbound::Progress(p)) => progress(p),
                Some(Outbound::Done(r)) => {
                    thread_done = true;
                    break r;
                }
                None => {
                    thread_done = true;
                    break Err(PartyError::Internal("the session thread exited".into()));
                }
            },
            item = stream.next() => match item {
                Some(Ok((seq, body))) => {
                    let _ = in_tx.send(Inbound::Event(seq, body));
                }
                Some(Err(e)) => break Err(gateway_error(e)),
                None => break Err(PartyError::StreamEnded(room.clone())),
            },
            notice = stop_requested(&mut stop), if stopping.is_none() => {
                tracing::info!(room = %room, code = %notice.code, "stopping the session");
                stopping = Some((tokio::time::Instant::now() + STOP_GRACE, notice.reason.clone()));
                let _ = in_tx.send(Inbound::Stop(notice));
            }
            _ = async {
                match &stopping {
                    Some((until, _)) => tokio::time::sleep_until(*until).await,
                    None => std::future::pending().await,
                }
            } => {
                let reason = stopping.map(|(_, r)| r).unwrap_or_default();
                break Err(PartyError::Stopped(format!(
                    "{reason} (the stop notice was not posted: the session was inside a protocol step)"
                )));
            }
            _ = tokio::time::sleep_until(deadline) => {
                // Not waiting for the thread: it may be inside a long protocol step.
                break Err(shared.timed_out(timeout));
            }
        }
    };
    // The thread stops at its next step (or at once if it waits for messages: its
    // inbound channel is closed).
    shared.cancel.store(true, Ordering::SeqCst);
    drop(in_tx);
    drop(out_rx);
    if thread_done {
        // It has reported its result and is exiting.
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    result
}

/// The session thread's side of the runner, for the one driver ([`crate::driver::run`]):
/// events arrive on a channel from the runtime, bodies and progress go back on another,
/// and between protocol steps it publishes the stall and stops once the runner gave up.
struct ThreadIo<'a> {
    inbound: std_mpsc::Receiver<Inbound>,
    outbound: mpsc::UnboundedSender<Outbound>,
    shared: &'a Shared,
    origin: std::time::Instant,
    /// The host's stop notice, once received (for [`PartyIo::take_stop`]).
    stop: Option<StopNotice>,
}

impl ThreadIo<'_> {
    /// The runner is gone (deadline, gateway error): the thread stops without reporting.
    fn stopped() -> PartyError {
        PartyError::Internal("the runner stopped the session".into())
    }

    /// An event, or the host's stop as the error that ends the run.
    fn event(&mut self, inbound: Inbound) -> Result<Event, PartyError> {
        match inbound {
            Inbound::Event(seq, body) => Ok((seq, body)),
            Inbound::Stop(notice) => {
                let reason = notice.reason.clone();
                self.stop = Some(notice);
                Err(PartyError::Stopped(reason))
            }
        }
    }
}

impl PartyIo for ThreadIo<'_> {
    fn now_ms(&self) -> f64 {
        self.origin.elapsed().as_secs_f64() * 1000.0
    }

    fn post(&mut self, body: String) -> impl Future<Output = Result<(), PartyError>> {
        ready(
            self.outbound
                .send(Outbound::Post(body))
                .map_err(|_| Self::stopped()),
        )
    }

    fn try_event(&mut self) -> Result<Option<Event>, PartyError> {
        match self.inbound.try_recv() {
            Ok(inbound) => self.event(inbound).map(Some),
            Err(std_mpsc::TryRecvError::Empty) => Ok(None),
            Err(std_mpsc::TryRecvError::Disconnected) => Err(Self::stopped()),
        }
    }

    fn next_event(
        &mut self,
        wait_ms: f64,
    ) -> impl Future<Output = Result<Option<Event>, PartyError>> {
        // This thread runs nothing else: blocking here is waiting.
        let wait = Duration::from_secs_f64(wait_ms.max(0.0) / 1000.0);
        ready(match self.inbound.recv_timeout(wait) {
            Ok(inbound) => self.event(inbound).map(Some),
            Err(std_mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(std_mpsc::RecvTimeoutError::Disconnected) => Err(Self::stopped()),
        })
    }

    fn after_step(&mut self, party: &PartySession) -> impl Future<Output = Result<(), PartyError>> {
        self.shared.publish(party);
        ready(if self.shared.cancel.load(Ordering::SeqCst) {
            Err(Self::stopped())
        } else {
            Ok(())
        })
    }

    fn progress(&mut self, progress: Progress) {
        let _ = self.outbound.send(Outbound::Progress(progress));
    }

    fn take_stop(&mut self) -> Option<StopNotice> {
        self.stop.take()
    }
}

fn session_thread<F>(
    open: F,
    inbound: std_mpsc::Receiver<Inbound>,
    outbound: mpsc::UnboundedSender<Outbound>,
    shared: &Shared,
    timeout: Duration,
) where
    F: FnOnce() -> Result<PartySession, PartyError>,
{
    let origin = std::time::Instant::now();
    let result = open().and_then(|party| {
        // Every future of `ThreadIo` is ready at once: a current-thread runtime without
        // drivers only steps the driver's loop.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| PartyError::Internal(format!("cannot start the session loop: {e}")))?;
        let mut io = ThreadIo {
            inbound,
            outbound: outbound.clone(),
            shared,
            origin,
            stop: None,
        };
        rt.block_on(run(party, &mut io, timeout))
    });
    // Unheard when the runner is gone.
    let _ = outbound.send(Outbound::Done(result));
}

/// A gateway client's error as a session error: TLS failures keep their own kind.
fn gateway_error(e: gateway_client::ClientError) -> PartyError {
    match e {
        gateway_client::ClientError::Tls { .. } => PartyError::Tls(e.to_string()),
        e => PartyError::Gateway(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use tokio::sync::Semaphore;

    /// A session whose deadline passes while it is inside a protocol step (here: a step
    /// that never ends until the test lets it) frees its caller at the deadline: `drive`
    /// returns the timeout error and the permit the caller held is back, while the step
    /// still computes; once the step ends the thread stops without another step.
    /// Deterministic: the deadline has already passed when the run starts, and the step
    /// is held by the test, not by a clock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_deadline_frees_the_permit_while_a_step_still_computes() {
        // A gateway that accepts connections and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let transport = Transport {
            gateway: GatewayClient::new(&url).unwrap(),
            room: "cancel".into(),
            token: None,
            timeout: Duration::ZERO,
            stop: None,
        };
        let permits = Arc::new(Semaphore::new(1));
        let permit = Arc::clone(&permits).try_acquire_owned().unwrap();
        let (release_tx, release_rx) = std_mpsc::channel::<()>();
        let (stepped_tx, stepped_rx) = std_mpsc::channel::<&'static str>();
        let run = tokio::spawn(async move {
            let _permit = permit;
            drive(
                transport,
                move || {
                    // The long step: computes until the test releases it.
                    let _ = release_rx.recv();
                    let _ = stepped_tx.send("the step ended");
                    let keys: Vec<_> = (0..3)
                        .map(|_| mpc_wire::IdentityKey::generate().unwrap())
                        .collect();
                    let roster =
                        Roster::new(keys.iter().enumerate().map(|(i, k)| (i as u16, k.public())))
                            .unwrap();
                    let sid = SessionId::new("cancel").unwrap();
                    PartySession::open(sid, 0, keys[0].clone(), roster, || {
                        Session::keygen(b"cancel", 0, 3, 2)
                    })
                },
                |_| {},
            )
            .await
        });
        let result = tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("drive did not return at the deadline: it waits for the step to end")
            .unwrap();
        match result {
            Err(PartyError::Timeout { session, after, .. }) => {
                assert_eq!(session, "cancel");
                assert_eq!(after, Duration::ZERO);
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_eq!(permits.available_permits(), 1, "the permit is back");
        assert!(
            stepped_rx.try_recv().is_err(),
            "the step was still computing when the permit came back"
        );
        // The step ends; the thread sees the cancel flag and stops (its channel closes).
        release_tx.send(()).unwrap();
        assert_eq!(
            stepped_rx.recv_timeout(Duration::from_secs(20)),
            Ok("the step ended")
        );
        #[cfg(target_os = "linux")]
        {
            // The thread is named after the room (Linux keeps 15 bytes of the name).
            let running = || {
                std::fs::read_dir("/proc/self/task").unwrap().any(|t| {
                    std::fs::read_to_string(t.unwrap().path().join("comm"))
                        .is_ok_and(|c| c.trim() == "mpc-session-can")
                })
            };
            let gone = std::time::Instant::now() + Duration::from_secs(20);
            while running() {
                assert!(
                    std::time::Instant::now() < gone,
                    "the session thread kept running"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        drop(silent);
    }
}
