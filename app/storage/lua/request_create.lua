-- Create a deferred request: record, indexes, idempotency key, alias and schedule entry, all at once.
-- KEYS: 1-7 status indexes, 8 request hash, 9 due zset, 10 inflight zset, 11 listing index,
--       12 idempotency key (any unused key name when there is no Idempotency-Key),
--       13 alias key, 14 the alias namespace's index (any unused key names when there is no alias)
-- ARGV: 1 id, 2 now_ms, 3 due_ms, 4 horizon_end_ms, 5 publish_grace_ms, 6 spec JSON,
--       7 attempt_limit, 8 timeout_ms, 9 idempotency value ("" for none), 10 idempotency TTL s,
--       11 alias as "namespace:alias" ("" for none)
-- Returns {"exists", stored idempotency value}, {"alias_taken"} or {"created", status}; status
-- "queued" means the caller publishes it now (it is due within the horizon), "scheduled" that
-- the relay will.
--#include _request_status.lua
local id, now, due = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[11] ~= '' and redis.call('EXISTS', KEYS[13]) == 1 then return {'alias_taken'} end
if ARGV[9] ~= '' then
  local existing = redis.call('GET', KEYS[12])
  if existing then return {'exists', existing} end
  redis.call('SET', KEYS[12], ARGV[9], 'EX', tonumber(ARGV[10]))
end
local status = 'scheduled'
if due <= tonumber(ARGV[4]) then status = 'queued' end
redis.call('HSET', KEYS[8], 'spec', ARGV[6], 'created_ms', now, 'due_ms', due,
           'next_attempt_ms', due, 'attempts', 0, 'attempt_limit', ARGV[7], 'timeout_ms', ARGV[8])
set_status(KEYS[8], id, nil, status)
redis.call('ZADD', KEYS[11], 0, id)
if ARGV[11] ~= '' then
  redis.call('SET', KEYS[13], id)
  redis.call('ZADD', KEYS[14], 0, id)
  redis.call('HSET', KEYS[8], 'alias', ARGV[11])
end
if status == 'queued' then
  redis.call('ZADD', KEYS[10], due + tonumber(ARGV[5]), id)
else
  redis.call('ZADD', KEYS[9], due, id)
end
return {'created', status}
