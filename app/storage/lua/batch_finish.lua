-- Settle an attempt. Success deletes the batch (from any attempt: it was delivered) and counts
-- it; otherwise only the current attempt counts: a permanent failure or the last attempt makes
-- the batch dead, anything else queues the next attempt with `deadline` (the time after which
-- the sweep publishes it again should the retry message be lost). Each settled POST is counted in
-- the batch's hash as posts_succeeded, posts_retry or posts_failed (the batch became dead).
--#include _batch_common.lua
-- KEYS: (the batch's and the due zset, see _batch_common.lua),
--       held_batches (the finishing worker's set of held batches)
-- ARGV: name, id (the batch's), attempt, now_ms, verdict (succeeded, retry, failed),
--       status_code ("" without a response), error ("" for none), deadline_ms, worker (the finishing one)
-- Returns {"sent"}, {"dead"}, {"retry", next attempt}, {"stale", state} or {"gone"}.
local name, id, attempt, now = ARG.name, ARG.id, tonumber(ARG.attempt), tonumber(ARG.now_ms)
local verdict, status, err = ARG.verdict, ARG.status_code, ARG.error
local meta = load_meta(id)
if not meta then return {'gone'} end
if meta.holder == ARG.worker then
  meta.holder = nil
  redis.call('SREM', KEY.held_batches, name .. '\t' .. id)
end
redis.call('HSET', B_CFG, 'last_sent_ms', now, 'last_status_code', status, 'last_error', err)
if verdict == 'succeeded' then
  redis.call('HDEL', B_BODIES, id)
  redis.call('HDEL', B_META, id)
  redis.call('ZREM', B_TAKEN, id)
  redis.call('ZREM', B_DEAD, id)
  redis.call('HINCRBY', B_CFG, 'sent_batches', 1)
  redis.call('HINCRBY', B_CFG, 'sent_records', meta.records)
  redis.call('HINCRBY', B_CFG, 'posts_succeeded', 1)
  update_due(name)
  return {'sent'}
end
if meta.state ~= 'sending' or meta.attempts ~= attempt then return {'stale', meta.state} end
meta.last_status_code = tonumber(status)
meta.error = err
local result
if verdict == 'failed' or meta.attempts >= tonumber(redis.call('HGET', B_CFG, 'max_attempts')) then
  make_dead(id, meta, now)
  redis.call('HINCRBY', B_CFG, 'posts_failed', 1)
  result = {'dead'}
else
  meta.state = 'queued'
  save_meta(id, meta)
  redis.call('ZADD', B_TAKEN, tonumber(ARG.deadline_ms), id)
  redis.call('HINCRBY', B_CFG, 'posts_retry', 1)
  result = {'retry', meta.attempts + 1}
end
update_due(name)
return result
