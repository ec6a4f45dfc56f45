-- Receive up to max visible messages, oldest available first, each locked with a fresh receipt.
-- First every expired lock returns to its original place (or to the dead letters), so receiving
-- never depends on the sweep; a visible message already received max_receives times (the
-- limit was lowered) goes to the dead letters instead of being handed out.
--#include _queue_common.lua
--#include _queue_dead_letter.lua
-- KEYS: (the queue's, see _queue_common.lua)
-- ARGV: now_ms, max, visibility_timeout_ms ("" = the queue's), token (random, from the caller:
--       message i of this call gets receipt "<token>.<i>")
-- Returns {"missing"} when there is no such queue, else {"ok", next_ms, message, ...} with each
-- message one string "<id>\t<receipt>\t<receive_count>\t<enqueued_ms>\t<first_received_ms>\t
-- <attributes JSON or "">\t<body>" (one reply element per message parses much faster than
-- seven; ids, receipts and compact JSON never hold a tab);
-- next_ms (only when nothing was received, else -1) is the earliest time a message may become
-- visible (-1: none is waiting or locked).
-- Or {"dead_letter_queue", name} when the caller passed another target (_queue_dead_letter.lua).
if redis.call('EXISTS', Q_CFG) == 0 then return {'missing'} end
local redirect = dead_letter_target_changed()
if redirect then return redirect end
local now, max, token = tonumber(ARG.now_ms), tonumber(ARG.max), ARG.token
local cfg = redis.call('HMGET', Q_CFG, 'visibility_timeout_ms', 'max_receives')
local vt = tonumber(cfg[1]) or 0
if ARG.visibility_timeout_ms ~= '' then vt = tonumber(ARG.visibility_timeout_ms) end
local maxr = tonumber(cfg[2]) or 0
reclaim(now, maxr)

local out = {'ok', -1}
local taken = 0
local lock = now + vt
while taken < max do
  local ids = redis.call('ZRANGEBYSCORE', Q_READY, '-inf', now, 'LIMIT', 0, max - taken)
  if #ids == 0 then break end
  redis.call('ZREMRANGEBYRANK', Q_READY, 0, #ids - 1)  -- the lowest scores: exactly these ids
  local metas = redis.call('HMGET', Q_META, unpack(ids))
  local bodies = redis.call('HMGET', Q_BODIES, unpack(ids))
  local attrs = redis.call('HMGET', Q_ATTRS, unpack(ids))
  local locks, new_metas = {}, {}
  for i, id in ipairs(ids) do
    if metas[i] then
      local avail, enq, count, _, first = meta_parse(metas[i])
      if maxr > 0 and count >= maxr then
        dead_letter(now, id, avail, enq, count, first)
      else
        local receipt = token .. '.' .. taken
        taken = taken + 1
        count = count + 1
        first = first or now
        locks[#locks + 1] = lock
        locks[#locks + 1] = id
        new_metas[#new_metas + 1] = id
        new_metas[#new_metas + 1] = meta_text(avail, enq, count, receipt, first)
        out[#out + 1] = table.concat({id, receipt, count, enq, first, attrs[i] or '', bodies[i] or ''}, '\t')
      end
    end
  end
  if #locks > 0 then
    redis.call('ZADD', Q_INFLIGHT, unpack(locks))
    redis.call('HSET', Q_META, unpack(new_metas))
  end
end

if taken == 0 then
  local next_ms = -1
  local first = redis.call('ZRANGE', Q_READY, 0, 0, 'WITHSCORES')
  if #first > 0 then next_ms = tonumber(first[2]) end
  first = redis.call('ZRANGE', Q_INFLIGHT, 0, 0, 'WITHSCORES')
  if #first > 0 and (next_ms < 0 or tonumber(first[2]) < next_ms) then next_ms = tonumber(first[2]) end
  out[2] = next_ms
end
return out
