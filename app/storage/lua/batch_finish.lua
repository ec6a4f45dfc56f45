-- Settle an attempt. Success deletes the batch (from any attempt: it was delivered), counts it
-- and keeps its receipt (how many records, when, the status code) for `retention`; otherwise only
-- the current attempt counts: a permanent failure or the last attempt makes the batch dead,
-- anything else queues the next attempt with `deadline` (the time after which the sweep
-- publishes it again should the retry message be lost). Each settled POST is counted in the
-- batch's hash as posts_succeeded, posts_retry or posts_failed (the batch became dead). A batch
-- that leaves (sent or dead) releases the split half parked behind it, if any.
--#include _batch_common.lua
-- KEYS: (the batch's and the due zset, see _batch_common.lua),
--       held_batches (the finishing worker's set of held batches)
-- ARGV: name, id (the batch's), attempt, now_ms, verdict (succeeded, retry, failed),
--       status_code ("" without a response), error ("" for none), deadline_ms, worker (the finishing one),
--       grace_ms (publish grace, for a released batch), retention_ms (how long a sent batch's receipt is kept)
-- Returns {"sent", released ids...}, {"dead", released ids...}, {"retry", next attempt},
-- {"stale", state} or {"gone"}; the caller publishes attempt 1 of each released batch.
local name, id, attempt, now = ARG.name, ARG.id, tonumber(ARG.attempt), tonumber(ARG.now_ms)
local verdict, status, err, grace = ARG.verdict, ARG.status_code, ARG.error, tonumber(ARG.grace_ms)
local meta = load_meta(id)
if not meta then return {'gone'} end
drop_hold(meta, name, id)
redis.call('HSET', B_CFG, 'last_sent_ms', now, 'last_status_code', status, 'last_error', err)
if verdict == 'succeeded' then
  local released = release_next(meta, now, grace)
  redis.call('HDEL', B_BODIES, id)
  redis.call('HDEL', B_META, id)
  redis.call('ZREM', B_TAKEN, id)
  redis.call('ZREM', B_DEAD, id)
  if meta.first then
    redis.call('HSET', B_SENT, id, meta.records .. ' ' .. now .. ' ' .. status)
    redis.call('ZADD', B_SENT_EXPIRY, now + tonumber(ARG.retention_ms), id)
  end
  redis.call('HINCRBY', B_CFG, 'sent_batches', 1)
  redis.call('HINCRBY', B_CFG, 'sent_records', meta.records)
  redis.call('HINCRBY', B_CFG, 'posts_succeeded', 1)
  update_due(name)
  return {'sent', released}
end
if meta.state ~= 'sending' or meta.attempts ~= attempt then return {'stale', meta.state} end
meta.last_status_code = tonumber(status)
meta.error = err
local result
if verdict == 'failed' or meta.attempts >= tonumber(redis.call('HGET', B_CFG, 'max_attempts')) then
  result = {'dead', make_dead(id, meta, now, grace)}
  redis.call('HINCRBY', B_CFG, 'posts_failed', 1)
else
  meta.state = 'queued'
  save_meta(id, meta)
  redis.call('ZADD', B_TAKEN, tonumber(ARG.deadline_ms), id)
  redis.call('HINCRBY', B_CFG, 'posts_retry', 1)
  result = {'retry', meta.attempts + 1}
end
update_due(name)
return result
