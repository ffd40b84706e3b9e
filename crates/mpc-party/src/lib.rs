//! # mpc-party — one party's protocol session over the gateway
//!
//! Joins a room on the SSE gateway, seals every outgoing protocol message into an
//! authenticated (and, for p2p, encrypted) `mpc-wire` envelope, opens every incoming one,
//! and drives an `mpc-core` [`Session`] until it produces its output.
//!
//! - The session runs on its own OS thread (protocol steps are CPU-heavy and the
//!   library's state machine is not `Send`), so the async runtime stays responsive.
//! - Envelopes that fail authentication, replays and foreign-session messages are
//!   dropped and logged (whoever can inject into the gateway must not be able to abort a
//!   session); if the session then stalls, the timeout error lists what was rejected.
//! - A peer whose *authenticated* message is malformed or fails the protocol's checks
//!   aborts the session with an error naming that party.
//! - A dropped SSE stream is resumed with `Last-Event-ID` by the gateway client.
//!
//! The envelope handling and rejection bookkeeping live in [`relay`], which has no I/O
//! and compiles for `wasm32` too: the browser driver (`mpc-wasm`) shares it. The tokio
//! driver itself ([`run_session`]) is native only.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod relay;

pub use relay::{Relay, Stall};

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub use native::*;
