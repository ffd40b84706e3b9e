//! Where the gateway's rooms live: the [`RoomStore`] trait the HTTP handlers call, and
//! its two backends, selected by `rooms` in the configuration:
//! - [`memory`] (the default): a [`gateway_core::Registry`] in this process;
//! - [`redis`]: Redis Streams, shared by any number of gateway instances.
//!
//! Both enforce the same contract (sequence numbers from 1, `Last-Event-ID` resume,
//! unique indices, limits, expiry, 410 for an expired room); the room logic of the
//! memory backend is `gateway-core`'s, the Redis backend's is in its Lua scripts.

pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gateway_core::{Caller, GatewayError, Message, RegistryStats};

pub use memory::MemoryRooms;
pub use redis::RedisRooms;

use crate::config::{Config, RoomBackend};

/// Most messages a subscriber takes from the room log at once.
pub const MAX_BATCH_MESSAGES: usize = 256;

/// What one read of a subscription gave.
#[derive(Debug)]
pub enum Read {
    /// Messages after the cursor, oldest first (at most [`MAX_BATCH_MESSAGES`]).
    Messages(Vec<Message>),
    /// Nothing new within the wait.
    Idle,
    /// The room expired: the subscription ends (a reconnect gets 410).
    Gone,
}

/// One open subscription of a room. Dropping it unregisters the subscriber.
#[async_trait]
pub trait RoomReader: Send {
    /// The messages after `cursor`, waiting at most `wait` for the first one.
    async fn read(&mut self, cursor: u64, wait: Duration) -> Result<Read, GatewayError>;
}

/// The rooms of a gateway. Every operation creates the room on first use (as the gg20
/// SSE manager does) and answers `room_expired` (410) for a room that expired.
#[async_trait]
pub trait RoomStore: Send + Sync + 'static {
    /// Issues the room's next unique index (1, 2, 3, ...).
    async fn issue_unique_idx(&self, room: &str) -> Result<u16, GatewayError>;

    /// Appends a validated message posted by `caller`; returns its sequence number.
    async fn append(&self, room: &str, body: &str, caller: Caller) -> Result<u64, GatewayError>;

    /// Registers a subscriber of `caller` that has seen the messages up to `cursor`
    /// (`Last-Event-ID`; 0: none). Fails when `cursor` is ahead of the room or a
    /// subscriber limit is reached.
    async fn subscribe(
        &self,
        room: &str,
        caller: Caller,
        cursor: u64,
    ) -> Result<Box<dyn RoomReader>, GatewayError>;

    /// Removes the rooms that expired; returns how many.
    async fn sweep(&self) -> Result<usize, GatewayError>;

    /// The gauges of `/metrics`.
    async fn stats(&self) -> Result<RegistryStats, GatewayError>;

    /// Whether the store can serve requests (`/readyz`).
    async fn ready(&self) -> Result<(), GatewayError>;
}

/// A store shared by the handlers.
pub type SharedStore = Arc<dyn RoomStore>;

/// Why a room store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `rooms: redis` without a `redis_url`.
    #[error("rooms: redis needs redis_url (or SIGN_GATEWAY_REDIS_URL)")]
    NoRedisUrl,
    /// The Redis URL is malformed or Redis cannot be reached.
    #[error("cannot connect to Redis: {0}")]
    Redis(#[source] ::redis::RedisError),
}

/// Opens the store `cfg.rooms` selects (connecting to Redis for `rooms: redis`).
pub async fn open(cfg: &Config) -> Result<SharedStore, OpenError> {
    let gw = cfg.gateway();
    match cfg.rooms {
        RoomBackend::Memory => Ok(Arc::new(MemoryRooms::new(gw.limits))),
        RoomBackend::Redis => {
            let url = cfg.redis_url.as_deref().ok_or(OpenError::NoRedisUrl)?;
            let store = RedisRooms::connect(url, &cfg.redis_key_prefix, gw.limits)
                .await
                .map_err(OpenError::Redis)?;
            Ok(Arc::new(store))
        }
    }
}
