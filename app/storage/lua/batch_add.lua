-- Append records to a batch's pending list. Whenever max_records or max_bytes is reached, the
-- pending records are taken as a batch in the same script, so the call that filled a batch is
-- the one that sends it (the caller publishes the returned ids).
-- A batch's body is '[' .. records joined by ',' .. ']', so n records of S bytes in all make
-- S + n + 1 bytes; a record joins the pending ones only if the body stays within max_bytes.
-- KEYS: 1-6 the batch's keys (keys.batch_keys), 7 global due zset
-- ARGV: 1 name, 2 now_ms, 3 publish grace ms, 4 the records (JSON texts, arrival order) joined by
--       NUL characters, which no JSON text contains (one argument: far cheaper to send than many)
-- Returns {"missing"} if the batch is not configured; {"too_large", index, max_bytes} if a
-- record (1-based) cannot fit in a batch even alone (then nothing is stored); otherwise
-- {"added", epoch, number of the first record, taken batch ids...}.
--#include _batch_common.lua
local name, now, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cfg = redis.call('HMGET', B_CFG, 'max_records', 'max_bytes', 'epoch', 'pending_bytes')
if not cfg[1] then return {'missing'} end
local max_records, max_bytes = tonumber(cfg[1]), tonumber(cfg[2])
local records, blob, pos = {}, ARGV[4], 1
while true do
  local stop = string.find(blob, '\0', pos, true)
  records[#records + 1] = string.sub(blob, pos, (stop or 0) - 1)
  if not stop then break end
  pos = stop + 1
end
for i, record in ipairs(records) do
  if #record + 2 > max_bytes then return {'too_large', i, max_bytes} end
end
local out = {'added', cfg[3], 0}
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
local added = #records
out[3] = redis.call('HINCRBY', B_CFG, 'record_seq', added) - added + 1
update_due(name)
return out
