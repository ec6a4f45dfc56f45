-- Included by the request scripts: a request's status and the per-status listing indexes.
-- KEYS: status_scheduled, status_queued, status_running, status_retrying, status_succeeded,
--       status_failed, status_canceled (each status's index, keys.requests_by_status)

local function set_status(req_key, id, old, new)
  if old then redis.call('ZREM', KEY['status_' .. old], id) end
  redis.call('ZADD', KEY['status_' .. new], 0, id)
  redis.call('HSET', req_key, 'status', new)
end

-- Marks a request ended: out of the schedule, into the expiry index, long polls woken. Only for
-- scripts whose KEYS name the `inflight` and `ended` sets too.
local function end_request(req_key, id, old, new, now, channel)
  set_status(req_key, id, old, new)
  redis.call('ZREM', KEY.inflight, id)
  redis.call('ZADD', KEY.ended, now, id)
  redis.call('HSET', req_key, 'ended_ms', now, 'next_attempt_ms', '')
  redis.call('PUBLISH', channel, new)
end
