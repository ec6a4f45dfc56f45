-- Append records to a batch's pending list. Whenever max_records or max_bytes is reached, the
-- pending records are taken as a batch in the same script, so the call that filled a batch is
-- the one that sends it (the caller publishes the returned ids).
-- A batch's body is '[' .. records joined by ',' .. ']', so n records of S bytes in all make
-- S + n + 1 bytes; a record joins the pending ones only if the body stays within max_bytes.
--#include _batch_common.lua
-- KEYS: (the batch's and the due zset, see _batch_common.lua)
-- ARGV: name, now_ms, grace_ms (publish grace), records (the JSON texts, in arrival order, joined
--       by NUL characters, which no JSON text contains: one argument is far cheaper than many)
-- Returns {"missing"} if the batch is not configured; {"too_large", index, max_bytes} if a
-- record (1-based) cannot fit in a batch even alone (then nothing is stored); otherwise
-- {"added", epoch, number of the first record, taken batch ids...}.
local name, now, grace = ARG.name, tonumber(ARG.now_ms), tonumber(ARG.grace_ms)
local cfg = redis.call('HMGET', B_CFG, 'max_records', 'max_bytes', 'epoch', 'pending_bytes')
if not cfg[1] then return {'missing'} end
local max_records, max_bytes = tonumber(cfg[1]), tonumber(cfg[2])
local records, blob, pos = {}, ARG.records, 1
while true do
  local stop = string.find(blob, '\0', pos, true)
  records[#records + 1] = string.sub(blob, pos, (stop or 0) - 1)
  if not stop then break end
  pos = stop + 1
end
for i, record in ipairs(records) do
  if #record + 2 > max_bytes then return {'too_large', i, max_bytes} end
end
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
