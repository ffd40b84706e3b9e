//! The one session driver: the loop that runs a [`PartySession`] to its output, over
//! whatever a platform gives it ([`PartyIo`]).
//!
//! Both runners use it: the tokio runner ([`crate::drive`], native) on the session's own
//! thread, with channels to the runtime that talks to the gateway; the browser runner
//! (`mpc-wasm`) on the event loop, with `fetch`/`EventSource` and `setTimeout`. What
//! differs between them is only what [`PartyIo`] abstracts: how a body is posted, how an
//! event arrives, what the clock is, and what happens between two protocol steps
//! (yielding to an event loop, checking a cancel flag).

use std::future::Future;
use std::time::Duration;

use mpc_core::session::Progress;
use mpc_core::SessionOutput;

use mpc_wire::StopNotice;

use crate::party::{PartyError, PartySession, Poll};

/// One gateway event: its sequence number in the room and its body.
pub type Event = (u64, String);

/// What the driver needs from its platform.
///
/// Errors returned by these methods end the session with that error (a gateway failure,
/// the stream's end, a cancellation by the host).
pub trait PartyIo {
    /// Milliseconds on a monotonic clock (any origin).
    fn now_ms(&self) -> f64;

    /// Posts a sealed body to the room (bodies are posted in order, each after the
    /// previous one was accepted).
    fn post(&mut self, body: String) -> impl Future<Output = Result<(), PartyError>>;

    /// A gateway event that has already arrived, without waiting (`None`: none yet).
    fn try_event(&mut self) -> Result<Option<Event>, PartyError>;

    /// Waits at most `wait_ms` for the next gateway event (`None`: the time is up).
    fn next_event(
        &mut self,
        wait_ms: f64,
    ) -> impl Future<Output = Result<Option<Event>, PartyError>>;

    /// Called after every unit of protocol work, with the session: an event loop yields
    /// here when it has computed for long enough; a thread checks whether its host gave
    /// up (and returns an error to stop) and publishes what the session waits for.
    fn after_step(&mut self, party: &PartySession) -> impl Future<Output = Result<(), PartyError>>;

    /// The session reached a new round (or finished): for progress bars.
    fn progress(&mut self, progress: Progress);

    /// After a method above returned an error: whether it was the host asking this
    /// party to stop, and the notice to give the peers then. The driver seals the
    /// notice and posts it before returning the error. Default: hosts that never stop
    /// sessions early.
    fn take_stop(&mut self) -> Option<StopNotice> {
        None
    }
}

/// Runs `party` to its output over `io`: delivers the events that arrived, advances the
/// protocol one unit of work at a time, posts what it seals, waits for peers when it must,
/// and gives up with [`PartyError::Timeout`] (naming the round and the silent peers)
/// once `timeout` has passed since the call.
///
/// The deadline is checked between protocol steps: a step is one unit of the library's
/// work, bounded by the size checks on peers' messages
/// ([`mpc_core::session::MAX_PAILLIER_MODULUS_BITS`]). A host that must be freed exactly
/// at the deadline (the native runner, whose caller holds a permit) also races the whole
/// run against its own timer.
///
/// A host that stops the session early ([`PartyIo::take_stop`]) gets its stop notice
/// posted last, so the peers fail at once with its code instead of timing out.
pub async fn run<I: PartyIo>(
    mut party: PartySession,
    io: &mut I,
    timeout: Duration,
) -> Result<SessionOutput, PartyError> {
    let result = run_steps(&mut party, io, timeout).await;
    if result.is_err() {
        if let Some(notice) = io.take_stop() {
            match party.stop(&notice) {
                Ok(body) => {
                    if let Err(e) = io.post(body).await {
                        tracing::warn!(error = %e, "the stop notice was not posted");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot seal the stop notice"),
            }
        }
    }
    result
}

async fn run_steps<I: PartyIo>(
    party: &mut PartySession,
    io: &mut I,
    timeout: Duration,
) -> Result<SessionOutput, PartyError> {
    let deadline = io.now_ms() + timeout.as_secs_f64() * 1000.0;
    loop {
        while let Some((seq, body)) = io.try_event()? {
            party.deliver(seq, &body)?;
        }
        if io.now_ms() >= deadline {
            return Err(party.timed_out(timeout));
        }
        let next = party.poll()?;
        if let Some(p) = party.progress() {
            io.progress(p);
        }
        match next {
            Poll::Finished(out) => return Ok(out),
            Poll::Post(bodies) => {
                for body in bodies {
                    io.post(body).await?;
                }
            }
            Poll::Continue => {}
            Poll::Waiting => {
                let remaining = deadline - io.now_ms();
                if remaining <= 0.0 {
                    return Err(party.timed_out(timeout));
                }
                match io.next_event(remaining).await? {
                    Some((seq, body)) => party.deliver(seq, &body)?,
                    None => return Err(party.timed_out(timeout)),
                }
            }
        }
        io.after_step(party).await?;
    }
}

#[cfg(test)]
mod tests {
    use std::future::ready;

    use mpc_core::primes::dev_fixture_primes;
    use mpc_core::Session;
    use mpc_wire::{IdentityKey, Roster, SessionId};

    use super::*;

    /// A room shared by in-process parties, and a clock the test moves.
    struct Room {
        log: Vec<String>,
    }

    /// One party's view: its cursor in the room, a fake clock, what it reported.
    struct TestIo<'a> {
        room: &'a std::cell::RefCell<Room>,
        cursor: usize,
        clock: std::cell::Cell<f64>,
        progress: Vec<Progress>,
        steps: usize,
    }

    impl PartyIo for TestIo<'_> {
        fn now_ms(&self) -> f64 {
            self.clock.get()
        }
        fn post(&mut self, body: String) -> impl Future<Output = Result<(), PartyError>> {
            self.room.borrow_mut().log.push(body);
            ready(Ok(()))
        }
        fn try_event(&mut self) -> Result<Option<Event>, PartyError> {
            let room = self.room.borrow();
            if self.cursor < room.log.len() {
                self.cursor += 1;
                return Ok(Some((
                    self.cursor as u64,
                    room.log[self.cursor - 1].clone(),
                )));
            }
            Ok(None)
        }
        fn next_event(
            &mut self,
            wait_ms: f64,
        ) -> impl Future<Output = Result<Option<Event>, PartyError>> {
            // Nobody else runs while this party waits (one thread): time just passes.
            let e = self.try_event();
            if matches!(e, Ok(None)) {
                self.clock.set(self.clock.get() + wait_ms);
            }
            ready(e)
        }
        fn after_step(
            &mut self,
            _party: &PartySession,
        ) -> impl Future<Output = Result<(), PartyError>> {
            self.steps += 1;
            ready(Ok(()))
        }
        fn progress(&mut self, progress: Progress) {
            self.progress.push(progress);
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn parties(n: u16, sid: &str) -> Vec<PartySession> {
        let keys: Vec<IdentityKey> = (0..n).map(|_| IdentityKey::generate().unwrap()).collect();
        let roster =
            Roster::new(keys.iter().enumerate().map(|(i, k)| (i as u16, k.public()))).unwrap();
        let sid = SessionId::new(sid).unwrap();
        (0..n)
            .map(|i| {
                let sid2 = sid.clone();
                PartySession::open(
                    sid.clone(),
                    i,
                    keys[usize::from(i)].clone(),
                    roster.clone(),
                    move || Session::keygen(sid2.as_str().as_bytes(), i, n, 2),
                )
                .unwrap()
            })
            .collect()
    }

    /// A lone party (its peers never speak) times out at the deadline of the fake clock
    /// and says which round it reached and whom it waited for; a garbage event before
    /// that is dropped, not fatal, and is named in the error.
    #[test]
    fn a_party_alone_times_out_naming_the_silent_peers() {
        let _ = dev_fixture_primes();
        let room = std::cell::RefCell::new(Room {
            log: vec!["not an envelope".into()],
        });
        let mut p = parties(3, "driver-alone");
        let mut io = TestIo {
            room: &room,
            cursor: 0,
            clock: std::cell::Cell::new(1_000.0),
            progress: Vec::new(),
            steps: 0,
        };
        let err = block_on(run(p.remove(0), &mut io, Duration::from_secs(5))).unwrap_err();
        match err {
            PartyError::Timeout {
                session,
                after,
                waiting_for,
                rejected,
                ..
            } => {
                assert_eq!(session, "driver-alone");
                assert_eq!(after, Duration::from_secs(5));
                assert_eq!(waiting_for, vec![1, 2]);
                assert_eq!(rejected.len(), 1, "{rejected:?}");
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(
            io.clock.get() >= 6_000.0,
            "the deadline is the fake clock's"
        );
        assert!(room.borrow().log.len() > 1, "round 1 was posted");
        assert!(io.steps > 0 && !io.progress.is_empty());
    }

    /// An error from the platform (here: the host cancels after the first step) ends the
    /// run with that error, at once.
    #[test]
    fn an_error_from_the_host_ends_the_run() {
        struct Cancelling<'a>(TestIo<'a>);
        impl PartyIo for Cancelling<'_> {
            fn now_ms(&self) -> f64 {
                self.0.now_ms()
            }
            fn post(&mut self, body: String) -> impl Future<Output = Result<(), PartyError>> {
                self.0.post(body)
            }
            fn try_event(&mut self) -> Result<Option<Event>, PartyError> {
                self.0.try_event()
            }
            fn next_event(
                &mut self,
                wait_ms: f64,
            ) -> impl Future<Output = Result<Option<Event>, PartyError>> {
                self.0.next_event(wait_ms)
            }
            fn after_step(
                &mut self,
                _party: &PartySession,
            ) -> impl Future<Output = Result<(), PartyError>> {
                ready(Err(PartyError::Internal("cancelled by the host".into())))
            }
            fn progress(&mut self, progress: Progress) {
                self.0.progress(progress)
            }
        }
        let _ = dev_fixture_primes();
        let room = std::cell::RefCell::new(Room { log: Vec::new() });
        let mut p = parties(3, "driver-cancel");
        let mut io = Cancelling(TestIo {
            room: &room,
            cursor: 0,
            clock: std::cell::Cell::new(0.0),
            progress: Vec::new(),
            steps: 0,
        });
        let err = block_on(run(p.remove(0), &mut io, Duration::from_secs(5))).unwrap_err();
        assert!(matches!(err, PartyError::Internal(ref m) if m == "cancelled by the host"));
        assert_eq!(io.0.clock.get(), 0.0, "no waiting after the host's error");
    }

    /// A host that stops its party (a cosigner draining) gets the stop notice posted as
    /// the party's last envelope; a peer delivering it fails at once with
    /// `PeerStopped`, naming the party and the code, instead of waiting for its deadline.
    #[test]
    fn a_stopped_party_tells_its_peers_why() {
        struct Stopping<'a> {
            io: TestIo<'a>,
            notice: Option<mpc_wire::StopNotice>,
            stop: Option<mpc_wire::StopNotice>,
        }
        impl PartyIo for Stopping<'_> {
            fn now_ms(&self) -> f64 {
                self.io.now_ms()
            }
            fn post(&mut self, body: String) -> impl Future<Output = Result<(), PartyError>> {
                self.io.post(body)
            }
            fn try_event(&mut self) -> Result<Option<Event>, PartyError> {
                // The host stops the party once its first round is out.
                if self.io.steps > 0 {
                    if let Some(n) = self.notice.take() {
                        let reason = n.reason.clone();
                        self.stop = Some(n);
                        return Err(PartyError::Stopped(reason));
                    }
                }
                self.io.try_event()
            }
            fn next_event(
                &mut self,
                wait_ms: f64,
            ) -> impl Future<Output = Result<Option<Event>, PartyError>> {
                self.io.next_event(wait_ms)
            }
            fn after_step(
                &mut self,
                party: &PartySession,
            ) -> impl Future<Output = Result<(), PartyError>> {
                self.io.after_step(party)
            }
            fn progress(&mut self, progress: Progress) {
                self.io.progress(progress)
            }
            fn take_stop(&mut self) -> Option<mpc_wire::StopNotice> {
                self.stop.take()
            }
        }
        let _ = dev_fixture_primes();
        let room = std::cell::RefCell::new(Room { log: Vec::new() });
        let mut p = parties(3, "driver-stop");
        let mut peer = p.remove(0);
        let notice = mpc_wire::StopNotice::new("cosigner_unavailable", "draining").unwrap();
        let mut io = Stopping {
            io: TestIo {
                room: &room,
                cursor: 0,
                clock: std::cell::Cell::new(0.0),
                progress: Vec::new(),
                steps: 0,
            },
            notice: Some(notice),
            stop: None,
        };
        let err = block_on(run(p.remove(0), &mut io, Duration::from_secs(5))).unwrap_err();
        assert!(
            matches!(err, PartyError::Stopped(ref r) if r == "draining"),
            "{err}"
        );
        let log = room.borrow().log.clone();
        assert!(log.len() >= 2, "round 1 and the stop notice were posted");
        let mut stopped = None;
        for (i, body) in log.iter().enumerate() {
            if let Err(e) = peer.deliver(i as u64 + 1, body) {
                stopped = Some(e);
                break;
            }
        }
        match stopped {
            Some(PartyError::PeerStopped {
                party,
                code,
                reason,
            }) => {
                assert_eq!(party, 1);
                assert_eq!(code, "cosigner_unavailable");
                assert_eq!(reason, "draining");
            }
            other => panic!("expected PeerStopped, got {other:?}"),
        }
    }
}
