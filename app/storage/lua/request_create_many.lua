-- Create many deferred requests at once (the batch route): for each, what request_create.lua
-- writes without an idempotency key. One script call, so the batch is stored all at once.
-- KEYS: 1-7 status indexes, 8 due zset, 9 inflight zset, 10 listing index, 11.. one request hash per item
-- ARGV: 1 now_ms, 2 horizon_end_ms, 3 publish_grace_ms, then 5 per item: id, due_ms, spec JSON,
--       attempt_limit, timeout_ms
-- Returns the status of each item in order: "queued" (publish it now) or "scheduled".
--#include _request_status.lua
local now, horizon_end, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local statuses = {}
for i = 0, (#ARGV - 3) / 5 - 1 do
  local a = 4 + i * 5
  local id, due, req = ARGV[a], tonumber(ARGV[a + 1]), KEYS[11 + i]
  local status = 'scheduled'
  if due <= horizon_end then status = 'queued' end
  redis.call('HSET', req, 'spec', ARGV[a + 2], 'created_ms', now, 'due_ms', due, 'next_attempt_ms', due,
             'attempts', 0, 'attempt_limit', ARGV[a + 3], 'timeout_ms', ARGV[a + 4])
  set_status(req, id, nil, status)
  redis.call('ZADD', KEYS[10], 0, id)
  if status == 'queued' then
    redis.call('ZADD', KEYS[9], due + grace, id)
  else
    redis.call('ZADD', KEYS[8], due, id)
  end
  statuses[#statuses + 1] = status
end
return statuses
