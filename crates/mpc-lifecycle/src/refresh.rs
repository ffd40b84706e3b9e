//! Proactive refresh (Herzberg–Jarecki–Krawczyk–Yung, over Feldman VSS) of a
//! threshold key among **all** its parties.
//!
//! Party `i` deals a random polynomial `f_i` of degree `t-1` with `f_i(0) = 0`:
//!
//! 1. **Deal.** Broadcast the Feldman commitment `[C_i0 = O, C_i1 = a_i1·G, ...]`
//!    ([`MessageKind::RefreshCommit`]) and send every other party `j` privately its
//!    sub-share `f_i(I_j)` ([`MessageKind::RefreshSubShare`]; the caller encrypts it).
//! 2. **Echo.** With every commitment in hand, broadcast the digest of each dealer's
//!    commitment as received ([`MessageKind::RefreshEcho`]). An echo that differs names
//!    the dealer that sent different commitments to different parties. Every sub-share
//!    is checked: `f_i(I_j)·G == Σ_k I_j^k·C_ik`, or the dealer is named.
//! 3. **Compute.** `x'_j = x_j + Σ_i f_i(I_j)`; the new public shares
//!    `X'_k = X_k + Σ_i F_i(I_k)` come from the commitments; the public shares must still
//!    interpolate to the shared public key; the chain code is kept; the share passes
//!    cggmp24's validation. The new share belongs to epoch `e + 1`.
//! 4. **Confirm.** The caller persists the new share as *pending*, then calls
//!    [`Refresh::confirm_persisted`], which broadcasts a digest of the new public data
//!    ([`MessageKind::RefreshConfirm`]). When every party's confirmation has arrived and
//!    matches, the session is finished: only now may the caller make the new share
//!    current and delete the old one (and every presignature of the old epoch).

use generic_ec::{NonZero, Point, Scalar, SecretScalar};
use generic_ec_zkp::polynomial::{lagrange_coefficient_at_zero, Polynomial};
use rand_core::{CryptoRng, RngCore};

use crate::common::{check_header, Inbox, Slot, Transcript};
use crate::error::{RefreshError, Rejection, WireError};
use crate::wire::{
    encode_key_info, Header, Message, MessageKind, Outgoing, Payload, Recipient, SessionId,
    Waiting, MAX_PARTIES,
};
use crate::{Curve, DirtyIncompleteKeyShare, IncompleteKeyShare, KeyInfo};

/// The result of a refresh: the new key share and its epoch.
#[derive(Clone)]
pub struct RefreshOutput {
    /// The refreshed key share (validated by cggmp24's own validation).
    pub share: IncompleteKeyShare,
    /// The new share epoch (the old one plus one). Presignatures are bound to it.
    pub epoch: u64,
}

impl core::fmt::Debug for RefreshOutput {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RefreshOutput")
            .field("i", &self.share.i)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Where a refresh stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshStatus {
    /// Rounds 1–2: waiting for these messages (a timeout is the caller's decision; the
    /// caller's key share is untouched).
    Running {
        /// The messages still missing.
        waiting_for: Vec<Waiting>,
    },
    /// The new share is computed ([`Refresh::pending_output`]): persist it as pending,
    /// then call [`Refresh::confirm_persisted`].
    PersistPending,
    /// Our confirmation is out; waiting for the others'.
    AwaitingConfirmations {
        /// The confirmations still missing.
        waiting_for: Vec<Waiting>,
    },
    /// Every party confirmed: the new share may replace the old one.
    Finished,
    /// The session aborted.
    Aborted(RefreshError),
}

enum State {
    Running,
    PersistPending,
    Confirming,
    Finished,
    Aborted(RefreshError),
}

/// One party's refresh state machine.
pub struct Refresh {
    session: SessionId,
    epoch: u64,
    me: u16,
    n: u16,
    t: u16,
    old: IncompleteKeyShare,
    /// `f_me(I_me)`, our own sub-share.
    own_sub_share: SecretScalar<Curve>,
    commitments: Vec<Option<Vec<Point<Curve>>>>,
    sub_shares: Vec<Option<SecretScalar<Curve>>>,
    verified: Vec<bool>,
    echoes: Vec<Option<Vec<[u8; 32]>>>,
    own_digests: Option<Vec<[u8; 32]>>,
    confirmations: Vec<Option<[u8; 32]>>,
    own_confirmation: Option<[u8; 32]>,
    pending: Option<RefreshOutput>,
    inbox: Inbox,
    state: State,
}

impl Refresh {
    /// Starts a refresh of `share` (of epoch `epoch`) in session `session`. Returns the
    /// state machine and the round-1 messages to send: one broadcast commitment and one
    /// private sub-share per other party. The caller's `share` is not modified.
    pub fn start<R: RngCore + CryptoRng>(
        session: SessionId,
        epoch: u64,
        share: &IncompleteKeyShare,
        rng: &mut R,
    ) -> Result<(Self, Vec<Outgoing>), RefreshError> {
        let vss = share
            .vss_setup
            .as_ref()
            .ok_or(RefreshError::UnsupportedShare(
                "no VSS setup (additive shares)",
            ))?;
        let n_usize = share.public_shares.len();
        if !(2..=MAX_PARTIES).contains(&n_usize) {
            return Err(RefreshError::UnsupportedShare("number of parties"));
        }
        let n = n_usize as u16;
        let t = vss.min_signers;
        if t < 2 || t > n {
            return Err(RefreshError::UnsupportedShare("threshold"));
        }
        epoch.checked_add(1).ok_or(RefreshError::EpochOverflow)?;
        let me = share.i;

        let poly = Polynomial::<SecretScalar<Curve>>::sample_with_const_term(
            rng,
            usize::from(t) - 1,
            SecretScalar::zero(),
        );
        let commitment: Vec<Point<Curve>> = poly
            .coefs()
            .iter()
            .map(|a| Point::generator() * a)
            .collect();
        let eval = |x: &Scalar<Curve>| -> SecretScalar<Curve> {
            let mut acc = Scalar::<Curve>::zero();
            for a in poly.coefs().iter().rev() {
                acc = acc * x + a;
            }
            SecretScalar::new(&mut acc)
        };

        let mut out = Vec::with_capacity(n_usize);
        let header = |recipient| Header {
            session,
            epoch,
            sender: me,
            recipient,
        };
        out.push(
            outgoing(
                Recipient::Broadcast,
                Message {
                    header: header(None),
                    payload: Payload::RefreshCommit {
                        coefficients: commitment.clone(),
                    },
                },
            )
            .map_err(RefreshError::Encode)?,
        );
        let mut own_sub_share = SecretScalar::zero();
        for (j, i_j) in (0u16..).zip(&vss.I) {
            let value = eval(i_j.as_ref());
            if j == me {
                own_sub_share = value;
                continue;
            }
            out.push(
                outgoing(
                    Recipient::Private(j),
                    Message {
                        header: header(Some(j)),
                        payload: Payload::RefreshSubShare { value },
                    },
                )
                .map_err(RefreshError::Encode)?,
            );
        }

        let mut commitments = vec![None; n_usize];
        commitments[usize::from(me)] = Some(commitment);
        let mut verified = vec![false; n_usize];
        verified[usize::from(me)] = true;
        let mut this = Self {
            session,
            epoch,
            me,
            n,
            t,
            old: share.clone(),
            own_sub_share,
            commitments,
            sub_shares: vec![None; n_usize],
            verified,
            echoes: vec![None; n_usize],
            own_digests: None,
            confirmations: vec![None; n_usize],
            own_confirmation: None,
            pending: None,
            inbox: Inbox::default(),
            state: State::Running,
        };
        // n == 1 other party is impossible (n >= 2), but advance keeps it uniform.
        let more = this.advance()?;
        out.extend(more);
        Ok((this, out))
    }

    /// This party's index.
    pub fn party(&self) -> u16 {
        self.me
    }

    /// The epoch being refreshed (the output has `epoch() + 1`).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Takes one message, `bytes`, that the caller's transport authenticated as coming
    /// from party `from`. Returns the messages to send in reply (possibly none).
    ///
    /// A [`RefreshError::Rejected`] refuses the message and leaves the session as it
    /// was; any other error aborts the session and names the culprit where one is known.
    pub fn handle(&mut self, from: u16, bytes: &[u8]) -> Result<Vec<Outgoing>, RefreshError> {
        match &self.state {
            State::Aborted(e) => return Err(RefreshError::Aborted(Box::new(e.clone()))),
            State::Finished => return Err(Rejection::AlreadyFinished.into()),
            _ => {}
        }
        let msg = Message::decode(bytes).map_err(Rejection::from)?;
        let kind = msg.kind();
        if !kind.is_refresh() {
            return Err(Rejection::UnexpectedKind { kind }.into());
        }
        if from >= self.n || from == self.me {
            return Err(Rejection::NotParticipant { party: from }.into());
        }
        check_header(&msg.header, kind, from, &self.session, self.epoch, self.me)?;
        match self.inbox.record(kind, from, bytes) {
            Slot::New => {}
            Slot::Duplicate => return Err(Rejection::Duplicate { party: from, kind }.into()),
            Slot::Conflicting => {
                return Err(self.abort(RefreshError::Conflicting { party: from, kind }))
            }
        }
        let p = usize::from(from);
        match msg.payload {
            Payload::RefreshCommit { coefficients } => {
                if let Err(reason) = self.check_commitment(&coefficients) {
                    return Err(self.abort(RefreshError::InvalidCommitment {
                        dealer: from,
                        reason,
                    }));
                }
                self.commitments[p] = Some(coefficients);
            }
            Payload::RefreshSubShare { value } => self.sub_shares[p] = Some(value),
            Payload::RefreshEcho { digests } => {
                if digests.len() != usize::from(self.n) {
                    return Err(self.abort(RefreshError::InvalidEcho { party: from }));
                }
                self.echoes[p] = Some(digests);
            }
            Payload::RefreshConfirm { digest } => self.confirmations[p] = Some(digest),
            Payload::RepairMask { .. } | Payload::RepairContribution { .. } => {
                return Err(Rejection::UnexpectedKind { kind }.into())
            }
        }
        self.advance()
    }

    /// Declares that the caller persisted [`Refresh::pending_output`] (as pending, next
    /// to the old share). Returns the confirmation to broadcast.
    pub fn confirm_persisted(&mut self) -> Result<Vec<Outgoing>, RefreshError> {
        match &self.state {
            State::PersistPending => {}
            State::Aborted(e) => return Err(RefreshError::Aborted(Box::new(e.clone()))),
            _ => {
                return Err(RefreshError::WrongState(
                    "no new share waiting to be persisted",
                ))
            }
        }
        let digest = self.own_confirmation.ok_or(RefreshError::WrongState(
            "no new share waiting to be persisted",
        ))?;
        let msg = Message {
            header: Header {
                session: self.session,
                epoch: self.epoch,
                sender: self.me,
                recipient: None,
            },
            payload: Payload::RefreshConfirm { digest },
        };
        let mut out = vec![outgoing(Recipient::Broadcast, msg).map_err(RefreshError::Encode)?];
        self.state = State::Confirming;
        out.extend(self.advance()?);
        Ok(out)
    }

    /// Where the session stands and what it waits for.
    pub fn status(&self) -> RefreshStatus {
        match &self.state {
            State::Running => RefreshStatus::Running {
                waiting_for: self.waiting_for(),
            },
            State::PersistPending => RefreshStatus::PersistPending,
            State::Confirming => RefreshStatus::AwaitingConfirmations {
                waiting_for: self.waiting_for(),
            },
            State::Finished => RefreshStatus::Finished,
            State::Aborted(e) => RefreshStatus::Aborted(e.clone()),
        }
    }

    /// The messages still missing in the current phase.
    pub fn waiting_for(&self) -> Vec<Waiting> {
        let mut w = Vec::new();
        let others = (0..self.n).filter(|&k| k != self.me);
        match self.state {
            State::Running => {
                for k in others {
                    let p = usize::from(k);
                    if self.commitments[p].is_none() {
                        w.push(Waiting {
                            party: k,
                            kind: MessageKind::RefreshCommit,
                        });
                    }
                    if self.sub_shares[p].is_none() {
                        w.push(Waiting {
                            party: k,
                            kind: MessageKind::RefreshSubShare,
                        });
                    }
                    if self.echoes[p].is_none() {
                        w.push(Waiting {
                            party: k,
                            kind: MessageKind::RefreshEcho,
                        });
                    }
                }
            }
            State::Confirming => {
                for k in others {
                    if self.confirmations[usize::from(k)].is_none() {
                        w.push(Waiting {
                            party: k,
                            kind: MessageKind::RefreshConfirm,
                        });
                    }
                }
            }
            _ => {}
        }
        w
    }

    /// The new share once computed (from [`RefreshStatus::PersistPending`] on): persist
    /// it as pending; it replaces the old share only when the session is finished.
    pub fn pending_output(&self) -> Option<&RefreshOutput> {
        match self.state {
            State::PersistPending | State::Confirming | State::Finished => self.pending.as_ref(),
            _ => None,
        }
    }

    /// Whether every party confirmed.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// The output of a finished session.
    pub fn into_output(self) -> Result<RefreshOutput, RefreshError> {
        match self.state {
            State::Finished => self
                .pending
                .ok_or(RefreshError::WrongState("finished without output")),
            State::Aborted(e) => Err(RefreshError::Aborted(Box::new(e))),
            _ => Err(RefreshError::WrongState("not finished")),
        }
    }

    fn abort(&mut self, e: RefreshError) -> RefreshError {
        self.state = State::Aborted(e.clone());
        self.pending = None;
        e
    }

    fn check_commitment(&self, c: &[Point<Curve>]) -> Result<(), &'static str> {
        if c.len() != usize::from(self.t) {
            return Err("wrong number of coefficients");
        }
        if !c[0].is_zero() {
            return Err("constant term is not the identity");
        }
        if c.iter().skip(1).any(|p| p.is_zero()) {
            return Err("a higher coefficient is the identity");
        }
        Ok(())
    }

    fn commitment_digests(&self) -> Option<Vec<[u8; 32]>> {
        let info = encode_key_info(&self.old.key_info).ok()?;
        let mut out = Vec::with_capacity(self.commitments.len());
        for (k, c) in (0u16..).zip(&self.commitments) {
            let c = c.as_ref()?;
            let mut t = Transcript::new("wallet-mpc/lifecycle/v1/refresh/commitment");
            t.put(&self.session.0)
                .put(&self.epoch.to_be_bytes())
                .put(&info)
                .put(&k.to_be_bytes());
            for p in c {
                t.put(p.to_bytes(true).as_ref());
            }
            out.push(t.finish());
        }
        Some(out)
    }

    fn advance(&mut self) -> Result<Vec<Outgoing>, RefreshError> {
        let mut out = Vec::new();
        if !matches!(
            self.state,
            State::Running | State::PersistPending | State::Confirming
        ) {
            return Ok(out);
        }
        let me = self.me;
        // Sub-shares against their dealers' commitments.
        let i_me = self.index_of(me)?;
        for k in 0..usize::from(self.n) {
            if self.verified[k] {
                continue;
            }
            if let (Some(c), Some(s)) = (&self.commitments[k], &self.sub_shares[k]) {
                let expected: Point<Curve> = Polynomial::from_coefs(c.clone()).value(&i_me);
                if Point::generator() * s != expected {
                    return Err(self.abort(RefreshError::InvalidSubShare { dealer: k as u16 }));
                }
                self.verified[k] = true;
            }
        }
        // Echo once every commitment is in.
        if self.own_digests.is_none() {
            if let Some(digests) = self.commitment_digests() {
                self.own_digests = Some(digests.clone());
                out.push(
                    outgoing(
                        Recipient::Broadcast,
                        Message {
                            header: Header {
                                session: self.session,
                                epoch: self.epoch,
                                sender: me,
                                recipient: None,
                            },
                            payload: Payload::RefreshEcho { digests },
                        },
                    )
                    .map_err(RefreshError::Encode)?,
                );
            }
        }
        // Echoes against what we received.
        if let Some(own) = &self.own_digests {
            let mut mismatch = None;
            for (k, echo) in (0u16..).zip(&self.echoes) {
                if let Some(echo) = echo {
                    if let Some(dealer) = (0u16..).zip(own).zip(echo).find(|((_, a), b)| a != b) {
                        mismatch = Some(RefreshError::Equivocation {
                            dealer: (dealer.0).0,
                            reported_by: k,
                        });
                        break;
                    }
                }
            }
            if let Some(e) = mismatch {
                return Err(self.abort(e));
            }
        }
        // Compute once everything is in and consistent.
        if matches!(self.state, State::Running) {
            let others = (0..usize::from(self.n)).filter(|&k| k != usize::from(me));
            let complete = self.own_digests.is_some()
                && others
                    .clone()
                    .all(|k| self.verified[k] && self.echoes[k].is_some());
            if complete {
                match self.compute() {
                    Ok((output, confirmation)) => {
                        self.pending = Some(output);
                        self.own_confirmation = Some(confirmation);
                        self.state = State::PersistPending;
                    }
                    Err(e) => return Err(self.abort(e)),
                }
            }
        }
        // Confirmations against ours.
        if let Some(own) = self.own_confirmation {
            let bad = (0u16..)
                .zip(&self.confirmations)
                .find(|(_, c)| matches!(c, Some(d) if *d != own))
                .map(|(k, _)| k);
            if let Some(party) = bad {
                return Err(self.abort(RefreshError::ConfirmationMismatch { party }));
            }
            if matches!(self.state, State::Confirming)
                && (0..usize::from(self.n))
                    .filter(|&k| k != usize::from(me))
                    .all(|k| self.confirmations[k].is_some())
            {
                self.state = State::Finished;
            }
        }
        Ok(out)
    }

    fn index_of(&self, k: u16) -> Result<Scalar<Curve>, RefreshError> {
        self.old
            .vss_setup
            .as_ref()
            .and_then(|v| v.I.get(usize::from(k)))
            .map(|i| *i.as_ref())
            .ok_or(RefreshError::UnsupportedShare("no VSS setup"))
    }

    fn compute(&self) -> Result<(RefreshOutput, [u8; 32]), RefreshError> {
        let new_epoch = self
            .epoch
            .checked_add(1)
            .ok_or(RefreshError::EpochOverflow)?;
        // x' = x + f_me(I_me) + Σ_k f_k(I_me)
        let mut x = Scalar::<Curve>::zero() + &self.old.x + &self.own_sub_share;
        for (k, s) in self.sub_shares.iter().enumerate() {
            if k == usize::from(self.me) {
                continue;
            }
            let s = s
                .as_ref()
                .ok_or(RefreshError::WrongState("missing sub-share"))?;
            x += s;
        }
        let x = NonZero::from_secret_scalar(SecretScalar::new(&mut x)).ok_or(
            RefreshError::InvalidResult("new secret share is zero".into()),
        )?;

        // X'_j = X_j + Σ_k F_k(I_j)
        let polys = self
            .commitments
            .iter()
            .map(|c| c.clone().map(Polynomial::from_coefs))
            .collect::<Option<Vec<_>>>()
            .ok_or(RefreshError::WrongState("missing commitment"))?;
        let mut public_shares = Vec::with_capacity(self.old.public_shares.len());
        for (j, x_j) in (0u16..).zip(&self.old.public_shares) {
            let i_j = self.index_of(j)?;
            let mut p = x_j.into_inner();
            for f in &polys {
                p += f.value::<_, Point<Curve>>(&i_j);
            }
            public_shares.push(NonZero::from_point(p).ok_or(RefreshError::InvalidResult(
                "a new public share is zero".into(),
            ))?);
        }

        // The new public shares still interpolate to the shared public key.
        let vss = self
            .old
            .vss_setup
            .clone()
            .ok_or(RefreshError::UnsupportedShare("no VSS setup"))?;
        let first = &vss.I[..usize::from(self.t)];
        let mut interpolated = Point::<Curve>::zero();
        for (j, share) in public_shares.iter().take(usize::from(self.t)).enumerate() {
            let l = lagrange_coefficient_at_zero(j, first)
                .ok_or(RefreshError::InvalidResult("indices not distinct".into()))?;
            interpolated += share.into_inner() * l;
        }
        if interpolated != self.old.shared_public_key.into_inner() {
            return Err(RefreshError::PublicKeyChanged);
        }

        let key_info = KeyInfo {
            curve: Default::default(),
            shared_public_key: self.old.shared_public_key,
            public_shares,
            vss_setup: Some(vss),
            chain_code: self.old.chain_code,
        };
        let confirmation = {
            let info = encode_key_info(&key_info)
                .map_err(|e| RefreshError::InvalidResult(e.to_string()))?;
            let mut t = Transcript::new("wallet-mpc/lifecycle/v1/refresh/confirm");
            t.put(&self.session.0)
                .put(&new_epoch.to_be_bytes())
                .put(&info);
            t.finish()
        };
        let share = key_share::Validate::validate(DirtyIncompleteKeyShare {
            i: self.me,
            key_info,
            x,
        })
        .map_err(|e| RefreshError::InvalidResult(e.into_error().to_string()))?;
        Ok((
            RefreshOutput {
                share,
                epoch: new_epoch,
            },
            confirmation,
        ))
    }
}

pub(crate) fn outgoing(to: Recipient, msg: Message) -> Result<Outgoing, WireError> {
    Ok(Outgoing {
        to,
        kind: msg.kind(),
        bytes: msg.encode()?,
    })
}
