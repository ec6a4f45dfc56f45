-- Acknowledge (delete) messages. With a receipt, only if it is the message's current receipt
-- (it was not received again since); without one ("" in ARGV), whatever state it is in.
-- KEYS: (the queue's, see _queue_common.lua)
-- ARGV: ...items (pairs of id, receipt; "" = none)
-- Returns {"missing"} when there is no such queue, else {"ok", results}: one letter per pair,
-- "a" acked, "n" not found (unknown or already acknowledged), "s" stale (received again since).
--#include _queue_common.lua
if redis.call('EXISTS', Q_CFG) == 0 then return {'missing'} end
local items = ARG.items
local ids = {}
for i = 1, #items, 2 do ids[#ids + 1] = items[i] end
if #ids == 0 then return {'ok', ''} end
local metas = redis.call('HMGET', Q_META, unpack(ids))
local out, acked, seen = {}, {}, {}
for i = 1, #items, 2 do
  local id, receipt = items[i], items[i + 1]
  local raw = metas[(i + 1) / 2]
  if not raw or seen[id] then
    out[#out + 1] = 'n'
  else
    local _, _, _, current = meta_parse(raw)
    if receipt ~= '' and receipt ~= current then
      out[#out + 1] = 's'
    else
      out[#out + 1] = 'a'
      acked[#acked + 1] = id
      seen[id] = true
    end
  end
end
if #acked > 0 then forget(acked) end
return {'ok', table.concat(out)}
