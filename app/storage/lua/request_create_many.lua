-- Create many deferred requests at once (the batch route): for each, what request_create.lua
-- writes without an idempotency key. One script call, so the batch is stored all at once.
--#include _request_status.lua
-- KEYS: due, inflight, all (listing index), ...requests (one request hash per item)
-- ARGV: now_ms, horizon_end_ms, grace_ms (publish grace),
--       ...items (5 per item: id, due_ms, spec JSON, attempt_limit, timeout_ms)
-- Returns the status of each item in order: "queued" (publish it now) or "scheduled".
local now, horizon_end, grace = tonumber(ARG.now_ms), tonumber(ARG.horizon_end_ms), tonumber(ARG.grace_ms)
local items = ARG.items
local statuses = {}
for i = 1, #KEY.requests do
  local a = (i - 1) * 5
  local id, due, req = items[a + 1], tonumber(items[a + 2]), KEY.requests[i]
  local status = 'scheduled'
  if due <= horizon_end then status = 'queued' end
  redis.call('HSET', req, 'spec', items[a + 3], 'created_ms', now, 'due_ms', due, 'next_attempt_ms', due,
             'attempts', 0, 'attempt_limit', items[a + 4], 'timeout_ms', items[a + 5])
  set_status(req, id, nil, status)
  redis.call('ZADD', KEY.all, 0, id)
  if status == 'queued' then
    redis.call('ZADD', KEY.inflight, due + grace, id)
  else
    redis.call('ZADD', KEY.due, due, id)
  end
  statuses[#statuses + 1] = status
end
return statuses
