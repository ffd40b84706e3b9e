//! Rooms: sequence numbers, retention, unique indices, expiry, and a registry of rooms.
//!
//! All functions take the current time as an argument (`now_ms`, milliseconds since
//! the Unix epoch): the crate never reads a clock, so it runs unchanged in tokio and
//! in a Cloudflare Durable Object (where `std::time` is unavailable).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::token::Caller;
use crate::{GatewayError, Limits};

/// Longest accepted room id.
pub const MAX_ROOM_ID_LEN: usize = 128;

/// Checks a room id: 1..=128 characters from `[A-Za-z0-9_-]`.
pub fn validate_room_id(room_id: &str) -> Result<(), GatewayError> {
    if room_id.is_empty() {
        return Err(GatewayError::InvalidRoomId("empty"));
    }
    if room_id.len() > MAX_ROOM_ID_LEN {
        return Err(GatewayError::InvalidRoomId("longer than 128 characters"));
    }
    if !room_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(GatewayError::InvalidRoomId(
            "only A-Z, a-z, 0-9, '_' and '-' are allowed",
        ));
    }
    Ok(())
}

/// Parses a `Last-Event-ID` header value: absent or empty → 0 (from the start),
/// otherwise a decimal `u64`.
pub fn parse_last_event_id(value: Option<&str>) -> Result<u64, GatewayError> {
    match value.map(str::trim) {
        None | Some("") => Ok(0),
        Some(v) if v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()) => v
            .parse()
            .map_err(|_| GatewayError::InvalidLastEventId("not a u64")),
        Some(_) => Err(GatewayError::InvalidLastEventId("not a decimal number")),
    }
}

/// Checks a message body against the size limit and the SSE constraints, and returns
/// it as text. Bodies must be non-empty UTF-8 without `\r` (SSE turns `\r` into line
/// breaks, so it could not be delivered byte for byte).
pub fn validate_body<'a>(body: &'a [u8], limits: &Limits) -> Result<&'a str, GatewayError> {
    if body.len() as u64 > limits.max_message_bytes {
        return Err(GatewayError::MessageTooLarge {
            size: body.len() as u64,
            limit: limits.max_message_bytes,
        });
    }
    if body.is_empty() {
        return Err(GatewayError::InvalidBody("empty"));
    }
    let text = std::str::from_utf8(body).map_err(|_| GatewayError::InvalidBody("not UTF-8"))?;
    if text.contains('\r') {
        return Err(GatewayError::InvalidBody(
            "contains a carriage return, which SSE cannot carry",
        ));
    }
    Ok(text)
}

/// Formats one SSE event: `id: <seq>` then one `data:` line per line of the body.
/// An SSE parser joins the `data:` lines with `\n`, giving back the body exactly.
pub fn format_sse_event(seq: u64, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 32);
    out.push_str("id: ");
    out.push_str(&seq.to_string());
    out.push('\n');
    for line in body.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// The SSE keep-alive comment both gateways send every `keepalive_secs`.
pub const SSE_KEEPALIVE: &str = ": keep-alive\n\n";

/// The SSE comment both gateways send first on every subscription, so that clients see
/// the stream open immediately (and proxies flush headers).
pub const SSE_OPENING: &str = ": open\n\n";

/// One retained message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Sequence number, strictly increasing from 1 within the room.
    pub seq: u64,
    /// The body as posted.
    pub body: Arc<str>,
    /// When the gateway accepted it (ms since the Unix epoch; 0 when not known, e.g.
    /// reloaded from storage): its delivery latency is measured from here.
    pub posted_ms: u64,
}

/// The state of one room. `X` is per-room data owned by the runtime (e.g. a wake-up
/// channel in the native gateway).
#[derive(Debug)]
pub struct Room<X = ()> {
    messages: VecDeque<Message>,
    bytes: u64,
    next_idx: u16,
    subscribers: u32,
    created_ms: u64,
    last_active_ms: u64,
    /// Bytes posted and subscriptions held, per party token (callers without a party
    /// share the room's own limits only).
    party_bytes: BTreeMap<u16, u64>,
    party_subscriptions: BTreeMap<u16, u32>,
    /// Runtime-specific per-room data.
    pub ext: X,
}

/// Why a room is no longer usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Still live.
    Live,
    /// Idle (no request, no subscriber) for `room_idle_ttl_secs`.
    Idle,
    /// Older than `room_max_lifetime_secs`.
    Lifetime,
}

impl<X> Room<X> {
    /// A new empty room created at `now_ms`.
    pub fn new(now_ms: u64, ext: X) -> Self {
        Room {
            messages: VecDeque::new(),
            bytes: 0,
            next_idx: 1,
            subscribers: 0,
            created_ms: now_ms,
            last_active_ms: now_ms,
            party_bytes: BTreeMap::new(),
            party_subscriptions: BTreeMap::new(),
            ext,
        }
    }

    /// Rebuilds a room from persisted state (used by the edge gateway's Durable Object).
    /// `messages` must have sequence numbers 1, 2, 3, ... in order; `party_bytes` is
    /// what [`Room::party_bytes`] returned when it was saved.
    pub fn restore(
        created_ms: u64,
        last_active_ms: u64,
        next_idx: u16,
        messages: Vec<Message>,
        party_bytes: BTreeMap<u16, u64>,
        ext: X,
    ) -> Self {
        let bytes = messages.iter().map(|m| m.body.len() as u64).sum();
        Room {
            messages: messages.into(),
            bytes,
            next_idx: next_idx.max(1),
            subscribers: 0,
            created_ms,
            last_active_ms,
            party_bytes,
            party_subscriptions: BTreeMap::new(),
            ext,
        }
    }

    /// Bytes posted per party token (to persist with the room).
    pub fn party_bytes(&self) -> &BTreeMap<u16, u64> {
        &self.party_bytes
    }

    /// Sequence number of the newest message (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.messages.back().map(|m| m.seq).unwrap_or(0)
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// True when the room holds no message.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Retained bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Open subscriptions.
    pub fn subscribers(&self) -> u32 {
        self.subscribers
    }

    /// Next unique index that would be issued.
    pub fn next_idx(&self) -> u16 {
        self.next_idx
    }

    /// Creation time.
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    /// Last activity time.
    pub fn last_active_ms(&self) -> u64 {
        self.last_active_ms
    }

    /// Records activity at `now_ms` (keeps the room from idling out).
    pub fn touch(&mut self, now_ms: u64) {
        self.last_active_ms = self.last_active_ms.max(now_ms);
    }

    /// Whether (and why) the room has expired at `now_ms`.
    pub fn expiry(&self, limits: &Limits, now_ms: u64) -> Expiry {
        if now_ms.saturating_sub(self.created_ms)
            >= limits.room_max_lifetime_secs.saturating_mul(1000)
        {
            return Expiry::Lifetime;
        }
        if self.subscribers == 0
            && now_ms.saturating_sub(self.last_active_ms)
                >= limits.room_idle_ttl_secs.saturating_mul(1000)
        {
            return Expiry::Idle;
        }
        Expiry::Live
    }

    /// Time at which the room will expire if nothing happens (for alarms/sweeps).
    pub fn expires_at_ms(&self, limits: &Limits) -> u64 {
        let life = self
            .created_ms
            .saturating_add(limits.room_max_lifetime_secs.saturating_mul(1000));
        let idle = self
            .last_active_ms
            .saturating_add(limits.room_idle_ttl_secs.saturating_mul(1000));
        life.min(idle)
    }

    /// Appends a validated message from a caller without a party token; returns it
    /// with its sequence number. See [`Room::append_as`].
    pub fn append(
        &mut self,
        body: &str,
        limits: &Limits,
        now_ms: u64,
    ) -> Result<Message, GatewayError> {
        self.append_as(body, Caller::default(), limits, now_ms)
    }

    /// Appends a validated message posted by `caller`: the room's limits, then the
    /// caller's party quota (`limits.max_party_bytes_per_room`).
    pub fn append_as(
        &mut self,
        body: &str,
        caller: Caller,
        limits: &Limits,
        now_ms: u64,
    ) -> Result<Message, GatewayError> {
        let size = body.len() as u64;
        if size > limits.max_message_bytes {
            return Err(GatewayError::MessageTooLarge {
                size,
                limit: limits.max_message_bytes,
            });
        }
        if self.messages.len() as u64 >= limits.max_messages_per_room {
            return Err(GatewayError::RoomFull("message count limit reached"));
        }
        if self.bytes.saturating_add(size) > limits.max_room_bytes {
            return Err(GatewayError::RoomFull("byte limit reached"));
        }
        if let Some(p) = caller.party {
            let posted = self.party_bytes.get(&p).copied().unwrap_or(0);
            if posted.saturating_add(size) > limits.max_party_bytes_per_room {
                return Err(GatewayError::PartyQuotaExceeded(
                    "byte limit of this party reached",
                ));
            }
        }
        let msg = Message {
            seq: self.last_seq() + 1,
            body: Arc::from(body),
            posted_ms: now_ms,
        };
        self.messages.push_back(msg.clone());
        self.bytes += size;
        if let Some(p) = caller.party {
            *self.party_bytes.entry(p).or_insert(0) += size;
        }
        self.touch(now_ms);
        Ok(msg)
    }

    /// Checks a resume point: `last_event_id` may not be ahead of the room.
    pub fn check_resume(&self, last_event_id: u64) -> Result<(), GatewayError> {
        if last_event_id > self.last_seq() {
            return Err(GatewayError::InvalidLastEventId(
                "ahead of the newest message of this room",
            ));
        }
        Ok(())
    }

    /// Up to `max` messages with a sequence number greater than `after`, oldest first.
    /// The room retains every message of its lifetime (bounded by the limits), so a
    /// resume point is never lost.
    pub fn messages_after(&self, after: u64, max: usize) -> Vec<Message> {
        // Sequence numbers are dense from 1, so message `seq` sits at index `seq - 1`.
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        self.messages
            .iter()
            .skip(start)
            .take(max)
            .cloned()
            .collect()
    }

    /// Issues the next unique index (1, 2, 3, ... as the gg20 SSE manager does).
    pub fn issue_unique_idx(&mut self, limits: &Limits, now_ms: u64) -> Result<u16, GatewayError> {
        if self.next_idx == 0 || self.next_idx > limits.max_unique_idx {
            return Err(GatewayError::UniqueIdxExhausted(limits.max_unique_idx));
        }
        let idx = self.next_idx;
        // Wraps to 0 after u16::MAX, which the check above then refuses.
        self.next_idx = self.next_idx.wrapping_add(1);
        self.touch(now_ms);
        Ok(idx)
    }

    /// Registers a subscriber without a party token (call [`Room::unsubscribe`] when it
    /// goes away). See [`Room::subscribe_as`].
    pub fn subscribe(&mut self, limits: &Limits, now_ms: u64) -> Result<(), GatewayError> {
        self.subscribe_as(Caller::default(), limits, now_ms)
    }

    /// Registers a subscriber of `caller` (call [`Room::unsubscribe_as`] with the same
    /// caller when it goes away): the room's limit, then the party's.
    pub fn subscribe_as(
        &mut self,
        caller: Caller,
        limits: &Limits,
        now_ms: u64,
    ) -> Result<(), GatewayError> {
        if self.subscribers >= limits.max_subscribers_per_room {
            return Err(GatewayError::TooManySubscribers(
                limits.max_subscribers_per_room,
            ));
        }
        if let Some(p) = caller.party {
            let held = self.party_subscriptions.entry(p).or_insert(0);
            if *held >= limits.max_subscriptions_per_party {
                return Err(GatewayError::PartyQuotaExceeded(
                    "subscription limit of this party reached",
                ));
            }
            *held += 1;
        }
        self.subscribers += 1;
        self.touch(now_ms);
        Ok(())
    }

    /// Unregisters a subscriber without a party token.
    pub fn unsubscribe(&mut self, now_ms: u64) {
        self.unsubscribe_as(Caller::default(), now_ms)
    }

    /// Unregisters a subscriber of `caller`.
    pub fn unsubscribe_as(&mut self, caller: Caller, now_ms: u64) {
        if let Some(p) = caller.party {
            if let Some(held) = self.party_subscriptions.get_mut(&p) {
                *held = held.saturating_sub(1);
            }
        }
        self.subscribers = self.subscribers.saturating_sub(1);
        self.touch(now_ms);
    }
}

/// Gauges of a registry, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Live rooms.
    pub rooms: u64,
    /// Open subscriptions over all rooms.
    pub subscribers: u64,
    /// Retained messages over all rooms.
    pub messages: u64,
    /// Retained message bytes over all rooms.
    pub bytes: u64,
}

/// All rooms of one gateway, plus tombstones of expired rooms (so that a request for an
/// expired room gets 410 instead of silently opening a fresh room with the same id).
#[derive(Debug)]
pub struct Registry<X = ()> {
    limits: Limits,
    rooms: HashMap<String, Room<X>>,
    /// Retained message bytes over all live rooms (the global budget's account).
    total_bytes: u64,
    /// Expired room ids, oldest first, bounded by `limits.max_rooms`.
    tombstones: VecDeque<String>,
    tombstone_set: std::collections::HashSet<String>,
}

impl<X> Registry<X> {
    /// An empty registry with the given limits.
    pub fn new(limits: Limits) -> Self {
        Registry {
            limits,
            rooms: HashMap::new(),
            total_bytes: 0,
            tombstones: VecDeque::new(),
            tombstone_set: Default::default(),
        }
    }

    /// The limits this registry enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn bury(&mut self, id: String) {
        if self.tombstone_set.insert(id.clone()) {
            self.tombstones.push_back(id);
        }
        while self.tombstones.len() as u64 > self.limits.max_rooms {
            if let Some(old) = self.tombstones.pop_front() {
                self.tombstone_set.remove(&old);
            }
        }
    }

    /// Existing live room, or `RoomExpired`, or `None` if it never existed.
    /// Expires the room first if its time has come.
    pub fn get_mut(
        &mut self,
        room_id: &str,
        now_ms: u64,
    ) -> Result<Option<&mut Room<X>>, GatewayError> {
        if self.tombstone_set.contains(room_id) {
            return Err(GatewayError::RoomExpired);
        }
        let expired = match self.rooms.get(room_id) {
            None => return Ok(None),
            Some(r) => r.expiry(&self.limits, now_ms) != Expiry::Live,
        };
        if expired {
            if let Some(r) = self.rooms.remove(room_id) {
                self.total_bytes = self.total_bytes.saturating_sub(r.bytes);
            }
            self.bury(room_id.to_owned());
            return Err(GatewayError::RoomExpired);
        }
        Ok(self.rooms.get_mut(room_id))
    }

    /// The live room `room_id`, created on first use (as in the gg20 SSE manager).
    /// Errors: invalid id (400), expired (410), too many rooms or the memory budget
    /// past `limits.new_room_budget_percent` (503).
    pub fn get_or_create(
        &mut self,
        room_id: &str,
        now_ms: u64,
        make_ext: impl FnOnce() -> X,
    ) -> Result<&mut Room<X>, GatewayError> {
        validate_room_id(room_id)?;
        if self.get_mut(room_id, now_ms)?.is_none() {
            if self.rooms.len() as u64 >= self.limits.max_rooms {
                // Make room by expiring what is due, then check again.
                self.sweep(now_ms);
                if self.rooms.len() as u64 >= self.limits.max_rooms {
                    return Err(GatewayError::TooManyRooms(self.limits.max_rooms));
                }
            }
            if self.over_new_room_budget() {
                self.sweep(now_ms);
                if self.over_new_room_budget() {
                    return Err(GatewayError::GatewayBusy("new rooms are refused"));
                }
            }
            self.rooms
                .insert(room_id.to_owned(), Room::new(now_ms, make_ext()));
        }
        self.rooms.get_mut(room_id).ok_or(GatewayError::Internal)
    }

    fn over_new_room_budget(&self) -> bool {
        u128::from(self.total_bytes) * 100
            >= u128::from(self.limits.max_total_bytes)
                * u128::from(self.limits.new_room_budget_percent)
    }

    /// Appends `body` (validated) to the live room `room_id` (created on first use) as
    /// `caller`, within the global budget (`limits.max_total_bytes`), the room's limits
    /// and the caller's party quota. Returns the room (for its runtime data) and the
    /// message. Every append of a registry's rooms goes through here, so that the global
    /// account stays exact.
    pub fn append(
        &mut self,
        room_id: &str,
        body: &str,
        caller: Caller,
        now_ms: u64,
        make_ext: impl FnOnce() -> X,
    ) -> Result<(&mut Room<X>, Message), GatewayError> {
        let size = body.len() as u64;
        if self.total_bytes.saturating_add(size) > self.limits.max_total_bytes {
            self.sweep(now_ms);
            if self.total_bytes.saturating_add(size) > self.limits.max_total_bytes {
                return Err(GatewayError::GatewayBusy("posts are refused"));
            }
        }
        let limits = self.limits.clone();
        let room = self.get_or_create(room_id, now_ms, make_ext)?;
        let msg = room.append_as(body, caller, &limits, now_ms)?;
        self.total_bytes += size;
        let room = self.rooms.get_mut(room_id).ok_or(GatewayError::Internal)?;
        Ok((room, msg))
    }

    /// Retained message bytes over all live rooms.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Removes every expired room; returns them (id, room) so the runtime can close
    /// their subscriptions.
    pub fn sweep(&mut self, now_ms: u64) -> Vec<(String, Room<X>)> {
        let due: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.expiry(&self.limits, now_ms) != Expiry::Live)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for id in due {
            if let Some(r) = self.rooms.remove(&id) {
                self.total_bytes = self.total_bytes.saturating_sub(r.bytes);
                self.bury(id.clone());
                out.push((id, r));
            }
        }
        out
    }

    /// Current gauges.
    pub fn stats(&self) -> RegistryStats {
        let mut s = RegistryStats {
            rooms: self.rooms.len() as u64,
            ..Default::default()
        };
        for r in self.rooms.values() {
            s.subscribers += u64::from(r.subscribers);
            s.messages += r.messages.len() as u64;
            s.bytes += r.bytes;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Limits {
        Limits {
            max_message_bytes: 10,
            max_messages_per_room: 3,
            max_room_bytes: 20,
            max_rooms: 2,
            max_subscribers_per_room: 2,
            max_unique_idx: 3,
            room_idle_ttl_secs: 10,
            room_max_lifetime_secs: 100,
            max_party_bytes_per_room: 12,
            max_subscriptions_per_party: 1,
            max_total_bytes: 30,
            new_room_budget_percent: 50,
        }
    }

    #[test]
    fn party_quotas() {
        let l = small();
        let mut r: Room = Room::new(0, ());
        let p0 = Caller { party: Some(0) };
        let p1 = Caller { party: Some(1) };
        r.append_as("0123456789", p0, &l, 1).unwrap();
        // Party 0 has 2 bytes left; party 1 its own 12 (within the room's 20).
        assert_eq!(
            r.append_as("abc", p0, &l, 2).unwrap_err().code(),
            "party_quota_exceeded"
        );
        r.append_as("01234567", p1, &l, 3).unwrap();
        assert_eq!(r.party_bytes().get(&0), Some(&10));
        r.subscribe_as(p0, &l, 4).unwrap();
        assert_eq!(
            r.subscribe_as(p0, &l, 4).unwrap_err().code(),
            "party_quota_exceeded"
        );
        r.unsubscribe_as(p0, 5);
        r.subscribe_as(p0, &l, 6).unwrap();
        r.subscribe_as(p1, &l, 6).unwrap();
        assert_eq!(r.subscribers(), 2);
    }

    #[test]
    fn global_budget_keeps_running_rooms_going() {
        let l = small();
        let mut reg: Registry = Registry::new(l);
        let none = Caller::default();
        reg.append("a", "0123456789", none, 0, || ()).unwrap();
        reg.append("a", "0123456789", none, 0, || ()).unwrap();
        assert_eq!(reg.total_bytes(), 20);
        // Past 50 % of the 30-byte budget: no new room, but room a still posts...
        assert_eq!(
            reg.get_or_create("b", 1, || ()).unwrap_err().code(),
            "gateway_busy"
        );
        assert_eq!(
            reg.append("b", "x", none, 1, || ()).unwrap_err().code(),
            "gateway_busy"
        );
        // ...until the room's own limit (20 bytes) or the budget (30) stops it.
        assert_eq!(
            reg.append("a", "x", none, 1, || ()).unwrap_err().code(),
            "room_full"
        );
        // Expiry frees the budget.
        reg.sweep(1_000_000);
        assert_eq!(reg.total_bytes(), 0);
        reg.append("c", "x", none, 1_000_000, || ()).unwrap();
        assert_eq!(reg.stats().bytes, reg.total_bytes());
    }

    #[test]
    fn room_ids() {
        assert!(validate_room_id("aZ09_-").is_ok());
        assert!(validate_room_id(&"a".repeat(128)).is_ok());
        assert!(validate_room_id(&"a".repeat(129)).is_err());
        assert!(validate_room_id("").is_err());
        for bad in ["a b", "a/b", "a.b", "ä", "a\0b", "a%20"] {
            assert_eq!(validate_room_id(bad).unwrap_err().status(), 400, "{bad}");
        }
    }

    #[test]
    fn last_event_id_parsing() {
        assert_eq!(parse_last_event_id(None), Ok(0));
        assert_eq!(parse_last_event_id(Some("")), Ok(0));
        assert_eq!(parse_last_event_id(Some(" 7 ")), Ok(7));
        assert!(parse_last_event_id(Some("-1")).is_err());
        assert!(parse_last_event_id(Some("x")).is_err());
        assert!(parse_last_event_id(Some("99999999999999999999")).is_err());
    }

    #[test]
    fn bodies() {
        let l = small();
        assert_eq!(validate_body(b"hi", &l), Ok("hi"));
        assert_eq!(validate_body(b"", &l).unwrap_err().status(), 400);
        assert_eq!(validate_body(b"a\rb", &l).unwrap_err().status(), 400);
        assert_eq!(validate_body(&[0xff], &l).unwrap_err().status(), 400);
        assert_eq!(validate_body(&[b'a'; 11], &l).unwrap_err().status(), 413);
    }

    #[test]
    fn sse_format_roundtrips_lines() {
        assert_eq!(format_sse_event(3, "a\nb"), "id: 3\ndata: a\ndata: b\n\n");
        assert_eq!(format_sse_event(1, "x\n"), "id: 1\ndata: x\ndata: \n\n");
    }

    #[test]
    fn sequence_retention_and_limits() {
        let l = small();
        let mut r: Room = Room::new(0, ());
        assert_eq!(r.append("a", &l, 1).unwrap().seq, 1);
        assert_eq!(r.append("bb", &l, 2).unwrap().seq, 2);
        assert_eq!(r.append("ccc", &l, 3).unwrap().seq, 3);
        assert_eq!(r.append("d", &l, 4).unwrap_err().status(), 429);
        let after1: Vec<u64> = r.messages_after(1, 10).iter().map(|m| m.seq).collect();
        assert_eq!(after1, vec![2, 3]);
        assert_eq!(r.messages_after(0, 2).len(), 2);
        assert!(r.messages_after(3, 10).is_empty());
        assert!(r.messages_after(u64::MAX, 10).is_empty());
        assert!(r.check_resume(3).is_ok());
        assert!(r.check_resume(4).is_err());
        let mut r2: Room = Room::new(0, ());
        assert!(r2.append("0123456789", &l, 0).is_ok());
        assert!(r2.append("0123456789", &l, 0).is_ok());
        assert_eq!(
            r2.append("x", &l, 0).unwrap_err(),
            GatewayError::RoomFull("byte limit reached")
        );
        assert_eq!(r.bytes(), 6);
    }

    #[test]
    fn unique_idx_and_subscribers() {
        let l = small();
        let mut r: Room = Room::new(0, ());
        assert_eq!(r.issue_unique_idx(&l, 0), Ok(1));
        assert_eq!(r.issue_unique_idx(&l, 0), Ok(2));
        assert_eq!(r.issue_unique_idx(&l, 0), Ok(3));
        assert_eq!(r.issue_unique_idx(&l, 0).unwrap_err().status(), 409);
        let full = Limits {
            max_unique_idx: u16::MAX,
            ..small()
        };
        let mut r: Room = Room::restore(0, 0, u16::MAX, vec![], BTreeMap::new(), ());
        assert_eq!(r.issue_unique_idx(&full, 0), Ok(u16::MAX));
        assert!(r.issue_unique_idx(&full, 0).is_err());
        assert!(r.subscribe(&l, 0).is_ok());
        assert!(r.subscribe(&l, 0).is_ok());
        assert_eq!(r.subscribe(&l, 0).unwrap_err().status(), 429);
        r.unsubscribe(0);
        assert!(r.subscribe(&l, 0).is_ok());
    }

    #[test]
    fn expiry_rules() {
        let l = small();
        let mut r: Room = Room::new(0, ());
        assert_eq!(r.expiry(&l, 9_999), Expiry::Live);
        assert_eq!(r.expiry(&l, 10_000), Expiry::Idle);
        r.subscribe(&l, 0).unwrap();
        assert_eq!(
            r.expiry(&l, 50_000),
            Expiry::Live,
            "subscribers keep it alive"
        );
        assert_eq!(r.expiry(&l, 100_000), Expiry::Lifetime);
        assert_eq!(r.expires_at_ms(&l), 10_000);
    }

    #[test]
    fn registry_creation_expiry_tombstones() {
        let l = small();
        let mut reg: Registry = Registry::new(l);
        reg.get_or_create("a", 0, || ()).unwrap();
        reg.get_or_create("b", 0, || ()).unwrap();
        assert_eq!(reg.get_or_create("c", 1, || ()).unwrap_err().status(), 503);
        assert_eq!(
            reg.get_or_create("bad id", 1, || ()).unwrap_err().status(),
            400
        );
        // After a's idle TTL, both a and b expire, c can be created, a is gone (410).
        reg.append("c", "x", Caller::default(), 10_000, || ())
            .unwrap();
        assert_eq!(
            reg.get_or_create("a", 10_001, || ()).unwrap_err().status(),
            410
        );
        assert_eq!(reg.get_mut("b", 10_001).unwrap_err().status(), 410);
        assert!(reg.get_mut("never", 10_001).unwrap().is_none());
        let s = reg.stats();
        assert_eq!((s.rooms, s.messages, s.bytes), (1, 1, 1));
        // Tombstones are bounded by max_rooms.
        reg.get_or_create("d", 10_001, || ()).unwrap();
        let swept = reg.sweep(1_000_000);
        assert_eq!(swept.len(), 2);
        assert!(reg.tombstones.len() as u64 <= small().max_rooms);
    }
}
