-- Create a queue or change its config; the missing fields of a new queue take the defaults.
-- KEYS: config (the queue's config hash), registry (set of queue names)
-- ARGV: now_ms, name, defaults (n, the number of default field/value pairs that follow),
--       ...fields (n default field/value pairs, then the field/value pairs to set)
-- Returns 1 if the queue was created, 0 if it existed.
local now, n, fields = tonumber(ARG.now_ms), tonumber(ARG.defaults), ARG.fields
local created = redis.call('EXISTS', KEY.config) == 0
for i = 1, 2 * n, 2 do
  redis.call('HSETNX', KEY.config, fields[i], fields[i + 1])
end
if created then
  redis.call('HSET', KEY.config, 'created_ms', now, 'seq', 0)
  redis.call('SADD', KEY.registry, ARG.name)
end
for i = 2 * n + 1, #fields, 2 do
  redis.call('HSET', KEY.config, fields[i], fields[i + 1])
end
redis.call('HSET', KEY.config, 'updated_ms', now)
if created then return 1 end
return 0
