-- Claim an attempt for execution: only a request whose next attempt is this one, and which was
-- handed to the workers ("queued", or "retrying" and in flight), starts; so duplicated broker
-- deliveries and stale publishes are dropped here. The worker that starts it holds it.
-- An attempt that starts counts its lateness (start minus due time) in the lateness histogram;
-- one claimed before its due time waits for it before sending, so it counts as 0.
--#include _request_status.lua
--#include _stats.lua
-- KEYS: request (hash), inflight, held (the starting worker's set of held ids),
--       lateness (histogram hash)
-- ARGV: id, attempt, now_ms, lease_margin_ms (the lease is the request's timeout plus this),
--       worker (the starting worker's name), lateness_bounds (bucket bounds in ms)
-- Returns {"started", spec JSON, next_attempt_ms} or {"skip", status or ""}.
local id, attempt, now = ARG.id, tonumber(ARG.attempt), tonumber(ARG.now_ms)
local fields = redis.call('HMGET', KEY.request, 'status', 'attempts', 'spec', 'timeout_ms', 'next_attempt_ms',
                          'holder')
local status = fields[1]
local handed = status == 'queued' or (status == 'retrying' and redis.call('ZSCORE', KEY.inflight, id))
if not handed or tonumber(fields[2]) + 1 ~= attempt then
  -- A duplicate or stale message: this worker holds nothing of it, unless it runs the attempt.
  if not (status == 'running' and fields[6] == ARG.worker) then
    redis.call('SREM', KEY.held, id)
    if fields[6] == ARG.worker then redis.call('HDEL', KEY.request, 'holder') end
  end
  return {'skip', status or ''}
end
redis.call('HSET', KEY.request, 'attempts', attempt, 'started_ms', now, 'holder', ARG.worker, 'held_ms', now)
redis.call('SADD', KEY.held, id)
set_status(KEY.request, id, status, 'running')
redis.call('ZADD', KEY.inflight, now + tonumber(fields[4]) + tonumber(ARG.lease_margin_ms), id)
observe_ms(KEY.lateness, math.max(0, now - (tonumber(fields[5]) or now)), ARG.lateness_bounds)
return {'started', fields[3], fields[5]}
