//! The tokio runner: a [`PartySession`] on its own thread, the gateway on the runtime.

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use futures_util::StreamExt;
use gateway_client::GatewayClient;
use mpc_core::session::Progress;
use mpc_core::{Session, SessionError, SessionOutput};
use mpc_wire::{IdentityKey, Roster, SessionId};
use tokio::sync::mpsc;

use crate::party::{PartyError, PartySession, Poll};

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
    } = ctx;
    let transport = Transport {
        gateway,
        room,
        token,
        timeout,
    };
    drive(
        transport,
        move || PartySession::open(session_id, me, identity, roster, make_session),
        progress,
    )
    .await
}

/// What the session thread receives.
enum Inbound {
    Event(u64, String),
    /// The deadline passed: answer with the timeout error.
    Deadline,
}

/// What the session thread reports.
enum Outbound {
    Post(String),
    Progress(Progress),
    Done(Result<SessionOutput, PartyError>),
}

/// Runs the [`PartySession`] that `open` builds (on a dedicated thread: protocol steps
/// are CPU-heavy and sessions are not `Send`) over `transport`, until its output, an
/// error, or the deadline. `progress` is called whenever the session reaches a new
/// round.
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
    } = transport;
    let (in_tx, in_rx) = std_mpsc::channel::<Inbound>();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Outbound>();

    // Subscribe first, so nothing a fast peer sends is missed (the room keeps its log
    // anyway; subscribing from the start replays it).
    let mut stream = Box::pin(gateway.subscribe(&room, token.as_deref(), None));

    let thread = std::thread::Builder::new()
        .name(format!("mpc-session-{room}"))
        .spawn(move || session_thread(open, in_rx, out_tx, timeout))
        .map_err(|e| PartyError::Internal(format!("cannot spawn session thread: {e}")))?;

    let deadline = tokio::time::Instant::now() + timeout;
    let mut deadline_sent = false;
    let result = loop {
        tokio::select! {
            biased;
            msg = out_rx.recv() => match msg {
                Some(Outbound::Post(text)) => {
                    if let Err(e) = gateway.broadcast(&room, token.as_deref(), &text).await {
                        break Err(PartyError::Gateway(e.to_string()));
                    }
                }
                Some(Outbound::Progress(p)) => progress(p),
                Some(Outbound::Done(r)) => break r,
                None => break Err(PartyError::Internal("the session thread exited".into())),
            },
            item = stream.next(), if !deadline_sent => match item {
                Some(Ok((seq, body))) => {
                    let _ = in_tx.send(Inbound::Event(seq, body));
                }
                Some(Err(e)) => break Err(PartyError::Gateway(e.to_string())),
                None => break Err(PartyError::StreamEnded(room.clone())),
            },
            _ = tokio::time::sleep_until(deadline), if !deadline_sent => {
                // The thread answers with the timeout error (it knows what it waits for).
                deadline_sent = true;
                let _ = in_tx.send(Inbound::Deadline);
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
    open: F,
    in_rx: std_mpsc::Receiver<Inbound>,
    out_tx: mpsc::UnboundedSender<Outbound>,
    timeout: Duration,
) where
    F: FnOnce() -> Result<PartySession, PartyError>,
{
    let mut party = match open() {
        Ok(p) => p,
        Err(e) => {
            let _ = out_tx.send(Outbound::Done(Err(e)));
            return;
        }
    };
    let handle = |party: &mut PartySession, m: Inbound| match m {
        Inbound::Event(seq, body) => party.deliver(seq, &body),
        Inbound::Deadline => Err(party.timed_out(timeout)),
    };
    let result = 'run: loop {
        match party.poll() {
            Err(e) => break Err(e),
            Ok(Poll::Finished(out)) => break Ok(out),
            Ok(Poll::Post(bodies)) => {
                for b in bodies {
                    if out_tx.send(Outbound::Post(b)).is_err() {
                        return;
                    }
                }
            }
            Ok(Poll::Continue) => {}
            Ok(Poll::Waiting) => {
                // Block for one event, then take whatever else is queued below.
                let Ok(m) = in_rx.recv() else { return };
                if let Err(e) = handle(&mut party, m) {
                    break Err(e);
                }
            }
        }
        if let Some(p) = party.progress() {
            let _ = out_tx.send(Outbound::Progress(p));
        }
        loop {
            match in_rx.try_recv() {
                Ok(m) => {
                    if let Err(e) = handle(&mut party, m) {
                        break 'run Err(e);
                    }
                }
                Err(std_mpsc::TryRecvError::Empty) => break,
                Err(std_mpsc::TryRecvError::Disconnected) => return,
            }
        }
    };
    if let Some(p) = party.progress() {
        let _ = out_tx.send(Outbound::Progress(p));
    }
    let _ = out_tx.send(Outbound::Done(result));
}
