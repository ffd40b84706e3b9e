//! # cosigner-api — the cosigner's gRPC API (`wallet.cosigner.v1`)
//!
//! - [`pb`]: the protobuf messages with the tonic client ([`pb::cosigner_client`]) and
//!   server ([`pb::cosigner_server`]) stubs, generated from
//!   `proto/wallet/cosigner/v1/cosigner.proto` at build time (pure Rust, no `protoc`).
//! - [`auth`]: canonical byte strings of every authenticated request, ed25519 request
//!   signatures with the parties' `mpc-wire` identity keys, the clock-skew check and the
//!   server's nonce replay cache.
//! - [`registration`]: the operator-issued credentials that let a device create a
//!   wallet (single use, expiring, signed by a trusted issuer key).
//! - [`convert`]: conversions between the proto enums and `mpc-core` types.
//! - [`error`]: the cosigner's errors as clients read them ([`error::RemoteError`]:
//!   the `ErrorCode`, rule, presignature state and retryability of a failed call).
//!
//! ## Session ids
//! Every [`pb::SessionRoom`] names the protocol session: all parties build their
//! `mpc_core::Session` with `session_id.as_bytes()` as the execution-id input and use
//! `mpc_wire::SessionId::new(session_id)` for the envelopes, subscribing to `room` on the
//! gateway with `room_token` (empty = no token).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod convert;
pub mod error;
pub mod registration;

/// Generated protobuf messages and tonic stubs of `wallet.cosigner.v1` (messages only
/// on wasm32).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/wallet.cosigner.v1.rs"));
}

pub use auth::{AuthError, Method, ReplayCache};
pub use convert::ConvertError;
pub use error::{PresignatureState, RemoteError, WalletRefusal};

/// Keygen index of the device party.
pub const PARTY_DEVICE: u16 = 0;
/// Keygen index of the cosigner.
pub const PARTY_COSIGNER: u16 = 1;
/// Keygen index of the recovery party.
pub const PARTY_RECOVERY: u16 = 2;
/// Most accounts one `CreateWallet` may request.
pub const MAX_ACCOUNTS: u32 = 100;
