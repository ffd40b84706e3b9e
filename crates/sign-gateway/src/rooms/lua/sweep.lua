-- Forgets expired rooms. Returns {rooms forgotten, live rooms, retained messages,
-- retained bytes}.
local forgotten = sweep(now_ms())
return {
  forgotten,
  redis.call('ZCARD', G.rooms),
  num(redis.call('HGET', G.totals, 'messages')),
  num(redis.call('HGET', G.totals, 'bytes')),
}
