-- Claim an attempt of a taken batch for sending: only a "queued" batch whose next attempt is
-- this one starts, so duplicated and stale task messages are dropped here. The claim holds a
-- lease of the batch's timeout plus a margin; the sweep sends the batch again once it expires.
-- KEYS: 1-6 the batch's keys, 7 global due zset
-- ARGV: 1 name, 2 batch id, 3 attempt, 4 now_ms, 5 lease margin ms
-- Returns {"send", body, endpoint, headers JSON, timeout_ms, records, max_attempts, backoff_base_ms} or
-- {"gone"} (sent, or the batch was deleted) or {"skip", state}.
--#include _batch_common.lua
local name, id, attempt, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local meta = load_meta(id)
if not meta then return {'gone'} end
if meta.state ~= 'queued' or meta.attempts + 1 ~= attempt then return {'skip', meta.state} end
local cfg = redis.call('HMGET', B_CFG, 'endpoint', 'headers', 'timeout_ms', 'max_attempts', 'backoff_base_ms')
if not cfg[1] then return {'gone'} end
meta.attempts = attempt
meta.state = 'sending'
save_meta(id, meta)
redis.call('ZADD', B_TAKEN, now + tonumber(cfg[3]) + tonumber(ARGV[5]), id)
update_due(name)
return {'send', redis.call('HGET', B_BODIES, id), cfg[1], cfg[2], cfg[3], meta.records, cfg[4], cfg[5]}
