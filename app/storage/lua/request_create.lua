-- Create a deferred request: record, indexes, idempotency key, alias and schedule entry, all at once.
--#include _request_status.lua
--#include _request_new.lua
-- KEYS: request (hash), due, inflight, all (listing index), token_requests (the maker token's index),
--       idempotency (any unused key name when there is no Idempotency-Key),
--       alias, alias_index (the alias namespace's index; any unused key names without an alias)
-- ARGV: id, now_ms, due_ms, horizon_end_ms, grace_ms (publish grace), spec (JSON),
--       attempt_limit, timeout_ms, idempotency_value ("" for none), idempotency_ttl_s,
--       alias ("namespace:alias", "" for none), request_gates, token (what store_new_request takes)
-- Returns {"exists", stored idempotency value}, {"alias_taken"} or {"created", status}; status
-- "queued" means the caller publishes it now (it is due within the horizon), "scheduled" that
-- the relay will.
local id, now, due = ARG.id, tonumber(ARG.now_ms), tonumber(ARG.due_ms)
if ARG.alias ~= '' and redis.call('EXISTS', KEY.alias) == 1 then return {'alias_taken'} end
if ARG.idempotency_value ~= '' then
  local existing = redis.call('GET', KEY.idempotency)
  if existing then return {'exists', existing} end
  redis.call('SET', KEY.idempotency, ARG.idempotency_value, 'EX', tonumber(ARG.idempotency_ttl_s))
end
local status = store_new_request(KEY.request, id, now, due, tonumber(ARG.horizon_end_ms), tonumber(ARG.grace_ms),
                                 ARG.spec, ARG.attempt_limit, ARG.timeout_ms, ARG.request_gates, ARG.token)
if ARG.alias ~= '' then
  redis.call('SET', KEY.alias, id)
  redis.call('ZADD', KEY.alias_index, 0, id)
  redis.call('HSET', KEY.request, 'alias', ARG.alias)
end
return {'created', status}
