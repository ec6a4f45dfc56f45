-- Delete a queue with all its messages; every long poll on it is woken (a count of 0 wakes
-- them all) and answers 404.
--#include _queue_common.lua
-- KEYS: (the queue's, see _queue_common.lua), registry (set of queue names)
-- ARGV: name, channel (the queue's notify channel)
-- Returns 1 if the queue existed, else 0.
if redis.call('EXISTS', Q_CFG) == 0 then return 0 end
redis.call('UNLINK', Q_CFG, Q_READY, Q_INFLIGHT, Q_DEAD, Q_BODIES, Q_META, Q_AGES, Q_ATTRS)
redis.call('SREM', KEY.registry, ARG.name)
redis.call('PUBLISH', ARG.channel, 0)
return 1
