-- Move dead letters back to the queue, visible now, with their receive count reset.
--#include _queue_common.lua
-- KEYS: (the queue's, see _queue_common.lua)
-- ARGV: now_ms, limit (most messages moved in one run), channel (the queue's notify channel)
-- Returns how many were moved (-1 when there is no such queue).
if redis.call('EXISTS', Q_CFG) == 0 then return -1 end
local now = tonumber(ARG.now_ms)
local ids = redis.call('ZRANGE', Q_DEAD, 0, tonumber(ARG.limit) - 1)
if #ids == 0 then return 0 end
local metas = redis.call('HMGET', Q_META, unpack(ids))
for i, id in ipairs(ids) do
  if metas[i] then
    local _, enq = meta_parse(metas[i])
    redis.call('HSET', Q_META, id, meta_text(now, enq, 0, ''))
    redis.call('ZADD', Q_READY, now, id)
  end
end
redis.call('ZREM', Q_DEAD, unpack(ids))
redis.call('PUBLISH', ARG.channel, #ids)
return #ids
