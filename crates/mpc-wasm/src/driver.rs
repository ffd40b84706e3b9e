//! Runs one party's session on the browser's event loop.
//!
//! The loop is `mpc_party`'s one driver ([`mpc_party::run_party`], the same the native
//! tokio host runs on its session thread); this module is the browser's [`PartyIo`]:
//! bodies go out through a [`Post`], events come from the [`Inbox`], the clock is
//! `Date.now()`, and between protocol steps it yields to the event loop (a macrotask,
//! so network events, other tasks and progress callbacks run) once it has computed for
//! ~15 ms.

use std::future::Future;
use std::time::Duration;

use futures_channel::mpsc::TryRecvError;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use mpc_core::local::{LocalRun, LocalStep};
use mpc_core::session::Progress;
use mpc_core::{Session, SessionOutput};
use mpc_party::driver::Event;
use mpc_party::{PartyError, PartyIo, PartySession};

use crate::error::{ApiError, ApiResult};
use crate::transport::{now_ms, sleep, Inbox, Post};

/// Yield to the event loop after computing this long without a break.
const YIELD_EVERY_MS: f64 = 15.0;

/// Drives `party` (a session and its envelope relay, e.g. a `client_core`
/// `SessionSpec::open`) to its output: posts sealed outgoing messages via `post`, opens
/// what arrives in `inbox`, reports progress, gives up after `timeout_ms`. Fails with
/// the same [`PartyError`] the native runner gives.
pub async fn drive(
    party: PartySession,
    post: &dyn Post,
    inbox: &mut Inbox,
    timeout_ms: f64,
    progress: &dyn Fn(Progress),
) -> Result<SessionOutput, PartyError> {
    let mut io = BrowserIo {
        post,
        inbox,
        progress,
        room: party.session_id().to_string(),
        last_yield: now_ms(),
    };
    let timeout = Duration::from_millis(timeout_ms.max(0.0) as u64);
    mpc_party::run_party(party, &mut io, timeout).await
}

/// The event loop's side of a session.
struct BrowserIo<'a> {
    post: &'a dyn Post,
    inbox: &'a mut Inbox,
    progress: &'a dyn Fn(Progress),
    room: String,
    last_yield: f64,
}

impl BrowserIo<'_> {
    fn ended(&self) -> PartyError {
        PartyError::StreamEnded(self.room.clone())
    }
}

fn transport(e: ApiError) -> PartyError {
    PartyError::Gateway(e.message)
}

impl PartyIo for BrowserIo<'_> {
    fn now_ms(&self) -> f64 {
        now_ms()
    }

    fn post(&mut self, body: String) -> impl Future<Output = Result<(), PartyError>> {
        let post = self.post;
        async move { post.post(body).await.map_err(transport) }
    }

    fn try_event(&mut self) -> Result<Option<Event>, PartyError> {
        match self.inbox.try_recv() {
            Ok(Ok(event)) => Ok(Some(event)),
            Ok(Err(e)) => Err(transport(e)),
            Err(TryRecvError::Closed) => Err(self.ended()),
            Err(TryRecvError::Empty) => Ok(None),
        }
    }

    async fn next_event(&mut self, wait_ms: f64) -> Result<Option<Event>, PartyError> {
        let timer = sleep(wait_ms.min(i32::MAX as f64) as i32);
        futures_util::pin_mut!(timer);
        let got = match select(self.inbox.next(), timer).await {
            Either::Left((Some(Ok(event)), _)) => Ok(Some(event)),
            Either::Left((Some(Err(e)), _)) => Err(transport(e)),
            Either::Left((None, _)) => Err(self.ended()),
            Either::Right(_) => Ok(None),
        };
        // Waiting gave the event loop its turn.
        self.last_yield = now_ms();
        got
    }

    async fn after_step(&mut self, _party: &PartySession) -> Result<(), PartyError> {
        if now_ms() - self.last_yield >= YIELD_EVERY_MS {
            sleep(0).await;
            self.last_yield = now_ms();
        }
        Ok(())
    }

    fn progress(&mut self, progress: Progress) {
        (self.progress)(progress)
    }
}

/// Runs several parties' sessions in this thread without network or envelopes (tests,
/// benchmarks, fixtures): `mpc_core::local`'s run, stepped here so that the page stays
/// responsive (a yield to the event loop every ~15 ms). Outputs in the order of
/// `sessions`.
pub async fn run_local(sessions: Vec<Session>) -> ApiResult<Vec<SessionOutput>> {
    let mut run = LocalRun::new(sessions, None);
    let mut last_yield = now_ms();
    loop {
        match run.step() {
            Ok(LocalStep::Finished(out)) => return Ok(out),
            Ok(_) => {}
            Err((party, e)) => return Err(ApiError::from(e).with_party(party)),
        }
        if now_ms() - last_yield >= YIELD_EVERY_MS {
            sleep(0).await;
            last_yield = now_ms();
        }
    }
}
