-- Appends a message. ARGV[8] body, ARGV[9] party ('' for none), ARGV[10] posted at (ms),
-- ARGV[11] max_messages_per_room, ARGV[12] max_room_bytes, ARGV[13]
-- max_party_bytes_per_room. Returns {code, seq}: the sequence number is the stream
-- entry's id (<seq>-0), allocated here, so concurrent posts through any instance get
-- 1, 2, 3, ... without a gap or a duplicate.
local body, party = ARGV[8], ARGV[9]
local size = #body
local now = now_ms()
if num(redis.call('HGET', G.totals, 'bytes')) + size > L.max_total then
  sweep(now)
  if num(redis.call('HGET', G.totals, 'bytes')) + size > L.max_total then
    return { 'busy_post', 0 }
  end
end
local refused = open(now)
if refused then
  return { refused, 0 }
end
local max_msgs = tonumber(ARGV[11])
if num(redis.call('HGET', K.meta, 'seq')) >= max_msgs then
  return { 'room_full_count', 0 }
end
if num(redis.call('HGET', K.meta, 'bytes')) + size > tonumber(ARGV[12]) then
  return { 'room_full_bytes', 0 }
end
if party ~= '' then
  if num(redis.call('HGET', K.meta, 'pb:' .. party)) + size > tonumber(ARGV[13]) then
    return { 'party_quota_bytes', 0 }
  end
  redis.call('HINCRBY', K.meta, 'pb:' .. party, size)
end
local seq = redis.call('HINCRBY', K.meta, 'seq', 1)
redis.call('HINCRBY', K.meta, 'bytes', size)
redis.call('XADD', K.log, 'MAXLEN', max_msgs, seq .. '-0', 'b', body, 't', ARGV[10])
redis.call('HINCRBY', G.room_bytes, ROOM, size)
redis.call('HINCRBY', G.room_msgs, ROOM, 1)
redis.call('HINCRBY', G.totals, 'bytes', size)
redis.call('HINCRBY', G.totals, 'messages', 1)
touch(now)
return { 'ok', seq }
