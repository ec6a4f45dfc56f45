-- Included by the scripts that add records (batch_add.lua, schedule_fire_batch.lua), after
-- _batch_common.lua: the append itself, described in batch_add.lua.

-- Appends `records` (JSON texts, in arrival order); returns {"missing"}, {"too_large", index,
-- max_bytes} (nothing was written) or {"added", epoch, number of the first record, taken ids...}.
local function add_records(name, now, grace, records)
  local cfg = redis.call('HMGET', B_CFG, 'max_records', 'max_bytes', 'epoch', 'pending_bytes', 'taken_seq')
  if not cfg[1] then return {'missing'} end
  local max_records, max_bytes = tonumber(cfg[1]), tonumber(cfg[2])
  for i, record in ipairs(records) do
    if #record + 2 > max_bytes then return {'too_large', i, max_bytes} end
  end
  if not cfg[5] then count_taken() end
  -- The first write may grow memory, so that Redis refuses the whole call at maxmemory (it checks
  -- only before a script's first write): a call that fills a batch would otherwise start with the
  -- DEL of take_pending and be let through.
  local added = #records
  local out = {'added', cfg[3], redis.call('HINCRBY', B_CFG, 'record_seq', added) - added + 1}
  local count = redis.call('LLEN', B_PENDING)
  local bytes = tonumber(cfg[4]) or 0
  local fresh = {}
  for _, record in ipairs(records) do
    if count > 0 and bytes + #record + count + 2 > max_bytes then
      out[#out + 1] = take_pending(fresh, now, grace)
      fresh, count, bytes = {}, 0, 0
    end
    fresh[#fresh + 1] = record
    count, bytes = count + 1, bytes + #record
    if count >= max_records or bytes + count + 1 >= max_bytes then
      out[#out + 1] = take_pending(fresh, now, grace)
      fresh, count, bytes = {}, 0, 0
    end
  end
  if #fresh > 0 then
    push_pending(fresh)
    if count == #fresh then redis.call('HSET', B_CFG, 'oldest_ms', now) end
  end
  redis.call('HSET', B_CFG, 'pending_bytes', bytes)
  update_due(name)
  return out
end
