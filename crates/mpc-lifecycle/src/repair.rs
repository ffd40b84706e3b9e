//! Share repair (Laing–Stinson, repairable threshold schemes) for a 2-of-`n` key: two
//! helpers `h1 < h2` rebuild the share of a lost party `r` (e.g. the device, index 0)
//! for a new holder of index `r`, who learns only that share.
//!
//! * Each helper computes its Lagrange term at the lost party's point,
//!   `λ_h(I_r)·x_h`, with `λ_h` the coefficient over the helper set `{I_h1, I_h2}`.
//! * The helpers share a uniformly random mask `m`: `h1` samples it and sends it to `h2`
//!   privately ([`MessageKind::RepairMask`], [`MaskSource::Exchange`]), or both derive it
//!   from a secret their callers already share ([`MaskSource::SharedSecret`]).
//! * `h1` sends `λ1·x1 + m`, `h2` sends `λ2·x2 − m` to the new party, each privately and
//!   with the key's public data ([`MessageKind::RepairContribution`]).
//! * The new party checks the two helpers' public data are identical and form a valid
//!   key (and the expected one, if it knows the public key), adds the two terms and
//!   checks `x_r·G == public_shares[r]`. Each term alone is uniformly random; the sum
//!   is all it learns.
//!
//! The repaired share is the *same* share the lost party had, at the same epoch: follow
//! the repair with a [refresh](crate::refresh) among all parties so that the lost
//! device's copy becomes worthless.

use generic_ec::{NonZero, Point, Scalar, SecretScalar};
use generic_ec_zkp::polynomial::lagrange_coefficient;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crate::common::{check_header, Inbox, Slot};
use crate::error::{Rejection, RepairError};
use crate::refresh::outgoing;
use crate::wire::{
    encode_key_info, Header, Message, MessageKind, Outgoing, Payload, Recipient, SessionId, Waiting,
};
use crate::{Curve, DirtyIncompleteKeyShare, IncompleteKeyShare, KeyInfo};

/// Where the helpers' common mask comes from.
#[derive(Clone)]
pub enum MaskSource {
    /// The first helper samples the mask and sends it to the second (a private
    /// message: the caller encrypts it).
    Exchange,
    /// Both helpers derive the mask from this secret, which their callers share
    /// already (e.g. from an authenticated key agreement) and give to both; it must be
    /// unknown to the new party. No mask message is sent.
    SharedSecret(Zeroizing<[u8; 32]>),
}

/// Where a repair party stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairStatus {
    /// Waiting for these messages (a timeout is the caller's decision).
    Running {
        /// The messages still missing.
        waiting_for: Vec<Waiting>,
    },
    /// This party's part is done (a helper: its contribution is out; the new party:
    /// the share is repaired and checked).
    Finished,
    /// The session aborted.
    Aborted(RepairError),
}

/// The helpers of a repair for `lost` among `n` parties: sorted, distinct, in range and
/// other than `lost`.
fn check_roles(lost: u16, helpers: [u16; 2], n: Option<usize>) -> Result<[u16; 2], RepairError> {
    let [a, b] = helpers;
    let sorted = if a < b { [a, b] } else { [b, a] };
    if a == b {
        return Err(RepairError::InvalidSetup("the two helpers must differ"));
    }
    if a == lost || b == lost {
        return Err(RepairError::InvalidSetup(
            "a helper cannot be the lost party",
        ));
    }
    if let Some(n) = n {
        if usize::from(lost) >= n || usize::from(sorted[1]) >= n {
            return Err(RepairError::InvalidSetup("party index out of range"));
        }
    }
    Ok(sorted)
}

fn derive_mask(
    seed: &[u8; 32],
    session: &SessionId,
    epoch: u64,
    lost: u16,
    helpers: [u16; 2],
) -> SecretScalar<Curve> {
    let mut h = Sha512::new();
    h.update(b"wallet-mpc/lifecycle/v1/repair/mask");
    h.update(seed);
    h.update(session.0);
    h.update(epoch.to_be_bytes());
    h.update(lost.to_be_bytes());
    h.update(helpers[0].to_be_bytes());
    h.update(helpers[1].to_be_bytes());
    let wide = Zeroizing::new(<[u8; 64]>::from(h.finalize()));
    let mut m = Scalar::from_be_bytes_mod_order(wide.as_ref());
    SecretScalar::new(&mut m)
}

enum HelperState {
    AwaitingMask,
    Finished,
    Aborted(RepairError),
}

/// A helper's repair state machine.
pub struct RepairHelper {
    session: SessionId,
    epoch: u64,
    me: u16,
    lost: u16,
    helpers: [u16; 2],
    /// `λ_me(I_r)·x_me`, kept only while the mask is awaited.
    term: Option<SecretScalar<Curve>>,
    key_info: KeyInfo,
    inbox: Inbox,
    state: HelperState,
}

impl RepairHelper {
    /// Starts helping to repair the share of party `lost` with `share` (of epoch
    /// `epoch`), the helpers being `helpers` (this party one of them). Returns the state
    /// machine and the messages to send: the first helper's mask (with
    /// [`MaskSource::Exchange`]) and, as soon as the mask is known, the contribution to
    /// the new party.
    pub fn start<R: RngCore + CryptoRng>(
        session: SessionId,
        epoch: u64,
        share: &IncompleteKeyShare,
        lost: u16,
        helpers: [u16; 2],
        mask: MaskSource,
        rng: &mut R,
    ) -> Result<(Self, Vec<Outgoing>), RepairError> {
        let vss = share
            .vss_setup
            .as_ref()
            .ok_or(RepairError::InvalidSetup("no VSS setup (additive shares)"))?;
        if vss.min_signers != 2 {
            return Err(RepairError::InvalidSetup("only threshold 2 is supported"));
        }
        let helpers = check_roles(lost, helpers, Some(share.public_shares.len()))?;
        let me = share.i;
        let pos = helpers
            .iter()
            .position(|&h| h == me)
            .ok_or(RepairError::InvalidSetup("this party is not a helper"))?;
        let point = |k: u16| vss.I.get(usize::from(k)).map(|i| *i.as_ref());
        let (Some(i_r), Some(i_1), Some(i_2)) = (point(lost), point(helpers[0]), point(helpers[1]))
        else {
            return Err(RepairError::InvalidSetup("party index out of range"));
        };
        let lambda = lagrange_coefficient(i_r, pos, &[i_1, i_2])
            .ok_or(RepairError::InvalidSetup("evaluation points not distinct"))?;
        let mut t: Scalar<Curve> = lambda.into_inner() * &share.x;
        let term = SecretScalar::new(&mut t);

        let mut this = Self {
            session,
            epoch,
            me,
            lost,
            helpers,
            term: Some(term),
            key_info: share.key_info.clone(),
            inbox: Inbox::default(),
            state: HelperState::AwaitingMask,
        };
        let mut out = Vec::new();
        match mask {
            MaskSource::SharedSecret(seed) => {
                let m = derive_mask(&seed, &session, epoch, lost, helpers);
                out.push(this.contribute(&m)?);
            }
            MaskSource::Exchange if pos == 0 => {
                let mut m = Scalar::random(rng);
                let m = SecretScalar::new(&mut m);
                out.push(
                    outgoing(
                        Recipient::Private(helpers[1]),
                        Message {
                            header: Header {
                                session,
                                epoch,
                                sender: me,
                                recipient: Some(helpers[1]),
                            },
                            payload: Payload::RepairMask { mask: m.clone() },
                        },
                    )
                    .map_err(RepairError::Encode)?,
                );
                out.push(this.contribute(&m)?);
            }
            MaskSource::Exchange => {}
        }
        Ok((this, out))
    }

    /// Takes one message that the caller's transport authenticated as coming from
    /// party `from` (only the second helper with [`MaskSource::Exchange`] receives one:
    /// the mask). Returns the messages to send.
    pub fn handle(&mut self, from: u16, bytes: &[u8]) -> Result<Vec<Outgoing>, RepairError> {
        match &self.state {
            HelperState::Aborted(e) => return Err(RepairError::Aborted(Box::new(e.clone()))),
            HelperState::Finished => return Err(Rejection::AlreadyFinished.into()),
            HelperState::AwaitingMask => {}
        }
        let msg = Message::decode(bytes).map_err(Rejection::from)?;
        let kind = msg.kind();
        if kind != MessageKind::RepairMask {
            return Err(Rejection::UnexpectedKind { kind }.into());
        }
        if from != self.helpers[0] || from == self.me {
            return Err(Rejection::NotParticipant { party: from }.into());
        }
        check_header(&msg.header, kind, from, &self.session, self.epoch, self.me)?;
        match self.inbox.record(kind, from, bytes) {
            Slot::New => {}
            Slot::Duplicate => return Err(Rejection::Duplicate { party: from, kind }.into()),
            Slot::Conflicting => {
                let e = RepairError::Conflicting { party: from, kind };
                self.state = HelperState::Aborted(e.clone());
                return Err(e);
            }
        }
        let Payload::RepairMask { mask } = msg.payload else {
            return Err(Rejection::UnexpectedKind { kind }.into());
        };
        Ok(vec![self.contribute(&mask)?])
    }

    /// Where the helper stands.
    pub fn status(&self) -> RepairStatus {
        match &self.state {
            HelperState::AwaitingMask => RepairStatus::Running {
                waiting_for: vec![Waiting {
                    party: self.helpers[0],
                    kind: MessageKind::RepairMask,
                }],
            },
            HelperState::Finished => RepairStatus::Finished,
            HelperState::Aborted(e) => RepairStatus::Aborted(e.clone()),
        }
    }

    /// Whether the contribution is out.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, HelperState::Finished)
    }

    /// `λ·x ± m` to the new party; the term is wiped afterwards.
    fn contribute(&mut self, mask: &SecretScalar<Curve>) -> Result<Outgoing, RepairError> {
        let term = self
            .term
            .take()
            .ok_or(RepairError::InvalidSetup("contribution already sent"))?;
        let mut v = if self.me == self.helpers[0] {
            Scalar::zero() + &term + mask
        } else {
            Scalar::zero() + &term - mask
        };
        let value = SecretScalar::new(&mut v);
        let out = outgoing(
            Recipient::Private(self.lost),
            Message {
                header: Header {
                    session: self.session,
                    epoch: self.epoch,
                    sender: self.me,
                    recipient: Some(self.lost),
                },
                payload: Payload::RepairContribution {
                    value,
                    key_info: Box::new(self.key_info.clone()),
                },
            },
        )
        .map_err(RepairError::Encode)?;
        self.state = HelperState::Finished;
        Ok(out)
    }
}

/// The result of a repair: the key share of the lost index, at the helpers' epoch.
#[derive(Clone)]
pub struct RepairOutput {
    /// The repaired key share (validated by cggmp24's own validation).
    pub share: IncompleteKeyShare,
    /// The epoch of the share (unchanged by repair; refresh next).
    pub epoch: u64,
}

impl core::fmt::Debug for RepairOutput {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RepairOutput")
            .field("i", &self.share.i)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

enum NewState {
    Running,
    Finished(Box<RepairOutput>),
    Aborted(RepairError),
}

/// The new holder of index `r`: its repair state machine.
pub struct RepairNewParty {
    session: SessionId,
    epoch: u64,
    me: u16,
    helpers: [u16; 2],
    expected_public_key: Option<NonZero<Point<Curve>>>,
    contributions: [Option<(SecretScalar<Curve>, KeyInfo)>; 2],
    inbox: Inbox,
    state: NewState,
}

impl RepairNewParty {
    /// A new party for index `index`, repaired by `helpers`, in session `session` at
    /// epoch `epoch`. If the caller knows the wallet's public key (it should: the
    /// address, a record), `expected_public_key` makes the helpers prove that key.
    pub fn new(
        session: SessionId,
        epoch: u64,
        index: u16,
        helpers: [u16; 2],
        expected_public_key: Option<NonZero<Point<Curve>>>,
    ) -> Result<Self, RepairError> {
        let helpers = check_roles(index, helpers, None)?;
        Ok(Self {
            session,
            epoch,
            me: index,
            helpers,
            expected_public_key,
            contributions: [None, None],
            inbox: Inbox::default(),
            state: NewState::Running,
        })
    }

    /// Takes one message that the caller's transport authenticated as coming from
    /// party `from`. When both contributions are in, the share is rebuilt and checked.
    pub fn handle(&mut self, from: u16, bytes: &[u8]) -> Result<(), RepairError> {
        match &self.state {
            NewState::Aborted(e) => return Err(RepairError::Aborted(Box::new(e.clone()))),
            NewState::Finished(_) => return Err(Rejection::AlreadyFinished.into()),
            NewState::Running => {}
        }
        let msg = Message::decode(bytes).map_err(Rejection::from)?;
        let kind = msg.kind();
        if kind != MessageKind::RepairContribution {
            return Err(Rejection::UnexpectedKind { kind }.into());
        }
        let pos = self
            .helpers
            .iter()
            .position(|&h| h == from)
            .ok_or(Rejection::NotParticipant { party: from })?;
        check_header(&msg.header, kind, from, &self.session, self.epoch, self.me)?;
        match self.inbox.record(kind, from, bytes) {
            Slot::New => {}
            Slot::Duplicate => return Err(Rejection::Duplicate { party: from, kind }.into()),
            Slot::Conflicting => {
                return Err(self.abort(RepairError::Conflicting { party: from, kind }))
            }
        }
        let Payload::RepairContribution { value, key_info } = msg.payload else {
            return Err(Rejection::UnexpectedKind { kind }.into());
        };
        self.contributions[pos] = Some((value, *key_info));
        if let [Some(a), Some(b)] = &self.contributions {
            match self.finish(a, b) {
                Ok(out) => {
                    self.state = NewState::Finished(Box::new(out));
                    self.contributions = [None, None];
                }
                Err(e) => return Err(self.abort(e)),
            }
        }
        Ok(())
    }

    /// Where the new party stands and what it waits for.
    pub fn status(&self) -> RepairStatus {
        match &self.state {
            NewState::Running => RepairStatus::Running {
                waiting_for: self
                    .helpers
                    .iter()
                    .zip(&self.contributions)
                    .filter(|(_, c)| c.is_none())
                    .map(|(&party, _)| Waiting {
                        party,
                        kind: MessageKind::RepairContribution,
                    })
                    .collect(),
            },
            NewState::Finished(_) => RepairStatus::Finished,
            NewState::Aborted(e) => RepairStatus::Aborted(e.clone()),
        }
    }

    /// The repaired share, once finished.
    pub fn output(&self) -> Option<&RepairOutput> {
        match &self.state {
            NewState::Finished(o) => Some(o),
            _ => None,
        }
    }

    /// The repaired share of a finished session.
    pub fn into_output(self) -> Result<RepairOutput, RepairError> {
        match self.state {
            NewState::Finished(o) => Ok(*o),
            NewState::Aborted(e) => Err(RepairError::Aborted(Box::new(e))),
            NewState::Running => Err(RepairError::InvalidSetup("repair not finished")),
        }
    }

    fn abort(&mut self, e: RepairError) -> RepairError {
        self.state = NewState::Aborted(e.clone());
        self.contributions = [None, None];
        e
    }

    fn finish(
        &self,
        (c1, info1): &(SecretScalar<Curve>, KeyInfo),
        (c2, info2): &(SecretScalar<Curve>, KeyInfo),
    ) -> Result<RepairOutput, RepairError> {
        let enc1 =
            encode_key_info(info1).map_err(|e| RepairError::InvalidPublicData(e.to_string()))?;
        let enc2 =
            encode_key_info(info2).map_err(|e| RepairError::InvalidPublicData(e.to_string()))?;
        if enc1 != enc2 {
            return Err(RepairError::PublicDataMismatch {
                helpers: self.helpers,
            });
        }
        key_share::Validate::is_valid(info1)
            .map_err(|e| RepairError::InvalidPublicData(e.to_string()))?;
        let n = info1.public_shares.len();
        let min_signers = info1.vss_setup.as_ref().map(|v| v.min_signers);
        if min_signers != Some(2) {
            return Err(RepairError::InvalidPublicData("threshold is not 2".into()));
        }
        check_roles(self.me, self.helpers, Some(n))
            .map_err(|e| RepairError::InvalidPublicData(e.to_string()))?;
        if let Some(pk) = self.expected_public_key {
            if pk != info1.shared_public_key {
                return Err(RepairError::PublicKeyMismatch);
            }
        }
        let mismatch = RepairError::RepairedShareMismatch {
            index: self.me,
            helpers: self.helpers,
        };
        let mut x = Scalar::<Curve>::zero() + c1 + c2;
        let x = NonZero::from_secret_scalar(SecretScalar::new(&mut x)).ok_or(mismatch.clone())?;
        let expected = info1
            .public_shares
            .get(usize::from(self.me))
            .ok_or(RepairError::InvalidPublicData("index out of range".into()))?;
        if Point::generator() * &x != **expected {
            return Err(mismatch);
        }
        let share = key_share::Validate::validate(DirtyIncompleteKeyShare {
            i: self.me,
            key_info: info1.clone(),
            x,
        })
        .map_err(|e| RepairError::InvalidResult(e.into_error().to_string()))?;
        Ok(RepairOutput {
            share,
            epoch: self.epoch,
        })
    }
}
