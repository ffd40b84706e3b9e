//! Key-share lifecycle protocols for the 2-of-3 secp256k1 wallet, as sans-I/O state
//! machines: **proactive refresh** ([`refresh`], Herzberg–Jarecki–Krawczyk–Yung over
//! Feldman VSS) and **share repair** ([`repair`], Laing–Stinson repairable threshold
//! schemes).
//!
//! They operate on `cggmp24`'s key share type ([`IncompleteKeyShare`], which is
//! `key_share::CoreKeyShare`, 0.6.1): the secret share `x`, the `public_shares`, the
//! `vss_setup` with the evaluation points `I`, the `shared_public_key` and the
//! `chain_code`. `cggmp24` 0.7.0-alpha.3 has no threshold refresh; its aux-info
//! generation is a separate protocol that this crate does not replace.
//!
//! # Shape
//!
//! Like `round-based` and `cggmp24`, the protocol is kept apart from I/O. A party's state
//! machine is a value: the caller feeds it every incoming message together with the
//! index of the party the caller's transport *authenticated* as its sender, and sends
//! what it returns ([`Outgoing`]: a broadcast or a private point-to-point message that the
//! caller must encrypt to its recipient). `status()` tells what the machine waits for;
//! timeouts, retries, storage and authentication belong to the caller.
//!
//! Every message carries the session id and the epoch of the shares it works on. A
//! message of another session or epoch, from a non-participant, addressed to somebody
//! else, duplicated, or malformed is *rejected* (a [`Rejection`]: the session goes on,
//! its state unchanged); a message that proves misbehaviour (a sub-share that does not
//! match its commitment, an equivocating dealer, two different messages for the same
//! slot, ...) *aborts* the session and the error names the party. Nothing panics on
//! peer data.
//!
//! This crate is the protocol core only: the cosigner RPCs that open a refresh or repair
//! session, the client flows and storage integration are not part of it
//! (see `docs/lifecycle.md`).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod common;
pub mod error;
pub mod refresh;
pub mod repair;
pub mod wire;

pub use error::{RefreshError, Rejection, RepairError, WireError};
pub use refresh::{Refresh, RefreshOutput, RefreshStatus};
pub use repair::{MaskSource, RepairHelper, RepairNewParty, RepairOutput, RepairStatus};
pub use wire::{Header, Message, MessageKind, Outgoing, Payload, Recipient, SessionId, Waiting};

/// The curve of every key this crate handles.
pub type Curve = generic_ec::curves::Secp256k1;

/// `cggmp24::IncompleteKeyShare<Secp256k1>`: the key share without aux info (the
/// library's own type, from `key-share` 0.6).
pub type IncompleteKeyShare = key_share::CoreKeyShare<Curve>;

/// `cggmp24::key_share::DirtyIncompleteKeyShare<Secp256k1>`: a key share not (yet)
/// validated.
pub type DirtyIncompleteKeyShare = key_share::DirtyCoreKeyShare<Curve>;

/// The public data of a key (shared public key, public shares, VSS setup, chain code).
pub type KeyInfo = key_share::DirtyKeyInfo<Curve>;

/// A digest of a share's public data (shared public key, threshold, evaluation points,
/// public shares, chain code) at share epoch `epoch`: what every party of a refresh or a
/// replacement reports to the others (and to the cosigner) to show it holds the same
/// new key data. Equal digests mean equal public data at the same epoch.
pub fn public_data_digest(share: &IncompleteKeyShare, epoch: u64) -> Result<[u8; 32], WireError> {
    let info = wire::encode_key_info(&share.key_info)?;
    let mut t = common::Transcript::new("wallet-mpc/lifecycle/v1/public-data");
    t.put(&epoch.to_be_bytes()).put(&info);
    Ok(t.finish())
}
