-- A worker received a task message: record the attempts it now holds (they wait in its memory
-- for their eta, or for a free process), so that if it dies they are handed to another worker
-- at once. Only an attempt that is still the request's next one is held.
-- KEYS: held (the worker's set of held request ids), ...requests (one request hash per item)
-- ARGV: worker (its name), now_ms, ...items (pairs of id, attempt, in the order of the request keys)
-- Returns the number of attempts held.
local held, items = 0, ARG.items
for i, req in ipairs(KEY.requests) do
  local id, attempt = items[2 * i - 1], tonumber(items[2 * i])
  local fields = redis.call('HMGET', req, 'status', 'attempts')
  if (fields[1] == 'queued' or fields[1] == 'retrying') and tonumber(fields[2]) + 1 == attempt then
    redis.call('HSET', req, 'holder', ARG.worker, 'held_ms', ARG.now_ms)
    redis.call('SADD', KEY.held, id)
    held = held + 1
  end
end
return held
