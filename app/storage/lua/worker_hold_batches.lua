-- A worker received a task message of batches: record the attempts it now holds (see
-- worker_hold.lua), so that if it dies they are sent again at once.
-- KEYS: held_batches (the worker's set of held "<name>\t<batch id>"), meta (the batch's meta hash)
-- ARGV: worker (its name), name (the batch's), now_ms, ...items (pairs of batch id, attempt)
-- Returns the number of attempts held.
local held, items = 0, ARG.items
for i = 1, #items, 2 do
  local id, attempt = items[i], tonumber(items[i + 1])
  local raw = redis.call('HGET', KEY.meta, id)
  if raw then
    local meta = cjson.decode(raw)
    if meta.state == 'queued' and meta.attempts + 1 == attempt then
      meta.holder = ARG.worker
      meta.held_ms = tonumber(ARG.now_ms)
      redis.call('HSET', KEY.meta, id, cjson.encode(meta))
      redis.call('SADD', KEY.held_batches, ARG.name .. '\t' .. id)
      held = held + 1
    end
  end
end
return held
