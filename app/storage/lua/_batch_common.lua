-- Shared helpers of the batch_*.lua scripts (included with --#include, never run alone).
-- KEYS: config (hash), pending (list: records, oldest first), bodies (hash: id -> JSON array),
--       meta (hash: id -> JSON state), taken (zset: id -> deadline ms), dead (zset: id -> died ms),
--       due (the global zset: name -> next time beat has work for the batch)
-- meta[id] = {state = "queued"|"sending"|"dead", attempts, records, bytes, taken_ms,
--             last_status_code, error}; "queued" means attempt attempts + 1 waits to start.
local B_CFG, B_PENDING, B_BODIES, B_META, B_TAKEN, B_DEAD = KEY.config, KEY.pending, KEY.bodies, KEY.meta,
  KEY.taken, KEY.dead
local B_DUE = KEY.due

-- Stores `records` (JSON texts, in arrival order, at least one) as a new taken batch, published
-- by the caller; `grace` later the sweep publishes it again if no worker has claimed it.
local function store_batch(records, now, grace)
  local seq = redis.call('HINCRBY', B_CFG, 'batch_seq', 1)
  local id = redis.call('HGET', B_CFG, 'epoch') .. '-' .. seq
  local body = '[' .. table.concat(records, ',') .. ']'
  redis.call('HSET', B_BODIES, id, body)
  redis.call('HSET', B_META, id, cjson.encode({state = 'queued', attempts = 0, records = #records,
                                               bytes = #body, taken_ms = now}))
  redis.call('ZADD', B_TAKEN, now + grace, id)
  return id
end

-- Takes every pending record, then `fresh` (records of this call not pushed yet), as one batch.
local function take_pending(fresh, now, grace)
  local records = redis.call('LRANGE', B_PENDING, 0, -1)
  for i = 1, #fresh do records[#records + 1] = fresh[i] end
  redis.call('DEL', B_PENDING)
  redis.call('HSET', B_CFG, 'pending_bytes', 0)
  redis.call('HDEL', B_CFG, 'oldest_ms')
  return store_batch(records, now, grace)
end

-- RPUSH in slices: unpack() of thousands of values would overflow Lua's C stack.
local function push_pending(records)
  for i = 1, #records, 1000 do
    redis.call('RPUSH', B_PENDING, unpack(records, i, math.min(i + 999, #records)))
  end
end

local function load_meta(id)
  local raw = redis.call('HGET', B_META, id)
  if not raw then return nil end
  return cjson.decode(raw)
end

local function save_meta(id, meta)
  redis.call('HSET', B_META, id, cjson.encode(meta))
end

local function make_dead(id, meta, now)
  meta.state = 'dead'
  save_meta(id, meta)
  redis.call('ZREM', B_TAKEN, id)
  redis.call('ZADD', B_DEAD, now, id)
end

-- The batch's entry in the due zset: the earlier of "the oldest pending record reaches the
-- interval" and the first taken batch's deadline; none when there is nothing to wait for.
local function update_due(name)
  local when = nil
  local cfg = redis.call('HMGET', B_CFG, 'oldest_ms', 'interval_ms')
  if cfg[1] and cfg[2] then when = tonumber(cfg[1]) + tonumber(cfg[2]) end
  local first = redis.call('ZRANGE', B_TAKEN, 0, 0, 'WITHSCORES')
  if first[2] and (when == nil or tonumber(first[2]) < when) then when = tonumber(first[2]) end
  if when then
    redis.call('ZADD', B_DUE, when, name)
  else
    redis.call('ZREM', B_DUE, name)
  end
end
