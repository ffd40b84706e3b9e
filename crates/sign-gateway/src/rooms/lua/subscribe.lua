-- Registers a subscription. ARGV[8] cursor (Last-Event-ID), ARGV[9] party ('' for
-- none), ARGV[10] subscription id, ARGV[11] lease (ms), ARGV[12]
-- max_subscribers_per_room, ARGV[13] max_subscriptions_per_party. The subscription
-- holds its slot while its lease is renewed (refresh.lua): the slots of an instance
-- that died free themselves. Returns {code, 0}.
local now = now_ms()
local refused = open(now)
if refused then
  return { refused, 0 }
end
if tonumber(ARGV[8]) > num(redis.call('HGET', K.meta, 'seq')) then
  return { 'ahead', 0 }
end
redis.call('ZREMRANGEBYSCORE', K.subs, '-inf', now)
local held = redis.call('ZRANGE', K.subs, 0, -1)
if #held >= tonumber(ARGV[12]) then
  return { 'too_many_subscribers', 0 }
end
local party = ARGV[9]
if party == '' then
  party = '-'
else
  local mine, prefix = 0, party .. '|'
  for _, m in ipairs(held) do
    if string.sub(m, 1, #prefix) == prefix then
      mine = mine + 1
    end
  end
  if mine >= tonumber(ARGV[13]) then
    return { 'party_quota_subs', 0 }
  end
end
redis.call('ZADD', K.subs, now + tonumber(ARGV[11]), party .. '|' .. ARGV[10])
touch(now)
return { 'ok', 0 }
