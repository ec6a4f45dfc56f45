-- Append records to a batch's pending list. Whenever max_records or max_bytes is reached, the
-- pending records are taken as a batch in the same script, so the call that filled a batch is
-- the one that sends it (the caller publishes the returned ids).
-- A batch's body is '[' .. records joined by ',' .. ']', so n records of S bytes in all make
-- S + n + 1 bytes; a record joins the pending ones only if the body stays within max_bytes.
--#include _batch_common.lua
--#include _batch_add.lua
-- KEYS: (the batch's and the due zset, see _batch_common.lua)
-- ARGV: name, now_ms, grace_ms (publish grace), records (the JSON texts, in arrival order, joined
--       by NUL characters, which no JSON text contains: one argument is far cheaper than many)
-- Returns {"missing"} if the batch is not configured; {"too_large", index, max_bytes} if a
-- record (1-based) cannot fit in a batch even alone (then nothing is stored); otherwise
-- {"added", epoch, number of the first record, taken batch ids...}.
local records, blob, pos = {}, ARG.records, 1
while true do
  local stop = string.find(blob, '\0', pos, true)
  records[#records + 1] = string.sub(blob, pos, (stop or 0) - 1)
  if not stop then break end
  pos = stop + 1
end
return add_records(ARG.name, tonumber(ARG.now_ms), tonumber(ARG.grace_ms), records)
