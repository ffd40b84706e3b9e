//! Running several parties' sessions in one process (key-gen CLI, offline signing,
//! tests, benchmarks, the browser's local runs).
//!
//! Messages are routed directly between the sessions; there is no network and no
//! envelope layer, so this is only for parties that trust the process they run in.
//!
//! [`LocalRun`] is the runner: one [`LocalRun::step`] is one unit of work of one
//! session, so an event loop that must stay responsive (the browser's) calls it until it
//! has computed for long enough, yields, and calls it again. [`run_sessions`] runs it to
//! the end in the calling thread; [`run_sessions_threaded`] runs each party on its own
//! thread instead (native only).

use crate::error::SessionError;
use crate::session::{Incoming, Outgoing, Session, SessionOutput, Step};
use crate::PartyIndex;

/// An interceptor may inspect or alter every message in transit (tests use it to play a
/// misbehaving party). It receives the sender's keygen index.
pub type Interceptor<'a> = dyn FnMut(PartyIndex, &mut Outgoing) + 'a;

/// What [`LocalRun::step`] did.
#[derive(Debug)]
pub enum LocalStep {
    /// Work was done; call [`LocalRun::step`] again (yielding first if you must).
    Continue,
    /// Every session finished: their outputs, in the order the sessions were given.
    Finished(Vec<SessionOutput>),
}

/// Several parties' sessions run in one thread, one unit of work per
/// [`step`](LocalRun::step). See the [module docs](self).
pub struct LocalRun<'r, 'i> {
    sessions: Vec<Session>,
    intercept: Option<&'r mut Interceptor<'i>>,
    /// The session the next step advances.
    next: usize,
    /// Whether any session did work since `next` was last 0 (stall detection).
    progressed: bool,
}

impl std::fmt::Debug for LocalRun<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRun")
            .field("sessions", &self.sessions)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl<'r, 'i> LocalRun<'r, 'i> {
    /// A run of `sessions` (one per party), messages optionally passing `intercept`.
    pub fn new(sessions: Vec<Session>, intercept: Option<&'r mut Interceptor<'i>>) -> Self {
        LocalRun {
            sessions,
            intercept,
            next: 0,
            progressed: false,
        }
    }

    /// Advances one session by one unit of work and delivers what it sent.
    ///
    /// Errors carry the keygen index of the party that reported them; the run is over
    /// after an error. A round in which every session waits for messages is an error
    /// (a stall: it would never end).
    pub fn step(&mut self) -> Result<LocalStep, (PartyIndex, SessionError)> {
        if self.sessions.iter().all(Session::is_finished) {
            return self.outputs().map(LocalStep::Finished);
        }
        let k = self.next;
        self.next = (self.next + 1) % self.sessions.len();
        let me = self.sessions[k].me();
        if !self.sessions[k].is_finished() {
            let step = self.sessions[k].step().map_err(|e| (me, e))?;
            if !matches!(step, Step::WaitingForMessages) {
                self.progressed = true;
            }
            for mut msg in self.sessions[k].drain_outgoing() {
                if let Some(f) = self.intercept.as_deref_mut() {
                    f(me, &mut msg);
                }
                deliver(&mut self.sessions, me, msg)?;
            }
        }
        if self.next == 0
            && !std::mem::take(&mut self.progressed)
            && !self.sessions.iter().all(Session::is_finished)
        {
            return Err((
                self.sessions[0].me(),
                SessionError::Internal(
                    "local run stalled: every session waits for messages".into(),
                ),
            ));
        }
        Ok(LocalStep::Continue)
    }

    fn outputs(&mut self) -> Result<Vec<SessionOutput>, (PartyIndex, SessionError)> {
        self.sessions
            .iter_mut()
            .map(|s| {
                let me = s.me();
                s.take_output()
                    .ok_or((me, SessionError::Internal("finished without output".into())))
            })
            .collect()
    }
}

/// Runs the given sessions (one per party) to completion in the calling thread.
///
/// Returns the outputs in the order of `sessions`. The first error aborts the run and
/// is returned with the keygen index of the party that reported it.
pub fn run_sessions(
    sessions: Vec<Session>,
    intercept: Option<&mut Interceptor<'_>>,
) -> Result<Vec<SessionOutput>, (PartyIndex, SessionError)> {
    let mut run = LocalRun::new(sessions, intercept);
    loop {
        if let LocalStep::Finished(out) = run.step()? {
            return Ok(out);
        }
    }
}

fn deliver(
    sessions: &mut [Session],
    from: PartyIndex,
    msg: Outgoing,
) -> Result<(), (PartyIndex, SessionError)> {
    for s in sessions.iter_mut() {
        let to = s.me();
        if to == from || s.is_finished() {
            continue;
        }
        let wanted = match msg.recipient {
            None => true,
            Some(r) => r == to,
        };
        if wanted {
            s.handle(Incoming {
                sender: from,
                broadcast: msg.recipient.is_none(),
                payload: msg.payload.clone(),
            })
            .map_err(|e| (to, e))?;
        }
    }
    Ok(())
}

/// Runs sessions in parallel, one thread per party (native only).
///
/// Each factory builds its session on its own thread (sessions are not `Send`).
/// `progress` is called from the parties' threads whenever a party reaches a new round.
#[cfg(not(target_arch = "wasm32"))]
pub fn run_sessions_threaded<F>(
    factories: Vec<F>,
    progress: &(dyn Fn(PartyIndex, crate::session::Progress) + Sync),
) -> Result<Vec<SessionOutput>, (PartyIndex, SessionError)>
where
    F: FnOnce() -> Result<Session, SessionError> + Send,
{
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    let failed = AtomicBool::new(false);

    let n = factories.len();
    let mut senders = Vec::with_capacity(n);
    let mut receivers = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mpsc::channel::<Incoming>();
        senders.push(tx);
        receivers.push(rx);
    }
    // Party k gets index position k; map keygen indices to positions after creation.
    let (index_tx, index_rx) = mpsc::channel::<(usize, PartyIndex)>();
    let (map_txs, map_rxs): (Vec<_>, Vec<_>) =
        (0..n).map(|_| mpsc::channel::<Vec<PartyIndex>>()).unzip();

    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (pos, ((factory, rx), map_rx)) in factories
            .into_iter()
            .zip(receivers)
            .zip(map_rxs)
            .enumerate()
        {
            let senders = senders.clone();
            let index_tx = index_tx.clone();
            let failed = &failed;
            handles.push(scope.spawn(move || -> Result<SessionOutput, Failure> {
                let result = (|| -> Result<SessionOutput, Failure> {
                    let mut session = match factory() {
                        Ok(s) => {
                            let _ = index_tx.send((pos, s.me()));
                            s
                        }
                        Err(e) => {
                            let _ = index_tx.send((pos, PartyIndex::MAX));
                            return Err(Failure::Own(PartyIndex::MAX, e));
                        }
                    };
                    drop(index_tx);
                    let me = session.me();
                    let keygen_by_pos = map_rx
                        .recv()
                        .map_err(|_| Failure::peer(me, "peer thread failed"))?;
                    let mut last_round = 0;
                    loop {
                        let step = session.run().map_err(|e| Failure::Own(me, e))?;
                        for msg in session.drain_outgoing() {
                            for (p, &k) in keygen_by_pos.iter().enumerate() {
                                if k == me || msg.recipient.is_some_and(|r| r != k) {
                                    continue;
                                }
                                // A closed channel means that party finished or failed; its
                                // own error is reported through its thread result.
                                let _ = senders[p].send(Incoming {
                                    sender: me,
                                    broadcast: msg.recipient.is_none(),
                                    payload: msg.payload.clone(),
                                });
                            }
                        }
                        let pr = session.progress();
                        if pr.round != last_round || pr.finished {
                            last_round = pr.round;
                            progress(me, pr);
                        }
                        match step {
                            Step::Finished => {
                                return session.take_output().ok_or(Failure::Own(
                                    me,
                                    SessionError::Internal("finished without output".into()),
                                ))
                            }
                            Step::WaitingForMessages => {
                                let started = std::time::Instant::now();
                                let msg = loop {
                                    if failed.load(Ordering::Relaxed) {
                                        return Err(Failure::peer(me, "aborted: a peer failed"));
                                    }
                                    match rx.recv_timeout(std::time::Duration::from_millis(50)) {
                                        Ok(m) => break m,
                                        Err(mpsc::RecvTimeoutError::Timeout)
                                            if started.elapsed().as_secs() < 600 => {}
                                        Err(_) => {
                                            return Err(Failure::peer(
                                                me,
                                                "no message from peers for 600 s (a peer failed?)",
                                            ))
                                        }
                                    }
                                };
                                session.handle(msg).map_err(|e| Failure::Own(me, e))?;
                                while let Ok(msg) = rx.try_recv() {
                                    session.handle(msg).map_err(|e| Failure::Own(me, e))?;
                                }
                            }
                            Step::Continue => {}
                        }
                    }
                })();
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                result
            }));
        }
        drop(index_tx);
        let mut keygen_by_pos = vec![PartyIndex::MAX; n];
        for (pos, k) in index_rx.iter() {
            keygen_by_pos[pos] = k;
        }
        for tx in &map_txs {
            let _ = tx.send(keygen_by_pos.clone());
        }
        drop(map_txs);
        drop(senders);
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Failure::Own(
                        PartyIndex::MAX,
                        SessionError::Internal("party thread panicked".into()),
                    ))
                })
            })
            .collect();
        // Report the root cause: a party's own failure over the "a peer failed"
        // follow-ups of the others.
        let mut outputs = Vec::with_capacity(n);
        let mut own = None;
        let mut follow_up = None;
        for r in results {
            match r {
                Ok(o) => outputs.push(o),
                Err(Failure::Own(p, e)) => {
                    own.get_or_insert((p, e));
                }
                Err(Failure::PeerGone(p, e)) => {
                    follow_up.get_or_insert((p, e));
                }
            }
        }
        match own.or(follow_up) {
            Some(e) => Err(e),
            None => Ok(outputs),
        }
    })
}

/// Why a party's thread of [`run_sessions_threaded`] ended without output.
#[cfg(not(target_arch = "wasm32"))]
enum Failure {
    /// Its own session failed (the root cause).
    Own(PartyIndex, SessionError),
    /// It stopped because a peer failed or went silent (a follow-up).
    PeerGone(PartyIndex, SessionError),
}

#[cfg(not(target_arch = "wasm32"))]
impl Failure {
    fn peer(me: PartyIndex, why: &str) -> Self {
        Failure::PeerGone(me, SessionError::Internal(why.into()))
    }
}
