//! Runs one party's session on the browser's event loop.
//!
//! The session and its envelopes are one [`mpc_party::PartySession`] (the same value the
//! native tokio runner drives): this loop only moves gateway events in and sealed bodies
//! out. Between protocol steps it yields to the event loop (a macrotask, so network
//! events, other tasks and progress callbacks run); while waiting for peers it awaits
//! the inbox or the deadline.

use futures_channel::mpsc::TryRecvError;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use mpc_core::local::{LocalRun, LocalStep};
use mpc_core::session::Progress;
use mpc_core::{Session, SessionOutput};
use mpc_party::{PartyError, PartySession, Poll};

use crate::error::{ApiError, ApiResult};
use crate::transport::{now_ms, sleep, Inbox, Post};

/// Yield to the event loop after computing this long without a break.
const YIELD_EVERY_MS: f64 = 15.0;

/// Drives `party` (a session and its envelope relay, e.g. a `client_core`
/// `SessionSpec::open`) to its output: posts sealed outgoing messages via `post`, opens
/// what arrives in `inbox`, reports progress, gives up after `timeout_ms`. Fails with
/// the same [`PartyError`] the native runner gives.
pub async fn drive(
    mut party: PartySession,
    post: &dyn Post,
    inbox: &mut Inbox,
    timeout_ms: f64,
    progress: &dyn Fn(Progress),
) -> Result<SessionOutput, PartyError> {
    let deadline = now_ms() + timeout_ms;
    let mut last_yield = now_ms();
    let ended = |party: &PartySession| PartyError::StreamEnded(party.session_id().to_string());
    let transport = |e: ApiError| PartyError::Gateway(e.message);
    loop {
        // Take whatever arrived, without waiting.
        loop {
            match inbox.try_recv() {
                Ok(Ok((seq, body))) => party.deliver(seq, &body)?,
                Ok(Err(e)) => return Err(transport(e)),
                Err(TryRecvError::Closed) => return Err(ended(&party)),
                Err(TryRecvError::Empty) => break,
            }
        }
        let next = party.poll()?;
        if let Some(p) = party.progress() {
            progress(p);
        }
        match next {
            Poll::Finished(out) => return Ok(out),
            Poll::Post(bodies) => {
                for text in bodies {
                    post.post(text).await.map_err(transport)?;
                }
            }
            Poll::Continue => {
                if now_ms() - last_yield >= YIELD_EVERY_MS {
                    sleep(0).await;
                    last_yield = now_ms();
                }
                if now_ms() >= deadline {
                    let after = std::time::Duration::from_millis(timeout_ms as u64);
                    return Err(party.timed_out(after));
                }
            }
            Poll::Waiting => {
                let remaining = deadline - now_ms();
                let after = std::time::Duration::from_millis(timeout_ms as u64);
                if remaining <= 0.0 {
                    return Err(party.timed_out(after));
                }
                let next = inbox.next();
                let timer = sleep(remaining.min(i32::MAX as f64) as i32);
                futures_util::pin_mut!(timer);
                match select(next, timer).await {
                    Either::Left((Some(Ok((seq, body))), _)) => party.deliver(seq, &body)?,
                    Either::Left((Some(Err(e)), _)) => return Err(transport(e)),
                    Either::Left((None, _)) => return Err(ended(&party)),
                    Either::Right(_) => return Err(party.timed_out(after)),
                }
                last_yield = now_ms();
            }
        }
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
