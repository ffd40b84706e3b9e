-- Renews a subscription's lease and keeps its room from idling out. ARGV[8] member
-- ('<party or ->|<id>'), ARGV[9] lease (ms). Returns {code, 0}: room_expired ends it.
local now = now_ms()
if state() ~= 'live' then
  return { 'room_expired', 0 }
end
redis.call('ZADD', K.subs, now + tonumber(ARGV[9]), ARGV[8])
touch(now)
return { 'ok', 0 }
