-- Claim an attempt for execution: only a "queued" request whose next attempt is this one starts,
-- so duplicated broker deliveries and stale publishes are dropped here.
-- KEYS: 1-7 status indexes, 8 request hash, 9 inflight zset
-- ARGV: 1 id, 2 attempt, 3 now_ms, 4 lease margin ms
-- Returns {"started", spec JSON, next_attempt_ms} or {"skip", status or ""}.
--#include _request_status.lua
local id, attempt, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local fields = redis.call('HMGET', KEYS[8], 'status', 'attempts', 'spec', 'timeout_ms', 'next_attempt_ms')
local status = fields[1]
if status ~= 'queued' or tonumber(fields[2]) + 1 ~= attempt then
  return {'skip', status or ''}
end
redis.call('HSET', KEYS[8], 'attempts', attempt, 'started_ms', now)
set_status(KEYS[8], id, status, 'running')
redis.call('ZADD', KEYS[9], now + tonumber(fields[4]) + tonumber(ARGV[4]), id)
return {'started', fields[3], fields[5]}
