-- Included by the request scripts (storage/client.py expands `--#include`).
-- KEYS[1..7] are always the per-status index sets, in the order of keys.REQUEST_STATUSES.
local STATUS_SLOT = {scheduled = 1, queued = 2, running = 3, retrying = 4,
                     succeeded = 5, failed = 6, canceled = 7}

local function set_status(req_key, id, old, new)
  if old then redis.call('ZREM', KEYS[STATUS_SLOT[old]], id) end
  redis.call('ZADD', KEYS[STATUS_SLOT[new]], 0, id)
  redis.call('HSET', req_key, 'status', new)
end

-- Marks a request ended: out of the schedule, into the expiry index, long polls woken.
local function end_request(req_key, id, old, new, now, inflight, ended, channel)
  set_status(req_key, id, old, new)
  redis.call('ZREM', inflight, id)
  redis.call('ZADD', ended, now, id)
  redis.call('HSET', req_key, 'ended_ms', now, 'next_attempt_ms', '')
  redis.call('PUBLISH', channel, new)
end
