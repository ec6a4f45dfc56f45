-- Shared helpers of the queue_*.lua scripts (included with --#include, never run alone).
-- KEYS: config (hash), ready (zset: id -> available ms), inflight (zset: id -> lock expiry ms),
--       dead (zset: id -> dead-lettered ms), bodies (hash), meta (hash), ages (zset),
--       attrs (hash: id -> message attributes as JSON text, only for messages sent with some)
-- meta[id] = "<available_ms> <enqueued_ms> <receive_count> <receipt>[ <first_received_ms>]"
-- (receipt may be empty; the first receive's time is there once it was received);
-- available_ms is the message's place in the queue, kept when its lock expires or is released.
local Q_CFG, Q_READY, Q_INFLIGHT, Q_DEAD = KEY.config, KEY.ready, KEY.inflight, KEY.dead
local Q_BODIES, Q_META, Q_AGES, Q_ATTRS = KEY.bodies, KEY.meta, KEY.ages, KEY.attrs

-- avail, enq, count, receipt, first (nil before the first receive).
local function meta_parse(raw)
  local avail, enq, count, receipt, first = string.match(raw, '^(%d+) (%d+) (%d+) ?(%S*) ?(%d*)$')
  return tonumber(avail), tonumber(enq), tonumber(count), receipt, tonumber(first)
end

local function meta_text(avail, enq, count, receipt, first)
  if first then return string.format('%d %d %d %s %d', avail, enq, count, receipt, first) end
  return string.format('%d %d %d %s', avail, enq, count, receipt)
end

local function max_receives()
  return tonumber(redis.call('HGET', Q_CFG, 'max_receives')) or 0
end

-- Dead-letters a message already taken out of ready and inflight: into the queue's own dead
-- letters. Scripts that include _queue_dead_letter.lua replace it with one that moves the message
-- to the queue's dead_letter_queue when it names one.
local function dead_letter(now, id, avail, enq, count, first)
  redis.call('ZADD', Q_DEAD, now, id)
  redis.call('HSET', Q_META, id, meta_text(avail, enq, count, '', first))
end

-- Every expired lock goes back to ready at its original place, or to the dead letters once it
-- has been received max_receives times. Returns how many became visible again.
-- The locks are removed before anything is added: at maxmemory Redis refuses only a script's
-- first write, and only one that may grow memory, so receives, acks, counts and the sweep (which
-- move and free messages) keep working in a full Redis, where pushes are refused.
local function reclaim(now, maxr)
  local expired = redis.call('ZRANGEBYSCORE', Q_INFLIGHT, '-inf', now)
  if #expired == 0 then return 0 end
  redis.call('ZREMRANGEBYSCORE', Q_INFLIGHT, '-inf', now)
  local returned = 0
  for _, id in ipairs(expired) do
    local raw = redis.call('HGET', Q_META, id)
    if raw then
      local avail, enq, count, _, first = meta_parse(raw)
      if maxr > 0 and count >= maxr then
        dead_letter(now, id, avail, enq, count, first)
      else
        redis.call('ZADD', Q_READY, avail, id)
        returned = returned + 1
      end
    end
  end
  return returned
end

-- Remove messages from every structure of the queue (ack, retention).
local function forget(ids)
  for start = 1, #ids, 1000 do
    local chunk = {unpack(ids, start, math.min(start + 999, #ids))}
    redis.call('ZREM', Q_READY, unpack(chunk))
    redis.call('ZREM', Q_INFLIGHT, unpack(chunk))
    redis.call('ZREM', Q_DEAD, unpack(chunk))
    redis.call('ZREM', Q_AGES, unpack(chunk))
    redis.call('HDEL', Q_BODIES, unpack(chunk))
    redis.call('HDEL', Q_META, unpack(chunk))
    redis.call('HDEL', Q_ATTRS, unpack(chunk))
  end
end
