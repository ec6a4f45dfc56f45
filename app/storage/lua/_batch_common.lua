-- Shared helpers of the batch_*.lua scripts (included with --#include, never run alone).
-- KEYS: config (hash), pending (list: records, oldest first), bodies (hash: id -> JSON array),
--       meta (hash: id -> JSON state), taken (zset: id -> deadline ms), dead (zset: id -> died ms),
--       receipts (zset: id -> number of the batch's first record), sent (hash: id ->
--       "<records> <sent_ms> <status_code>" of a sent batch), sent_expiry (zset: id -> time the
--       sent batch's receipt expires), due (the global zset: name -> next time beat has work for the batch)
-- meta[id] = {state = "queued"|"sending"|"dead"|"parked", attempts, records, first, bytes, taken_ms,
--             last_status_code, error, next, after}; "queued" means attempt attempts + 1 waits to
-- start; "parked" (the second half of a batch split on a 413) waits for batch `after` to leave
-- the taken ones (sent, dead or split again), which names it as its `next`.
-- A batch's records are consecutive record numbers, `first` to `first + records - 1` (the pending
-- list is always the newest records, and batches are taken from its head), so a record's receipt
-- costs nothing per record: receipts maps each batch to its first record number.
local B_CFG, B_PENDING, B_BODIES, B_META, B_TAKEN, B_DEAD = KEY.config, KEY.pending, KEY.bodies, KEY.meta,
  KEY.taken, KEY.dead
local B_RECEIPTS, B_SENT, B_SENT_EXPIRY = KEY.receipts, KEY.sent, KEY.sent_expiry
local B_DUE = KEY.due

local function load_meta(id)
  local raw = redis.call('HGET', B_META, id)
  if not raw then return nil end
  return cjson.decode(raw)
end

-- An attempt's outcome came back: the worker settling it (ARG.worker) no longer holds the batch.
-- For the scripts that settle an attempt (their KEYS name `held_batches`, their ARGV `worker`).
local function drop_hold(meta, name, id)
  if meta.holder == ARG.worker then
    meta.holder = nil
    redis.call('SREM', KEY.held_batches, name .. '\t' .. id)
  end
end

local function save_meta(id, meta)
  redis.call('HSET', B_META, id, cjson.encode(meta))
end

-- Counts records taken into batches from `taken_seq` on; a batch configured before that field
-- existed gets it from record_seq less the pending records. Called before a script takes any.
local function count_taken()
  local cfg = redis.call('HMGET', B_CFG, 'taken_seq', 'record_seq')
  if not cfg[1] then
    redis.call('HSET', B_CFG, 'taken_seq', (tonumber(cfg[2]) or 0) - redis.call('LLEN', B_PENDING))
  end
end

-- A new taken batch of `count` records numbered from `first` (nil: unknown, no receipts), due to
-- be published by the caller (`grace` later the sweep publishes it again if no worker claimed
-- it), or parked behind batch `after` when one is given. Returns its id.
local function new_batch(body, count, first, now, grace, after)
  local seq = redis.call('HINCRBY', B_CFG, 'batch_seq', 1)
  local id = redis.call('HGET', B_CFG, 'epoch') .. '-' .. seq
  redis.call('HSET', B_BODIES, id, body)
  local meta = {state = 'queued', attempts = 0, records = count, first = first, bytes = #body, taken_ms = now}
  if after then
    meta.state, meta.after = 'parked', after
  end
  save_meta(id, meta)
  redis.call('ZADD', B_TAKEN, now + grace, id)
  if first then redis.call('ZADD', B_RECEIPTS, first, id) end
  return id
end

-- Stores `records` (JSON texts, in arrival order, at least one: the next records to be taken)
-- as a new taken batch, published by the caller.
local function store_batch(records, now, grace)
  local first = redis.call('HINCRBY', B_CFG, 'taken_seq', #records) - #records + 1
  return new_batch('[' .. table.concat(records, ',') .. ']', #records, first, now, grace, nil)
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

-- The batch `meta` leaves the taken ones (sent, dead, or split): the batch parked behind it, if
-- any, is queued for its attempt 1. Returns that batch's id (the caller publishes it) or nil.
local function release_next(meta, now, grace)
  local id = meta.next
  meta.next = nil
  if not id then return nil end
  local parked = load_meta(id)
  if not parked or parked.state ~= 'parked' then return nil end
  parked.state, parked.after = 'queued', nil
  save_meta(id, parked)
  redis.call('ZADD', B_TAKEN, now + grace, id)
  return id
end

-- Returns the id of the batch this released (see release_next), or nil.
local function make_dead(id, meta, now, grace)
  local released = release_next(meta, now, grace)
  meta.state = 'dead'
  save_meta(id, meta)
  redis.call('ZREM', B_TAKEN, id)
  redis.call('ZADD', B_DEAD, now, id)
  return released
end

-- The batch's entry in the due zset: the earliest of "the oldest pending record reaches the
-- interval", the first taken batch's deadline and the first sent receipt's expiry; none when
-- there is nothing to wait for.
local function update_due(name)
  local when = nil
  local cfg = redis.call('HMGET', B_CFG, 'oldest_ms', 'interval_ms')
  if cfg[1] and cfg[2] then when = tonumber(cfg[1]) + tonumber(cfg[2]) end
  for _, key in ipairs({B_TAKEN, B_SENT_EXPIRY}) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] and (when == nil or tonumber(first[2]) < when) then when = tonumber(first[2]) end
  end
  if when then
    redis.call('ZADD', B_DUE, when, name)
  else
    redis.call('ZREM', B_DUE, name)
  end
end
