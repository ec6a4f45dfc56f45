-- Beat, every second, per queue: return expired locks (dead-lettering as receive would), so
-- counts stay current on idle queues, and drop messages older than the queue's retention.
--#include _queue_common.lua
--#include _queue_dead_letter.lua
-- KEYS: (the queue's, see _queue_common.lua)
-- ARGV: now_ms, channel (the queue's notify channel), drop_limit (most messages dropped in one run)
-- Returns {returned to ready, dropped}; PUBLISHes on the channel when some became visible.
-- Or {"dead_letter_queue", name} when the caller passed another target (_queue_dead_letter.lua).
if redis.call('EXISTS', Q_CFG) == 0 then return {0, 0} end
local redirect = dead_letter_target_changed()
if redirect then return redirect end
local now = tonumber(ARG.now_ms)
local returned = reclaim(now, max_receives())
if returned > 0 then redis.call('PUBLISH', ARG.channel, returned) end
local retention = tonumber(redis.call('HGET', Q_CFG, 'retention_ms'))
local old = redis.call('ZRANGEBYSCORE', Q_AGES, '-inf', now - retention, 'LIMIT', 0, tonumber(ARG.drop_limit))
if #old > 0 then forget(old) end
return {returned, #old}
