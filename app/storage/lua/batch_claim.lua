-- Claim an attempt of a taken batch for sending: only a "queued" batch whose next attempt is
-- this one starts, so duplicated and stale task messages are dropped here. The claim holds a
-- lease of the batch's timeout plus a margin; the sweep sends the batch again once it expires.
--#include _batch_common.lua
-- KEYS: (the batch's and the due zset, see _batch_common.lua),
--       held_batches (the claiming worker's set of held batches)
-- ARGV: name, id (the batch's), attempt, now_ms, lease_margin_ms (the lease is the timeout plus this),
--       worker (the claiming worker's name, which holds the batch while it sends it)
-- Returns {"send", body, endpoint, headers JSON, timeout_ms, records, max_attempts, backoff_base_ms,
-- allowed_hosts JSON ("" when the batch has none)} or
-- {"gone"} (sent, or the batch was deleted) or {"skip", state}.
local name, id, attempt, now = ARG.name, ARG.id, tonumber(ARG.attempt), tonumber(ARG.now_ms)
local meta = load_meta(id)
if not meta then return {'gone'} end
if meta.state ~= 'queued' or meta.attempts + 1 ~= attempt then return {'skip', meta.state} end
local cfg = redis.call('HMGET', B_CFG, 'endpoint', 'headers', 'timeout_ms', 'max_attempts', 'backoff_base_ms',
                      'allowed_hosts')
if not cfg[1] then return {'gone'} end
meta.attempts = attempt
meta.state = 'sending'
meta.holder = ARG.worker
meta.held_ms = now
save_meta(id, meta)
redis.call('SADD', KEY.held_batches, name .. '\t' .. id)
redis.call('ZADD', B_TAKEN, now + tonumber(cfg[3]) + tonumber(ARG.lease_margin_ms), id)
update_due(name)
return {'send', redis.call('HGET', B_BODIES, id), cfg[1], cfg[2], cfg[3], meta.records, cfg[4], cfg[5], cfg[6] or ''}
