//! The native (tokio) driver.

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use futures_util::StreamExt;
use gateway_client::{ClientError, GatewayClient};
use mpc_core::session::Progress;
use mpc_core::{Incoming, Outgoing, Session, SessionError, SessionOutput, Step};
use mpc_wire::{IdentityKey, Roster, SessionId, WireError};
use tokio::sync::mpsc;

use crate::relay::Relay;

/// Why running a session over the gateway failed.
#[derive(Debug, thiserror::Error)]
pub enum PartyError {
    /// The protocol failed (misbehaving peer, invalid parameters…).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The envelope layer refused to seal a message or was misconfigured.
    #[error("envelope error: {0}")]
    Wire(#[from] WireError),
    /// The gateway could not be reached or refused us.
    #[error("gateway error: {0}")]
    Gateway(#[from] ClientError),
    /// The session did not finish in time.
    #[error("session {session} timed out after {after:?} in round {round} waiting for parties {waiting_for:?}{}", rejected_suffix(.rejected))]
    Timeout {
        /// Session id.
        session: String,
        /// How long we waited.
        after: Duration,
        /// Round reached.
        round: u16,
        /// Peers we had not heard from in the current state (best effort).
        waiting_for: Vec<u16>,
        /// Envelopes that were rejected meanwhile (at most a few, with reasons).
        rejected: Vec<String>,
    },
    /// The gateway stream ended before the session finished.
    #[error("the gateway stream of room {0} ended before the session finished")]
    StreamEnded(String),
    /// The session thread died (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

fn rejected_suffix(r: &[String]) -> String {
    if r.is_empty() {
        String::new()
    } else {
        format!("; rejected envelopes: {}", r.join("; "))
    }
}

/// Where and as whom a session runs.
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

enum FromSession {
    Send(Outgoing),
    Progress(Progress),
    Done(Result<SessionOutput, SessionError>),
}

/// Runs the session built by `make_session` (on a dedicated thread) over the gateway.
///
/// `progress` is called whenever the session reaches a new round.
pub async fn run_session<F>(
    ctx: PartyContext,
    make_session: F,
    progress: impl Fn(Progress) + Send + 'static,
) -> Result<SessionOutput, PartyError>
where
    F: FnOnce() -> Result<Session, SessionError> + Send + 'static,
{
    let mut relay = Relay::new(
        ctx.session_id.clone(),
        ctx.me,
        ctx.identity.clone(),
        ctx.roster.clone(),
    )?;
    let (in_tx, in_rx) = std_mpsc::channel::<Incoming>();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<FromSession>();

    // Subscribe first, so nothing a fast peer sends is missed (the room keeps its log
    // anyway; subscribing from the start replays it).
    let mut stream = Box::pin(ctx.gateway.subscribe(&ctx.room, ctx.token.as_deref(), None));

    let thread = std::thread::Builder::new()
        .name(format!("mpc-session-{}", ctx.session_id.as_str()))
        .spawn(move || session_thread(make_session, in_rx, out_tx))
        .map_err(|e| PartyError::Internal(format!("cannot spawn session thread: {e}")))?;

    let deadline = tokio::time::Instant::now() + ctx.timeout;
    let result = loop {
        tokio::select! {
            biased;
            msg = out_rx.recv() => match msg {
                Some(FromSession::Send(out)) => {
                    let text = relay.seal(&out)?;
                    ctx.gateway.broadcast(&ctx.room, ctx.token.as_deref(), &text).await?;
                }
                Some(FromSession::Progress(p)) => {
                    relay.set_round(p.round);
                    progress(p);
                }
                Some(FromSession::Done(r)) => break r.map_err(PartyError::from),
                None => break Err(PartyError::Internal("session thread exited".into())),
            },
            item = stream.next() => match item {
                Some(Ok((seq, body))) => {
                    if let Some(m) = relay.open(seq, &body) {
                        let _ = in_tx.send(m);
                    }
                }
                Some(Err(e)) => break Err(PartyError::Gateway(e)),
                None => break Err(PartyError::StreamEnded(ctx.room.clone())),
            },
            _ = tokio::time::sleep_until(deadline) => {
                let stall = relay.stall();
                break Err(PartyError::Timeout {
                    session: stall.session,
                    after: ctx.timeout,
                    round: stall.round,
                    waiting_for: stall.waiting_for,
                    rejected: stall.rejected,
                });
            }
        }
    };
    // Dropping the inbound sender stops the session thread if it is still waiting.
    drop(in_tx);
    drop(out_rx);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    result
}

fn session_thread<F>(
    make_session: F,
    in_rx: std_mpsc::Receiver<Incoming>,
    out_tx: mpsc::UnboundedSender<FromSession>,
) where
    F: FnOnce() -> Result<Session, SessionError>,
{
    let mut session = match make_session() {
        Ok(s) => s,
        Err(e) => {
            let _ = out_tx.send(FromSession::Done(Err(e)));
            return;
        }
    };
    let mut last_round = u16::MAX;
    let result = loop {
        let step = match session.run() {
            Ok(s) => s,
            Err(e) => break Err(e),
        };
        for out in session.drain_outgoing() {
            if out_tx.send(FromSession::Send(out)).is_err() {
                return;
            }
        }
        let p = session.progress();
        if p.round != last_round {
            last_round = p.round;
            let _ = out_tx.send(FromSession::Progress(p));
        }
        match step {
            Step::Finished => match session.take_output() {
                Some(o) => break Ok(o),
                None => break Err(SessionError::Internal("finished without output".into())),
            },
            Step::Continue => {}
            Step::WaitingForMessages => {
                // Block for one message, then take whatever else is queued.
                let Ok(first) = in_rx.recv() else { return };
                if let Err(e) = session.handle(first) {
                    break Err(e);
                }
                let mut failed = None;
                while let Ok(m) = in_rx.try_recv() {
                    if let Err(e) = session.handle(m) {
                        failed = Some(e);
                        break;
                    }
                }
                if let Some(e) = failed {
                    break Err(e);
                }
            }
        }
    };
    let mut p = session.progress();
    p.finished = result.is_ok();
    let _ = out_tx.send(FromSession::Progress(p));
    let _ = out_tx.send(FromSession::Done(result));
}
