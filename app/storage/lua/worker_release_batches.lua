-- A worker lost task messages of batches without starting them (its broker connection dropped,
-- or the task failed): it no longer holds those batches, and each is made due now, so beat's
-- next flush publishes it again instead of waiting for the hold to go stale. One it is sending
-- ("sending") stays held: its attempt goes on.
-- KEYS: held_batches (the worker's set), due (the global due zset),
--       ...batches (two per item: the batch's meta hash and taken zset, in ARGV's order)
-- ARGV: worker (its name), now_ms, ...items (pairs of batch name, batch id)
-- Returns the number of batches released.
local now, items, released = tonumber(ARG.now_ms), ARG.items, 0
for i = 1, #items, 2 do
  local name, id = items[i], items[i + 1]
  local meta_key, taken_key = KEY.batches[i], KEY.batches[i + 1]
  local raw = redis.call('HGET', meta_key, id)
  local meta = raw and cjson.decode(raw)
  if not meta or meta.holder ~= ARG.worker or meta.state ~= 'sending' then
    -- First a write that frees memory: in a full Redis the script's later writes are allowed.
    redis.call('SREM', KEY.held_batches, name .. '\t' .. id)
  end
  if meta and meta.holder == ARG.worker and meta.state == 'queued' then
    meta.holder = nil
    meta.held_ms = nil
    redis.call('HSET', meta_key, id, cjson.encode(meta))
    if redis.call('ZSCORE', taken_key, id) then
      redis.call('ZADD', taken_key, now, id)
      redis.call('ZADD', KEY.due, now, name)
    end
    released = released + 1
  end
end
return released
