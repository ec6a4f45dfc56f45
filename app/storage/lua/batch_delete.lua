-- Delete a batch: its configuration, pending records, taken and dead batches, record receipts,
-- and its entries in the global indexes. A worker holding one of its batches finds it gone and drops it.
--#include _batch_common.lua
-- KEYS: (the batch's and the due zset, see _batch_common.lua), names (set of batch names)
-- ARGV: name
-- Returns 1 if the batch existed, else 0.
local existed = redis.call('EXISTS', B_CFG)
redis.call('UNLINK', B_CFG, B_PENDING, B_BODIES, B_META, B_TAKEN, B_DEAD, B_RECEIPTS, B_SENT, B_SENT_EXPIRY)
redis.call('ZREM', B_DUE, ARG.name)
redis.call('SREM', KEY.names, ARG.name)
return existed
