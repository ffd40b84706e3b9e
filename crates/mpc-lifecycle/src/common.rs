//! Pieces both protocols share: header checks, duplicate detection, digests.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::error::Rejection;
use crate::wire::{Header, MessageKind, SessionId};

/// What recording a message in its slot found.
pub(crate) enum Slot {
    /// First message in the slot.
    New,
    /// The very same bytes again.
    Duplicate,
    /// Different bytes for an occupied slot.
    Conflicting,
}

/// One slot per (kind, sender): the digest of the bytes accepted in it.
#[derive(Default)]
pub(crate) struct Inbox {
    seen: BTreeMap<(MessageKind, u16), [u8; 32]>,
}

impl Inbox {
    pub(crate) fn record(&mut self, kind: MessageKind, party: u16, bytes: &[u8]) -> Slot {
        let d: [u8; 32] = Sha256::digest(bytes).into();
        match self.seen.get(&(kind, party)) {
            None => {
                self.seen.insert((kind, party), d);
                Slot::New
            }
            Some(prev) if *prev == d => Slot::Duplicate,
            Some(_) => Slot::Conflicting,
        }
    }
}

/// The checks every message passes: session, epoch, the authenticated sender, the
/// recipient (`me` for private kinds, nobody for broadcasts).
pub(crate) fn check_header(
    h: &Header,
    kind: MessageKind,
    authenticated: u16,
    session: &SessionId,
    epoch: u64,
    me: u16,
) -> Result<(), Rejection> {
    if h.session != *session {
        return Err(Rejection::ForeignSession);
    }
    if h.epoch != epoch {
        return Err(Rejection::ForeignEpoch {
            expected: epoch,
            got: h.epoch,
        });
    }
    if h.sender != authenticated {
        return Err(Rejection::SenderMismatch {
            authenticated,
            claimed: h.sender,
        });
    }
    if kind.is_private() && h.recipient != Some(me) {
        return Err(Rejection::WrongRecipient {
            recipient: h.recipient,
        });
    }
    Ok(())
}

/// A domain-separated SHA-256 over length-prefixed fields.
pub(crate) struct Transcript(Sha256);

impl Transcript {
    pub(crate) fn new(domain: &str) -> Self {
        let mut t = Self(Sha256::new());
        t.put(domain.as_bytes());
        t
    }
    pub(crate) fn put(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }
    pub(crate) fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}
