//! Key-share lifecycle sessions — proactive refresh and share repair — as [`Session`]s.
//!
//! The protocols are `mpc-lifecycle`'s sans-I/O state machines; this module adapts them
//! to the session interface every driver already runs (gateway relay, sealed p2p
//! envelopes, timeouts, progress, the browser's event loop), so a refresh or a repair
//! travels exactly like a signing:
//!
//! - [`Session::refresh`]: all three parties; output [`SessionOutput::Refreshed`] (the
//!   new share at epoch `e + 1`);
//! - [`Session::repair_helper`]: one of the two helpers rebuilding a lost index; output
//!   [`SessionOutput::RepairHelped`];
//! - [`Session::repair_new`]: the new holder of the lost index; output
//!   [`SessionOutput::Repaired`] (the share at epoch `e`, checked against the account's
//!   public key; refresh it next).
//!
//! **Durability.** The refresh protocol's third round says "I persisted the new share".
//! A session cannot persist anything itself (it runs on a worker thread, in a browser
//! worker), so it sends that confirmation as soon as the new share is computed: round 3
//! here proves that every party computed the same public data. Durability is the
//! caller's next step: persist the output as *pending*, then report it to the cosigner
//! (`ConfirmLifecycle`), which commits only when both user parties have; the old share
//! stays usable until then (docs/lifecycle.md).
//!
//! Messages of the wrong kind for the role, a private kind that arrived as a broadcast
//! (it would have travelled unencrypted) or a broadcast kind sent point-to-point are
//! refused as malformed and name the sender; a message proving misbehaviour (a
//! sub-share that fails its commitment, equivocation, helpers that disagree) aborts the
//! session naming the culprit.

use std::collections::VecDeque;

use generic_ec::NonZero;
use mpc_lifecycle::{
    MaskSource, Message, MessageKind, Outgoing as LifecycleOutgoing, Recipient, Refresh,
    RefreshError, RefreshStatus, RepairError, RepairHelper, RepairNewParty, RepairStatus,
};
use rand_core::OsRng;
use sha2::{Digest, Sha256};

use crate::error::SessionError;
use crate::session::{execution_id_bytes, Feed, Machine, MachineStep};
use crate::{IncompleteKeyShare, PartyIndex, Point, Session, SessionKind, SessionOutput};

/// A key share produced by a lifecycle session, with the epoch it belongs to.
#[derive(Clone)]
pub struct EpochShare {
    /// The share (without aux info; complete it with the group's aux info).
    pub share: IncompleteKeyShare,
    /// Its share epoch (0 at creation, +1 per refresh).
    pub epoch: u64,
}

impl std::fmt::Debug for EpochShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochShare")
            .field("i", &self.share.i)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// The digest of `share`'s public data (shared public key, threshold, evaluation points,
/// public shares, chain code) at `epoch`: what a party reports to show it holds the new
/// key data (`ConfirmLifecycle.share_digests`, hex). Fails only for a share without a
/// VSS setup, which no wallet share is.
pub fn public_data_digest(
    share: &IncompleteKeyShare,
    epoch: u64,
) -> Result<[u8; 32], SessionError> {
    mpc_lifecycle::public_data_digest(share, epoch)
        .map_err(|e| SessionError::InvalidParams(format!("share public data: {e}")))
}

/// The wallet's participants: every lifecycle session involves all three parties.
const ALL: [PartyIndex; 3] = [0, 1, 2];

fn lifecycle_session_id(kind: SessionKind, session_id: &[u8]) -> mpc_lifecycle::SessionId {
    let eid = execution_id_bytes(kind, session_id, &ALL);
    mpc_lifecycle::SessionId(Sha256::digest(eid).into())
}

fn check_share(share: &IncompleteKeyShare) -> Result<PartyIndex, SessionError> {
    let n = share.public_shares.len();
    if n != ALL.len() {
        return Err(SessionError::InvalidParams(format!(
            "lifecycle sessions take a share of a {}-party key, got {n} parties",
            ALL.len()
        )));
    }
    if usize::from(share.i) >= n {
        return Err(SessionError::InvalidParams(format!(
            "share index {} out of range",
            share.i
        )));
    }
    Ok(share.i)
}

/// The protocol round a message kind belongs to (0-based, for progress and the
/// session's per-round duplicate check).
fn round_of(kind: MessageKind) -> u16 {
    match kind {
        MessageKind::RefreshCommit | MessageKind::RefreshSubShare | MessageKind::RepairMask => 0,
        MessageKind::RefreshEcho | MessageKind::RepairContribution => 1,
        MessageKind::RefreshConfirm => 2,
    }
}

enum Engine {
    Refresh(Box<Refresh>),
    Helper(Box<RepairHelper>),
    New(Box<RepairNewParty>),
}

impl Engine {
    fn takes(&self, kind: MessageKind) -> bool {
        match self {
            Engine::Refresh(_) => kind.is_refresh(),
            Engine::Helper(_) => kind == MessageKind::RepairMask,
            Engine::New(_) => kind == MessageKind::RepairContribution,
        }
    }
}

/// What a protocol error means for the session.
enum Fault {
    /// Refused: the session is unchanged (the sender's message is malformed for us).
    Rejected(String),
    /// The session is over.
    Aborted {
        culprits: Vec<PartyIndex>,
        reason: String,
    },
}

impl From<RefreshError> for Fault {
    fn from(e: RefreshError) -> Self {
        if e.is_fatal() {
            Fault::Aborted {
                culprits: e.culprit().into_iter().collect(),
                reason: e.to_string(),
            }
        } else {
            Fault::Rejected(e.to_string())
        }
    }
}

impl From<RepairError> for Fault {
    fn from(e: RepairError) -> Self {
        if e.is_fatal() {
            Fault::Aborted {
                culprits: e.suspects(),
                reason: e.to_string(),
            }
        } else {
            Fault::Rejected(e.to_string())
        }
    }
}

/// `mpc-lifecycle`'s state machines behind the session's [`Machine`] interface.
pub(crate) struct LifecycleMachine {
    engine: Option<Engine>,
    queue: VecDeque<LifecycleOutgoing>,
    /// Set when the session ended (an abort found while feeding, or the output taken).
    ended: Option<SessionError>,
}

impl LifecycleMachine {
    fn new(engine: Engine, first: Vec<LifecycleOutgoing>) -> Self {
        LifecycleMachine {
            engine: Some(engine),
            queue: first.into(),
            ended: None,
        }
    }

    fn abort(&mut self, blamed: Vec<PartyIndex>, reason: String) -> SessionError {
        let err = SessionError::Aborted { blamed, reason };
        self.engine = None;
        self.ended = Some(err.clone());
        err
    }

    /// The engine's state once its queue is empty: what the session does next.
    fn next(&mut self) -> MachineStep {
        let Some(engine) = self.engine.take() else {
            return MachineStep::Done(Err(self.ended.clone().unwrap_or(SessionError::Finished)));
        };
        match engine {
            Engine::Refresh(mut r) => match r.status() {
                RefreshStatus::Running { .. } | RefreshStatus::AwaitingConfirmations { .. } => {
                    self.engine = Some(Engine::Refresh(r));
                    MachineStep::NeedMsg
                }
                RefreshStatus::PersistPending => match r.confirm_persisted() {
                    Ok(out) => {
                        self.queue.extend(out);
                        self.engine = Some(Engine::Refresh(r));
                        MachineStep::Yielded
                    }
                    Err(e) => self.fail(Fault::from(e)),
                },
                RefreshStatus::Finished => match r.into_output() {
                    Ok(out) => {
                        MachineStep::Done(Ok(SessionOutput::Refreshed(Box::new(EpochShare {
                            share: out.share,
                            epoch: out.epoch,
                        }))))
                    }
                    Err(e) => self.fail(Fault::from(e)),
                },
                RefreshStatus::Aborted(e) => self.fail(Fault::from(e)),
            },
            Engine::Helper(h) => match h.status() {
                RepairStatus::Running { .. } => {
                    self.engine = Some(Engine::Helper(h));
                    MachineStep::NeedMsg
                }
                RepairStatus::Finished => MachineStep::Done(Ok(SessionOutput::RepairHelped)),
                RepairStatus::Aborted(e) => self.fail(Fault::from(e)),
            },
            Engine::New(n) => match n.status() {
                RepairStatus::Running { .. } => {
                    self.engine = Some(Engine::New(n));
                    MachineStep::NeedMsg
                }
                RepairStatus::Finished => match n.into_output() {
                    Ok(out) => {
                        MachineStep::Done(Ok(SessionOutput::Repaired(Box::new(EpochShare {
                            share: out.share,
                            epoch: out.epoch,
                        }))))
                    }
                    Err(e) => self.fail(Fault::from(e)),
                },
                RepairStatus::Aborted(e) => self.fail(Fault::from(e)),
            },
        }
    }

    fn fail(&mut self, fault: Fault) -> MachineStep {
        let err = match fault {
            Fault::Aborted { culprits, reason } => self.abort(culprits, reason),
            // Our own step refused (a state the adapter should never reach).
            Fault::Rejected(reason) => {
                let err = SessionError::Internal(format!("lifecycle state machine: {reason}"));
                self.engine = None;
                self.ended = Some(err.clone());
                err
            }
        };
        MachineStep::Done(Err(err))
    }
}

impl Machine for LifecycleMachine {
    fn proceed(&mut self, participants: &[PartyIndex]) -> MachineStep {
        if let Some(out) = self.queue.pop_front() {
            let to = match out.to {
                Recipient::Broadcast => None,
                Recipient::Private(j) => match participants.iter().position(|&p| p == j) {
                    Some(i) => Some(i as u16),
                    None => {
                        return self.fail(Fault::Rejected(format!(
                            "addressed to party {j}, not a participant"
                        )))
                    }
                },
            };
            return MachineStep::Send {
                to,
                round: round_of(out.kind),
                payload: out.bytes.clone(),
            };
        }
        self.next()
    }

    fn feed(&mut self, sender: u16, broadcast: bool, id: u64, payload: &[u8]) -> Feed {
        let _ = id;
        // Session indices are keygen indices here: the participants are always 0, 1, 2.
        let from = sender;
        let kind = match Message::decode(payload) {
            Ok(m) => m.kind(),
            Err(e) => return Feed::Malformed(e.to_string()),
        };
        if kind.is_private() == broadcast {
            return Feed::Malformed(format!(
                "{kind:?} must travel {}",
                if kind.is_private() {
                    "point-to-point (encrypted), not as a broadcast"
                } else {
                    "as a broadcast"
                }
            ));
        }
        let handled: Result<Vec<LifecycleOutgoing>, Fault> = match self.engine.as_mut() {
            None => return Feed::Rejected,
            Some(Engine::Refresh(r)) => r.handle(from, payload).map_err(Fault::from),
            Some(Engine::Helper(h)) => h.handle(from, payload).map_err(Fault::from),
            Some(Engine::New(n)) => n
                .handle(from, payload)
                .map(|()| Vec::new())
                .map_err(Fault::from),
        };
        match handled {
            Ok(out) => {
                self.queue.extend(out);
                Feed::Accepted
            }
            Err(Fault::Rejected(reason)) => Feed::Malformed(reason),
            Err(Fault::Aborted { culprits, reason }) => {
                // Reported by the next proceed(): the session fails naming the culprit.
                self.abort(culprits, reason);
                Feed::Accepted
            }
        }
    }

    fn admit(&self, payload: &[u8]) -> Result<u16, String> {
        let msg = Message::decode(payload).map_err(|e| e.to_string())?;
        let kind = msg.kind();
        match &self.engine {
            Some(engine) if !engine.takes(kind) => {
                Err(format!("a {kind:?} message has no place in this session"))
            }
            _ => Ok(round_of(kind)),
        }
    }
}

impl Session {
    /// A lifecycle session of `kind` run by `engine` (all three parties take part),
    /// `first` being the messages its state machine produced at the start.
    fn lifecycle(
        kind: SessionKind,
        me: PartyIndex,
        engine: Engine,
        first: Vec<LifecycleOutgoing>,
    ) -> Self {
        Self::new(
            kind,
            me,
            ALL.to_vec(),
            Box::new(LifecycleMachine::new(engine, first)),
        )
    }

    /// A proactive refresh of `share` (this party is `share.i`; all three parties take
    /// part), whose share epoch is `epoch`. Output: [`SessionOutput::Refreshed`], the new
    /// share at `epoch + 1`. See the [module docs](crate::lifecycle) for what round 3
    /// confirms and what the caller persists.
    pub fn refresh(
        session_id: &[u8],
        share: &IncompleteKeyShare,
        epoch: u64,
    ) -> Result<Self, SessionError> {
        let me = check_share(share)?;
        let sid = lifecycle_session_id(SessionKind::Refresh, session_id);
        let (machine, first) = Refresh::start(sid, epoch, share, &mut OsRng)
            .map_err(|e| SessionError::InvalidParams(format!("refresh: {e}")))?;
        Ok(Self::lifecycle(
            SessionKind::Refresh,
            me,
            Engine::Refresh(Box::new(machine)),
            first,
        ))
    }

    /// This party (`share.i`, of epoch `epoch`) helps rebuild party `lost`'s share for
    /// its new holder; the helpers are the two parties other than `lost` and exchange
    /// their common mask privately. Output: [`SessionOutput::RepairHelped`].
    pub fn repair_helper(
        session_id: &[u8],
        share: &IncompleteKeyShare,
        epoch: u64,
        lost: PartyIndex,
    ) -> Result<Self, SessionError> {
        let me = check_share(share)?;
        let helpers = helpers_of(lost)?;
        if !helpers.contains(&me) {
            return Err(SessionError::InvalidParams(format!(
                "party {me} cannot help repair its own index"
            )));
        }
        let sid = lifecycle_session_id(SessionKind::Repair, session_id);
        let (machine, first) = RepairHelper::start(
            sid,
            epoch,
            share,
            lost,
            helpers,
            MaskSource::Exchange,
            &mut OsRng,
        )
        .map_err(|e| SessionError::InvalidParams(format!("repair: {e}")))?;
        Ok(Self::lifecycle(
            SessionKind::Repair,
            me,
            Engine::Helper(Box::new(machine)),
            first,
        ))
    }

    /// The new holder of index `me` (the other two parties help) at share epoch `epoch`;
    /// the helpers must prove `expected_public_key` (the account's public key, which the
    /// caller knows from its own records). Output: [`SessionOutput::Repaired`].
    pub fn repair_new(
        session_id: &[u8],
        me: PartyIndex,
        epoch: u64,
        expected_public_key: Point,
    ) -> Result<Self, SessionError> {
        let helpers = helpers_of(me)?;
        let pk = NonZero::from_point(expected_public_key).ok_or_else(|| {
            SessionError::InvalidParams("the expected public key is the identity".into())
        })?;
        let sid = lifecycle_session_id(SessionKind::Repair, session_id);
        let machine = RepairNewParty::new(sid, epoch, me, helpers, Some(pk))
            .map_err(|e| SessionError::InvalidParams(format!("repair: {e}")))?;
        Ok(Self::lifecycle(
            SessionKind::Repair,
            me,
            Engine::New(Box::new(machine)),
            Vec::new(),
        ))
    }
}

/// The two helpers of a repair of `lost`.
fn helpers_of(lost: PartyIndex) -> Result<[PartyIndex; 2], SessionError> {
    match lost {
        0 => Ok([1, 2]),
        1 => Ok([0, 2]),
        2 => Ok([0, 1]),
        _ => Err(SessionError::InvalidParams(format!(
            "party index {lost} is out of range for 3 parties"
        ))),
    }
}
