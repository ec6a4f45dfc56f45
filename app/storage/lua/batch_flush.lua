-- Beat's work on one batch: take the pending records once the oldest is `interval` old, and
-- handle taken batches whose deadline passed: a "queued" one was published but never claimed
-- (a lost publish or retry message), so it is published again, unless a live worker holds it or
-- the broker still has messages waiting (it is likely among them: it waits on); a "sending" one
-- lost its worker (lease expired): the attempt counts as failed, and the batch is published
-- again or, with no attempts left, becomes dead; a "parked" one (a split's second half) is
-- queued if the batch it waits for is gone or dead (its release was lost), else looked at again
-- later. Then the receipts of sent batches past their retention are deleted.
--#include _batch_common.lua
-- KEYS: (the batch's and the due zset, see _batch_common.lua), workers (zset: name -> last heartbeat)
-- ARGV: name, now_ms, grace_ms (publish grace), limit (most expired batches handled per call),
--       backlog (task messages waiting in the broker), alive_after_ms (a worker whose last
--       heartbeat is older is dead), held_after_ms (a hold taken earlier is stale: the message
--       was dropped without a claim)
-- Returns a flat list {kind, id, attempt, ...}: kind "taken" (attempt 1: newly taken, or a
-- parked batch released), "republish", "lost" (the caller publishes attempt `attempt` of each)
-- or "dead".
local name, now, grace, limit = ARG.name, tonumber(ARG.now_ms), tonumber(ARG.grace_ms), tonumber(ARG.limit)
local cfg = redis.call('HMGET', B_CFG, 'interval_ms', 'oldest_ms', 'max_attempts')
if not cfg[1] then
  redis.call('ZREM', B_DUE, name)
  return {}
end
local out = {}
local function emit(kind, id, attempt)
  out[#out + 1] = kind; out[#out + 1] = id; out[#out + 1] = attempt
end
if cfg[2] and tonumber(cfg[2]) + tonumber(cfg[1]) <= now and redis.call('LLEN', B_PENDING) > 0 then
  count_taken()
  emit('taken', take_pending({}, now, grace), 1)
end
local expired = redis.call('ZRANGEBYSCORE', B_TAKEN, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  local meta = load_meta(id)
  if not meta or meta.state == 'dead' then
    redis.call('ZREM', B_TAKEN, id)
  elseif meta.state == 'queued' then
    redis.call('ZADD', B_TAKEN, now + grace, id)
    local held = meta.holder and (meta.held_ms or 0) > tonumber(ARG.held_after_ms) and
      (tonumber(redis.call('ZSCORE', KEY.workers, meta.holder)) or 0) > tonumber(ARG.alive_after_ms)
    if not held and tonumber(ARG.backlog) == 0 then emit('republish', id, meta.attempts + 1) end
  elseif meta.state == 'parked' then
    local before = load_meta(meta.after)
    if before and before.state ~= 'dead' and before.next == id then
      redis.call('ZADD', B_TAKEN, now + grace, id)
    else
      meta.state, meta.after = 'queued', nil
      save_meta(id, meta)
      redis.call('ZADD', B_TAKEN, now + grace, id)
      emit('taken', id, 1)
    end
  else
    meta.error = 'worker lost during the attempt (lease expired)'
    meta.holder = nil
    meta.last_status_code = nil
    if meta.attempts >= tonumber(cfg[3]) then
      local released = make_dead(id, meta, now, grace)
      emit('dead', id, meta.attempts)
      if released then emit('taken', released, 1) end
    else
      meta.state = 'queued'
      save_meta(id, meta)
      redis.call('ZADD', B_TAKEN, now + grace, id)
      emit('lost', id, meta.attempts + 1)
    end
  end
end
local expired_receipts = redis.call('ZRANGEBYSCORE', B_SENT_EXPIRY, '-inf', now, 'LIMIT', 0, limit)
if #expired_receipts > 0 then
  redis.call('ZREM', B_SENT_EXPIRY, unpack(expired_receipts))
  redis.call('ZREM', B_RECEIPTS, unpack(expired_receipts))
  redis.call('HDEL', B_SENT, unpack(expired_receipts))
end
update_due(name)
return out
