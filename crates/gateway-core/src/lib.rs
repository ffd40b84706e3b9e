//! Room broker logic shared by both gateways of the wallet: the native `sign-gateway`
//! (axum) and the `edge-gateway` (Cloudflare Worker, one Durable Object per room).
//!
//! The gateways relay opaque envelopes between the parties of a protocol session. This
//! crate holds everything that must behave identically in both:
//! - [`Room`]: per-room sequence numbers (strictly increasing from 1), retention of every
//!   message for `Last-Event-ID` resume, unique index issuing (1, 2, 3, ... like the gg20
//!   SSE state-machine manager), subscriber counting, expiry;
//! - [`Registry`]: the rooms of one gateway, the room-count limit, tombstones so an
//!   expired room answers 410 instead of re-opening;
//! - validation of room ids, `Last-Event-ID` and bodies, and the SSE wire format;
//! - room tokens ([`issue_room_token`], [`verify_room_token`], [`check_access`]);
//! - [`GatewayError`]: every error with its HTTP status and JSON body in one place;
//! - [`GatewayConfig`] / [`Limits`] with the defaults of the contract;
//! - [`metrics`]: what both gateways' Prometheus metrics share (error status classes,
//!   latency buckets, the metrics bearer-token check).
//!
//! The crate never reads a clock and has no async runtime: callers pass `now_ms`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
pub mod metrics;
mod room;
mod token;

pub use config::{GatewayConfig, Limits};
pub use error::{ErrorBody, GatewayError};
pub use room::{
    format_sse_event, parse_last_event_id, validate_body, validate_room_id, Expiry, Message,
    Registry, RegistryStats, Room, MAX_ROOM_ID_LEN, SSE_KEEPALIVE, SSE_OPENING,
};
pub use token::{
    authorize, check_access, extract_token, issue_party_token, issue_room_token, verify_room_token,
    verify_token, Access, AccessPolicy, Caller, TokenClaims,
};

/// Paths of the contract, relative to the gateway's base URL.
pub mod paths {
    /// Parsed request path.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Route<'a> {
        /// `GET /health`
        Health,
        /// `GET /metrics` (Prometheus; the edge serves it only with a metrics token)
        Metrics,
        /// `GET /rooms/{room}/subscribe`
        Subscribe(&'a str),
        /// `POST /rooms/{room}/issue_unique_idx`
        IssueUniqueIdx(&'a str),
        /// `POST /rooms/{room}/broadcast`
        Broadcast(&'a str),
    }

    /// Parses a request path (without query string) into a [`Route`].
    /// Room ids are returned raw; validate them with [`crate::validate_room_id`].
    pub fn parse(path: &str) -> Option<Route<'_>> {
        match path {
            "/health" => return Some(Route::Health),
            "/metrics" => return Some(Route::Metrics),
            _ => {}
        }
        let rest = path.strip_prefix("/rooms/")?;
        let (room, action) = rest.rsplit_once('/')?;
        match action {
            "subscribe" => Some(Route::Subscribe(room)),
            "issue_unique_idx" => Some(Route::IssueUniqueIdx(room)),
            "broadcast" => Some(Route::Broadcast(room)),
            _ => None,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        #[test]
        fn routes() {
            assert_eq!(parse("/health"), Some(Route::Health));
            assert_eq!(parse("/rooms/a/subscribe"), Some(Route::Subscribe("a")));
            assert_eq!(parse("/rooms/a/b/broadcast"), Some(Route::Broadcast("a/b")));
            assert_eq!(parse("/rooms//broadcast"), Some(Route::Broadcast("")));
            assert_eq!(parse("/rooms/a/x"), None);
            assert_eq!(parse("/x"), None);
        }
    }
}
