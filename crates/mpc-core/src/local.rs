//! Running several parties' sessions in one process (key-gen CLI, tests, benchmarks).
//!
//! Messages are routed directly between the sessions; there is no network and no
//! envelope layer, so this is only for parties that trust the process they run in.

use crate::error::SessionError;
#[cfg(not(target_arch = "wasm32"))]
use crate::session::Step;
use crate::session::{Incoming, Outgoing, Session, SessionOutput};
use crate::PartyIndex;

/// An interceptor may inspect or alter every message in transit (tests use it to play a
/// misbehaving party). It receives the sender's keygen index.
pub type Interceptor<'a> = dyn FnMut(PartyIndex, &mut Outgoing) + 'a;

/// Runs the given sessions (one per party) to completion in the calling thread.
///
/// Returns the outputs in the order of `sessions`. The first error aborts the run and
/// is returned with the keygen index of the party that reported it.
pub fn run_sessions(
    sessions: Vec<Session>,
    mut intercept: Option<&mut Interceptor<'_>>,
) -> Result<Vec<SessionOutput>, (PartyIndex, SessionError)> {
    let mut sessions = sessions;
    loop {
        let mut progressed = false;
        for k in 0..sessions.len() {
            let me = sessions[k].me();
            sessions[k].run().map_err(|e| (me, e))?;
            let out = sessions[k].drain_outgoing();
            if !out.is_empty() {
                progressed = true;
            }
            for mut msg in out {
                if let Some(f) = intercept.as_deref_mut() {
                    f(me, &mut msg);
                }
                deliver(&mut sessions, me, msg)?;
            }
        }
        if sessions.iter().all(Session::is_finished) {
            break;
        }
        if !progressed {
            return Err((
                sessions[0].me(),
                SessionError::Internal(
                    "local run stalled: every session waits for messages".into(),
                ),
            ));
        }
    }
    sessions
        .iter_mut()
        .map(|s| {
            let me = s.me();
            s.take_output()
                .ok_or((me, SessionError::Internal("finished without output".into())))
        })
        .collect()
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
            handles.push(scope.spawn(move || -> Result<SessionOutput, (PartyIndex, SessionError)> {
                let result = (|| -> Result<SessionOutput, (PartyIndex, SessionError)> {
                let mut session = match factory() {
                    Ok(s) => {
                        let _ = index_tx.send((pos, s.me()));
                        s
                    }
                    Err(e) => {
                        let _ = index_tx.send((pos, PartyIndex::MAX));
                        return Err((PartyIndex::MAX, e));
                    }
                };
                drop(index_tx);
                let me = session.me();
                let keygen_by_pos = map_rx
                    .recv()
                    .map_err(|_| (me, SessionError::Internal("peer thread failed".into())))?;
                let mut last_round = 0;
                loop {
                    let step = session.run().map_err(|e| (me, e))?;
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
                            return session.take_output().ok_or((
                                me,
                                SessionError::Internal("finished without output".into()),
                            ))
                        }
                        Step::WaitingForMessages => {
                            let started = std::time::Instant::now();
                            let msg = loop {
                                if failed.load(Ordering::Relaxed) {
                                    return Err((me, SessionError::Internal("aborted: a peer failed".into())));
                                }
                                match rx.recv_timeout(std::time::Duration::from_millis(50)) {
                                    Ok(m) => break m,
                                    Err(mpsc::RecvTimeoutError::Timeout) if started.elapsed().as_secs() < 600 => {}
                                    Err(_) => return Err((me, SessionError::Internal("no message from peers for 600 s (a peer failed?)".into()))),
                                }
                            };
                            session.handle(msg).map_err(|e| (me, e))?;
                            while let Ok(msg) = rx.try_recv() {
                                session.handle(msg).map_err(|e| (me, e))?;
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
                    Err((
                        PartyIndex::MAX,
                        SessionError::Internal("party thread panicked".into()),
                    ))
                })
            })
            .collect();
        // Report the root cause: prefer a protocol error over the "peer failed" follow-ups.
        let mut outputs = Vec::with_capacity(n);
        let mut first_err = None;
        for r in results {
            match r {
                Ok(o) => outputs.push(o),
                Err(e) => {
                    let secondary = matches!(&e.1, SessionError::Internal(m) if m.contains("peer"));
                    if first_err.is_none()
                        || (!secondary
                            && matches!(&first_err, Some((_, SessionError::Internal(_)))))
                    {
                        first_err = Some(e);
                    }
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(outputs),
        }
    })
}
