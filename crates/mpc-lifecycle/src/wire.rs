//! The messages of both protocols and their binary encoding.
//!
//! Layout of every message (all integers big-endian):
//!
//! ```text
//! magic "WMPCLC" | version (1) | kind (1) | session id (32) | epoch (8)
//!   | sender (2) | recipient (2, 0xffff = broadcast) | payload
//! ```
//!
//! Points are SEC1-compressed (33 bytes); a point that may be the identity (a Feldman
//! commitment's constant term) is preceded by a tag byte (0 = identity, 1 = point).
//! Scalars are 32 bytes, big-endian, below the group order. Decoding is strict: wrong
//! lengths, trailing bytes, off-curve points, out-of-range scalars and unknown kinds
//! are [`WireError`]s.

use generic_ec::{NonZero, Point, Scalar, SecretScalar};
use zeroize::Zeroize;

use crate::error::WireError;
use crate::{Curve, KeyInfo};

/// The leading bytes of every message.
pub const MAGIC: &[u8; 6] = b"WMPCLC";
/// The encoding version.
pub const VERSION: u8 = 1;
/// The recipient field of a broadcast message.
pub const BROADCAST: u16 = u16::MAX;
/// The largest number of parties a message may describe.
pub const MAX_PARTIES: usize = 64;

const HEADER_LEN: usize = 6 + 1 + 1 + 32 + 8 + 2 + 2;
const POINT_LEN: usize = 33;
const SCALAR_LEN: usize = 32;

/// A session id chosen by whoever opens the session (e.g. the cosigner), unique per
/// refresh or repair; every message carries it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SessionId(pub [u8; 32]);

/// The kind of a message. Each kind is either a broadcast or a private point-to-point
/// message ([`MessageKind::is_private`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum MessageKind {
    /// Refresh round 1, broadcast (reliably: checked by the echo round): a dealer's
    /// Feldman commitment to its zero-constant polynomial.
    RefreshCommit,
    /// Refresh round 1, private: a dealer's sub-share `f_i(I_j)` for party `j`.
    RefreshSubShare,
    /// Refresh round 2, broadcast: the digests of every dealer's commitment as received.
    RefreshEcho,
    /// Refresh round 3, broadcast: "I persisted the new share", with a digest of the new
    /// public key data.
    RefreshConfirm,
    /// Repair, private from the first helper to the second: the additive mask.
    RepairMask,
    /// Repair, private from a helper to the new party: the masked Lagrange term and the
    /// key's public data.
    RepairContribution,
}

impl MessageKind {
    /// The kind's byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            Self::RefreshCommit => 1,
            Self::RefreshSubShare => 2,
            Self::RefreshEcho => 3,
            Self::RefreshConfirm => 4,
            Self::RepairMask => 16,
            Self::RepairContribution => 17,
        }
    }

    /// The kind of a wire byte.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::RefreshCommit,
            2 => Self::RefreshSubShare,
            3 => Self::RefreshEcho,
            4 => Self::RefreshConfirm,
            16 => Self::RepairMask,
            17 => Self::RepairContribution,
            _ => return None,
        })
    }

    /// Whether the message is private (point-to-point, carries secret material: the
    /// caller must encrypt it to its recipient) rather than a broadcast.
    pub fn is_private(self) -> bool {
        matches!(
            self,
            Self::RefreshSubShare | Self::RepairMask | Self::RepairContribution
        )
    }

    /// Whether the kind belongs to the refresh protocol.
    pub fn is_refresh(self) -> bool {
        matches!(
            self,
            Self::RefreshCommit | Self::RefreshSubShare | Self::RefreshEcho | Self::RefreshConfirm
        )
    }
}

/// Who a message goes to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Recipient {
    /// Every other participant of the session.
    Broadcast,
    /// One party, privately: the caller encrypts the message to it.
    Private(u16),
}

/// A message a state machine asks its caller to send. The bytes of private messages
/// hold secret material; they are wiped when the value is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Where to send it.
    pub to: Recipient,
    /// What it is.
    pub kind: MessageKind,
    /// The encoded message ([`Message::encode`]).
    pub bytes: Vec<u8>,
}

impl core::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Outgoing")
            .field("to", &self.to)
            .field("kind", &self.kind)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// One message a state machine still waits for.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub struct Waiting {
    /// The party expected to send it.
    pub party: u16,
    /// The message expected.
    pub kind: MessageKind,
}

/// The header every message carries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Header {
    /// The session the message belongs to.
    pub session: SessionId,
    /// The epoch of the key shares the session works on.
    pub epoch: u64,
    /// The sending party's index (the caller's transport must authenticate it).
    pub sender: u16,
    /// The recipient's index, `None` for a broadcast.
    pub recipient: Option<u16>,
}

/// What a message says.
#[derive(Clone)]
pub enum Payload {
    /// Feldman commitment `[C_0, C_1, ...]` with `C_k = a_k·G` to the dealer's
    /// polynomial; `C_0` must be the identity (the polynomial is zero at 0).
    RefreshCommit {
        /// The commitments to the coefficients, constant term first.
        coefficients: Vec<Point<Curve>>,
    },
    /// The dealer's polynomial at the recipient's point `I_j`.
    RefreshSubShare {
        /// `f_i(I_j)`.
        value: SecretScalar<Curve>,
    },
    /// The digest of every dealer's commitment as this party received it, by dealer.
    RefreshEcho {
        /// One digest per party, in party order.
        digests: Vec<[u8; 32]>,
    },
    /// The sender persisted its refreshed share; the digest of the new public data.
    RefreshConfirm {
        /// Digest of (session, new epoch, public key, new public shares, I, chain code).
        digest: [u8; 32],
    },
    /// The additive mask the first repair helper shares with the second.
    RepairMask {
        /// `m`.
        mask: SecretScalar<Curve>,
    },
    /// A repair helper's masked Lagrange term and the key's public data.
    RepairContribution {
        /// `λ_h(I_r)·x_h ± m`.
        value: SecretScalar<Curve>,
        /// The public data of the key as the helper holds it.
        key_info: Box<KeyInfo>,
    },
}

impl core::fmt::Debug for Payload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::RefreshCommit { coefficients } => f
                .debug_struct("RefreshCommit")
                .field("coefficients", coefficients)
                .finish(),
            Self::RefreshSubShare { .. } => f.write_str("RefreshSubShare { .. }"),
            Self::RefreshEcho { digests } => f
                .debug_struct("RefreshEcho")
                .field("digests", &digests.len())
                .finish(),
            Self::RefreshConfirm { .. } => f.write_str("RefreshConfirm { .. }"),
            Self::RepairMask { .. } => f.write_str("RepairMask { .. }"),
            Self::RepairContribution { key_info, .. } => f
                .debug_struct("RepairContribution")
                .field("key_info", key_info)
                .finish_non_exhaustive(),
        }
    }
}

impl Payload {
    /// The message kind of this payload.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::RefreshCommit { .. } => MessageKind::RefreshCommit,
            Self::RefreshSubShare { .. } => MessageKind::RefreshSubShare,
            Self::RefreshEcho { .. } => MessageKind::RefreshEcho,
            Self::RefreshConfirm { .. } => MessageKind::RefreshConfirm,
            Self::RepairMask { .. } => MessageKind::RepairMask,
            Self::RepairContribution { .. } => MessageKind::RepairContribution,
        }
    }
}

/// A decoded message: header and payload.
#[derive(Clone, Debug)]
pub struct Message {
    /// Session, epoch, sender and recipient.
    pub header: Header,
    /// What it says.
    pub payload: Payload,
}

impl Message {
    /// The message's kind.
    pub fn kind(&self) -> MessageKind {
        self.payload.kind()
    }

    /// Encodes the message. Fails only on values this crate never produces itself
    /// (more than [`MAX_PARTIES`] entries, a key without VSS setup, a broadcast kind
    /// with a recipient or a private kind without one).
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let kind = self.kind();
        let recipient = match (kind.is_private(), self.header.recipient) {
            (true, Some(r)) if r != BROADCAST => r,
            (false, None) => BROADCAST,
            _ => return Err(WireError::BadRecipient),
        };
        let mut out = Vec::with_capacity(HEADER_LEN + 64);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(kind.code());
        out.extend_from_slice(&self.header.session.0);
        out.extend_from_slice(&self.header.epoch.to_be_bytes());
        out.extend_from_slice(&self.header.sender.to_be_bytes());
        out.extend_from_slice(&recipient.to_be_bytes());
        match &self.payload {
            Payload::RefreshCommit { coefficients } => {
                put_count(&mut out, coefficients.len())?;
                for c in coefficients {
                    if c.is_zero() {
                        out.push(0);
                    } else {
                        out.push(1);
                        out.extend_from_slice(c.to_bytes(true).as_ref());
                    }
                }
            }
            Payload::RefreshSubShare { value } => put_secret(&mut out, value),
            Payload::RefreshEcho { digests } => {
                put_count(&mut out, digests.len())?;
                for d in digests {
                    out.extend_from_slice(d);
                }
            }
            Payload::RefreshConfirm { digest } => out.extend_from_slice(digest),
            Payload::RepairMask { mask } => put_secret(&mut out, mask),
            Payload::RepairContribution { value, key_info } => {
                put_secret(&mut out, value);
                out.extend_from_slice(&encode_key_info(key_info)?);
            }
        }
        Ok(out)
    }

    /// Decodes a message, strictly (see the module documentation).
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(WireError::BadMagic);
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let code = r.u8()?;
        let kind = MessageKind::from_code(code).ok_or(WireError::UnknownKind(code))?;
        let mut session = [0u8; 32];
        session.copy_from_slice(r.take(32)?);
        let epoch = r.u64()?;
        let sender = r.u16()?;
        if sender == BROADCAST {
            return Err(WireError::BadSender);
        }
        let recipient = match (kind.is_private(), r.u16()?) {
            (true, BROADCAST) | (false, 0..BROADCAST) => return Err(WireError::BadRecipient),
            (true, to) => Some(to),
            (false, BROADCAST) => None,
        };
        let payload = match kind {
            MessageKind::RefreshCommit => {
                let n = r.count()?;
                let mut coefficients = Vec::with_capacity(n);
                for _ in 0..n {
                    coefficients.push(match r.u8()? {
                        0 => Point::zero(),
                        1 => r.point()?,
                        t => return Err(WireError::BadTag(t)),
                    });
                }
                Payload::RefreshCommit { coefficients }
            }
            MessageKind::RefreshSubShare => Payload::RefreshSubShare { value: r.secret()? },
            MessageKind::RefreshEcho => {
                let n = r.count()?;
                let mut digests = Vec::with_capacity(n);
                for _ in 0..n {
                    digests.push(r.digest()?);
                }
                Payload::RefreshEcho { digests }
            }
            MessageKind::RefreshConfirm => Payload::RefreshConfirm {
                digest: r.digest()?,
            },
            MessageKind::RepairMask => Payload::RepairMask { mask: r.secret()? },
            MessageKind::RepairContribution => {
                let value = r.secret()?;
                let key_info = decode_key_info(&mut r)?;
                Payload::RepairContribution {
                    value,
                    key_info: Box::new(key_info),
                }
            }
        };
        if r.pos != bytes.len() {
            return Err(WireError::TrailingBytes);
        }
        Ok(Message {
            header: Header {
                session: SessionId(session),
                epoch,
                sender,
                recipient,
            },
            payload,
        })
    }
}

fn put_count(out: &mut Vec<u8>, n: usize) -> Result<(), WireError> {
    if n > MAX_PARTIES {
        return Err(WireError::TooMany);
    }
    out.push(n as u8);
    Ok(())
}

fn put_secret(out: &mut Vec<u8>, s: &SecretScalar<Curve>) {
    let mut bytes = s.as_ref().to_be_bytes();
    out.extend_from_slice(bytes.as_ref());
    bytes.as_mut().zeroize();
}

/// The canonical encoding of a key's public data (also what helpers are compared on).
pub(crate) fn encode_key_info(info: &KeyInfo) -> Result<Vec<u8>, WireError> {
    let vss = info.vss_setup.as_ref().ok_or(WireError::NoVssSetup)?;
    let n = info.public_shares.len();
    if vss.I.len() != n {
        return Err(WireError::BadLength);
    }
    let mut out = Vec::new();
    out.extend_from_slice(info.shared_public_key.to_bytes(true).as_ref());
    out.extend_from_slice(&vss.min_signers.to_be_bytes());
    put_count(&mut out, n)?;
    for i in &vss.I {
        out.extend_from_slice(i.to_be_bytes().as_ref());
    }
    for p in &info.public_shares {
        out.extend_from_slice(p.to_bytes(true).as_ref());
    }
    match &info.chain_code {
        None => out.push(0),
        Some(cc) => {
            out.push(1);
            out.extend_from_slice(cc);
        }
    }
    Ok(out)
}

fn decode_key_info(r: &mut Reader<'_>) -> Result<KeyInfo, WireError> {
    let shared_public_key = r.nonzero_point()?;
    let min_signers = r.u16()?;
    let n = r.count()?;
    let mut indices = Vec::with_capacity(n);
    for _ in 0..n {
        indices.push(NonZero::from_scalar(r.scalar()?).ok_or(WireError::ZeroScalar)?);
    }
    let mut public_shares = Vec::with_capacity(n);
    for _ in 0..n {
        public_shares.push(r.nonzero_point()?);
    }
    let chain_code = match r.u8()? {
        0 => None,
        1 => {
            let mut cc = [0u8; 32];
            cc.copy_from_slice(r.take(32)?);
            Some(cc)
        }
        t => return Err(WireError::BadTag(t)),
    };
    Ok(KeyInfo {
        curve: Default::default(),
        shared_public_key,
        public_shares,
        vss_setup: Some(key_share::VssSetup {
            min_signers,
            I: indices,
        }),
        chain_code,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.bytes.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        let mut b = [0u8; 2];
        b.copy_from_slice(self.take(2)?);
        Ok(u16::from_be_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }
    fn count(&mut self) -> Result<usize, WireError> {
        let n = usize::from(self.u8()?);
        if n > MAX_PARTIES {
            return Err(WireError::TooMany);
        }
        Ok(n)
    }
    fn digest(&mut self) -> Result<[u8; 32], WireError> {
        let mut d = [0u8; 32];
        d.copy_from_slice(self.take(32)?);
        Ok(d)
    }
    fn point(&mut self) -> Result<Point<Curve>, WireError> {
        Point::from_bytes(self.take(POINT_LEN)?).map_err(|_| WireError::InvalidPoint)
    }
    fn nonzero_point(&mut self) -> Result<NonZero<Point<Curve>>, WireError> {
        NonZero::from_point(self.point()?).ok_or(WireError::ZeroPoint)
    }
    fn scalar(&mut self) -> Result<Scalar<Curve>, WireError> {
        Scalar::from_be_bytes(self.take(SCALAR_LEN)?).map_err(|_| WireError::InvalidScalar)
    }
    fn secret(&mut self) -> Result<SecretScalar<Curve>, WireError> {
        SecretScalar::from_be_bytes(self.take(SCALAR_LEN)?).map_err(|_| WireError::InvalidScalar)
    }
}
