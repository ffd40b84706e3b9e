//! One party's end of a session: seals outgoing and opens incoming envelopes.

use core::fmt;
use std::collections::{BTreeMap, BTreeSet};

use crate::stop::{StopNotice, STOP_ROUND};
use crate::{Envelope, IdentityKey, Roster, SessionId, WireError, MAX_ENVELOPE_BYTES, VERSION};

/// A protocol message that passed every check, ready for the protocol state machine
/// (it maps 1:1 onto `mpc_core::Incoming { sender, broadcast, payload }`).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// Sender's keygen index (authenticated).
    pub sender: u16,
    /// `true` for a broadcast, `false` for a p2p message addressed to us.
    pub broadcast: bool,
    /// Protocol round claimed (and signed) by the sender.
    pub round: u16,
    /// Sender's sequence number.
    pub seq: u64,
    /// The protocol payload (decrypted for p2p).
    pub payload: Vec<u8>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A p2p payload may carry secret shares: never print payload bytes.
        f.debug_struct("Message")
            .field("sender", &self.sender)
            .field("broadcast", &self.broadcast)
            .field("round", &self.round)
            .field("seq", &self.seq)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Result of [`Channel::open`] for an envelope that is not rejected.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Opened {
    /// A message for us: feed it to the protocol.
    Message(Message),
    /// A correctly signed p2p envelope addressed to another party (the gateway shows
    /// every envelope to everybody). Ignore it.
    NotForMe {
        /// Sender.
        sender: u16,
        /// The party it is addressed to.
        recipient: u16,
        /// Sender's sequence number.
        seq: u64,
    },
    /// Our own envelope echoed back by the gateway (signature verified). Ignore it.
    OwnEcho {
        /// Our sequence number of that envelope.
        seq: u64,
    },
    /// A peer ended the session early and says why ([`crate::stop`]): stop too, with
    /// its code.
    Stop {
        /// The peer (authenticated).
        sender: u16,
        /// Its notice.
        notice: StopNotice,
    },
}

#[derive(Clone, Debug, Default)]
struct PeerState {
    /// Sequence numbers accepted from this peer (small: one protocol run).
    accepted: BTreeSet<u64>,
}

/// One party's end of one session: its identity, the session id, the roster, the
/// next own sequence number and the sequence numbers accepted from each peer.
///
/// Create one per protocol run with a fresh session id, keep it for the whole run
/// (sequence numbers are not persisted: a restarted party must start a new session).
pub struct Channel {
    session: SessionId,
    me: u16,
    identity: IdentityKey,
    roster: Roster,
    next_seq: u64,
    peers: BTreeMap<u16, PeerState>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("session", &self.session)
            .field("me", &self.me)
            .field("identity", &self.identity)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// Opens party `me`'s end of `session`. Fails unless `roster[me]` is `identity`'s
    /// public identity.
    pub fn new(
        session: SessionId,
        me: u16,
        identity: IdentityKey,
        roster: Roster,
    ) -> Result<Self, WireError> {
        match roster.get(me) {
            None => {
                return Err(WireError::InvalidRoster {
                    reason: format!("own index {me} is not in the roster"),
                })
            }
            Some(p) if *p != identity.public() => {
                return Err(WireError::InvalidRoster {
                    reason: format!("roster entry of own index {me} is not this identity"),
                })
            }
            Some(_) => {}
        }
        Ok(Self {
            session,
            me,
            identity,
            roster,
            next_seq: 0,
            peers: BTreeMap::new(),
        })
    }

    /// This channel's session id.
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// Our own party index.
    pub fn me(&self) -> u16 {
        self.me
    }

    /// The roster.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// Sequence number the next sealed envelope will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Seals a protocol message (maps 1:1 onto `mpc_core::Outgoing { recipient, round,
    /// payload }`) into envelope JSON text to post to the gateway.
    ///
    /// Post sealed envelopes to the gateway **one after the other, in seal order**
    /// (wait for each post to be accepted before the next): receivers reject an
    /// envelope whose sequence number is lower than one they already accepted from
    /// this sender ([`WireError::Reordered`]), so concurrent posts that overtake each
    /// other would stall the protocol.
    pub fn seal(
        &mut self,
        recipient: Option<u16>,
        round: u16,
        payload: &[u8],
    ) -> Result<String, WireError> {
        self.seal_envelope(recipient, round, payload)?.to_json()
    }

    /// Seals a stop notice ([`crate::stop`]): a broadcast of round [`STOP_ROUND`] telling
    /// the peers this party ends the session, and why. Post it last.
    pub fn seal_stop(&mut self, notice: &StopNotice) -> Result<String, WireError> {
        self.seal_any(None, STOP_ROUND, &notice.to_payload()?)?
            .to_json()
    }

    /// Like [`Channel::seal`] but returns the [`Envelope`] value.
    ///
    /// Each successful call consumes one sequence number; a failed call consumes none.
    /// The round [`STOP_ROUND`] is reserved for stop notices ([`Channel::seal_stop`]): a
    /// protocol message can never be read as one.
    pub fn seal_envelope(
        &mut self,
        recipient: Option<u16>,
        round: u16,
        payload: &[u8],
    ) -> Result<Envelope, WireError> {
        if round == STOP_ROUND {
            return Err(WireError::Malformed {
                sender: None,
                reason: format!("round {STOP_ROUND} is reserved for stop notices"),
            });
        }
        self.seal_any(recipient, round, payload)
    }

    /// [`Channel::seal_envelope`] of any round (stop notices included).
    pub(crate) fn seal_any(
        &mut self,
        recipient: Option<u16>,
        round: u16,
        payload: &[u8],
    ) -> Result<Envelope, WireError> {
        // Base64 grows the payload by 4/3; refuse early what cannot fit.
        if payload.len() / 3 * 4 > MAX_ENVELOPE_BYTES {
            return Err(WireError::PayloadTooLarge {
                size: payload.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        let to = match recipient {
            None => None,
            Some(r) if r == self.me => {
                return Err(WireError::InvalidRecipient {
                    recipient: r,
                    reason: "that is ourselves",
                })
            }
            Some(r) => match self.roster.get(r) {
                None => {
                    return Err(WireError::InvalidRecipient {
                        recipient: r,
                        reason: "not in the roster",
                    })
                }
                Some(p) => Some((r, *p.dh_key())),
            },
        };
        let seq = self.next_seq;
        let next = seq.checked_add(1).ok_or(WireError::SeqExhausted)?;
        let env = Envelope::seal(
            &self.identity,
            &self.session,
            self.me,
            to.as_ref().map(|(r, k)| (*r, k)),
            round,
            seq,
            payload,
        )?;
        self.next_seq = next;
        Ok(env)
    }

    /// Opens envelope text received from the gateway.
    ///
    /// Checks, in this order: size, JSON shape and base64, version, session, sender in
    /// roster, recipient in roster, signature; then own echo / not-for-me; then
    /// replay and order; then decrypts a p2p payload. Only an envelope returned as
    /// [`Opened::Message`] changes the channel's state (it records the sequence number).
    pub fn open(&mut self, text: &str) -> Result<Opened, WireError> {
        let env = Envelope::from_json(text)?;
        self.open_envelope(&env)
    }

    /// Like [`Channel::open`] for raw bytes (must be UTF-8).
    pub fn open_bytes(&mut self, bytes: &[u8]) -> Result<Opened, WireError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(WireError::TooLarge {
                size: bytes.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        let text = core::str::from_utf8(bytes).map_err(|e| WireError::Malformed {
            sender: None,
            reason: format!("not UTF-8: {e}"),
        })?;
        self.open(text)
    }

    /// Like [`Channel::open`] for an already parsed envelope.
    pub fn open_envelope(&mut self, env: &Envelope) -> Result<Opened, WireError> {
        let sender = env.sender;
        if env.v != VERSION {
            return Err(WireError::UnsupportedVersion {
                sender: Some(sender),
                version: u64::from(env.v),
            });
        }
        if env.session != self.session {
            return Err(WireError::ForeignSession {
                sender,
                expected: self.session.to_string(),
                got: env.session.to_string(),
            });
        }
        let Some(sender_id) = self.roster.get(sender) else {
            return Err(WireError::UnknownSender { sender });
        };
        if let Some(r) = env.recipient {
            if !self.roster.contains(r) {
                return Err(WireError::RecipientOutOfRange {
                    sender,
                    recipient: r,
                });
            }
            if r == sender {
                return Err(WireError::Malformed {
                    sender: Some(sender),
                    reason: "p2p envelope addressed to its own sender".into(),
                });
            }
        }
        if !env.verify(sender_id.sign_key()) {
            return Err(WireError::BadSignature { sender });
        }
        if sender == self.me {
            return Ok(Opened::OwnEcho { seq: env.seq });
        }
        if let Some(r) = env.recipient {
            if r != self.me {
                return Ok(Opened::NotForMe {
                    sender,
                    recipient: r,
                    seq: env.seq,
                });
            }
        }
        if let Some(state) = self.peers.get(&sender) {
            if state.accepted.contains(&env.seq) {
                return Err(WireError::Replay {
                    sender,
                    seq: env.seq,
                });
            }
            if let Some(&highest) = state.accepted.last() {
                if env.seq < highest {
                    return Err(WireError::Reordered {
                        sender,
                        seq: env.seq,
                        highest,
                    });
                }
            }
        }
        let stop = if env.round == STOP_ROUND {
            if env.recipient.is_some() {
                return Err(WireError::Malformed {
                    sender: Some(sender),
                    reason: "a stop notice sent p2p (it is a broadcast)".into(),
                });
            }
            Some(StopNotice::from_payload(sender, &env.payload)?)
        } else {
            None
        };
        let payload = match env.recipient {
            None => env.payload.clone(),
            Some(_) => env.decrypt(&self.identity)?,
        };
        // Every check passed: now, and only now, record the sequence number.
        self.peers
            .entry(sender)
            .or_default()
            .accepted
            .insert(env.seq);
        if let Some(notice) = stop {
            return Ok(Opened::Stop { sender, notice });
        }
        Ok(Opened::Message(Message {
            sender,
            broadcast: env.recipient.is_none(),
            round: env.round,
            seq: env.seq,
            payload,
        }))
    }
}
