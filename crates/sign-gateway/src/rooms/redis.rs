//! Rooms on Redis Streams (`rooms: redis`): any number of gateway instances serve the
//! same rooms.
//!
//! - Each room's log is a stream whose entry ids are `<seq>-0`, so the SSE `id:` is the
//!   stream id's first part. Every change runs as one Lua script (`lua/*.lua`, each
//!   prefixed with `lua/common.lua`), atomic in Redis: the sequence number (`HINCRBY`
//!   then `XADD <seq>-0`), the unique index, the limits, the global byte budget and the
//!   tombstone of an expired room hold across instances.
//! - Subscribers read with `XREAD BLOCK` on a connection of their own (a blocking read
//!   would hold up the shared connection), and renew a lease on their subscriber slot;
//!   the slots of an instance that died free themselves when their leases lapse.
//! - Rooms expire through key expiry (`PEXPIRE` after each activity, bounded by the
//!   room's lifetime key); the tombstone key outlives the room by its lifetime.
//!
//! Redis errors (unreachable, timed out) become `store_unavailable` (503); the
//! connection manager reconnects in the background.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gateway_core::{Caller, GatewayError, Limits, Message, RegistryStats};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Script};

use super::{Read, RoomReader, RoomStore, MAX_BATCH_MESSAGES};
use crate::now_ms;

/// Default prefix of every key the gateway writes (`redis_key_prefix`).
pub const DEFAULT_KEY_PREFIX: &str = "sign-gateway:";

/// How long a request waits for Redis before answering `store_unavailable`.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/common.lua"),
            include_str!(concat!("lua/", $file))
        ))
    };
}

/// What went wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis is unreachable, timed out or refused the command.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis answered something the store never writes.
    #[error("unexpected reply from redis: {0}")]
    Reply(&'static str),
}

impl StoreError {
    /// Whether Redis is away or cannot serve for now (rather than a bug of the store).
    fn is_outage(&self) -> bool {
        use redis::{ErrorKind, ServerErrorKind as S};
        match self {
            StoreError::Redis(r) => {
                r.is_io_error()
                    || r.is_timeout()
                    || r.is_connection_dropped()
                    || r.is_connection_refusal()
                    || matches!(
                        r.kind(),
                        ErrorKind::Io
                            | ErrorKind::AuthenticationFailed
                            | ErrorKind::Server(
                                S::BusyLoading
                                    | S::TryAgain
                                    | S::ClusterDown
                                    | S::MasterDown
                                    | S::ReadOnly
                            )
                    )
                    // Out of memory (maxmemory): refused until rooms expire.
                    || r.code() == Some("OOM")
            }
            StoreError::Reply(_) => false,
        }
    }
}

impl From<StoreError> for GatewayError {
    fn from(e: StoreError) -> Self {
        if e.is_outage() {
            tracing::warn!(error = %e, "room store unavailable");
            GatewayError::StoreUnavailable
        } else {
            tracing::error!(error = %e, "room store error");
            GatewayError::Internal
        }
    }
}

/// A script's answer: a code (`ok` or why it refused) and a number.
type Outcome = (String, u64);

/// Maps a script's refusal code to the contract's error.
fn refusal(code: &str, limits: &Limits) -> GatewayError {
    match code {
        "room_expired" => GatewayError::RoomExpired,
        "too_many_rooms" => GatewayError::TooManyRooms(limits.max_rooms),
        "busy_new" => GatewayError::GatewayBusy("new rooms are refused"),
        "busy_post" => GatewayError::GatewayBusy("posts are refused"),
        "room_full_count" => GatewayError::RoomFull("message count limit reached"),
        "room_full_bytes" => GatewayError::RoomFull("byte limit reached"),
        "party_quota_bytes" => GatewayError::PartyQuotaExceeded("byte limit of this party reached"),
        "party_quota_subs" => {
            GatewayError::PartyQuotaExceeded("subscription limit of this party reached")
        }
        "unique_idx_exhausted" => GatewayError::UniqueIdxExhausted(limits.max_unique_idx),
        "too_many_subscribers" => GatewayError::TooManySubscribers(limits.max_subscribers_per_room),
        "ahead" => GatewayError::InvalidLastEventId("ahead of the newest message of this room"),
        other => {
            tracing::error!(code = other, "unknown answer of a room store script");
            GatewayError::Internal
        }
    }
}

struct Scripts {
    issue_idx: Script,
    append: Script,
    subscribe: Script,
    refresh: Script,
    sweep: Script,
}

struct Inner {
    client: Client,
    conn: ConnectionManager,
    prefix: String,
    limits: Limits,
    scripts: Scripts,
    /// Subscriptions open on this instance (the `subscribers` gauge is per instance).
    local_subscribers: AtomicU64,
    /// A subscription renews its lease this often (and at least once per read).
    refresh_every: Duration,
}

/// The Redis room store: cheap to clone, one multiplexed connection shared by every
/// request, plus one connection per open subscription.
#[derive(Clone)]
pub struct RedisRooms {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisRooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRooms")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisRooms {
    /// Connects to Redis at `url` (`redis://[user:password@]host:port[/db]`); every key
    /// starts with `prefix`. Fails when Redis cannot be reached now.
    pub async fn connect(
        url: &str,
        prefix: &str,
        limits: Limits,
    ) -> Result<Self, redis::RedisError> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = client.get_connection_manager_with_config(config).await?;
        // A quarter of the idle TTL (a subscriber keeps its room alive), at most 5 s.
        let refresh_every = Duration::from_millis(
            limits
                .room_idle_ttl_secs
                .saturating_mul(1000)
                .checked_div(4)
                .unwrap_or(0)
                .clamp(100, 5000),
        );
        Ok(RedisRooms {
            inner: Arc::new(Inner {
                client,
                conn,
                prefix: prefix.to_owned(),
                limits,
                scripts: Scripts {
                    issue_idx: script!("issue_idx.lua"),
                    append: script!("append.lua"),
                    subscribe: script!("subscribe.lua"),
                    refresh: script!("refresh.lua"),
                    sweep: script!("sweep.lua"),
                },
                local_subscribers: AtomicU64::new(0),
                refresh_every,
            }),
        })
    }

    /// A subscriber's slot lasts this long without renewal.
    fn lease(&self) -> Duration {
        self.inner.refresh_every * 3
    }
}

impl Inner {
    /// Runs `script` for `room` with the common arguments, then `args`.
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        room: &str,
        args: &[String],
    ) -> Result<T, StoreError> {
        let l = &self.limits;
        let mut inv = script.prepare_invoke();
        inv.arg(&self.prefix)
            .arg(room)
            .arg(l.max_rooms)
            .arg(l.max_total_bytes)
            .arg(l.new_room_budget_percent)
            .arg(l.room_idle_ttl_secs.saturating_mul(1000))
            .arg(l.room_max_lifetime_secs.saturating_mul(1000));
        for a in args {
            inv.arg(a);
        }
        let mut conn = self.conn.clone();
        Ok(inv.invoke_async(&mut conn).await?)
    }

    /// Like [`Inner::run`] for scripts answering an [`Outcome`]: the number on `ok`, the
    /// contract's error otherwise.
    async fn outcome(
        &self,
        script: &Script,
        room: &str,
        args: &[String],
    ) -> Result<u64, GatewayError> {
        let (code, n): Outcome = self.run(script, room, args).await?;
        match code.as_str() {
            "ok" => Ok(n),
            other => Err(refusal(other, &self.limits)),
        }
    }

    fn key(&self, room: &str, what: &str) -> String {
        format!("{}room:{room}:{what}", self.prefix)
    }
}

fn party_arg(caller: Caller) -> String {
    caller.party.map(|p| p.to_string()).unwrap_or_default()
}

/// A random subscription id (unique among the subscriptions of a room).
fn subscription_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static N: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded randomly per process; the counter makes ids of one process
    // distinct, the seed those of different processes.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!("{:016x}{:x}", h.finish(), now_ms())
}

#[async_trait]
impl RoomStore for RedisRooms {
    async fn issue_unique_idx(&self, room: &str) -> Result<u16, GatewayError> {
        let i = &self.inner;
        let idx = i
            .outcome(
                &i.scripts.issue_idx,
                room,
                &[i.limits.max_unique_idx.to_string()],
            )
            .await?;
        u16::try_from(idx).map_err(|_| GatewayError::Internal)
    }

    async fn append(&self, room: &str, body: &str, caller: Caller) -> Result<u64, GatewayError> {
        let i = &self.inner;
        let l = &i.limits;
        i.outcome(
            &i.scripts.append,
            room,
            &[
                body.to_owned(),
                party_arg(caller),
                now_ms().to_string(),
                l.max_messages_per_room.to_string(),
                l.max_room_bytes.to_string(),
                l.max_party_bytes_per_room.to_string(),
            ],
        )
        .await
    }

    async fn subscribe(
        &self,
        room: &str,
        caller: Caller,
        cursor: u64,
    ) -> Result<Box<dyn RoomReader>, GatewayError> {
        let i = &self.inner;
        let l = &i.limits;
        let lease = self.lease();
        // The reader's own connection: XREAD BLOCK holds it for up to `refresh_every`.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(i.refresh_every + RESPONSE_TIMEOUT));
        let reader_conn = i
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(StoreError::from)?;
        let id = subscription_id();
        let party = party_arg(caller);
        i.outcome(
            &i.scripts.subscribe,
            room,
            &[
                cursor.to_string(),
                party.clone(),
                id.clone(),
                lease.as_millis().to_string(),
                l.max_subscribers_per_room.to_string(),
                l.max_subscriptions_per_party.to_string(),
            ],
        )
        .await?;
        let member = format!("{}|{id}", if party.is_empty() { "-" } else { &party });
        i.local_subscribers.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(RedisReader {
            store: self.clone(),
            conn: reader_conn,
            room: room.to_owned(),
            log_key: i.key(room, "log"),
            member,
            renewed: tokio::time::Instant::now(),
        }))
    }

    async fn sweep(&self) -> Result<usize, GatewayError> {
        let i = &self.inner;
        let (forgotten, _, _, _): (u64, u64, u64, u64) = i.run(&i.scripts.sweep, "", &[]).await?;
        Ok(usize::try_from(forgotten).unwrap_or(usize::MAX))
    }

    async fn stats(&self) -> Result<RegistryStats, GatewayError> {
        let i = &self.inner;
        let (_, rooms, messages, bytes): (u64, u64, u64, u64) =
            i.run(&i.scripts.sweep, "", &[]).await?;
        Ok(RegistryStats {
            rooms,
            subscribers: i.local_subscribers.load(Ordering::Relaxed),
            messages,
            bytes,
        })
    }

    async fn ready(&self) -> Result<(), GatewayError> {
        let mut conn = self.inner.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(StoreError::from)?;
        Ok(())
    }
}

/// One stream entry as XREAD answers it: id and fields.
type Entry = (String, HashMap<String, Vec<u8>>);

/// A subscription of a Redis room; gives its slot back on drop.
struct RedisReader {
    store: RedisRooms,
    conn: MultiplexedConnection,
    room: String,
    log_key: String,
    member: String,
    renewed: tokio::time::Instant,
}

impl RedisReader {
    /// Renews the lease; false when the room has expired.
    async fn renew(&mut self) -> Result<bool, GatewayError> {
        let i = &self.store.inner;
        let lease = self.store.lease().as_millis().to_string();
        match i
            .outcome(
                &i.scripts.refresh,
                &self.room,
                &[self.member.clone(), lease],
            )
            .await
        {
            Ok(_) => {
                self.renewed = tokio::time::Instant::now();
                Ok(true)
            }
            Err(GatewayError::RoomExpired) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn parse_entry((id, mut fields): Entry) -> Result<Message, StoreError> {
    let seq = id
        .split_once('-')
        .and_then(|(s, _)| s.parse::<u64>().ok())
        .ok_or(StoreError::Reply("stream id is not <seq>-0"))?;
    let body = fields
        .remove("b")
        .ok_or(StoreError::Reply("stream entry without a body"))?;
    let body = String::from_utf8(body).map_err(|_| StoreError::Reply("body is not UTF-8"))?;
    let posted_ms = fields
        .get("t")
        .and_then(|t| std::str::from_utf8(t).ok())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    Ok(Message {
        seq,
        body: Arc::from(body),
        posted_ms,
    })
}

#[async_trait]
impl RoomReader for RedisReader {
    async fn read(&mut self, cursor: u64, wait: Duration) -> Result<Read, GatewayError> {
        let every = self.store.inner.refresh_every;
        if self.renewed.elapsed() >= every && !self.renew().await? {
            return Ok(Read::Gone);
        }
        let block = wait.min(every).as_millis().max(1);
        let reply: Option<Vec<(String, Vec<Entry>)>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(MAX_BATCH_MESSAGES)
            .arg("BLOCK")
            .arg(u64::try_from(block).unwrap_or(u64::MAX))
            .arg("STREAMS")
            .arg(&self.log_key)
            .arg(format!("{cursor}-0"))
            .query_async(&mut self.conn)
            .await
            .map_err(StoreError::from)?;
        let entries = reply
            .into_iter()
            .flatten()
            .flat_map(|(_, entries)| entries)
            .map(parse_entry)
            .collect::<Result<Vec<_>, _>>()?;
        if entries.is_empty() {
            // Nothing new: make sure the room still exists (XREAD waits on a deleted
            // stream as on an empty one).
            if !self.renew().await? {
                return Ok(Read::Gone);
            }
            return Ok(Read::Idle);
        }
        Ok(Read::Messages(entries))
    }
}

impl Drop for RedisReader {
    fn drop(&mut self) {
        let i = &self.store.inner;
        i.local_subscribers.fetch_sub(1, Ordering::Relaxed);
        let mut conn = i.conn.clone();
        let key = i.key(&self.room, "subs");
        let member = std::mem::take(&mut self.member);
        // Give the slot back now rather than when the lease lapses; if Redis is away,
        // the lease does it.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let r: redis::RedisResult<u64> = redis::cmd("ZREM")
                    .arg(key)
                    .arg(member)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = r {
                    tracing::debug!(error = %e, "cannot give a subscriber slot back");
                }
            });
        }
    }
}
