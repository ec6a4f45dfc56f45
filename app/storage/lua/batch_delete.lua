-- Delete a batch: its configuration, pending records, taken and dead batches, and its entries
-- in the global indexes. A worker holding one of its batches finds it gone and drops it.
-- KEYS: 1-6 the batch's keys, 7 global due zset, 8 names set
-- ARGV: 1 name
-- Returns 1 if the batch existed, else 0.
local existed = redis.call('EXISTS', KEYS[1])
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call('ZREM', KEYS[7], ARGV[1])
redis.call('SREM', KEYS[8], ARGV[1])
return existed
