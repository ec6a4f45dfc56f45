-- A notice task is done with its notice (delivered, given up, or nothing left to tell): its entry
-- goes, unless the request ended again since the task read it (it was retried and ended anew, or
-- is running again): that newer end owes its own notice under the same entry, and the relay
-- publishes it again once its grace has passed.
-- KEYS: outbox, request (hash)
-- ARGV: entry, ended_ms (the request's ended_ms as the task read it; "" if not ended or gone)
-- Returns 1 if the entry went, 0 if it stays.
local ended = redis.call('HGET', KEY.request, 'ended_ms')
if ended and ended ~= ARG.ended_ms then return 0 end
return redis.call('ZREM', KEY.outbox, ARG.entry)
