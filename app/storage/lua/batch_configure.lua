-- Create or update a batch's configuration. Mode "replace" (PUT) sets every field; mode "env"
-- (the batch configured from WEBHOOK_*) sets endpoint, max_records and interval and keeps the
-- other fields, or gives them the defaults passed in when the batch is new. If the new limits
-- are below what is pending, the full batches are taken at once (the caller publishes them);
-- what remains keeps its oldest_ms.
--#include _batch_common.lua
-- KEYS: (the batch's and the due zset, see _batch_common.lua), names (set of batch names)
-- ARGV: name, now_ms, grace_ms (publish grace), mode, epoch (for a new batch), endpoint,
--       max_records, max_bytes, interval_ms, headers (JSON), max_attempts, backoff_base_ms, timeout_ms,
--       token_id (of the token configuring it, "" for none), allowed_hosts (that token's, JSON list)
-- Returns {created (1 or 0), taken batch ids...}.
local name, now, grace, mode = ARG.name, tonumber(ARG.now_ms), tonumber(ARG.grace_ms), ARG.mode
local created = redis.call('HSETNX', B_CFG, 'epoch', ARG.epoch)
if created == 1 then
  redis.call('HSET', B_CFG, 'created_ms', now, 'pending_bytes', 0, 'batch_seq', 0, 'record_seq', 0,
             'taken_seq', 0, 'sent_batches', 0, 'sent_records', 0)
end
count_taken()
redis.call('SADD', KEY.names, name)
redis.call('HSET', B_CFG, 'updated_ms', now, 'endpoint', ARG.endpoint, 'max_records', ARG.max_records,
           'interval_ms', ARG.interval_ms)
local others = {max_bytes = ARG.max_bytes, headers = ARG.headers, max_attempts = ARG.max_attempts,
                backoff_base_ms = ARG.backoff_base_ms, timeout_ms = ARG.timeout_ms,
                token_id = ARG.token_id, allowed_hosts = ARG.allowed_hosts}
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
