-- Beat, every second, per queue: return expired locks (dead-lettering as receive would), so
-- counts stay current on idle queues, and drop messages older than the queue's retention.
-- KEYS: 1-7 the queue's keys (see _queue_common.lua)
-- ARGV: 1 now_ms, 2 notify channel, 3 most messages dropped in one run
-- Returns {returned to ready, dropped}; PUBLISHes on the channel when some became visible.
--#include _queue_common.lua
if redis.call('EXISTS', Q_CFG) == 0 then return {0, 0} end
local now = tonumber(ARGV[1])
local returned = reclaim(now, max_receives())
if returned > 0 then redis.call('PUBLISH', ARGV[2], returned) end
local retention = tonumber(redis.call('HGET', Q_CFG, 'retention_ms'))
local old = redis.call('ZRANGEBYSCORE', Q_AGES, '-inf', now - retention, 'LIMIT', 0, tonumber(ARGV[3]))
if #old > 0 then forget(old) end
return {returned, #old}
