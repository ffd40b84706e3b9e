//! # mpc-wasm — the browser driver of the wallet's client flows
//!
//! The flows themselves are `client-core`'s (the same code the native client runs);
//! `flows` drives them on the browser's event loop: it signs and serializes every
//! cosigner request, runs the protocol sessions over the SSE gateway with
//! authenticated, encrypted envelopes, and asks a JavaScript host object for what
//! belongs to the platform (sending the bytes, IndexedDB, the recovery agent, the
//! primes). A stored party lives in a `flows::WalletParty`: its identity key and
//! shares never cross into JavaScript. Besides the flows: key-share bundle helpers
//! ([`api`]), the chunked safe-prime search for Web Workers ([`primes`]) and encodings.
//! The JavaScript API is documented in `API.md` next to this crate's manifest.
//!
//! The logic lives in [`api`] (plain Rust, tested natively too), [`driver`] (the
//! session loop on the browser's event loop over `mpc_party::PartySession`, the value
//! the native runner drives too) and [`transport`] (EventSource / fetch-stream / fetch).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod bitcoin;
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
pub mod lifecycle;
#[cfg(target_arch = "wasm32")]
pub mod lifecycle_new;
#[cfg(target_arch = "wasm32")]
pub mod transport;

pub use error::{ApiError, ApiResult, Code};
