-- Create a queue or change its config; the missing fields of a new queue take the defaults.
-- KEYS: 1 config hash, 2 registry set
-- ARGV: 1 now_ms, 2 name, 3 n = number of default pairs, 4 .. 3+2n default field/value pairs,
--       then field/value pairs to set
-- Returns 1 if the queue was created, 0 if it existed.
local now, n = tonumber(ARGV[1]), tonumber(ARGV[3])
local created = redis.call('EXISTS', KEYS[1]) == 0
for i = 4, 3 + 2 * n, 2 do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
if created then
  redis.call('HSET', KEYS[1], 'created_ms', now, 'seq', 0)
  redis.call('SADD', KEYS[2], ARGV[2])
end
for i = 4 + 2 * n, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'updated_ms', now)
if created then return 1 end
return 0
