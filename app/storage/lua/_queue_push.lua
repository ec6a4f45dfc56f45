-- Included by the scripts that push messages (queue_push.lua, schedule_fire_queue.lua), after
-- _queue_common.lua: the push itself. See queue_push.lua for the ids it makes.

-- Pushes `messages` (three values per message: delay_ms, "" for the queue's delay; stored body;
-- message attributes as JSON text, "" for none),
-- creating the queue with `defaults` (visibility_timeout_ms, max_receives, retention_ms,
-- delay_ms) if it does not exist yet; returns the new ids in push order, joined by spaces.
local function push_messages(now, name, registry, channel, suffix, defaults, messages)
  if redis.call('EXISTS', Q_CFG) == 0 then
    redis.call('HSET', Q_CFG, 'visibility_timeout_ms', defaults.visibility_timeout_ms, 'max_receives', defaults.max_receives,
               'retention_ms', defaults.retention_ms, 'delay_ms', defaults.delay_ms, 'created_ms', now, 'updated_ms', now, 'seq', 0)
    redis.call('SADD', registry, name)
  end
  local count = #messages / 3
  if count < 1 then return '' end
  local queue_delay = tonumber(redis.call('HGET', Q_CFG, 'delay_ms')) or 0
  local seq = redis.call('HINCRBY', Q_CFG, 'seq', count) - count
  local ids, ready, bodies, metas, attrs = {}, {}, {}, {}, {}
  local uuid_layout = string.match(suffix, '^%-4%x%x%x%-[89ab]%x%x%x%-' .. string.rep('%x', 12) .. '$') ~= nil
  for i = 1, #messages, 3 do
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
    if messages[i + 2] ~= '' then
      attrs[#attrs + 1] = id
      attrs[#attrs + 1] = messages[i + 2]
    end
  end
  redis.call('ZADD', Q_READY, unpack(ready))
  redis.call('ZADD', Q_AGES, unpack(ready))
  redis.call('HSET', Q_BODIES, unpack(bodies))
  redis.call('HSET', Q_META, unpack(metas))
  if #attrs > 0 then redis.call('HSET', Q_ATTRS, unpack(attrs)) end
  redis.call('PUBLISH', channel, count)
  return table.concat(ids, ' ')
end
