-- Settle an attempt the endpoint answered 413 (too large) for a batch of several records: the
-- batch is replaced by its two halves, in order, each a new batch with its own id and a fresh
-- budget of attempts. The first is queued (the caller publishes its attempt 1); the second is
-- parked behind it and queued only once the first has left (sent, dead, or split again: then
-- behind the last of its halves), so the records still reach the endpoint in order. The POST
-- counts as posts_retry: its records will be sent again.
-- The halves are cut where the caller says: the byte `at` of the stored body must be the comma
-- after record `first_records` (the worker finds it in the body it sent, and Redis need not
-- parse JSON). A cut that does not fall on a comma makes the batch dead instead, as a 413 would
-- (a guard against a caller's bug, not a proof: a comma may be inside a record).
--#include _batch_common.lua
-- KEYS: (the batch's and the due zset, see _batch_common.lua),
--       held_batches (the finishing worker's set of held batches)
-- ARGV: name, id (the batch's), attempt, now_ms, grace_ms (publish grace), worker (the finishing one),
--       at (1-based byte position in the body of the comma ending the first half),
--       first_records (records in the first half)
-- Returns {"split", first half's id, second half's id}, {"dead", released ids...} (see
-- batch_finish.lua), {"stale", state} or {"gone"}.
local name, id, attempt, now, grace = ARG.name, ARG.id, tonumber(ARG.attempt), tonumber(ARG.now_ms),
  tonumber(ARG.grace_ms)
local at, first_records = tonumber(ARG.at), tonumber(ARG.first_records)
local meta = load_meta(id)
if not meta then return {'gone'} end
drop_hold(meta, name, id)
redis.call('HSET', B_CFG, 'last_sent_ms', now, 'last_status_code', 413, 'last_error', 'HTTP 413')
if meta.state ~= 'sending' or meta.attempts ~= attempt then return {'stale', meta.state} end
local body = redis.call('HGET', B_BODIES, id)
meta.last_status_code = 413
if first_records < 1 or first_records >= meta.records or string.sub(body, at, at) ~= ',' then
  meta.error = 'HTTP 413 (the batch could not be split)'
  local released = make_dead(id, meta, now, grace)
  redis.call('HINCRBY', B_CFG, 'posts_failed', 1)
  update_due(name)
  return {'dead', released}
end
redis.call('HDEL', B_BODIES, id)
redis.call('HDEL', B_META, id)
redis.call('ZREM', B_TAKEN, id)
redis.call('ZREM', B_RECEIPTS, id)
local first = new_batch(string.sub(body, 1, at - 1) .. ']', first_records, meta.first, now, grace, nil)
local second = new_batch('[' .. string.sub(body, at + 1), meta.records - first_records,
                         meta.first and meta.first + first_records, now, grace, first)
local head = load_meta(first)
head.next = second
save_meta(first, head)
if meta.next then
  -- The batch that waited for this one now waits for the second half.
  local tail = load_meta(second)
  tail.next = meta.next
  save_meta(second, tail)
  local waiting = load_meta(meta.next)
  if waiting then
    waiting.after = second
    save_meta(meta.next, waiting)
  end
end
redis.call('HINCRBY', B_CFG, 'posts_retry', 1)
update_due(name)
return {'split', first, second}
