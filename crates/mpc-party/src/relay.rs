//! The transport-agnostic half of a party driver: envelope sealing/opening and the
//! bookkeeping of what was rejected and whom we heard from.
//!
//! Both drivers use it: the native tokio driver ([`crate::run_session`]) and the
//! browser driver of the `mpc-wasm` crate. It has no I/O, no clock and no runtime, so
//! it compiles for `wasm32-unknown-unknown` as well.

use std::collections::BTreeSet;

use mpc_core::{Incoming, Outgoing};
use mpc_wire::{Channel, IdentityKey, Opened, Roster, SessionId, StopNotice, WireError};

/// How many rejected envelopes are remembered for error reports.
pub const MAX_REMEMBERED_REJECTIONS: usize = 5;

/// Seals outgoing protocol messages and opens incoming envelopes for one party of one
/// session, remembering rejections (for the timeout report) and which peers spoke.
///
/// Envelopes that fail authentication, replays and foreign-session envelopes are
/// dropped (whoever can inject into the gateway must not be able to abort a session);
/// own echoes and envelopes addressed to other parties are skipped silently.
pub struct Relay {
    channel: Channel,
    me: u16,
    roster: Roster,
    session_id: SessionId,
    rejected: Vec<String>,
    rejected_total: u64,
    heard_from: BTreeSet<u16>,
    round: u16,
    /// The first authenticated stop notice of a peer.
    stopped_by: Option<(u16, StopNotice)>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("session_id", &self.session_id)
            .field("me", &self.me)
            .field("round", &self.round)
            .field("rejected_total", &self.rejected_total)
            .finish_non_exhaustive()
    }
}

/// What a stalled session was waiting for (for timeout errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// Session id.
    pub session: String,
    /// Round reached.
    pub round: u16,
    /// Peers we had not heard from (best effort).
    pub waiting_for: Vec<u16>,
    /// The first few rejected envelopes, with reasons.
    pub rejected: Vec<String>,
}

impl Relay {
    /// A relay for party `me` of `roster` in `session_id`.
    pub fn new(
        session_id: SessionId,
        me: u16,
        identity: IdentityKey,
        roster: Roster,
    ) -> Result<Self, WireError> {
        let channel = Channel::new(session_id.clone(), me, identity, roster.clone())?;
        Ok(Relay {
            channel,
            me,
            roster,
            session_id,
            rejected: Vec::new(),
            rejected_total: 0,
            heard_from: BTreeSet::new(),
            round: 0,
            stopped_by: None,
        })
    }

    /// Seals an outgoing protocol message into the text body to post to the gateway.
    pub fn seal(&mut self, out: &Outgoing) -> Result<String, WireError> {
        self.channel.seal(out.recipient, out.round, &out.payload)
    }

    /// Opens the gateway event `seq` with `body`.
    ///
    /// Returns the protocol message if the envelope is authentic, fresh and for us;
    /// `None` if it is skipped or rejected (rejections are logged and remembered).
    pub fn open(&mut self, seq: u64, body: &str) -> Option<Incoming> {
        match self.channel.open(body) {
            Ok(Opened::Message(m)) => {
                self.heard_from.insert(m.sender);
                Some(Incoming {
                    sender: m.sender,
                    broadcast: m.broadcast,
                    payload: m.payload,
                })
            }
            Ok(Opened::NotForMe { .. }) | Ok(Opened::OwnEcho { .. }) => None,
            Ok(Opened::Stop { sender, notice }) => {
                self.heard_from.insert(sender);
                tracing::info!(session = %self.session_id, sender, code = %notice.code, reason = %notice.reason, "a peer stopped the session");
                if self.stopped_by.is_none() {
                    self.stopped_by = Some((sender, notice));
                }
                None
            }
            Err(e) => {
                tracing::warn!(session = %self.session_id, seq, error = %e, "rejected envelope");
                self.rejected_total += 1;
                if self.rejected.len() < MAX_REMEMBERED_REJECTIONS {
                    self.rejected.push(format!("#{seq}: {e}"));
                }
                None
            }
        }
    }

    /// The first peer that stopped the session, and its notice.
    pub fn stopped_by(&self) -> Option<&(u16, StopNotice)> {
        self.stopped_by.as_ref()
    }

    /// Seals this party's stop notice (post it last: the session ends here).
    pub fn seal_stop(&mut self, notice: &StopNotice) -> Result<String, WireError> {
        self.channel.seal_stop(notice)
    }

    /// Records the round the session reached (for [`Relay::stall`]).
    pub fn set_round(&mut self, round: u16) {
        self.round = round;
    }

    /// Number of envelopes rejected so far.
    pub fn rejected_total(&self) -> u64 {
        self.rejected_total
    }

    /// The first few rejected envelopes, with reasons.
    pub fn rejected(&self) -> &[String] {
        &self.rejected
    }

    /// This party's keygen index.
    pub fn me(&self) -> u16 {
        self.me
    }

    /// The session id.
    pub fn session_id(&self) -> &SessionId {
        &self.session_id
    }

    /// What the session is waiting for, to report a timeout.
    pub fn stall(&self) -> Stall {
        Stall {
            session: self.session_id.to_string(),
            round: self.round,
            waiting_for: self
                .roster
                .iter()
                .map(|(p, _)| p)
                .filter(|&p| p != self.me && !self.heard_from.contains(&p))
                .collect(),
            rejected: self.rejected.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Relay, Relay, Vec<IdentityKey>) {
        let keys: Vec<IdentityKey> = (0..3).map(|_| IdentityKey::generate().unwrap()).collect();
        let roster =
            Roster::new(keys.iter().enumerate().map(|(i, k)| (i as u16, k.public()))).unwrap();
        let sid = SessionId::new("relay-test").unwrap();
        let a = Relay::new(sid.clone(), 0, keys[0].clone(), roster.clone()).unwrap();
        let b = Relay::new(sid, 1, keys[1].clone(), roster).unwrap();
        (a, b, keys)
    }

    #[test]
    fn seals_opens_and_tracks_rejections() {
        let (mut a, mut b, _) = setup();
        let out = Outgoing {
            recipient: Some(1),
            round: 0,
            payload: b"hello".to_vec(),
        };
        let text = a.seal(&out).unwrap();
        // Own echo is skipped, not rejected.
        assert!(a.open(1, &text).is_none());
        assert_eq!(a.rejected_total(), 0);
        let got = b.open(1, &text).unwrap();
        assert_eq!(got.sender, 0);
        assert!(!got.broadcast);
        assert_eq!(got.payload, b"hello");
        // Replay: rejected and remembered, no panic.
        assert!(b.open(2, &text).is_none());
        assert!(b.open(3, "{not json").is_none());
        assert!(b.open(4, "").is_none());
        assert_eq!(b.rejected_total(), 3);
        assert_eq!(b.rejected().len(), 3);
        assert!(b.rejected()[0].starts_with("#2: "));
        b.set_round(2);
        let stall = b.stall();
        assert_eq!(stall.round, 2);
        assert_eq!(stall.waiting_for, vec![2]);
        assert_eq!(stall.rejected.len(), 3);
    }

    #[test]
    fn remembers_at_most_a_few_rejections() {
        let (_, mut b, _) = setup();
        for i in 0..20 {
            assert!(b.open(i, "garbage").is_none());
        }
        assert_eq!(b.rejected_total(), 20);
        assert_eq!(b.rejected().len(), MAX_REMEMBERED_REJECTIONS);
    }
}
