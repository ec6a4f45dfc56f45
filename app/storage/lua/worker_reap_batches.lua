-- A worker stopped: every taken batch it held is made due now, so beat's next flush sends it
-- again ("queued": published again) or settles its attempt as lost ("sending"), at once instead
-- of after a publish grace or a lease. Runs before worker_reap.lua, which forgets the worker.
-- KEYS: held_batches (the worker's set), due (the global due zset),
--       ...batches (two per held item: the batch's meta hash and taken zset, in ARGV's order)
-- ARGV: worker (its name), now_ms, ...items (pairs of batch name, batch id)
-- Returns the number of batches made due.
local now, items, due = tonumber(ARG.now_ms), ARG.items, 0
for i = 1, #items, 2 do
  local name, id = items[i], items[i + 1]
  local meta_key, taken_key = KEY.batches[i], KEY.batches[i + 1]
  local raw = redis.call('HGET', meta_key, id)
  if raw and cjson.decode(raw).holder == ARG.worker and redis.call('ZSCORE', taken_key, id) then
    redis.call('ZADD', taken_key, now, id)
    redis.call('ZADD', KEY.due, now, name)
    due = due + 1
  end
end
redis.call('DEL', KEY.held_batches)
return due
