-- Create or update a batch's configuration. Mode "replace" (PUT) sets every field; mode "env"
-- (the batch configured from WEBHOOK_*) sets endpoint, max_records and interval and keeps the
-- other fields, or gives them the defaults passed in when the batch is new. If the new limits
-- are below what is pending, the full batches are taken at once (the caller publishes them);
-- what remains keeps its oldest_ms.
-- KEYS: 1-6 the batch's keys, 7 global due zset, 8 names set
-- ARGV: 1 name, 2 now_ms, 3 publish grace ms, 4 mode, 5 epoch for a new batch, 6 endpoint,
--       7 max_records, 8 max_bytes, 9 interval_ms, 10 headers JSON, 11 max_attempts,
--       12 backoff_base_ms, 13 timeout_ms
-- Returns {created (1 or 0), taken batch ids...}.
--#include _batch_common.lua
local name, now, grace, mode = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local created = redis.call('HSETNX', B_CFG, 'epoch', ARGV[5])
if created == 1 then
  redis.call('HSET', B_CFG, 'created_ms', now, 'pending_bytes', 0, 'batch_seq', 0, 'record_seq', 0,
             'sent_batches', 0, 'sent_records', 0)
end
redis.call('SADD', KEYS[8], name)
redis.call('HSET', B_CFG, 'updated_ms', now, 'endpoint', ARGV[6], 'max_records', ARGV[7], 'interval_ms', ARGV[9])
local others = {max_bytes = ARGV[8], headers = ARGV[10], max_attempts = ARGV[11],
                backoff_base_ms = ARGV[12], timeout_ms = ARGV[13]}
for field, value in pairs(others) do
  if mode == 'replace' then
    redis.call('HSET', B_CFG, field, value)
  else
    redis.call('HSETNX', B_CFG, field, value)
  end
end
local out = {created}
local limits = redis.call('HMGET', B_CFG, 'max_records', 'max_bytes')
local max_records, max_bytes = tonumber(limits[1]), tonumber(limits[2])
while true do
  local count = redis.call('LLEN', B_PENDING)
  local bytes = tonumber(redis.call('HGET', B_CFG, 'pending_bytes')) or 0
  if count == 0 or (count < max_records and bytes + count + 1 < max_bytes) then break end
  local head = redis.call('LRANGE', B_PENDING, 0, max_records - 1)
  local records, size = {}, 0
  for _, record in ipairs(head) do
    -- A record bigger than the new max_bytes still leaves, alone: records are never dropped.
    if #records > 0 and size + #record + #records + 2 > max_bytes then break end
    records[#records + 1] = record
    size = size + #record
  end
  redis.call('LTRIM', B_PENDING, #records, -1)
  redis.call('HSET', B_CFG, 'pending_bytes', bytes - size)
  if #records == count then redis.call('HDEL', B_CFG, 'oldest_ms') end
  out[#out + 1] = store_batch(records, now, grace)
end
update_due(name)
return out
