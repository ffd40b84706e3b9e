//! # mpc-wasm — the browser participant of the wallet
//!
//! wasm-bindgen exports over `mpc-core` (pure-Rust big integers) and `mpc-wire`:
//! device identity, cosigner request signatures (the `cosigner-api` auth code itself),
//! sessions (aux info, DKG, signing, presigning) over the SSE gateway with
//! authenticated, encrypted envelopes, key-share bundles (plaintext bytes for WebCrypto,
//! or the native passphrase-encrypted keystore format), presignatures and encodings.
//! The JavaScript API is documented in `API.md` next to this crate's manifest.
//!
//! The logic lives in [`api`] (plain Rust, tested natively too), [`driver`] (the
//! session loop on the browser's event loop, sharing `mpc_party::Relay` with the
//! native driver) and [`transport`] (EventSource / fetch-stream / fetch).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod error;
pub mod primes;
/// The SSE parser of the fetch-stream transport (shared with the native gateway client).
pub use sse_codec as sse;

#[cfg(target_arch = "wasm32")]
pub mod driver;
#[cfg(target_arch = "wasm32")]
pub mod flows;
#[cfg(target_arch = "wasm32")]
pub mod js;
#[cfg(target_arch = "wasm32")]
pub mod transport;

pub use error::{ApiError, ApiResult, Code};
