-- A batch's configuration and counts, read at one instant. Only reads: a script rather than a
-- MULTI, because at maxmemory Redis refuses every command queued in a MULTI, reads included.
--#include _batch_common.lua
-- KEYS: (the batch's and the due zset, see _batch_common.lua)
-- ARGV: (none)
-- Returns {} when the batch is not configured, else {config as a flat field/value list, pending
-- records, taken batches, dead batches}.
local config = redis.call('HGETALL', B_CFG)
if #config == 0 then return {} end
return {config, redis.call('LLEN', B_PENDING), redis.call('ZCARD', B_TAKEN), redis.call('ZCARD', B_DEAD)}
