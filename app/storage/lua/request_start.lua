-- Claim an attempt for execution: only a "queued" request whose next attempt is this one starts,
-- so duplicated broker deliveries and stale publishes are dropped here.
--#include _request_status.lua
-- KEYS: request (hash), inflight
-- ARGV: id, attempt, now_ms, lease_margin_ms (the lease is the request's timeout plus this)
-- Returns {"started", spec JSON, next_attempt_ms} or {"skip", status or ""}.
local id, attempt, now = ARG.id, tonumber(ARG.attempt), tonumber(ARG.now_ms)
local fields = redis.call('HMGET', KEY.request, 'status', 'attempts', 'spec', 'timeout_ms', 'next_attempt_ms')
local status = fields[1]
if status ~= 'queued' or tonumber(fields[2]) + 1 ~= attempt then
  return {'skip', status or ''}
end
redis.call('HSET', KEY.request, 'attempts', attempt, 'started_ms', now)
set_status(KEY.request, id, status, 'running')
redis.call('ZADD', KEY.inflight, now + tonumber(fields[4]) + tonumber(ARG.lease_margin_ms), id)
return {'started', fields[3], fields[5]}
