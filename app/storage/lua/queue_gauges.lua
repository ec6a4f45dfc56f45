-- A queue's message counts by state and the availability time of its oldest visible message,
-- for /metrics: read only (expired locks count as in flight until the sweep or a receive
-- returns them), so that a scrape never writes.
-- KEYS: ready, inflight, dead (the queue's, see _queue_common.lua)
-- ARGV: now_ms
-- Returns {visible, in_flight, delayed, dead, oldest visible message's available_ms or -1}.
local visible = redis.call('ZCOUNT', KEY.ready, '-inf', ARG.now_ms)
local oldest = -1
if visible > 0 then oldest = tonumber(redis.call('ZRANGE', KEY.ready, 0, 0, 'WITHSCORES')[2]) end
return {visible, redis.call('ZCARD', KEY.inflight), redis.call('ZCARD', KEY.ready) - visible,
        redis.call('ZCARD', KEY.dead), oldest}
