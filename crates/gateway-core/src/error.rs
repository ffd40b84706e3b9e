//! The one place where gateway errors become HTTP statuses and JSON bodies.
//!
//! Both gateways (native `sign-gateway` and the Cloudflare `edge-gateway`) render
//! every error through [`GatewayError::status`] and [`GatewayError::body_json`], so
//! the two return identical statuses and bodies for the same mistake.

use serde::Serialize;

/// Everything a gateway request can fail with.
///
/// Each variant has a stable machine-readable [`code`](GatewayError::code) and an HTTP
/// [`status`](GatewayError::status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Room id is empty, too long or contains characters outside `[A-Za-z0-9_-]`.
    #[error("invalid room id: {0}")]
    InvalidRoomId(&'static str),
    /// `Last-Event-ID` is not a decimal `u64`, or is ahead of the room.
    #[error("invalid Last-Event-ID: {0}")]
    InvalidLastEventId(&'static str),
    /// The posted message is empty, not UTF-8, or contains a carriage return
    /// (SSE cannot carry `\r` byte-exactly).
    #[error("invalid message body: {0}")]
    InvalidBody(&'static str),
    /// The posted message is larger than `limits.max_message_bytes`.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// Size of the rejected message (or a lower bound of it).
        size: u64,
        /// Configured limit.
        limit: u64,
    },
    /// The room holds `limits.max_messages_per_room` messages or
    /// `limits.max_room_bytes` bytes already.
    #[error("room is full: {0}")]
    RoomFull(&'static str),
    /// The room has `limits.max_subscribers_per_room` open subscriptions already.
    #[error("too many subscribers in this room (limit {0})")]
    TooManySubscribers(u32),
    /// All `limits.max_unique_idx` indices of this room have been issued.
    #[error("all {0} unique indices of this room have been issued")]
    UniqueIdxExhausted(u16),
    /// The gateway holds `limits.max_rooms` live rooms already.
    #[error("the gateway holds its maximum of {0} rooms")]
    TooManyRooms(u64),
    /// The room existed and expired (idle too long or past its maximum lifetime).
    /// Room ids are single-use: an expired room is never re-opened.
    #[error("room has expired")]
    RoomExpired,
    /// Unknown path.
    #[error("not found")]
    NotFound,
    /// Known path, wrong method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// An access secret is configured and the request carries no room token.
    #[error("room token required (Authorization: Bearer <token> or ?token=)")]
    TokenMissing,
    /// The room token is not of the form `<expiry_unix>.<64 hex digits>`.
    #[error("malformed room token")]
    TokenMalformed,
    /// The room token's expiry has passed.
    #[error("room token has expired")]
    TokenExpired,
    /// The room token's MAC does not match this room (foreign or forged token).
    #[error("room token is not valid for this room")]
    TokenInvalid,
    /// The token is valid but does not allow this request (a read token posting, a
    /// write token subscribing, a room token where party tokens are required).
    #[error("token not allowed: {0}")]
    TokenNotAllowed(&'static str),
    /// This party already posted `limits.max_party_bytes_per_room` bytes or holds
    /// `limits.max_subscriptions_per_party` subscriptions in this room.
    #[error("party quota of this room exhausted: {0}")]
    PartyQuotaExceeded(&'static str),
    /// The gateway's global byte budget (`limits.max_total_bytes`) is spent: new rooms
    /// are refused from `limits.new_room_budget_percent` of it, posts at 100 %. Rooms
    /// expire and free it; retry later.
    #[error("the gateway is at its memory budget ({0}); retry later")]
    GatewayBusy(&'static str),
    /// The gateway's room store (Redis, with `rooms: redis`) cannot be reached or did
    /// not answer in time. Nothing was done; retry later.
    #[error("the room store is unavailable; retry later")]
    StoreUnavailable,
    /// A bug or a platform failure; details are logged, not returned.
    #[error("internal error")]
    Internal,
}

/// JSON error body returned by both gateways: `{"error": code, "message": text}`.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `"message_too_large"`.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
}

impl GatewayError {
    /// HTTP status code for this error.
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::InvalidRoomId(_)
            | GatewayError::InvalidLastEventId(_)
            | GatewayError::InvalidBody(_) => 400,
            GatewayError::TokenMissing
            | GatewayError::TokenMalformed
            | GatewayError::TokenExpired => 401,
            GatewayError::TokenInvalid | GatewayError::TokenNotAllowed(_) => 403,
            GatewayError::NotFound => 404,
            GatewayError::MethodNotAllowed => 405,
            GatewayError::UniqueIdxExhausted(_) => 409,
            GatewayError::RoomExpired => 410,
            GatewayError::MessageTooLarge { .. } => 413,
            GatewayError::RoomFull(_)
            | GatewayError::TooManySubscribers(_)
            | GatewayError::PartyQuotaExceeded(_) => 429,
            GatewayError::Internal => 500,
            GatewayError::TooManyRooms(_)
            | GatewayError::GatewayBusy(_)
            | GatewayError::StoreUnavailable => 503,
        }
    }

    /// Stable machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::InvalidRoomId(_) => "invalid_room_id",
            GatewayError::InvalidLastEventId(_) => "invalid_last_event_id",
            GatewayError::InvalidBody(_) => "invalid_body",
            GatewayError::MessageTooLarge { .. } => "message_too_large",
            GatewayError::RoomFull(_) => "room_full",
            GatewayError::TooManySubscribers(_) => "too_many_subscribers",
            GatewayError::UniqueIdxExhausted(_) => "unique_idx_exhausted",
            GatewayError::TooManyRooms(_) => "too_many_rooms",
            GatewayError::RoomExpired => "room_expired",
            GatewayError::NotFound => "not_found",
            GatewayError::MethodNotAllowed => "method_not_allowed",
            GatewayError::TokenMissing => "token_missing",
            GatewayError::TokenMalformed => "token_malformed",
            GatewayError::TokenExpired => "token_expired",
            GatewayError::TokenInvalid => "token_invalid",
            GatewayError::TokenNotAllowed(_) => "token_not_allowed",
            GatewayError::PartyQuotaExceeded(_) => "party_quota_exceeded",
            GatewayError::GatewayBusy(_) => "gateway_busy",
            GatewayError::StoreUnavailable => "store_unavailable",
            GatewayError::Internal => "internal",
        }
    }

    /// The JSON error body, e.g. `{"error":"room_expired","message":"room has expired"}`.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code().to_owned(),
            message: self.to_string(),
        }
    }

    /// [`GatewayError::body`] serialised as a JSON string.
    pub fn body_json(&self) -> String {
        // Serialising a struct of two strings cannot fail; fall back to a fixed body anyway.
        serde_json::to_string(&self.body()).unwrap_or_else(|_| {
            String::from("{\"error\":\"internal\",\"message\":\"internal error\"}")
        })
    }

    /// `WWW-Authenticate` header value to send with 401 responses, if any.
    pub fn www_authenticate(&self) -> Option<&'static str> {
        match self.status() {
            401 => Some("Bearer realm=\"wallet-mpc-gateway\""),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies() {
        let e = GatewayError::MessageTooLarge { size: 5, limit: 4 };
        assert_eq!(e.status(), 413);
        let body: ErrorBody = serde_json::from_str(&e.body_json()).unwrap();
        assert_eq!(body.error, "message_too_large");
        assert!(body.message.contains("5 bytes"));
        assert_eq!(GatewayError::TokenInvalid.status(), 403);
        assert_eq!(GatewayError::TokenExpired.status(), 401);
        assert_eq!(GatewayError::RoomExpired.status(), 410);
        assert_eq!(GatewayError::InvalidRoomId("x").status(), 400);
        assert_eq!(GatewayError::StoreUnavailable.status(), 503);
        assert_eq!(GatewayError::StoreUnavailable.code(), "store_unavailable");
        assert!(GatewayError::TokenMissing.www_authenticate().is_some());
        assert!(GatewayError::TokenInvalid.www_authenticate().is_none());
    }
}
