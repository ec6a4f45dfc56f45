-- Queue a failed or canceled request again, now, with a fresh budget of attempts.
--#include _request_status.lua
-- KEYS: request (hash), inflight, ended
-- ARGV: id, now_ms, grace_ms (publish grace), max_attempts (the fresh budget)
-- Returns {"missing"}, {"conflict", status} or {"publish", attempt}.
local id, now = ARG.id, tonumber(ARG.now_ms)
local fields = redis.call('HMGET', KEY.request, 'status', 'attempts')
local status, attempts = fields[1], tonumber(fields[2])
if not status then return {'missing'} end
if status ~= 'failed' and status ~= 'canceled' then return {'conflict', status} end
set_status(KEY.request, id, status, 'queued')
redis.call('HSET', KEY.request, 'attempt_limit', attempts + tonumber(ARG.max_attempts), 'next_attempt_ms', now,
           'ended_ms', '')
redis.call('ZREM', KEY.ended, id)
redis.call('ZADD', KEY.inflight, now + tonumber(ARG.grace_ms), id)
return {'publish', attempts + 1}
