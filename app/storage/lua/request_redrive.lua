-- Queue a failed or canceled request again, now, with a fresh budget of attempts.
-- KEYS: 1-7 status indexes, 8 request hash, 9 inflight zset, 10 ended zset
-- ARGV: 1 id, 2 now_ms, 3 publish_grace_ms, 4 max_attempts
-- Returns {"missing"}, {"conflict", status} or {"publish", attempt}.
--#include _request_status.lua
local id, now = ARGV[1], tonumber(ARGV[2])
local fields = redis.call('HMGET', KEYS[8], 'status', 'attempts')
local status, attempts = fields[1], tonumber(fields[2])
if not status then return {'missing'} end
if status ~= 'failed' and status ~= 'canceled' then return {'conflict', status} end
set_status(KEYS[8], id, status, 'queued')
redis.call('HSET', KEYS[8], 'attempt_limit', attempts + tonumber(ARGV[4]), 'next_attempt_ms', now,
           'ended_ms', '')
redis.call('ZREM', KEYS[10], id)
redis.call('ZADD', KEYS[9], now + tonumber(ARGV[3]), id)
return {'publish', attempts + 1}
