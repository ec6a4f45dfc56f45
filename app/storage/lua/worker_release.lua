-- A worker's task message ended without starting some of its attempts (the task failed, say on a
-- full Redis): the worker no longer holds them, so the relay publishes them again after the
-- publish grace instead of waiting on a live worker. Only deletes: allowed in a full Redis too.
-- KEYS: held (the worker's set), ...requests (one request hash per id, in ARGV's order)
-- ARGV: worker (its name), ...ids
-- Returns how many were released.
local released = 0
for i, id in ipairs(ARG.ids) do
  local req = KEY.requests[i]
  local fields = redis.call('HMGET', req, 'holder', 'status')
  if fields[1] == ARG.worker and fields[2] ~= 'running' then
    redis.call('HDEL', req, 'holder', 'held_ms')
    redis.call('SREM', KEY.held, id)
    released = released + 1
  end
end
return released
