//! Typed errors. A [`Rejection`] refuses one message and leaves the session as it was;
//! every other variant of [`RefreshError`] / [`RepairError`] either refuses to start or
//! aborts the session (see `is_fatal`).

use crate::wire::MessageKind;

/// Why bytes did not decode as a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The message ends early.
    #[error("message truncated")]
    Truncated,
    /// Bytes follow the message.
    #[error("trailing bytes after the message")]
    TrailingBytes,
    /// Not a lifecycle message.
    #[error("bad magic")]
    BadMagic,
    /// An encoding version this crate does not know.
    #[error("unsupported encoding version {0}")]
    UnsupportedVersion(u8),
    /// A message kind this crate does not know.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// The sender field is the broadcast marker.
    #[error("invalid sender field")]
    BadSender,
    /// A private kind without a recipient or a broadcast kind with one.
    #[error("recipient field does not fit the message kind")]
    BadRecipient,
    /// A tag byte other than 0 or 1.
    #[error("invalid tag byte {0}")]
    BadTag(u8),
    /// More entries than [`crate::wire::MAX_PARTIES`].
    #[error("too many entries")]
    TooMany,
    /// Lists of different lengths that must match.
    #[error("inconsistent lengths")]
    BadLength,
    /// Bytes that are not a point on secp256k1.
    #[error("invalid curve point")]
    InvalidPoint,
    /// The identity where a non-zero point is required.
    #[error("identity point where a non-zero point is required")]
    ZeroPoint,
    /// Bytes that are not a scalar below the group order.
    #[error("invalid scalar")]
    InvalidScalar,
    /// Zero where a non-zero scalar is required.
    #[error("zero scalar where a non-zero scalar is required")]
    ZeroScalar,
    /// Public key data without a VSS setup (additive shares are not supported).
    #[error("key data without VSS setup")]
    NoVssSetup,
}

/// A message refused; the session is unchanged and goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The bytes are not a valid message.
    #[error("malformed message: {0}")]
    Malformed(#[from] WireError),
    /// The message belongs to another session.
    #[error("message of another session")]
    ForeignSession,
    /// The message belongs to another epoch of the key shares.
    #[error("message for epoch {got}, this session works on epoch {expected}")]
    ForeignEpoch {
        /// This session's epoch.
        expected: u64,
        /// The message's epoch.
        got: u64,
    },
    /// The (authenticated) sender takes no part in this session in that role.
    #[error("party {party} is not a participant of this session")]
    NotParticipant {
        /// The sender.
        party: u16,
    },
    /// The message names another sender than the one the transport authenticated.
    #[error("authenticated sender is {authenticated}, the message claims {claimed}")]
    SenderMismatch {
        /// Who the caller's transport authenticated.
        authenticated: u16,
        /// The sender field of the message.
        claimed: u16,
    },
    /// The message is addressed to another party.
    #[error("message addressed to {recipient:?}, not to this party")]
    WrongRecipient {
        /// The recipient field (`None`: broadcast).
        recipient: Option<u16>,
    },
    /// A message of a kind this state machine does not take (another protocol, or a
    /// role that receives nothing of that kind).
    #[error("unexpected {kind:?} message")]
    UnexpectedKind {
        /// The kind received.
        kind: MessageKind,
    },
    /// The same message again (a replay or a retransmission).
    #[error("duplicate {kind:?} message from party {party}")]
    Duplicate {
        /// The sender.
        party: u16,
        /// The kind.
        kind: MessageKind,
    },
    /// The session is finished; nothing more is taken.
    #[error("session already finished")]
    AlreadyFinished,
}

/// Errors of the refresh protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// One of this party's own messages could not be encoded (a bug or an unsupported
    /// key; nothing was sent).
    #[error("could not encode an outgoing message: {0}")]
    Encode(WireError),
    /// One message refused; the session goes on.
    #[error("message rejected: {0}")]
    Rejected(#[from] Rejection),
    /// The key share cannot be refreshed by this crate (no VSS setup, too many parties).
    #[error("unsupported key share: {0}")]
    UnsupportedShare(&'static str),
    /// The epoch counter would overflow.
    #[error("epoch overflow")]
    EpochOverflow,
    /// A call that does not fit the state (e.g. confirming before the new share exists).
    #[error("not possible in this state: {0}")]
    WrongState(&'static str),
    /// A party sent two different messages for the same slot (aborts).
    #[error("party {party} sent two different {kind:?} messages")]
    Conflicting {
        /// The sender.
        party: u16,
        /// The kind.
        kind: MessageKind,
    },
    /// A dealer's commitment is malformed: wrong length, or its constant term is not the
    /// identity (it would change the key), or its linear term is the identity (aborts).
    #[error("dealer {dealer} sent an invalid commitment: {reason}")]
    InvalidCommitment {
        /// The dealer.
        dealer: u16,
        /// What is wrong.
        reason: &'static str,
    },
    /// A dealer's sub-share does not match its commitment (aborts).
    #[error("dealer {dealer}'s sub-share does not match its commitment")]
    InvalidSubShare {
        /// The dealer.
        dealer: u16,
    },
    /// A party's echo has the wrong number of digests (aborts).
    #[error("party {party} sent a malformed echo")]
    InvalidEcho {
        /// The sender of the echo.
        party: u16,
    },
    /// Echo mismatch: `reported_by` received another commitment from `dealer` than this
    /// party did. The dealer equivocated (or, if `reported_by` lies, `reported_by`
    /// misbehaved; the signed commitment messages settle which). Aborts.
    #[error("dealer {dealer} equivocated: party {reported_by} received a different commitment")]
    Equivocation {
        /// The dealer whose commitment differs.
        dealer: u16,
        /// The party whose echo showed it.
        reported_by: u16,
    },
    /// A party confirmed different public data for the new shares (aborts).
    #[error("party {party} confirmed a different refreshed key")]
    ConfirmationMismatch {
        /// The confirming party.
        party: u16,
    },
    /// The refreshed shares would not keep the shared public key (aborts).
    #[error("refreshed public shares do not interpolate to the shared public key")]
    PublicKeyChanged,
    /// The refreshed share failed cggmp24's validation (aborts).
    #[error("refreshed key share is invalid: {0}")]
    InvalidResult(String),
    /// The session aborted earlier with this error.
    #[error("session aborted: {0}")]
    Aborted(Box<RefreshError>),
}

impl RefreshError {
    /// Whether the error ended the session (everything but [`RefreshError::Rejected`]
    /// and [`RefreshError::WrongState`]).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::Rejected(_) | Self::WrongState(_))
    }

    /// The party the error names as misbehaving, if any.
    pub fn culprit(&self) -> Option<u16> {
        match self {
            Self::Conflicting { party, .. }
            | Self::InvalidEcho { party }
            | Self::ConfirmationMismatch { party } => Some(*party),
            Self::InvalidCommitment { dealer, .. }
            | Self::InvalidSubShare { dealer }
            | Self::Equivocation { dealer, .. } => Some(*dealer),
            Self::Aborted(e) => e.culprit(),
            _ => None,
        }
    }
}

/// Errors of the repair protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepairError {
    /// One of this party's own messages could not be encoded (a bug or an unsupported
    /// key; nothing was sent).
    #[error("could not encode an outgoing message: {0}")]
    Encode(WireError),
    /// One message refused; the session goes on.
    #[error("message rejected: {0}")]
    Rejected(#[from] Rejection),
    /// The parameters do not describe a repair this crate does (wrong helpers, the lost
    /// index out of range, a threshold other than 2, no VSS setup).
    #[error("invalid repair setup: {0}")]
    InvalidSetup(&'static str),
    /// A party sent two different messages for the same slot (aborts).
    #[error("party {party} sent two different {kind:?} messages")]
    Conflicting {
        /// The sender.
        party: u16,
        /// The kind.
        kind: MessageKind,
    },
    /// The two helpers sent different public key data (aborts): one of them lies.
    #[error("helpers {helpers:?} disagree on the key's public data")]
    PublicDataMismatch {
        /// The two helpers.
        helpers: [u16; 2],
    },
    /// The helpers' public key data is not a valid key (aborts).
    #[error("helpers' public key data is invalid: {0}")]
    InvalidPublicData(String),
    /// The helpers' key is not the one the new party expected (aborts).
    #[error("helpers' shared public key is not the expected one")]
    PublicKeyMismatch,
    /// The repaired share does not match the public share of its index:
    /// `x_r·G != public_shares[r]`. One of the helpers sent a wrong term (aborts).
    #[error("repaired share does not match public share {index}: helpers {helpers:?} sent inconsistent terms")]
    RepairedShareMismatch {
        /// The repaired index.
        index: u16,
        /// The two helpers (one of them, at least, lied).
        helpers: [u16; 2],
    },
    /// The repaired share failed cggmp24's validation (aborts).
    #[error("repaired key share is invalid: {0}")]
    InvalidResult(String),
    /// The session aborted earlier with this error.
    #[error("session aborted: {0}")]
    Aborted(Box<RepairError>),
}

impl RepairError {
    /// Whether the error ended the session (everything but
    /// [`RepairError::Rejected`]).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::Rejected(_))
    }

    /// The parties the error names: the sender of conflicting messages, or both
    /// helpers when their contributions disagree or fail the public share (one of them,
    /// at least, misbehaved; the new party cannot tell which).
    pub fn suspects(&self) -> Vec<u16> {
        match self {
            Self::Conflicting { party, .. } => vec![*party],
            Self::PublicDataMismatch { helpers } | Self::RepairedShareMismatch { helpers, .. } => {
                helpers.to_vec()
            }
            Self::Aborted(e) => e.suspects(),
            _ => Vec::new(),
        }
    }
}
