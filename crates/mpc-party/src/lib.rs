//! # mpc-party — one party's protocol session over the gateway
//!
//! Joins a room on the SSE gateway, seals every outgoing protocol message into an
//! authenticated (and, for p2p, encrypted) `mpc-wire` envelope, opens every incoming one,
//! and drives an `mpc-core` [`Session`](mpc_core::Session) until it produces its output.
//!
//! - [`PartySession`] ([`party`]): the session and its [`Relay`] as one value with no
//!   I/O, no clock and no runtime (it compiles for `wasm32` too). A driver feeds it
//!   gateway events and drains sealed bodies to post; its [`Poll`] says what to do next.
//! - [`driver`]: the one loop that runs a [`PartySession`] to its output ([`run_party`]),
//!   over what a platform provides ([`PartyIo`]: post, events, clock, what happens
//!   between steps).
//! - [`drive`] / [`run_session`] (feature `tokio`, native): the tokio host of that loop.
//!   The session runs on its own OS thread (protocol steps are CPU-heavy and the
//!   library's state machine is not `Send`), so the async runtime stays responsive.
//! - The browser host (`mpc-wasm`) runs the same loop on the event loop.
//!
//! Envelopes that fail authentication, replays and foreign-session messages are dropped
//! and logged (whoever can inject into the gateway must not be able to abort a session);
//! if the session then stalls, the timeout error lists what was rejected. A peer whose
//! *authenticated* message is malformed or fails the protocol's checks aborts the session
//! with an error naming that party.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod driver;
pub mod party;
pub mod relay;

pub use driver::{run as run_party, PartyIo};
pub use party::{PartyError, PartySession, Poll};
pub use relay::{Relay, Stall};

#[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
mod native;
#[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
pub use native::*;
