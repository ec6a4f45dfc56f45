-- A queue's config and exact counts; expired locks are returned first (as receive would), so
-- the counts never wait for the sweep.
--#include _queue_common.lua
--#include _queue_dead_letter.lua
-- KEYS: (the queue's, see _queue_common.lua)
-- ARGV: now_ms
-- Returns {} when there is no such queue, else {config as a flat field/value list, visible,
-- in_flight, delayed, dead}.
-- Or {"dead_letter_queue", name} when the caller passed another target (_queue_dead_letter.lua).
if redis.call('EXISTS', Q_CFG) == 0 then return {} end
local redirect = dead_letter_target_changed()
if redirect then return redirect end
local now = tonumber(ARG.now_ms)
reclaim(now, max_receives())
return {redis.call('HGETALL', Q_CFG), redis.call('ZCOUNT', Q_READY, '-inf', now),
        redis.call('ZCARD', Q_INFLIGHT), redis.call('ZCOUNT', Q_READY, '(' .. now, '+inf'),
        redis.call('ZCARD', Q_DEAD)}
