//! Error types of the participant.

use thiserror::Error;

use crate::PartyIndex;

/// Why a protocol session failed or refused a message.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// A peer's payload could not be decoded as a protocol message.
    #[error("malformed protocol message from party {from}: {reason}")]
    MalformedMessage {
        /// Keygen index of the sender.
        from: PartyIndex,
        /// Decoder error.
        reason: String,
    },
    /// The sender is not a participant of this session (or is ourselves).
    #[error("party {from} is not a peer in this session (participants: {participants:?})")]
    UnknownSender {
        /// Claimed sender.
        from: PartyIndex,
        /// Keygen indices of the session's participants.
        participants: Vec<PartyIndex>,
    },
    /// A message was sent p2p where the protocol expects a broadcast, or vice versa.
    #[error("party {from} sent a {got} message where the protocol expects {expected}")]
    WrongMessageType {
        /// Keygen index of the sender.
        from: PartyIndex,
        /// "broadcast" or "p2p".
        got: &'static str,
        /// "broadcast" or "p2p".
        expected: &'static str,
    },
    /// The protocol detected misbehaviour (an invalid proof, an inconsistent broadcast…).
    #[error("protocol aborted{}: {reason}", blame_suffix(.blamed))]
    Aborted {
        /// Keygen indices of the parties the protocol blames (may be empty if the library
        /// could not attribute the fault).
        blamed: Vec<PartyIndex>,
        /// The library's explanation.
        reason: String,
    },
    /// Invalid arguments to start the session.
    #[error("invalid session parameters: {0}")]
    InvalidParams(String),
    /// The session has already produced its output or failed.
    #[error("session is already finished")]
    Finished,
    /// The state-machine executor failed (a bug, not peer misbehaviour).
    #[error("internal state-machine error: {0}")]
    Internal(String),
}

fn blame_suffix(blamed: &[PartyIndex]) -> String {
    match blamed {
        [] => String::new(),
        [one] => format!(" by misbehaving party {one}"),
        many => format!(" by misbehaving parties {many:?}"),
    }
}

/// Errors of the non-session parts of the core (paths, encodings, keys).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// A derivation path could not be parsed.
    #[error("invalid derivation path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key was generated without HD support but a path was given.
    #[error("this key was generated without HD support; it cannot derive {0:?}")]
    NotHd(String),
    /// A presignature generated for one derivation path was asked to sign at another.
    /// It would sign for the key of the path it was generated for, not the one asked
    /// for; nothing is issued.
    #[error("presignature {id} was generated for path {bound}, not {requested}; it signs only at its own path")]
    PresignaturePathMismatch {
        /// The presignature's id.
        id: String,
        /// The path bound into the presignature (`m` for the root).
        bound: String,
        /// The path asked for.
        requested: String,
    },
    /// A signature does not verify.
    #[error("signature does not verify for this public key and message")]
    InvalidSignature,
    /// Bytes are not a valid encoding of the named thing.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A presignature was already consumed.
    #[error("presignature {0} was already used; a presignature may sign only once")]
    PresignatureReused(String),
}

impl CoreError {
    pub(crate) fn invalid(what: &'static str, reason: impl std::fmt::Display) -> Self {
        CoreError::Invalid {
            what,
            reason: reason.to_string(),
        }
    }
}

/// Extracts the parties blamed by the protocol library from an error's debug text.
///
/// The library reports blame as `AbortBlame { faulty_party: j, .. }` inside private error
/// types that only expose `Debug`; `j` is the index *within the session* (signers are
/// renumbered `0..t`), mapped back to keygen indices through `participants`.
pub(crate) fn extract_blame(debug: &str, participants: &[PartyIndex]) -> Vec<PartyIndex> {
    let mut blamed = Vec::new();
    let needle = "faulty_party: ";
    let mut rest = debug;
    while let Some(pos) = rest.find(needle) {
        rest = &rest[pos + needle.len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(j) = digits.parse::<usize>() {
            if let Some(&k) = participants.get(j) {
                if !blamed.contains(&k) {
                    blamed.push(k);
                }
            }
        }
    }
    blamed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blame_is_mapped_to_keygen_indices() {
        let dbg = "Aborted(EncProofOfK([(AbortBlame { faulty_party: 1, data_message: 3, proof_message: 4 }, InvalidProof)]))";
        assert_eq!(extract_blame(dbg, &[0, 2]), vec![2]);
        assert_eq!(extract_blame("nothing here", &[0, 2]), Vec::<u16>::new());
        let e = SessionError::Aborted {
            blamed: vec![2],
            reason: "x".into(),
        };
        assert!(e.to_string().contains("misbehaving party 2"));
    }
}
