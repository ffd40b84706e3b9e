//! Protocol sessions as plain values: feed incoming messages, drain outgoing ones.
//!
//! A [`Session`] wraps one run of a `cggmp24` protocol (aux info, DKG, signing or
//! presignature generation) driven through the library's synchronous state machine.
//! There is no I/O inside: the caller moves [`Outgoing`] messages to the network and
//! hands received ones to [`Session::handle`]. The same driver therefore serves tokio,
//! the browser event loop and a Web Worker.
//!
//! Parties are always named by their **keygen index** (0 device, 1 cosigner,
//! 2 recovery); the session maps them to the library's per-session numbering.
//!
//! A session is not `Send` (the library's state machine uses `Rc` internally): run it on
//! the thread that created it, e.g. inside `spawn_blocking` or a dedicated worker.

use std::collections::{HashSet, VecDeque};

use cggmp24::round_based::state_machine::{ProceedResult, StateMachine};
use cggmp24::round_based::{self, MessageDestination, MessageType, ProtocolMessage};
use rand_core::OsRng;
use serde::{de::DeserializeOwned, Serialize};

use crate::error::{extract_blame, SessionError};
use crate::lifecycle::EpochShare;
use crate::{
    AuxInfo, Curve, IncompleteKeyShare, KeyShare, PartyIndex, Presignature, PresignaturePublicData,
    SecurityLevel, Signature,
};

/// Which protocol a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// Auxiliary info generation (Paillier keys, ring-Pedersen parameters).
    AuxInfo,
    /// Threshold distributed key generation.
    Keygen,
    /// Full interactive signing.
    Sign,
    /// Presignature generation (signing later takes one local step).
    Presign,
    /// Proactive refresh of the key shares (`crate::lifecycle`).
    Refresh,
    /// Repair of one party's share by the two others (`crate::lifecycle`).
    Repair,
}

impl SessionKind {
    /// A stable name, used in execution ids and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::AuxInfo => "aux-info",
            SessionKind::Keygen => "keygen",
            SessionKind::Sign => "sign",
            SessionKind::Presign => "presign",
            SessionKind::Refresh => "refresh",
            SessionKind::Repair => "repair",
        }
    }

    /// Number of protocol rounds (including the reliable-broadcast echo round), used
    /// for progress reporting.
    pub fn total_rounds(self) -> u16 {
        match self {
            SessionKind::AuxInfo => 4,
            SessionKind::Keygen => 4,
            SessionKind::Sign => 5,
            SessionKind::Presign => 4,
            SessionKind::Refresh => 3,
            SessionKind::Repair => 2,
        }
    }
}

/// A message the session wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Keygen index of the recipient, or `None` for a broadcast to all participants.
    pub recipient: Option<PartyIndex>,
    /// Protocol round the message belongs to.
    pub round: u16,
    /// Encoded protocol message (opaque to transports).
    pub payload: Vec<u8>,
}

/// A message received from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Keygen index of the (authenticated) sender.
    pub sender: PartyIndex,
    /// Whether the sender broadcast it (as opposed to sending it to us alone).
    pub broadcast: bool,
    /// Encoded protocol message.
    pub payload: Vec<u8>,
}

/// What a session produced.
#[derive(Clone)]
pub enum SessionOutput {
    /// Aux info of this party.
    AuxInfo(Box<AuxInfo>),
    /// This party's share of a new key (complete it with aux info).
    Keygen(Box<IncompleteKeyShare>),
    /// The signature.
    Signature(Signature),
    /// This party's presignature and the public data needed to combine partial signatures.
    Presignature(Box<Presignature>, Box<PresignaturePublicData>),
    /// The refreshed share (epoch + 1) of a [`Session::refresh`].
    Refreshed(Box<EpochShare>),
    /// The rebuilt share of a [`Session::repair_new`] (same epoch).
    Repaired(Box<EpochShare>),
    /// A [`Session::repair_helper`]'s part is done (it keeps nothing).
    RepairHelped,
}

impl std::fmt::Debug for SessionOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionOutput::AuxInfo(_) => f.write_str("AuxInfo(..)"),
            SessionOutput::Keygen(_) => f.write_str("Keygen(..)"),
            SessionOutput::Signature(s) => write!(f, "Signature({s:?})"),
            SessionOutput::Presignature(..) => f.write_str("Presignature(..)"),
            SessionOutput::Refreshed(s) => write!(f, "Refreshed({s:?})"),
            SessionOutput::Repaired(s) => write!(f, "Repaired({s:?})"),
            SessionOutput::RepairHelped => f.write_str("RepairHelped"),
        }
    }
}

/// Result of advancing a session.
#[derive(Debug)]
pub enum Step {
    /// The session did some work and can continue at once (call [`Session::step`] again).
    /// Returned at the library's yield points so event loops can stay responsive.
    Continue,
    /// The session is waiting for messages from peers.
    WaitingForMessages,
    /// The session has finished; take the output with [`Session::take_output`].
    Finished,
}

/// Progress of a session, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// Which protocol.
    pub kind: SessionKind,
    /// The highest round this party has reached (sent a message in), 0 before it starts.
    pub round: u16,
    /// Total rounds of the protocol.
    pub total_rounds: u16,
    /// Whether the session has finished.
    pub finished: bool,
}

impl Progress {
    /// Completion in percent (0..=100).
    pub fn percent(&self) -> u8 {
        if self.finished {
            return 100;
        }
        let total = u32::from(self.total_rounds.max(1));
        let done = u32::from(self.round.min(self.total_rounds));
        (done * 100 / (total + 1)).min(99) as u8
    }
}

pub(crate) enum MachineStep {
    Send {
        to: Option<u16>,
        round: u16,
        payload: Vec<u8>,
    },
    NeedMsg,
    Yielded,
    Done(Result<SessionOutput, SessionError>),
}

pub(crate) enum Feed {
    Accepted,
    Malformed(String),
    Rejected,
}

/// Type-erased state machine of one protocol.
pub(crate) trait Machine {
    fn proceed(&mut self, participants: &[PartyIndex]) -> MachineStep;
    /// `sender` is the session index (not the keygen index).
    fn feed(&mut self, sender: u16, broadcast: bool, id: u64, payload: &[u8]) -> Feed;
    /// Decodes a peer's message and applies the protocol's own bounds to it (without
    /// feeding it): its round if it is acceptable, why not otherwise.
    fn admit(&self, payload: &[u8]) -> Result<u16, String>;
}

struct Typed<SM: StateMachine, F> {
    sm: SM,
    map: Option<F>,
    /// Checks a decoded peer message before the state machine may see it
    /// ([`accept_any`] for protocols with nothing to bound).
    check: fn(&SM::Msg) -> Result<(), String>,
}

/// The [`Typed::check`] of protocols whose messages need no check beyond decoding.
fn accept_any<M>(_: &M) -> Result<(), String> {
    Ok(())
}

impl<SM, F, O, E, M> Machine for Typed<SM, F>
where
    SM: StateMachine<Output = Result<O, E>, Msg = M>,
    F: FnOnce(O) -> SessionOutput,
    E: std::error::Error,
    M: Serialize + DeserializeOwned + ProtocolMessage,
{
    fn proceed(&mut self, participants: &[PartyIndex]) -> MachineStep {
        match self.sm.proceed() {
            ProceedResult::SendMsg(out) => {
                let to = match out.recipient {
                    MessageDestination::AllParties => None,
                    MessageDestination::OneParty(j) => Some(j),
                };
                let round = out.msg.round();
                match encode(&out.msg) {
                    Ok(payload) => MachineStep::Send { to, round, payload },
                    Err(e) => MachineStep::Done(Err(SessionError::Internal(format!(
                        "cannot encode own message: {e}"
                    )))),
                }
            }
            ProceedResult::NeedsOneMoreMessage => MachineStep::NeedMsg,
            ProceedResult::Yielded => MachineStep::Yielded,
            ProceedResult::Output(Ok(out)) => match self.map.take() {
                Some(map) => MachineStep::Done(Ok(map(out))),
                None => MachineStep::Done(Err(SessionError::Finished)),
            },
            ProceedResult::Output(Err(err)) => {
                let debug = format!("{err:?}");
                MachineStep::Done(Err(SessionError::Aborted {
                    blamed: extract_blame(&debug, participants),
                    reason: error_chain(&err),
                }))
            }
            ProceedResult::Error(err) => {
                MachineStep::Done(Err(SessionError::Internal(err.to_string())))
            }
        }
    }

    fn feed(&mut self, sender: u16, broadcast: bool, id: u64, payload: &[u8]) -> Feed {
        let msg: M = match decode(payload) {
            Ok(m) => m,
            Err(e) => return Feed::Malformed(e),
        };
        let incoming = round_based::Incoming {
            id,
            sender,
            msg_type: if broadcast {
                MessageType::Broadcast
            } else {
                MessageType::P2P
            },
            msg,
        };
        match self.sm.received_msg(incoming) {
            Ok(()) => Feed::Accepted,
            Err(_) => Feed::Rejected,
        }
    }

    fn admit(&self, payload: &[u8]) -> Result<u16, String> {
        let msg = decode::<M>(payload)?;
        (self.check)(&msg)?;
        Ok(msg.round())
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}

/// Largest protocol payload this participant decodes (aux-info proofs are the largest
/// messages, a few hundred KiB).
pub const MAX_PAYLOAD: usize = 4 << 20;

/// Fewest bits of a peer's Paillier modulus N or ring-Pedersen modulus N̂ in aux info:
/// 3,071, the library's own minimum for [`SecurityLevel`] (two 1,536-bit primes make a
/// 3,071- or 3,072-bit product).
pub const MIN_PAILLIER_MODULUS_BITS: u64 =
    <SecurityLevel as cggmp24::security_level::SecurityLevel>::RSA_PUBKEY_BITLEN as u64;

/// Most bits of a peer's Paillier modulus N or ring-Pedersen modulus N̂ in aux info:
/// 3,136 = two 1,536-bit primes (3,072 bits, what every generator of this wallet and of
/// the library produces) plus a margin of 64 bits (a prime of up to 1,568 bits).
///
/// The library checks only the minimum. Its cost grows with these moduli: the π_prm
/// check of a round-2 message is 128 exponentiations modulo N̂ with exponents as large as
/// N̂, and every later signing works modulo N². A peer's N̂ of 3 million bits (it fits in
/// one message) would cost hours of CPU; the margin costs at most about 7 %. Checked
/// when a message is handed to the session ([`Session::handle`]), before the protocol
/// sees it.
pub const MAX_PAILLIER_MODULUS_BITS: u64 =
    2 * (<SecurityLevel as cggmp24::security_level::SecurityLevel>::RSA_PRIME_BITLEN as u64) + 64;

/// The aux-info protocol's message (the library's default digest, SHA-256).
pub type AuxInfoMsg = cggmp24::key_refresh::msg::Msg<sha2::Sha256, SecurityLevel>;

/// The bounds of an aux-info message: the round-2 decommitment's N and N̂ must have
/// [`MIN_PAILLIER_MODULUS_BITS`]..=[`MAX_PAILLIER_MODULUS_BITS`] bits (their s and t
/// are checked by the library against N̂, its proofs' numbers against N and N̂). The
/// other rounds carry nothing that these bounds do not already limit.
pub fn check_aux_info_msg(msg: &AuxInfoMsg) -> Result<(), String> {
    if let cggmp24::key_refresh::msg::Msg::Round2(m) = msg {
        for (what, n) in [
            ("Paillier modulus N", &m.N),
            ("ring-Pedersen modulus N\u{302}", &m.hat_N),
        ] {
            let bits = n.significant_bits();
            if !(MIN_PAILLIER_MODULUS_BITS..=MAX_PAILLIER_MODULUS_BITS).contains(&bits) {
                return Err(format!(
                    "aux info: its {what} has {bits} bits, outside the accepted \
                     {MIN_PAILLIER_MODULUS_BITS}..={MAX_PAILLIER_MODULUS_BITS} (1,536-bit primes)"
                ));
            }
        }
    }
    Ok(())
}

/// Encodes a protocol message for the wire.
fn encode<M: Serialize>(msg: &M) -> Result<Vec<u8>, String> {
    serde_json::to_vec(msg).map_err(|e| e.to_string())
}

/// Decodes a protocol message from the wire; never panics on peer data.
fn decode<M: DeserializeOwned>(payload: &[u8]) -> Result<M, String> {
    if payload.len() > MAX_PAYLOAD {
        return Err(format!(
            "payload of {} bytes exceeds the limit of {MAX_PAYLOAD}",
            payload.len()
        ));
    }
    serde_json::from_slice(payload).map_err(|e| e.to_string())
}

/// One run of a protocol. See the [module docs](self).
pub struct Session {
    kind: SessionKind,
    me: PartyIndex,
    participants: Vec<PartyIndex>,
    machine: Box<dyn Machine>,
    inbox: VecDeque<(u16, bool, Vec<u8>)>,
    seen: HashSet<(PartyIndex, u16, bool)>,
    outbox: VecDeque<Outgoing>,
    waiting: bool,
    next_id: u64,
    round: u16,
    output: Option<SessionOutput>,
    failed: Option<SessionError>,
    finished: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("kind", &self.kind)
            .field("me", &self.me)
            .field("participants", &self.participants)
            .field("round", &self.round)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// The signing builder set to the non-hardened HD child at `path` (unchanged for none).
fn at_path(
    builder: cggmp24::signing::SigningBuilder<'_, Curve, SecurityLevel>,
    path: Option<Vec<u32>>,
) -> Result<cggmp24::signing::SigningBuilder<'_, Curve, SecurityLevel>, SignFailure> {
    match path {
        Some(path) => builder
            .set_derivation_path(path)
            .map_err(|e| SignFailure::Path(format!("{e:?}"))),
        None => Ok(builder),
    }
}

/// Builds the execution id shared by all participants from the session id.
pub(crate) fn execution_id_bytes(
    kind: SessionKind,
    session_id: &[u8],
    participants: &[PartyIndex],
) -> Vec<u8> {
    let mut eid = b"wallet-mpc/v1/".to_vec();
    eid.extend_from_slice(kind.as_str().as_bytes());
    eid.push(b'/');
    for p in participants {
        eid.extend_from_slice(&p.to_be_bytes());
    }
    eid.push(b'/');
    eid.extend_from_slice(session_id);
    eid
}

fn validate_participants(
    me: PartyIndex,
    participants: &[PartyIndex],
    n: u16,
) -> Result<u16, SessionError> {
    if participants.windows(2).any(|w| w[0] >= w[1]) {
        return Err(SessionError::InvalidParams(format!(
            "participants must be sorted and distinct, got {participants:?}"
        )));
    }
    if let Some(bad) = participants.iter().find(|&&p| p >= n) {
        return Err(SessionError::InvalidParams(format!(
            "party index {bad} is out of range for {n} parties"
        )));
    }
    participants
        .iter()
        .position(|&p| p == me)
        .map(|i| i as u16)
        .ok_or_else(|| {
            SessionError::InvalidParams(format!(
                "own index {me} is not among participants {participants:?}"
            ))
        })
}

impl Session {
    /// A session around any [`Machine`] (the lifecycle protocols use it too).
    pub(crate) fn new(
        kind: SessionKind,
        me: PartyIndex,
        participants: Vec<PartyIndex>,
        machine: Box<dyn Machine>,
    ) -> Self {
        Session {
            kind,
            me,
            participants,
            machine,
            inbox: VecDeque::new(),
            seen: HashSet::new(),
            outbox: VecDeque::new(),
            waiting: false,
            next_id: 0,
            round: 0,
            output: None,
            failed: None,
            finished: false,
        }
    }

    /// Aux-info generation for party `me` of `n`, using pregenerated safe primes.
    ///
    /// Aux info is generated once per party and reused for every key it shares.
    pub fn aux_info(
        session_id: &[u8],
        me: PartyIndex,
        n: u16,
        primes: cggmp24::PregeneratedPrimes<SecurityLevel>,
    ) -> Result<Self, SessionError> {
        let participants: Vec<PartyIndex> = (0..n).collect();
        validate_participants(me, &participants, n)?;
        let eid = execution_id_bytes(SessionKind::AuxInfo, session_id, &participants);
        let sm = round_based::state_machine::wrap_protocol(move |party| async move {
            let mut rng = OsRng;
            let eid = cggmp24::ExecutionId::new(&eid);
            cggmp24::aux_info_gen(eid, me, n, primes)
                .start(&mut rng, party)
                .await
        });
        let map = |aux: AuxInfo| SessionOutput::AuxInfo(Box::new(aux));
        Ok(Self::new(
            SessionKind::AuxInfo,
            me,
            participants,
            Box::new(Typed {
                sm,
                map: Some(map),
                check: check_aux_info_msg,
            }),
        ))
    }

    /// Threshold DKG (`t`-of-`n`, HD enabled) for party `me`.
    pub fn keygen(session_id: &[u8], me: PartyIndex, n: u16, t: u16) -> Result<Self, SessionError> {
        if t < 2 || t > n {
            return Err(SessionError::InvalidParams(format!(
                "threshold {t} must be between 2 and {n}"
            )));
        }
        let participants: Vec<PartyIndex> = (0..n).collect();
        validate_participants(me, &participants, n)?;
        let eid = execution_id_bytes(SessionKind::Keygen, session_id, &participants);
        let sm = round_based::state_machine::wrap_protocol(move |party| async move {
            let mut rng = OsRng;
            let eid = cggmp24::ExecutionId::new(&eid);
            cggmp24::keygen::<Curve>(eid, me, n)
                .set_threshold(t)
                .hd_wallet(true)
                .start(&mut rng, party)
                .await
        });
        let map = |share: IncompleteKeyShare| SessionOutput::Keygen(Box::new(share));
        Ok(Self::new(
            SessionKind::Keygen,
            me,
            participants,
            Box::new(Typed {
                sm,
                map: Some(map),
                check: accept_any,
            }),
        ))
    }

    /// Full signing of `message` by the `signers` (keygen indices, sorted), optionally
    /// under a non-hardened HD `path`.
    pub fn sign(
        session_id: &[u8],
        signers: Vec<PartyIndex>,
        share: KeyShare,
        path: Option<Vec<u32>>,
        message: cggmp24::DataToSign<Curve>,
    ) -> Result<Self, SessionError> {
        let me = share.core.i;
        let i = Self::check_signers(&share, &signers)?;
        let eid = execution_id_bytes(SessionKind::Sign, session_id, &signers);
        let parties = signers.clone();
        let sm = round_based::state_machine::wrap_protocol(move |party| async move {
            let mut rng = OsRng;
            let eid = cggmp24::ExecutionId::new(&eid);
            let builder = at_path(cggmp24::signing(eid, i, &parties, &share), path)?;
            builder
                .sign(&mut rng, party, &message)
                .await
                .map_err(SignFailure::Protocol)
        });
        let map = SessionOutput::Signature;
        Ok(Self::new(
            SessionKind::Sign,
            me,
            signers,
            Box::new(Typed {
                sm,
                map: Some(map),
                check: accept_any,
            }),
        ))
    }

    /// Presignature generation by the `signers` (keygen indices, sorted), optionally
    /// for the non-hardened HD child at `path` (as [`Session::sign`]).
    ///
    /// The path must be chosen here, before the presignature exists: the library applies
    /// the child's additive shift during generation, and the presignature then signs for
    /// the derived key only. (What the library forbids is choosing the path *after*
    /// generation.) Bind the path into the stored record
    /// ([`crate::presign::PresignaturePublicDataRepr::new`]).
    pub fn presign(
        session_id: &[u8],
        signers: Vec<PartyIndex>,
        share: KeyShare,
        path: Option<Vec<u32>>,
    ) -> Result<Self, SessionError> {
        let me = share.core.i;
        let i = Self::check_signers(&share, &signers)?;
        let eid = execution_id_bytes(SessionKind::Presign, session_id, &signers);
        let parties = signers.clone();
        let sm = round_based::state_machine::wrap_protocol(move |party| async move {
            let mut rng = OsRng;
            let eid = cggmp24::ExecutionId::new(&eid);
            let builder = at_path(cggmp24::signing(eid, i, &parties, &share), path)?;
            builder
                .generate_presignature(&mut rng, party)
                .await
                .map_err(SignFailure::Protocol)
        });
        let map = |(p, public): (Presignature, PresignaturePublicData)| {
            SessionOutput::Presignature(Box::new(p), Box::new(public))
        };
        Ok(Self::new(
            SessionKind::Presign,
            me,
            signers,
            Box::new(Typed {
                sm,
                map: Some(map),
                check: accept_any,
            }),
        ))
    }

    fn check_signers(share: &KeyShare, signers: &[PartyIndex]) -> Result<u16, SessionError> {
        let n = share.core.public_shares.len() as u16;
        let t = share
            .core
            .vss_setup
            .as_ref()
            .map(|s| s.min_signers)
            .unwrap_or(n);
        if signers.len() != usize::from(t) {
            return Err(SessionError::InvalidParams(format!(
                "exactly {t} signers are needed, got {signers:?}"
            )));
        }
        validate_participants(share.core.i, signers, n)
    }

    /// Which protocol this session runs.
    pub fn kind(&self) -> SessionKind {
        self.kind
    }

    /// Own keygen index.
    pub fn me(&self) -> PartyIndex {
        self.me
    }

    /// Keygen indices of all participants (including self), sorted.
    pub fn participants(&self) -> &[PartyIndex] {
        &self.participants
    }

    /// Current progress.
    pub fn progress(&self) -> Progress {
        Progress {
            kind: self.kind,
            round: self.round,
            total_rounds: self.kind.total_rounds(),
            finished: self.finished,
        }
    }

    /// Whether the session has produced its output or failed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Accepts a message from a peer.
    ///
    /// The message is checked (known sender, decodable payload, within the protocol's
    /// bounds: aux info's moduli, see [`MAX_PAILLIER_MODULUS_BITS`]; not a duplicate of a
    /// message already received for that round) and queued; [`step`](Self::step) feeds
    /// it to the protocol. A rejected message leaves the session untouched and is a
    /// [`SessionError::MalformedMessage`] naming its sender.
    pub fn handle(&mut self, msg: Incoming) -> Result<(), SessionError> {
        if self.finished {
            return Err(SessionError::Finished);
        }
        if msg.sender == self.me || !self.participants.contains(&msg.sender) {
            return Err(SessionError::UnknownSender {
                from: msg.sender,
                participants: self.participants.clone(),
            });
        }
        let round =
            self.machine
                .admit(&msg.payload)
                .map_err(|reason| SessionError::MalformedMessage {
                    from: msg.sender,
                    reason,
                })?;
        if !self.seen.insert((msg.sender, round, msg.broadcast)) {
            return Err(SessionError::MalformedMessage {
                from: msg.sender,
                reason: format!(
                    "duplicate {} message for round {round}",
                    if msg.broadcast { "broadcast" } else { "p2p" }
                ),
            });
        }
        let idx = self
            .participants
            .iter()
            .position(|&p| p == msg.sender)
            .unwrap_or_default() as u16;
        self.inbox.push_back((idx, msg.broadcast, msg.payload));
        Ok(())
    }

    /// Advances the protocol by one unit of work.
    ///
    /// Heavy computation happens here: between two [`Step::Continue`] results the
    /// library may compute for a while (up to seconds for aux info in pure Rust).
    pub fn step(&mut self) -> Result<Step, SessionError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.finished {
            return Ok(Step::Finished);
        }
        if self.waiting {
            match self.inbox.pop_front() {
                None => return Ok(Step::WaitingForMessages),
                Some((sender, broadcast, payload)) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    match self.machine.feed(sender, broadcast, id, &payload) {
                        Feed::Accepted => self.waiting = false,
                        Feed::Malformed(reason) => {
                            // handle() already decoded it once; treat as a peer fault.
                            let from = self.participants[usize::from(sender)];
                            return Err(SessionError::MalformedMessage { from, reason });
                        }
                        Feed::Rejected => {
                            return self.fail(SessionError::Internal(
                                "state machine refused a message it asked for".into(),
                            ))
                        }
                    }
                }
            }
        }
        match self.machine.proceed(&self.participants) {
            MachineStep::Send { to, round, payload } => {
                let recipient = match to {
                    None => None,
                    Some(j) => match self.participants.get(usize::from(j)) {
                        Some(&k) => Some(k),
                        None => {
                            return self.fail(SessionError::Internal(format!(
                                "protocol addressed unknown session index {j}"
                            )))
                        }
                    },
                };
                self.round = self.round.max(round + 1);
                self.outbox.push_back(Outgoing {
                    recipient,
                    round,
                    payload,
                });
                Ok(Step::Continue)
            }
            MachineStep::NeedMsg => {
                self.waiting = true;
                if self.inbox.is_empty() {
                    Ok(Step::WaitingForMessages)
                } else {
                    Ok(Step::Continue)
                }
            }
            MachineStep::Yielded => Ok(Step::Continue),
            MachineStep::Done(Ok(out)) => {
                self.finished = true;
                self.output = Some(out);
                Ok(Step::Finished)
            }
            MachineStep::Done(Err(e)) => self.fail(e),
        }
    }

    fn fail(&mut self, err: SessionError) -> Result<Step, SessionError> {
        self.finished = true;
        self.failed = Some(err.clone());
        Err(err)
    }

    /// Runs [`step`](Self::step) until the session waits for messages or finishes.
    pub fn run(&mut self) -> Result<Step, SessionError> {
        loop {
            match self.step()? {
                Step::Continue => continue,
                other => return Ok(other),
            }
        }
    }

    /// Takes the messages the session wants sent, in order.
    pub fn drain_outgoing(&mut self) -> Vec<Outgoing> {
        self.outbox.drain(..).collect()
    }

    /// Takes the output once the session has finished successfully.
    pub fn take_output(&mut self) -> Option<SessionOutput> {
        self.output.take()
    }
}

/// Failure inside the signing future (derivation path or protocol).
#[derive(Debug, thiserror::Error)]
enum SignFailure {
    #[error("invalid derivation path: {0}")]
    Path(String),
    #[error(transparent)]
    Protocol(cggmp24::SigningError),
}
