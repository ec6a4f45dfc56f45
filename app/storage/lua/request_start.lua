-- Claim an attempt for execution: only a request whose next attempt is this one, and which was
-- handed to the workers ("queued", or "retrying" and in flight), starts; so duplicated broker
-- deliveries and stale publishes are dropped here. Then its gates (_gates.lua) decide: it starts,
-- waits for the start time its flow's rate reserved (the caller publishes it again for then), or
-- is parked until a slot frees; waiting uses no attempt. The worker that starts it holds it.
-- An attempt that starts counts its lateness (start minus due time) in the lateness histogram;
-- one claimed before its due time waits for it before sending, so it counts as 0.
--#include _request_status.lua
--#include _stats.lua
--#include _gates.lua
-- KEYS: request (hash), due, held (the starting worker's set of held ids),
--       lateness (histogram hash)
-- ARGV: id, attempt, now_ms, worker (the starting worker's name),
--       lateness_bounds (bucket bounds in ms), horizon_end_ms
-- Returns {"started", spec JSON, send_ms}, {"defer", at_ms, "publish"|"scheduled"} (published
-- again now with that eta, or left to the relay), {"parked", gate} or {"skip", status or ""}.
local id, attempt, now = ARG.id, tonumber(ARG.attempt), tonumber(ARG.now_ms)
local fields = redis.call('HMGET', KEY.request, 'status', 'attempts', 'spec', 'timeout_ms', 'next_attempt_ms',
                          'holder', 'parked', 'flow', 'flow_limits', 'dest')
local status = fields[1]
local handed = status == 'queued' or (status == 'retrying' and redis.call('ZSCORE', KEY.inflight, id))
if not handed or fields[7] or tonumber(fields[2]) + 1 ~= attempt then
  -- A duplicate or stale message: this worker holds nothing of it, unless it runs the attempt.
  if not (status == 'running' and fields[6] == ARG.worker) then
    redis.call('SREM', KEY.held, id)
    if fields[6] == ARG.worker then redis.call('HDEL', KEY.request, 'holder') end
  end
  return {'skip', status or ''}
end
local due = tonumber(fields[5]) or now
local gate = admit(KEY.request, id, attempt, now, math.max(now, due), tonumber(fields[4]), fields[8], fields[9],
                   fields[10])
if gate[1] ~= 'go' then
  redis.call('SREM', KEY.held, id)
  redis.call('HDEL', KEY.request, 'holder', 'held_ms')
  if gate[1] == 'park' then return {'parked', gate[2]} end
  local at = gate[2]
  redis.call('HSET', KEY.request, 'next_attempt_ms', at)
  if at <= tonumber(ARG.horizon_end_ms) then
    redis.call('ZADD', KEY.inflight, at + tonumber(ARG.grace_ms), id)
    return {'defer', at, 'publish'}
  end
  redis.call('ZREM', KEY.inflight, id)
  redis.call('ZADD', KEY.due, at, id)
  if status == 'queued' then set_status(KEY.request, id, status, 'scheduled') end
  return {'defer', at, 'scheduled'}
end
redis.call('HSET', KEY.request, 'attempts', attempt, 'started_ms', now, 'holder', ARG.worker, 'held_ms', now)
redis.call('SADD', KEY.held, id)
set_status(KEY.request, id, status, 'running')
redis.call('ZADD', KEY.inflight, now + tonumber(fields[4]) + tonumber(ARG.lease_margin_ms), id)
observe_ms(KEY.lateness, math.max(0, now - due), ARG.lateness_bounds)
return {'started', fields[3], gate[2]}
