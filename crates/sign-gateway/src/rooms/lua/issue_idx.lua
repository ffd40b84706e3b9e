-- Issues the next unique index. ARGV[8] max_unique_idx. Returns {code, index}.
local now = now_ms()
local refused = open(now)
if refused then
  return { refused, 0 }
end
touch(now)
if num(redis.call('HGET', K.meta, 'idx')) >= tonumber(ARGV[8]) then
  return { 'unique_idx_exhausted', 0 }
end
return { 'ok', redis.call('HINCRBY', K.meta, 'idx', 1) }
