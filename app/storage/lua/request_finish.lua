-- Record the outcome of a running attempt and decide what comes next, in one step.
-- KEYS: 1-7 status indexes, 8 request hash, 9 attempts list, 10 response key, 11 due zset,
--       12 inflight zset, 13 ended zset
-- ARGV: 1 id, 2 attempt, 3 now_ms, 4 outcome ("succeeded", "failed" or "retry"),
--       5 next_due_ms (retry), 6 horizon_end_ms, 7 publish_grace_ms, 8 attempt JSON,
--       9 response JSON, 10 last_error ("" for none), 11 notify channel
-- "retry" turns into "failed" here when the attempt limit is used up.
-- Returns {"publish", next_due_ms} (caller publishes the next attempt now), {"scheduled"},
-- {"ended", final status}, {"canceled"} (canceled while running; recorded only) or {"stale"}.
--#include _request_status.lua
local id, attempt, now, outcome = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local fields = redis.call('HMGET', KEYS[8], 'status', 'attempts', 'attempt_limit')
local status, attempts = fields[1], tonumber(fields[2])
if attempts ~= attempt or (status ~= 'running' and status ~= 'canceled') then
  return {'stale'}
end
redis.call('RPUSH', KEYS[9], ARGV[8])
redis.call('SET', KEYS[10], ARGV[9])
redis.call('HSET', KEYS[8], 'last_error', ARGV[10])
if status == 'canceled' then return {'canceled'} end
if outcome == 'retry' and attempt >= tonumber(fields[3]) then outcome = 'failed' end
if outcome == 'retry' then
  local next_due = tonumber(ARGV[5])
  redis.call('HSET', KEYS[8], 'next_attempt_ms', next_due)
  if next_due <= tonumber(ARGV[6]) then
    set_status(KEYS[8], id, status, 'queued')
    redis.call('ZADD', KEYS[12], next_due + tonumber(ARGV[7]), id)
    return {'publish', next_due}
  end
  set_status(KEYS[8], id, status, 'retrying')
  redis.call('ZREM', KEYS[12], id)
  redis.call('ZADD', KEYS[11], next_due, id)
  return {'scheduled'}
end
end_request(KEYS[8], id, status, outcome, now, KEYS[12], KEYS[13], ARGV[11])
return {'ended', outcome}
