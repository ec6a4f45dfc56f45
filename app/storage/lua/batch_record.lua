-- A record's receipt, read at one instant (only reads; a script for the reason batch_load.lua
-- gives). Record `number` of the batch's `epoch` is pending when no batch has taken it yet, else
-- it belongs to the batch whose first record is the greatest one not above it (receipts), if
-- that batch holds that many records: sending while taken, dead, or sent until its receipt expires.
--#include _batch_common.lua
-- KEYS: (the batch's and the due zset, see _batch_common.lua)
-- ARGV: epoch, number (of the record, from 1), now_ms
-- Returns {"missing"} (no such batch), {"unknown"} (no such record, or its receipt expired),
-- {"pending"}, {"sending" or "dead", batch id, last status code or ""} or
-- {"sent", batch id, sent_ms, status code}.
local number, now = tonumber(ARG.number), tonumber(ARG.now_ms)
local cfg = redis.call('HMGET', B_CFG, 'epoch', 'record_seq', 'taken_seq')
if not cfg[1] then return {'missing'} end
if cfg[1] ~= ARG.epoch or number < 1 or number > tonumber(cfg[2]) then return {'unknown'} end
local taken = tonumber(cfg[3]) or (tonumber(cfg[2]) - redis.call('LLEN', B_PENDING))
if number > taken then return {'pending'} end
local found = redis.call('ZREVRANGEBYSCORE', B_RECEIPTS, number, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #found == 0 then return {'unknown'} end
local id, first = found[1], tonumber(found[2])
local meta = load_meta(id)
if meta then
  if number >= first + meta.records then return {'unknown'} end
  return {meta.state == 'dead' and 'dead' or 'sending', id, meta.last_status_code or ''}
end
local sent = redis.call('HGET', B_SENT, id)
local expires = tonumber(redis.call('ZSCORE', B_SENT_EXPIRY, id))
if not sent or not expires or expires <= now then return {'unknown'} end
local records, sent_ms, status = string.match(sent, '^(%d+) (%d+) (%d*)$')
if not records or number >= first + tonumber(records) then return {'unknown'} end
return {'sent', id, sent_ms, status}
