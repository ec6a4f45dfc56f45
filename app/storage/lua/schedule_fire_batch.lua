-- Run a schedule whose target is a batch: claim the tick and append the record (as batch_add.lua
-- does, taking a full batch), in one script.
--#include _batch_common.lua
--#include _batch_add.lua
--#include _schedule_run.lua
-- KEYS: (the batch's and the batches' due zset, see _batch_common.lua)
-- ARGV: batch (its name), grace_ms (publish grace), record (JSON text)
-- Returns {"stale"} (nothing written), {"missing"} or {"too_large", 1, max_bytes} (no record
-- written; a timetable run still uses up its tick and keeps the reason), or {"added", epoch,
-- record number, taken batch ids...} (the caller publishes those).
if not claimed() then return {'stale'} end
local out = add_records(ARG.batch, tonumber(ARG.now_ms), tonumber(ARG.grace_ms), {ARG.record})
if out[1] == 'missing' then
  record_refusal('batch ' .. ARG.batch .. ' is not configured')
elseif out[1] == 'too_large' then
  record_refusal('the record does not fit in a batch of batch ' .. ARG.batch)
else
  record_run(out[2] .. '.' .. out[3])
end
return out
