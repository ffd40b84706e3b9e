//! # mpc-core — the threshold-ECDSA participant
//!
//! A transport-agnostic participant of a 2-of-3 threshold ECDSA wallet on secp256k1,
//! built on the CGGMP24 protocol family (`cggmp24` crate). It compiles natively and for
//! `wasm32-unknown-unknown`; the big-integer backend is chosen with a cargo feature
//! (`backend-num-bigint`, the default, or `backend-rug` for GMP).
//!
//! What it provides:
//! - [`session`]: protocol sessions (aux info, DKG, full signing, presignatures) as
//!   values you feed incoming messages to and drain outgoing messages from, no I/O inside;
//! - [`hd`]: non-hardened BIP-32 paths (`m/44/60/0/0/7`) and child public keys;
//! - [`digest`]: message digests computed from the preimage (keccak-256, double SHA-256);
//! - [`signature`]: Ethereum (r, s, v) and Bitcoin (DER, low-s) encodings, verification;
//! - [`address`]: Ethereum EIP-55 and Bitcoin P2WPKH addresses;
//! - [`keystore`]: the versioned, passphrase-encrypted key-share file holding many accounts;
//! - [`primes`]: safe-prime sets for aux info, and the public test fixtures.
//!
//! The message envelope (authentication and encryption of protocol messages) lives in
//! the `mpc-wire` crate; this crate only produces and consumes protocol payloads.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod account;
pub mod address;
pub mod backup;
pub mod digest;
pub mod error;
pub mod hd;
#[cfg(any(test, feature = "hostile-peer"))]
#[doc(hidden)]
pub mod hostile;
#[cfg(feature = "spof")]
pub mod import;
pub mod keystore;
pub mod lifecycle;
pub mod local;
pub mod presign;
pub mod primes;
pub mod session;
pub mod signature;

pub use account::{Account, AccountKind};
pub use digest::{DigestKind, SignRequest};
pub use error::{CoreError, SessionError};
pub use lifecycle::EpochShare;
pub use session::{Incoming, Outgoing, Session, SessionKind, SessionOutput, Step};

/// Re-export of the protocol library, for callers that need its types.
pub use cggmp24;

/// The curve of every key in this wallet.
pub type Curve = cggmp24::supported_curves::Secp256k1;
/// Security level of the Paillier layer (128-bit, 1536-bit safe primes).
pub type SecurityLevel = cggmp24::security_level::SecurityLevel128;
/// A completed key share (core share + aux info).
pub type KeyShare = cggmp24::KeyShare<Curve, SecurityLevel>;
/// A key share before aux info is attached.
pub type IncompleteKeyShare = cggmp24::IncompleteKeyShare<Curve>;
/// A party's auxiliary info (Paillier keys and ring-Pedersen parameters of all parties).
pub type AuxInfo = cggmp24::key_share::AuxInfo<SecurityLevel>;
/// A finished ECDSA signature (normalised to low s).
pub type Signature = cggmp24::Signature<Curve>;
/// One party's share of a presignature. **Use at most once.**
pub type Presignature = cggmp24::Presignature<Curve>;
/// The public data of a presignature, used to verify and combine partial signatures.
pub type PresignaturePublicData = cggmp24::signing::PresignaturePublicData<Curve>;
/// A partial signature issued from a presignature.
pub type PartialSignature = cggmp24::PartialSignature<Curve>;
/// A point on secp256k1.
pub type Point = generic_ec::Point<Curve>;

/// Index of a party as fixed at key generation: 0 device, 1 cosigner, 2 recovery.
pub use wallet_types::PartyIndex;
/// Number of parties sharing every key, and of those needed to sign.
pub use wallet_types::{PARTIES, THRESHOLD};

#[cfg(not(any(feature = "backend-num-bigint", feature = "backend-rug")))]
compile_error!(
    "mpc-core needs a big-integer backend, chosen by the binary that uses it: enable the \
     feature `backend-num-bigint` (pure Rust, wasm32) or `backend-rug` (GMP, native); \
     e.g. `cargo test -p mpc-core --features backend-num-bigint`"
);

/// The big-integer backend actually in effect in this build.
///
/// The protocol library silently prefers num-bigint when both backend features are
/// enabled (which cargo's feature unification can cause in a workspace build), so
/// servers log this at start-up and the cosigner refuses to compile without GMP
/// ([`BACKEND_IS_GMP`]).
pub const BACKEND: &str = if BACKEND_IS_GMP {
    "rug (GMP)"
} else {
    "num-bigint (pure Rust)"
};

/// Whether the protocol's big integers are GMP's in this build (only `backend-rug` is
/// enabled). A `const`, so a binary can refuse at compile time to be built otherwise:
/// `const _: () = assert!(mpc_core::BACKEND_IS_GMP);`.
pub const BACKEND_IS_GMP: bool =
    cfg!(feature = "backend-rug") && !cfg!(feature = "backend-num-bigint");
