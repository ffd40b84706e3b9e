-- Shared by every script of the Redis room store (crates/sign-gateway/src/rooms/redis.rs),
-- which prepends this file to each. A script runs atomically: no other command of any
-- gateway instance runs in between, so checks and updates below never race.
--
-- ARGV[1] key prefix, ARGV[2] room id ('' for scripts about every room), then the
-- limits ARGV[3..7]; each script's own arguments follow from ARGV[8].
--
-- Keys of room R (prefix P):
--   P room:R:meta  hash   seq (last sequence number), idx (last unique index), bytes,
--                         pb:<party> (bytes posted by that party)
--   P room:R:log   stream the messages, entry id <seq>-0, fields b (body), t (posted ms)
--   P room:R:subs  zset   subscriptions '<party or ->|<id>' scored by lease expiry (ms)
--   P room:R:life  string exists for room_max_lifetime_secs after creation
--   P room:R:born  string exists for twice that: the tombstone (410 once the room is gone)
-- meta, log and subs expire together after room_idle_ttl_secs without activity (never
-- after life). Global accounts:
--   P rooms        zset   live room ids scored by their expiry (ms)
--   P room_bytes   hash   room id -> retained bytes;  P room_msgs: -> retained messages
--   P totals       hash   bytes, messages over every live room

local P = ARGV[1]
local ROOM = ARGV[2]
local L = {
  max_rooms = tonumber(ARGV[3]),
  max_total = tonumber(ARGV[4]),
  pct = tonumber(ARGV[5]),
  idle_ms = tonumber(ARGV[6]),
  life_ms = tonumber(ARGV[7]),
}
local G = {
  rooms = P .. 'rooms',
  room_bytes = P .. 'room_bytes',
  room_msgs = P .. 'room_msgs',
  totals = P .. 'totals',
}

local function keys_of(id)
  local base = P .. 'room:' .. id .. ':'
  return {
    meta = base .. 'meta', log = base .. 'log', subs = base .. 'subs',
    life = base .. 'life', born = base .. 'born',
  }
end
local K = keys_of(ROOM)

-- Redis' clock, the same for every gateway instance.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function num(v)
  return tonumber(v or '0') or 0
end

-- Takes room `id` out of the global accounts and deletes what is left of it (not its
-- tombstone).
local function forget(id)
  local k = keys_of(id)
  -- 0 - n, not -n: Lua writes -0 as "-0", which HINCRBY refuses.
  redis.call('HINCRBY', G.totals, 'bytes', 0 - num(redis.call('HGET', G.room_bytes, id)))
  redis.call('HINCRBY', G.totals, 'messages', 0 - num(redis.call('HGET', G.room_msgs, id)))
  redis.call('HDEL', G.room_bytes, id)
  redis.call('HDEL', G.room_msgs, id)
  redis.call('ZREM', G.rooms, id)
  redis.call('DEL', k.meta, k.log, k.subs, k.life)
end

-- Forgets the rooms whose expiry has passed (at most 256 per call); returns how many.
local function sweep(now)
  local due = redis.call('ZRANGEBYSCORE', G.rooms, '-inf', now, 'LIMIT', 0, 256)
  for _, id in ipairs(due) do
    forget(id)
  end
  return #due
end

-- Records activity: the room lives room_idle_ttl_secs more, within its lifetime.
local function touch(now)
  local left = redis.call('PTTL', K.life)
  if left <= 0 then
    return
  end
  local ttl = math.min(L.idle_ms, left)
  redis.call('PEXPIRE', K.meta, ttl)
  redis.call('PEXPIRE', K.log, ttl)
  redis.call('PEXPIRE', K.subs, ttl)
  redis.call('ZADD', G.rooms, now + ttl, ROOM)
end

-- 'live', 'expired' (and cleaned up) or 'none' (never existed, or long forgotten).
local function state()
  if redis.call('EXISTS', K.meta) == 1 and redis.call('EXISTS', K.life) == 1 then
    return 'live'
  end
  if redis.call('EXISTS', K.born) == 1 then
    forget(ROOM)
    return 'expired'
  end
  return 'none'
end

-- Opens the room, creating it on first use. Returns nil, or the error code refusing it.
local function open(now)
  local s = state()
  if s == 'live' then
    return nil
  end
  if s == 'expired' then
    return 'room_expired'
  end
  sweep(now)
  if redis.call('ZCARD', G.rooms) >= L.max_rooms then
    return 'too_many_rooms'
  end
  if num(redis.call('HGET', G.totals, 'bytes')) * 100 >= L.max_total * L.pct then
    return 'busy_new'
  end
  redis.call('HSET', K.meta, 'seq', 0, 'idx', 0, 'bytes', 0)
  redis.call('SET', K.life, 1, 'PX', L.life_ms)
  redis.call('SET', K.born, 1, 'PX', 2 * L.life_ms)
  touch(now)
  return nil
end

