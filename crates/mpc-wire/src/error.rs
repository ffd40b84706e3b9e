//! Error type of the crate.

use core::fmt;

/// Formats the sender an envelope *claims* to come from (it may be unknown when the
/// envelope could not be parsed far enough to read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimedSender(pub Option<u16>);

impl fmt::Display for ClaimedSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, "claimed sender party {s}"),
            None => f.write_str("unknown claimed sender"),
        }
    }
}

fn claimed(sender: &Option<u16>) -> ClaimedSender {
    ClaimedSender(*sender)
}

/// Everything that can go wrong when sealing or opening an envelope.
///
/// Errors about a received envelope name the cause and the sender the envelope
/// *claims* to come from. Before the signature is verified that claim is unproven
/// (anybody, including the gateway, can write any sender index into an envelope), so
/// do not blame a party for anything but [`WireError::Decryption`], which is only
/// reported for correctly signed envelopes.
///
/// A rejected envelope never changes the state of a [`crate::Channel`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    // ---- received envelopes -------------------------------------------------------
    /// The envelope text is larger than [`crate::MAX_ENVELOPE_BYTES`]; it was not parsed.
    #[error("envelope rejected before parsing: {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the received text in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The envelope is not valid UTF-8/JSON, misses or has unknown fields, has a field
    /// of the wrong type or range, or bad base64.
    #[error("malformed envelope ({}): {reason}", claimed(.sender))]
    Malformed {
        /// Sender index, if it could be read.
        sender: Option<u16>,
        /// What is wrong.
        reason: String,
    },
    /// The envelope has a protocol version this build does not speak.
    #[error("unsupported envelope version {version} ({}); this build speaks version {}", claimed(.sender), crate::VERSION)]
    UnsupportedVersion {
        /// Sender index, if it could be read.
        sender: Option<u16>,
        /// The version found in the envelope.
        version: u64,
    },
    /// The envelope belongs to another session.
    #[error("envelope from claimed sender party {sender} belongs to foreign session {got:?} (this channel is session {expected:?})")]
    ForeignSession {
        /// Claimed sender.
        sender: u16,
        /// This channel's session id.
        expected: String,
        /// The session id in the envelope.
        got: String,
    },
    /// The claimed sender is not a party of this session's roster.
    #[error("envelope from unknown claimed sender party {sender}: not in this session's roster")]
    UnknownSender {
        /// Claimed sender.
        sender: u16,
    },
    /// The envelope is addressed to a party that is not in the roster.
    #[error("envelope from claimed sender party {sender} is addressed to party {recipient}, which is not in this session's roster")]
    RecipientOutOfRange {
        /// Claimed sender.
        sender: u16,
        /// The recipient in the envelope.
        recipient: u16,
    },
    /// The signature does not verify under the claimed sender's identity key: the
    /// envelope was tampered with or forged.
    #[error("bad signature on envelope from claimed sender party {sender}: tampered or forged")]
    BadSignature {
        /// Claimed sender.
        sender: u16,
    },
    /// An envelope with this sequence number was already accepted from this sender.
    #[error("replayed envelope from party {sender}: sequence number {seq} was already accepted")]
    Replay {
        /// Sender (signature verified).
        sender: u16,
        /// The replayed sequence number.
        seq: u64,
    },
    /// The envelope's sequence number is lower than the highest one already accepted
    /// from this sender (the gateway delivered it out of order).
    #[error(
        "reordered envelope from party {sender}: sequence number {seq} arrived after {highest}"
    )]
    Reordered {
        /// Sender (signature verified).
        sender: u16,
        /// The sequence number of this envelope.
        seq: u64,
        /// The highest sequence number accepted from this sender so far.
        highest: u64,
    },
    /// A correctly signed p2p envelope addressed to us could not be decrypted.
    #[error("cannot decrypt p2p envelope from party {sender}: corrupt ciphertext or encrypted to another key")]
    Decryption {
        /// Sender (signature verified).
        sender: u16,
    },

    // ---- local configuration and sealing ------------------------------------------
    /// A session id does not satisfy [`crate::SessionId`]'s rules.
    #[error("invalid session id: {reason}")]
    InvalidSessionId {
        /// What is wrong.
        reason: String,
    },
    /// An identity key or public identity could not be parsed or is unsafe.
    #[error("invalid identity key: {reason}")]
    InvalidKey {
        /// What is wrong.
        reason: String,
    },
    /// The roster is inconsistent (duplicates, too few parties, own key missing).
    #[error("invalid roster: {reason}")]
    InvalidRoster {
        /// What is wrong.
        reason: String,
    },
    /// `seal` was asked to address a party that is not in the roster, or ourselves.
    #[error("cannot seal an envelope to party {recipient}: {reason}")]
    InvalidRecipient {
        /// The requested recipient.
        recipient: u16,
        /// What is wrong.
        reason: &'static str,
    },
    /// The payload would make the envelope larger than [`crate::MAX_ENVELOPE_BYTES`].
    #[error(
        "payload of {size} bytes is too large for an envelope (limit {max} bytes of envelope text)"
    )]
    PayloadTooLarge {
        /// Size of the payload (or of the resulting envelope text) in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// This channel has emitted `u64::MAX` envelopes.
    #[error("sequence numbers of this channel are exhausted")]
    SeqExhausted,
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {reason}")]
    Randomness {
        /// The underlying error.
        reason: String,
    },
}

impl WireError {
    /// The sender the rejected envelope claims to come from, if known.
    pub fn sender(&self) -> Option<u16> {
        match self {
            WireError::Malformed { sender, .. } | WireError::UnsupportedVersion { sender, .. } => {
                *sender
            }
            WireError::ForeignSession { sender, .. }
            | WireError::UnknownSender { sender }
            | WireError::RecipientOutOfRange { sender, .. }
            | WireError::BadSignature { sender }
            | WireError::Replay { sender, .. }
            | WireError::Reordered { sender, .. }
            | WireError::Decryption { sender } => Some(*sender),
            _ => None,
        }
    }

    /// `true` for errors about an envelope received from the gateway (as opposed to
    /// local configuration or sealing errors). Such envelopes can be logged and skipped:
    /// the channel state is unchanged.
    pub fn is_rejected_envelope(&self) -> bool {
        matches!(
            self,
            WireError::TooLarge { .. }
                | WireError::Malformed { .. }
                | WireError::UnsupportedVersion { .. }
                | WireError::ForeignSession { .. }
                | WireError::UnknownSender { .. }
                | WireError::RecipientOutOfRange { .. }
                | WireError::BadSignature { .. }
                | WireError::Replay { .. }
                | WireError::Reordered { .. }
                | WireError::Decryption { .. }
        )
    }
}
