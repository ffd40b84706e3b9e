//! One party's session and its envelopes as one value, with no I/O: the session half
//! of every driver.
//!
//! A [`PartySession`] joins an `mpc-core` [`Session`] with the [`Relay`] that seals its
//! outgoing messages and opens the gateway's events. A driver only moves text:
//!
//! ```text
//! loop {
//!     match party.poll()? {                 // one unit of protocol work
//!         Poll::Post(bodies) => post each body to the room, in order,
//!         Poll::Continue => {}              // more work (yield first if you must)
//!         Poll::Waiting => wait for the next gateway event (seq, body), or the deadline,
//!         Poll::Finished(output) => return output,
//!     }
//!     for each gateway event that arrived: party.deliver(seq, &body)?;
//!     if let Some(p) = party.progress() { report p }
//!     past the deadline: return Err(party.timed_out(after))
//! }
//! ```
//!
//! The tokio runner ([`crate::drive`], native) runs this loop on a dedicated thread;
//! the browser runner (`mpc-wasm`) runs it on the event loop, yielding between polls.

use std::time::Duration;

use mpc_core::session::Progress;
use mpc_core::{Session, SessionError, SessionOutput, Step};
use mpc_wire::{IdentityKey, Roster, SessionId, StopNotice, WireError};

use crate::relay::{Relay, Stall};

/// Why running a session failed.
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
    Gateway(String),
    /// The TLS connection to the gateway failed (its certificate is not trusted, or the
    /// handshake failed): a configuration problem, not worth retrying.
    #[error("gateway TLS error: {0}")]
    Tls(String),
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
    /// A peer ended the session early with a signed stop notice (e.g. the cosigner
    /// draining for a restart): `code` is a wire error code saying what to do (for
    /// `cosigner_unavailable`: retry, with a new session).
    #[error("party {party} stopped the session ({code}): {reason}")]
    PeerStopped {
        /// The peer.
        party: u16,
        /// Its wire error code.
        code: String,
        /// Its reason, for people.
        reason: String,
    },
    /// This party was told to stop (a server draining): its peers got a stop notice.
    #[error("stopped: {0}")]
    Stopped(String),
    /// The driver failed (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl PartyError {
    /// The error of a session that did not finish within `after`, stalled as `stall`
    /// says.
    pub fn timeout(stall: Stall, after: Duration) -> Self {
        PartyError::Timeout {
            session: stall.session,
            after,
            round: stall.round,
            waiting_for: stall.waiting_for,
            rejected: stall.rejected,
        }
    }
}

fn rejected_suffix(r: &[String]) -> String {
    if r.is_empty() {
        String::new()
    } else {
        format!("; rejected envelopes: {}", r.join("; "))
    }
}

/// What the driver does next (the result of [`PartySession::poll`]).
#[derive(Debug)]
pub enum Poll {
    /// Post these sealed bodies to the room, in order, then poll again.
    Post(Vec<String>),
    /// Work was done and more can be done at once: poll again (an event loop yields
    /// first when it has computed for long enough).
    Continue,
    /// The session waits for peers: deliver the next gateway event (or report the
    /// deadline), then poll again.
    Waiting,
    /// The session finished with this output. Do not poll again.
    Finished(SessionOutput),
}

/// A session with its envelope relay. See the [module docs](self).
pub struct PartySession {
    session: Session,
    relay: Relay,
    /// The last progress handed out by [`PartySession::progress`].
    reported: Option<(u16, bool)>,
    done: bool,
}

impl std::fmt::Debug for PartySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartySession")
            .field("session", &self.session)
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

impl PartySession {
    /// Joins a session and the relay of the same party and session id.
    pub fn new(session: Session, relay: Relay) -> Self {
        PartySession {
            session,
            relay,
            reported: None,
            done: false,
        }
    }

    /// Builds the relay of party `me` (its identity key and the session's roster) and
    /// the session (with `build`, on the calling thread: sessions are not `Send`).
    pub fn open(
        session_id: SessionId,
        me: u16,
        identity: IdentityKey,
        roster: Roster,
        build: impl FnOnce() -> Result<Session, SessionError>,
    ) -> Result<Self, PartyError> {
        let relay = Relay::new(session_id, me, identity, roster)?;
        let session = build()?;
        if session.me() != me {
            return Err(PartyError::Internal(format!(
                "the session is party {}'s, the relay party {me}'s",
                session.me()
            )));
        }
        Ok(PartySession::new(session, relay))
    }

    /// Hands over the gateway event `seq` with `body`. Envelopes that are not authentic,
    /// fresh and for us are dropped (and remembered for the timeout report); an
    /// authentic message the protocol refuses is an error naming its sender.
    pub fn deliver(&mut self, seq: u64, body: &str) -> Result<(), PartyError> {
        if self.session.is_finished() {
            return Ok(());
        }
        if let Some(m) = self.relay.open(seq, body) {
            self.session.handle(m)?;
        }
        if let Some((party, notice)) = self.relay.stopped_by() {
            return Err(PartyError::PeerStopped {
                party: *party,
                code: notice.code.clone(),
                reason: notice.reason.clone(),
            });
        }
        Ok(())
    }

    /// Ends the session here: seals the stop notice to post (last) so the peers stop
    /// at once with `notice.code`, and marks the session done.
    pub fn stop(&mut self, notice: &StopNotice) -> Result<String, PartyError> {
        self.done = true;
        Ok(self.relay.seal_stop(notice)?)
    }

    /// Advances the protocol by one unit of work and says what the driver does next.
    pub fn poll(&mut self) -> Result<Poll, PartyError> {
        if self.done {
            return Err(PartyError::Internal(
                "polled after the output was taken".into(),
            ));
        }
        let step = self.session.step()?;
        self.relay.set_round(self.session.progress().round);
        let out = self.session.drain_outgoing();
        if !out.is_empty() {
            let bodies = out
                .iter()
                .map(|m| self.relay.seal(m))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Poll::Post(bodies));
        }
        Ok(match step {
            Step::Continue => Poll::Continue,
            Step::WaitingForMessages => Poll::Waiting,
            Step::Finished => match self.session.take_output() {
                Some(o) => {
                    self.done = true;
                    Poll::Finished(o)
                }
                None => {
                    return Err(PartyError::Internal(
                        "the session finished without output".into(),
                    ))
                }
            },
        })
    }

    /// The session's progress if it changed since the last call (a new round, or the
    /// output handed out), for progress bars.
    pub fn progress(&mut self) -> Option<Progress> {
        let mut p = self.session.progress();
        p.finished = self.done;
        let now = (p.round, p.finished);
        if self.reported == Some(now) {
            return None;
        }
        self.reported = Some(now);
        Some(p)
    }

    /// What the session waits for (the round, the silent peers, rejected envelopes).
    pub fn stall(&self) -> Stall {
        self.relay.stall()
    }

    /// The error of a session that did not finish within `after`.
    pub fn timed_out(&self, after: Duration) -> PartyError {
        PartyError::timeout(self.relay.stall(), after)
    }

    /// The session id.
    pub fn session_id(&self) -> &SessionId {
        self.relay.session_id()
    }

    /// This party's keygen index.
    pub fn me(&self) -> u16 {
        self.relay.me()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpc_core::primes::dev_fixture_primes;

    /// Three parties' keygen, each a `PartySession`, relayed through a shared "room"
    /// (a list of bodies with sequence numbers) exactly as a gateway would.
    #[test]
    fn three_parties_over_a_shared_room() {
        let keys: Vec<IdentityKey> = (0..3).map(|_| IdentityKey::generate().unwrap()).collect();
        let roster =
            Roster::new(keys.iter().enumerate().map(|(i, k)| (i as u16, k.public()))).unwrap();
        let sid = SessionId::new("party-session-test").unwrap();
        let _ = dev_fixture_primes();
        let mut parties: Vec<PartySession> = (0..3u16)
            .map(|i| {
                PartySession::open(
                    sid.clone(),
                    i,
                    keys[usize::from(i)].clone(),
                    roster.clone(),
                    || Session::keygen(sid.as_str().as_bytes(), i, 3, 2),
                )
                .unwrap()
            })
            .collect();
        let mut room: Vec<String> = Vec::new();
        let mut cursor = [0usize; 3];
        let mut outputs: Vec<Option<SessionOutput>> = vec![None, None, None];
        // A garbage event is dropped, not fatal.
        room.push("not an envelope".into());
        for _ in 0..10_000 {
            if outputs.iter().all(Option::is_some) {
                break;
            }
            for i in 0..3 {
                if outputs[i].is_some() {
                    continue;
                }
                while cursor[i] < room.len() {
                    let seq = cursor[i] as u64 + 1;
                    parties[i].deliver(seq, &room[cursor[i]].clone()).unwrap();
                    cursor[i] += 1;
                }
                match parties[i].poll().unwrap() {
                    Poll::Post(bodies) => room.extend(bodies),
                    Poll::Continue | Poll::Waiting => {}
                    Poll::Finished(o) => outputs[i] = Some(o),
                }
                let _ = parties[i].progress();
            }
        }
        let keys: Vec<_> = outputs
            .into_iter()
            .map(|o| match o {
                Some(SessionOutput::Keygen(s)) => s.shared_public_key,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(parties[0].stall().rejected.len(), 1);
        // Finished: the last progress says so, and polling again is refused.
        let p = parties[0].progress();
        assert!(p.is_none() || p.is_some_and(|p| p.finished));
        assert!(parties[0].poll().is_err());
        let t = parties[1].timed_out(Duration::from_secs(3));
        assert!(matches!(t, PartyError::Timeout { .. }), "{t}");
    }
}
