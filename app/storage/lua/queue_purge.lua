-- Delete every message of a queue (visible, delayed, in flight and dead), keeping its config.
--#include _queue_common.lua
-- KEYS: (the queue's, see _queue_common.lua)
-- ARGV: (none)
-- Returns 1 if the queue exists, else 0.
if redis.call('EXISTS', Q_CFG) == 0 then return 0 end
redis.call('UNLINK', Q_READY, Q_INFLIGHT, Q_DEAD, Q_BODIES, Q_META, Q_AGES, Q_ATTRS)
return 1
