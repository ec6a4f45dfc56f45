-- Cancel a request that has not ended.
-- KEYS: 1-7 status indexes, 8 request hash, 9 due zset, 10 inflight zset, 11 ended zset
-- ARGV: 1 id, 2 now_ms, 3 notify channel
-- Returns {"missing"}, {"ended", status} (too late), {"already"} or {"canceled", previous status,
-- attempts started}.
--#include _request_status.lua
local id, now = ARGV[1], tonumber(ARGV[2])
local fields = redis.call('HMGET', KEYS[8], 'status', 'attempts')
local status = fields[1]
if not status then return {'missing'} end
if status == 'canceled' then return {'already'} end
if status == 'succeeded' or status == 'failed' then return {'ended', status} end
redis.call('ZREM', KEYS[9], id)
end_request(KEYS[8], id, status, 'canceled', now, KEYS[10], KEYS[11], ARGV[3])
return {'canceled', status, tonumber(fields[2])}
