-- Settle an attempt. Success deletes the batch (from any attempt: it was delivered) and counts
-- it; otherwise only the current attempt counts: a permanent failure or the last attempt makes
-- the batch dead, anything else queues the next attempt with `deadline` (the time after which
-- the sweep publishes it again should the retry message be lost).
-- KEYS: 1-6 the batch's keys, 7 global due zset
-- ARGV: 1 name, 2 batch id, 3 attempt, 4 now_ms, 5 verdict (succeeded, retry, failed),
--       6 status code ("" without a response), 7 error ("" for none), 8 deadline ms
-- Returns {"sent"}, {"dead"}, {"retry", next attempt}, {"stale", state} or {"gone"}.
--#include _batch_common.lua
local name, id, attempt, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local verdict, status, err = ARGV[5], ARGV[6], ARGV[7]
local meta = load_meta(id)
if not meta then return {'gone'} end
redis.call('HSET', B_CFG, 'last_sent_ms', now, 'last_status_code', status, 'last_error', err)
if verdict == 'succeeded' then
  redis.call('HDEL', B_BODIES, id)
  redis.call('HDEL', B_META, id)
  redis.call('ZREM', B_TAKEN, id)
  redis.call('ZREM', B_DEAD, id)
  redis.call('HINCRBY', B_CFG, 'sent_batches', 1)
  redis.call('HINCRBY', B_CFG, 'sent_records', meta.records)
  update_due(name)
  return {'sent'}
end
if meta.state ~= 'sending' or meta.attempts ~= attempt then return {'stale', meta.state} end
meta.last_status_code = tonumber(status)
meta.error = err
local result
if verdict == 'failed' or meta.attempts >= tonumber(redis.call('HGET', B_CFG, 'max_attempts')) then
  make_dead(id, meta, now)
  result = {'dead'}
else
  meta.state = 'queued'
  save_meta(id, meta)
  redis.call('ZADD', B_TAKEN, tonumber(ARGV[8]), id)
  result = {'retry', meta.attempts + 1}
end
update_due(name)
return result
