-- Push messages, creating the queue with the default config if it does not exist yet.
-- Ids are the queue's push counter (12 hex digits) plus a random suffix, so messages that become
-- available at the same millisecond sort in push order. A suffix shaped "-4xxx-yxxx-xxxxxxxxxxxx"
-- (hex, y one of 89ab) asks for the UUID layout: the counter split 8-4 ("xxxxxxxx-xxxx"), then it.
--#include _queue_common.lua
-- KEYS: (the queue's, see _queue_common.lua), registry (set of queue names)
-- ARGV: now_ms, name, channel (the queue's notify channel), id_suffix,
--       visibility_timeout_ms, max_receives, retention_ms, delay_ms (the defaults of a new queue),
--       ...messages (one pair per message: delay_ms, "" for the queue's delay; stored body)
-- Returns the new ids in push order, joined by spaces. PUBLISHes their number on the channel (delayed ones too:
-- a long poll then learns when they become visible).
local now = tonumber(ARG.now_ms)
if redis.call('EXISTS', Q_CFG) == 0 then
  redis.call('HSET', Q_CFG, 'visibility_timeout_ms', ARG.visibility_timeout_ms, 'max_receives', ARG.max_receives,
             'retention_ms', ARG.retention_ms, 'delay_ms', ARG.delay_ms, 'created_ms', now, 'updated_ms', now, 'seq', 0)
  redis.call('SADD', KEY.registry, ARG.name)
end
local messages = ARG.messages
local count = #messages / 2
if count < 1 then return '' end
local queue_delay = tonumber(redis.call('HGET', Q_CFG, 'delay_ms')) or 0
local seq = redis.call('HINCRBY', Q_CFG, 'seq', count) - count
local ids, ready, bodies, metas = {}, {}, {}, {}
local suffix = ARG.id_suffix
local uuid_layout = string.match(suffix, '^%-4%x%x%x%-[89ab]%x%x%x%-' .. string.rep('%x', 12) .. '$') ~= nil
for i = 1, #messages, 2 do
  seq = seq + 1
  local id = string.format('%012x', seq)
  if uuid_layout then id = string.sub(id, 1, -5) .. '-' .. string.sub(id, -4) end
  id = id .. suffix
  local delay = queue_delay
  if messages[i] ~= '' then delay = tonumber(messages[i]) end
  local avail = now + delay
  ids[#ids + 1] = id
  ready[#ready + 1] = avail
  ready[#ready + 1] = id
  bodies[#bodies + 1] = id
  bodies[#bodies + 1] = messages[i + 1]
  metas[#metas + 1] = id
  metas[#metas + 1] = meta_text(avail, now, 0, '')
end
redis.call('ZADD', Q_READY, unpack(ready))
redis.call('ZADD', Q_AGES, unpack(ready))
redis.call('HSET', Q_BODIES, unpack(bodies))
redis.call('HSET', Q_META, unpack(metas))
redis.call('PUBLISH', ARG.channel, count)
return table.concat(ids, ' ')
