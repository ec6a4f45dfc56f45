-- Cancel a request that has not ended.
--#include _request_status.lua
-- KEYS: request (hash), due, inflight, ended
-- ARGV: id, now_ms, channel (notified of the end)
-- Returns {"missing"}, {"ended", status} (too late), {"already"} or {"canceled", previous status,
-- attempts started}.
local id, now = ARG.id, tonumber(ARG.now_ms)
local fields = redis.call('HMGET', KEY.request, 'status', 'attempts')
local status = fields[1]
if not status then return {'missing'} end
if status == 'canceled' then return {'already'} end
if status == 'succeeded' or status == 'failed' then return {'ended', status} end
redis.call('ZREM', KEY.due, id)
end_request(KEY.request, id, status, 'canceled', now, ARG.channel)
return {'canceled', status, tonumber(fields[2])}
