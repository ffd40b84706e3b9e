//! Authenticated, encrypted envelopes for wallet-mpc protocol messages.
//!
//! The parties of a 2-of-3 threshold ECDSA session (keygen indices 0 = device,
//! 1 = cosigner, 2 = recovery) talk through a gateway that relays UTF-8 text bodies to
//! every subscriber of a room in one total order. This crate wraps every protocol
//! message (`mpc_core::Outgoing`) into an [`Envelope`] before it goes to the gateway,
//! and checks and unwraps every envelope that comes back into a [`Message`] (which maps
//! onto `mpc_core::Incoming`). It is independent of `mpc-core`.
//!
//! # Threat model
//!
//! The gateway, and anybody on the network path to it, is **untrusted**. It can drop,
//! delay, reorder, duplicate, replay (also from other sessions) or inject envelopes,
//! and it sees everything that is not encrypted.
//!
//! * **Authenticity and integrity.** Every envelope is signed with the sender's
//!   long-term ed25519 identity key ([`IdentityKey`]) over a canonical, domain
//!   separated encoding of every field ([`Envelope::signing_input`]); receivers verify
//!   against the session's [`Roster`] of public identities, which every party must
//!   know in advance through a trusted channel (e.g. stored next to its key share).
//! * **Confidentiality of p2p messages.** A p2p payload is encrypted to the recipient's
//!   x25519 key (ECIES: fresh ephemeral key, HKDF-SHA256, ChaCha20-Poly1305), with the
//!   session, sender, recipient, round and sequence number bound into the key
//!   derivation and the associated data. Broadcast payloads are public by design.
//!   The gateway still learns metadata: who sends what size to whom, and when.
//! * **Session binding.** The session id is signed; envelopes of other sessions are
//!   rejected. Session ids must be unique per protocol run ([`SessionId::random`]).
//! * **Replay and ordering.** Every sender numbers its envelopes (`seq`, strictly
//!   increasing within the session). A receiver rejects a sequence number it already
//!   accepted from that sender ([`WireError::Replay`]) or one lower than the highest it
//!   accepted ([`WireError::Reordered`]). Gaps are allowed: envelopes addressed to other
//!   parties consume sequence numbers too.
//! * **Rejections are side-effect free.** A rejected envelope never changes the
//!   [`Channel`]'s state, so a forged, replayed or corrupted envelope cannot block a
//!   later genuine one.
//! * **Not provided: liveness.** The gateway can always stall a session by dropping
//!   envelopes; that must be handled by timeouts above this layer. Errors name the
//!   *claimed* sender; until the signature verified, that claim is unproven.
//! * **Not provided: forward secrecy against a stolen recipient key.** Whoever later
//!   learns a party's identity seed can decrypt recorded p2p envelopes to that party, so
//!   the seed must be protected like the key share itself.
//!
//! # Example
//!
//! ```
//! use mpc_wire::{Channel, IdentityKey, Opened, Roster, SessionId};
//!
//! let keys: Vec<IdentityKey> = (0..3).map(|_| IdentityKey::generate()).collect::<Result<_, _>>()?;
//! let roster = Roster::new(keys.iter().enumerate().map(|(i, k)| (i as u16, k.public())))?;
//! let session = SessionId::random()?;
//! let mut device = Channel::new(session.clone(), 0, keys[0].clone(), roster.clone())?;
//! let mut cosigner = Channel::new(session, 1, keys[1].clone(), roster)?;
//!
//! let text = device.seal(Some(1), 1, b"secret share for party 1")?;
//! match cosigner.open(&text)? {
//!     Opened::Message(m) => assert_eq!(m.payload, b"secret share for party 1"),
//!     other => panic!("unexpected {other:?}"),
//! }
//! # Ok::<(), mpc_wire::WireError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod channel;
mod envelope;
mod error;
mod identity;
mod session;
pub mod stop;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

pub use channel::{Channel, Message, Opened};
pub use envelope::{Envelope, DOMAIN_TAG, MAX_ENVELOPE_BYTES, P2P_OVERHEAD, VERSION};
pub use error::{ClaimedSender, WireError};
pub use identity::{IdentityKey, PublicIdentity, PUBLIC_IDENTITY_LEN, SEED_LEN};
pub use session::{Roster, SessionId, MAX_SESSION_ID_LEN};
pub use stop::{StopNotice, STOP_ROUND};
