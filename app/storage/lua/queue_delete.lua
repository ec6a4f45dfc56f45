-- Delete a queue with all its messages; every long poll on it is woken (a count of 0 wakes
-- them all) and answers 404.
-- KEYS: 1-7 the queue's keys (see _queue_common.lua), 8 registry set
-- ARGV: 1 name, 2 notify channel
-- Returns 1 if the queue existed, else 0.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
redis.call('SREM', KEYS[8], ARGV[1])
redis.call('PUBLISH', ARGV[2], 0)
return 1
