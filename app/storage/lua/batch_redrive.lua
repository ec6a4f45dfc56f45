-- Move dead batches back to taken with a fresh budget of attempts (they go to the batch's
-- current endpoint); the caller publishes attempt 1 of each.
-- KEYS: 1-6 the batch's keys, 7 global due zset
-- ARGV: 1 name, 2 now_ms, 3 publish grace ms, 4 most batches moved per call
-- Returns the ids moved.
--#include _batch_common.lua
local name, now, grace, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for _, id in ipairs(redis.call('ZRANGE', B_DEAD, 0, limit - 1)) do
  redis.call('ZREM', B_DEAD, id)
  local meta = load_meta(id)
  if meta then
    meta.state = 'queued'
    meta.attempts = 0
    save_meta(id, meta)
    redis.call('ZADD', B_TAKEN, now + grace, id)
    out[#out + 1] = id
  end
end
update_due(name)
return out
