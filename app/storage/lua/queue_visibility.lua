-- Change the visibility timeout of a received message: lock it until now + timeout, or with 0
-- release it to its original place (or to the dead letters once received max_receives times).
-- The receipt must be the current one: the message was not received again since.
--#include _queue_common.lua
--#include _queue_dead_letter.lua
-- KEYS: (the queue's, see _queue_common.lua)
-- ARGV: now_ms, id, receipt, visibility_timeout_ms, channel (the queue's notify channel)
-- Returns {"missing"} (no queue), {"not_found"}, {"stale"}, or {"ok", visible_at_ms} where
-- visible_at_ms is -1 when the release sent the message to the dead letters.
-- Or {"dead_letter_queue", name} when the caller passed another target (_queue_dead_letter.lua).
if redis.call('EXISTS', Q_CFG) == 0 then return {'missing'} end
local redirect = dead_letter_target_changed()
if redirect then return redirect end
local now, id, vt = tonumber(ARG.now_ms), ARG.id, tonumber(ARG.visibility_timeout_ms)
local raw = redis.call('HGET', Q_META, id)
if not raw then return {'not_found'} end
local avail, enq, count, receipt, first = meta_parse(raw)
if receipt == '' or receipt ~= ARG.receipt or redis.call('ZSCORE', Q_DEAD, id) then return {'stale'} end
if vt > 0 then
  redis.call('ZREM', Q_READY, id)
  redis.call('ZADD', Q_INFLIGHT, now + vt, id)
  return {'ok', now + vt}
end
redis.call('ZREM', Q_INFLIGHT, id)
local maxr = max_receives()
if maxr > 0 and count >= maxr then
  redis.call('ZREM', Q_READY, id)
  dead_letter(now, id, avail, enq, count, first)
  return {'ok', -1}
end
redis.call('ZADD', Q_READY, avail, id)
redis.call('PUBLISH', ARG.channel, 1)
return {'ok', math.max(avail, now)}
