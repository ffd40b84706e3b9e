//! Runs one party's session on the browser's event loop.
//!
//! Envelopes go through [`mpc_party::Relay`] (the same sealing, opening and rejection
//! bookkeeping as the native driver). Between protocol steps the driver yields to the
//! event loop (a macrotask, so network events, other tasks and progress callbacks run);
//! while waiting for peers it awaits the inbox or the deadline.

use futures_channel::mpsc::TryRecvError;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use mpc_core::session::Progress;
use mpc_core::{Session, SessionOutput, Step};
use mpc_party::Relay;

use crate::error::{ApiError, ApiResult, Code};
use crate::transport::{now_ms, sleep, Inbox, Post};

/// Yield to the event loop after computing this long without a break.
const YIELD_EVERY_MS: f64 = 15.0;

/// Drives `session` to its output: posts sealed outgoing messages via `post`, opens
/// what arrives in `inbox`, reports progress, gives up after `timeout_ms`.
pub async fn drive(
    mut session: Session,
    mut relay: Relay,
    post: &dyn Post,
    inbox: &mut Inbox,
    timeout_ms: f64,
    progress: &dyn Fn(Progress),
) -> ApiResult<SessionOutput> {
    let deadline = now_ms() + timeout_ms;
    let mut last_round = u16::MAX;
    let mut last_yield = now_ms();
    let timeout_error = |relay: &Relay| {
        let stall = relay.stall();
        let mut msg = format!(
            "session {} timed out after {} s in round {} waiting for parties {:?}",
            stall.session,
            (timeout_ms / 1000.0).round(),
            stall.round,
            stall.waiting_for
        );
        if !stall.rejected.is_empty() {
            msg.push_str(&format!(
                "; rejected envelopes: {}",
                stall.rejected.join("; ")
            ));
        }
        let err = ApiError::new(Code::Timeout, msg);
        match stall.waiting_for.first() {
            Some(&p) if stall.waiting_for.len() == 1 => err.with_party(p),
            _ => err,
        }
    };
    loop {
        // Take whatever arrived, without waiting.
        loop {
            match inbox.try_recv() {
                Ok(Ok((seq, body))) => {
                    if let Some(m) = relay.open(seq, &body) {
                        session.handle(m)?;
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(TryRecvError::Closed) => {
                    return Err(ApiError::new(
                        Code::StreamEnded,
                        format!(
                            "the gateway stream of session {} ended before the session finished",
                            relay.session_id()
                        ),
                    ))
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        let step = session.step()?;
        for out in session.drain_outgoing() {
            let text = relay.seal(&out)?;
            post.post(text).await?;
        }
        let p = session.progress();
        if p.round != last_round {
            last_round = p.round;
            relay.set_round(p.round);
            progress(p);
        }
        match step {
            Step::Finished => {
                let mut p = session.progress();
                p.finished = true;
                progress(p);
                return session.take_output().ok_or_else(|| {
                    ApiError::new(Code::Internal, "session finished without output")
                });
            }
            Step::Continue => {
                if now_ms() - last_yield >= YIELD_EVERY_MS {
                    sleep(0).await;
                    last_yield = now_ms();
                }
                if now_ms() >= deadline {
                    return Err(timeout_error(&relay));
                }
            }
            Step::WaitingForMessages => {
                let remaining = deadline - now_ms();
                if remaining <= 0.0 {
                    return Err(timeout_error(&relay));
                }
                let next = inbox.next();
                let timer = sleep(remaining.min(i32::MAX as f64) as i32);
                futures_util::pin_mut!(timer);
                match select(next, timer).await {
                    Either::Left((Some(Ok((seq, body))), _)) => {
                        if let Some(m) = relay.open(seq, &body) {
                            session.handle(m)?;
                        }
                    }
                    Either::Left((Some(Err(e)), _)) => return Err(e),
                    Either::Left((None, _)) => {
                        return Err(ApiError::new(
                            Code::StreamEnded,
                            format!(
                            "the gateway stream of session {} ended before the session finished",
                            relay.session_id()
                        ),
                        ))
                    }
                    Either::Right(_) => return Err(timeout_error(&relay)),
                }
                last_yield = now_ms();
            }
        }
    }
}

/// Runs several parties' sessions in this thread without network or envelopes (tests,
/// benchmarks, fixtures), yielding to the event loop between steps so the page stays
/// responsive. Outputs in the order of `sessions`.
pub async fn run_local(mut sessions: Vec<Session>) -> ApiResult<Vec<SessionOutput>> {
    let mut last_yield = now_ms();
    loop {
        let mut progressed = false;
        for k in 0..sessions.len() {
            let me = sessions[k].me();
            let step = sessions[k]
                .step()
                .map_err(|e| ApiError::from(e).with_party(me))?;
            if !matches!(step, Step::WaitingForMessages) {
                progressed = true;
            }
            for msg in sessions[k].drain_outgoing() {
                for s in sessions.iter_mut() {
                    let to = s.me();
                    if to == me || s.is_finished() || msg.recipient.is_some_and(|r| r != to) {
                        continue;
                    }
                    s.handle(mpc_core::Incoming {
                        sender: me,
                        broadcast: msg.recipient.is_none(),
                        payload: msg.payload.clone(),
                    })?;
                }
            }
            if now_ms() - last_yield >= YIELD_EVERY_MS {
                sleep(0).await;
                last_yield = now_ms();
            }
        }
        if sessions.iter().all(Session::is_finished) {
            break;
        }
        if !progressed {
            return Err(ApiError::new(Code::Internal, "local run stalled"));
        }
    }
    sessions
        .iter_mut()
        .map(|s| {
            s.take_output()
                .ok_or_else(|| ApiError::new(Code::Internal, "finished without output"))
        })
        .collect()
}
