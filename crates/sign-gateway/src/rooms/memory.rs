//! Rooms in this process (`rooms: memory`, the default): `gateway-core`'s [`Registry`]
//! behind a mutex, and a watch channel per room that wakes its subscribers.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use gateway_core::{Caller, GatewayError, Limits, Registry, RegistryStats};
use tokio::sync::watch;

use super::{Read, RoomReader, RoomStore, MAX_BATCH_MESSAGES};
use crate::now_ms;

/// Per-room runtime data: wakes subscribers when a message is appended. Dropping it (when
/// the room expires) ends every subscription of the room.
#[derive(Debug)]
pub struct RoomWake {
    tx: watch::Sender<u64>,
}

impl RoomWake {
    fn new() -> Self {
        RoomWake {
            tx: watch::channel(0).0,
        }
    }
}

/// The in-memory room store of one gateway process.
#[derive(Debug, Clone)]
pub struct MemoryRooms {
    registry: Arc<Mutex<Registry<RoomWake>>>,
}

impl MemoryRooms {
    /// An empty store enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        MemoryRooms {
            registry: Arc::new(Mutex::new(Registry::new(limits))),
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry<RoomWake>> {
        // A poisoned lock means a panic elsewhere; the registry itself stays consistent
        // (every mutation is a single step), so keep serving.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl RoomStore for MemoryRooms {
    async fn issue_unique_idx(&self, room: &str) -> Result<u16, GatewayError> {
        let now = now_ms();
        let mut reg = self.registry();
        let limits = reg.limits().clone();
        reg.get_or_create(room, now, RoomWake::new)?
            .issue_unique_idx(&limits, now)
    }

    async fn append(&self, room: &str, body: &str, caller: Caller) -> Result<u64, GatewayError> {
        let mut reg = self.registry();
        let (room, msg) = reg.append(room, body, caller, now_ms(), RoomWake::new)?;
        room.ext.tx.send_replace(msg.seq);
        Ok(msg.seq)
    }

    async fn subscribe(
        &self,
        room: &str,
        caller: Caller,
        cursor: u64,
    ) -> Result<Box<dyn RoomReader>, GatewayError> {
        let now = now_ms();
        let mut reg = self.registry();
        let limits = reg.limits().clone();
        let r = reg.get_or_create(room, now, RoomWake::new)?;
        r.check_resume(cursor)?;
        r.subscribe_as(caller, &limits, now)?;
        let wake = r.ext.tx.subscribe();
        Ok(Box::new(MemoryReader {
            store: self.clone(),
            room: room.to_owned(),
            caller,
            wake,
        }))
    }

    async fn sweep(&self) -> Result<usize, GatewayError> {
        let expired = self.registry().sweep(now_ms());
        for (id, _room) in &expired {
            tracing::debug!(room = %id, "room expired");
        }
        Ok(expired.len())
    }

    async fn stats(&self) -> Result<RegistryStats, GatewayError> {
        Ok(self.registry().stats())
    }

    async fn ready(&self) -> Result<(), GatewayError> {
        Ok(())
    }
}

/// A subscription of an in-memory room; unregisters itself on drop.
struct MemoryReader {
    store: MemoryRooms,
    room: String,
    caller: Caller,
    wake: watch::Receiver<u64>,
}

impl MemoryReader {
    fn messages_after(&self, cursor: u64) -> Read {
        let mut reg = self.store.registry();
        match reg.get_mut(&self.room, now_ms()) {
            Ok(Some(r)) => match r.messages_after(cursor, MAX_BATCH_MESSAGES) {
                m if m.is_empty() => Read::Idle,
                m => Read::Messages(m),
            },
            // Expired or gone: end the stream; the reconnect gets 410.
            _ => Read::Gone,
        }
    }
}

#[async_trait]
impl RoomReader for MemoryReader {
    async fn read(&mut self, cursor: u64, wait: Duration) -> Result<Read, GatewayError> {
        // Mark the current version seen *before* reading the log, so an append racing
        // with the read wakes us up below.
        self.wake.borrow_and_update();
        match self.messages_after(cursor) {
            Read::Idle => {}
            other => return Ok(other),
        }
        match tokio::time::timeout(wait, self.wake.changed()).await {
            Err(_) => Ok(Read::Idle),
            // Room dropped (expired): deliver nothing more.
            Ok(Err(_)) => Ok(Read::Gone),
            Ok(Ok(())) => Ok(self.messages_after(cursor)),
        }
    }
}

impl Drop for MemoryReader {
    fn drop(&mut self) {
        let now = now_ms();
        let mut reg = self.store.registry();
        // The room may be gone already (expired); then there is nothing to unregister.
        if let Ok(Some(r)) = reg.get_mut(&self.room, now) {
            r.unsubscribe_as(self.caller, now);
        }
    }
}
