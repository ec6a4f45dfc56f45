-- Move dead batches back to taken with a fresh budget of attempts (they go to the batch's
-- current endpoint); the caller publishes attempt 1 of each.
--#include _batch_common.lua
-- KEYS: (the batch's and the due zset, see _batch_common.lua)
-- ARGV: name, now_ms, grace_ms (publish grace), limit (most batches moved per call)
-- Returns the ids moved.
local name, now, grace, limit = ARG.name, tonumber(ARG.now_ms), tonumber(ARG.grace_ms), tonumber(ARG.limit)
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
