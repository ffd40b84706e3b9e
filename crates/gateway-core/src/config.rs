//! Configuration shared by both gateways, with the defaults of the contract.

use serde::{Deserialize, Serialize};

/// Bounds on everything a client can make the gateway hold.
///
/// Every field has a default (see [`Limits::default`]); a config file sets only the
/// fields it wants to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted message body in bytes (default 1 MiB). Larger → 413.
    pub max_message_bytes: u64,
    /// Most messages a room retains (default 10 000). More → 429 `room_full`.
    pub max_messages_per_room: u64,
    /// Most message bytes a room retains (default 64 MiB). More → 429 `room_full`.
    pub max_room_bytes: u64,
    /// Most live rooms per gateway (default 10 000). More → 503 `too_many_rooms`.
    /// (On the edge gateway each room is its own Durable Object; this limit is
    /// enforced by the native gateway only.)
    pub max_rooms: u64,
    /// Most concurrent subscriptions per room (default 64). More → 429.
    pub max_subscribers_per_room: u32,
    /// Most unique indices issued per room (default 1024; indices are 1..=this).
    /// More → 409 `unique_idx_exhausted`.
    pub max_unique_idx: u16,
    /// A room with no request and no subscriber for this long expires (default 1 h).
    /// Any later request for it → 410 `room_expired`.
    pub room_idle_ttl_secs: u64,
    /// A room expires this long after creation whatever its activity (default 24 h).
    pub room_max_lifetime_secs: u64,
    /// Most message bytes one party (the holder of one party token) may post into a
    /// room (default 32 MiB, half a room). More → 429 `party_quota_exceeded`.
    pub max_party_bytes_per_room: u64,
    /// Most concurrent subscriptions one party may hold in a room (default 4: a
    /// reconnect overlaps the old stream for a moment). More → 429.
    pub max_subscriptions_per_party: u32,
    /// Global budget of retained message bytes over all rooms (default 2 GiB). Posts
    /// beyond it → 503 `gateway_busy`, while the rooms already open keep what they hold.
    pub max_total_bytes: u64,
    /// New rooms are refused (503 `gateway_busy`) once this percentage of
    /// `max_total_bytes` is in use (default 80), so that rooms already running keep
    /// headroom to finish their sessions.
    pub new_room_budget_percent: u8,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 1024 * 1024,
            max_messages_per_room: 10_000,
            max_room_bytes: 64 * 1024 * 1024,
            max_rooms: 10_000,
            max_subscribers_per_room: 64,
            max_unique_idx: 1024,
            room_idle_ttl_secs: 3600,
            room_max_lifetime_secs: 24 * 3600,
            max_party_bytes_per_room: 32 * 1024 * 1024,
            max_subscriptions_per_party: 4,
            max_total_bytes: 2 * 1024 * 1024 * 1024,
            new_room_budget_percent: 80,
        }
    }
}

/// Settings common to both gateways (the native one adds host, port and logging).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Origins allowed by CORS (exact `scheme://host[:port]` strings, or `"*"`).
    /// Empty (default): no CORS headers, browsers on other origins are refused.
    pub cors_origins: Vec<String>,
    /// Interval of SSE keep-alive comments in seconds (default 15).
    pub keepalive_secs: u64,
    /// Room-token secret. `None` (default): the gateway is open to anyone who can
    /// reach it, which is meant for the local embedded default only.
    pub access_secret: Option<String>,
    /// Refuse v1 room tokens (any party): every request must carry a party token (v2)
    /// bound to one party and to read or write. Default `false` while issuers move to
    /// party tokens.
    pub require_party_tokens: bool,
    /// Resource limits.
    pub limits: Limits,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            cors_origins: Vec::new(),
            keepalive_secs: 15,
            access_secret: None,
            require_party_tokens: false,
            limits: Limits::default(),
        }
    }
}

impl GatewayConfig {
    /// Checks values that would make the gateway unusable; returns a readable reason.
    pub fn validate(&self) -> Result<(), String> {
        let l = &self.limits;
        if l.max_message_bytes == 0 {
            return Err("limits.max_message_bytes must be > 0".into());
        }
        if l.max_messages_per_room == 0 || l.max_room_bytes == 0 || l.max_rooms == 0 {
            return Err(
                "limits.max_messages_per_room, max_room_bytes and max_rooms must be > 0".into(),
            );
        }
        if l.max_subscribers_per_room == 0 {
            return Err("limits.max_subscribers_per_room must be > 0".into());
        }
        if l.max_party_bytes_per_room == 0 || l.max_subscriptions_per_party == 0 {
            return Err(
                "limits.max_party_bytes_per_room and max_subscriptions_per_party must be > 0"
                    .into(),
            );
        }
        if l.max_total_bytes < l.max_room_bytes {
            return Err("limits.max_total_bytes must be at least limits.max_room_bytes".into());
        }
        if !(1..=100).contains(&l.new_room_budget_percent) {
            return Err("limits.new_room_budget_percent must be between 1 and 100".into());
        }
        if l.room_idle_ttl_secs == 0 || l.room_max_lifetime_secs == 0 {
            return Err("limits.room_idle_ttl_secs and room_max_lifetime_secs must be > 0".into());
        }
        if self.keepalive_secs == 0 {
            return Err("keepalive_secs must be > 0".into());
        }
        if let Some(s) = &self.access_secret {
            if s.len() < 16 {
                return Err("access_secret must be at least 16 bytes long".into());
            }
        }
        for o in &self.cors_origins {
            if o != "*" {
                wallet_types::origin::parse_origin(o)
                    .map_err(|e| format!("cors_origins: {e} (or \"*\" for any)"))?;
            }
        }
        Ok(())
    }
}

impl GatewayConfig {
    /// Whether a browser's `Origin` header value is one of `cors_origins` (each
    /// compared in its normalized form, [`wallet_types::origin::parse_origin`]; `*`
    /// allows every origin).
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.cors_origins
            .iter()
            .any(|o| o == "*" || wallet_types::origin::parse_origin(o).is_ok_and(|o| o == origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_yaml_keeps_defaults() {
        let c: GatewayConfig = serde_yaml::from_str("limits:\n  max_message_bytes: 10\n").unwrap();
        assert_eq!(c.limits.max_message_bytes, 10);
        assert_eq!(c.limits.max_rooms, Limits::default().max_rooms);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn unknown_field_rejected() {
        assert!(serde_yaml::from_str::<GatewayConfig>("limitz: {}\n").is_err());
    }

    #[test]
    fn validate_rejects_short_secret_and_bad_origin() {
        let c = GatewayConfig {
            access_secret: Some("short".into()),
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c = GatewayConfig {
            cors_origins: vec!["example.com".into()],
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }
}
