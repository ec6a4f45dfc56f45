-- Run a request now: skip what is left of its delay or backoff. Only a request whose next attempt
-- has not started yet ("scheduled", "retrying", or "queued" with a later eta) moves; it goes in
-- flight due now, and the caller publishes that attempt at once. A task message published
-- earlier for the same attempt (with its later eta) is then a duplicate, which request_start.lua
-- drops.
--#include _request_status.lua
--#include _gates.lua
-- KEYS: request (hash), due
-- ARGV: id, now_ms
-- A parked request leaves its gate's waiting set; its start meets the gates again.
-- Returns {"missing"}, {"conflict", status} (running or ended), {"due"} (its attempt is due
-- already and handed to the workers: nothing to do) or {"publish", attempt}.
local id, now = ARG.id, tonumber(ARG.now_ms)
local fields = redis.call('HMGET', KEY.request, 'status', 'attempts', 'next_attempt_ms')
local status, attempts, next_ms = fields[1], tonumber(fields[2]), tonumber(fields[3])
if not status then return {'missing'} end
if status ~= 'scheduled' and status ~= 'retrying' and status ~= 'queued' then return {'conflict', status} end
local parked = redis.call('HEXISTS', KEY.request, 'parked') == 1
if parked then leave_gates(KEY.request, id, now, false, {}) end
local waiting = redis.call('ZREM', KEY.due, id) == 1 or parked
if not waiting and next_ms and next_ms <= now then return {'due'} end
if status == 'scheduled' then set_status(KEY.request, id, status, 'queued') end
redis.call('HSET', KEY.request, 'next_attempt_ms', now)
-- A first attempt is now due now (the resource's due_at says so); a retry keeps the first due time.
if attempts == 0 then redis.call('HSET', KEY.request, 'due_ms', now) end
redis.call('ZADD', KEY.inflight, now + tonumber(ARG.grace_ms), id)
return {'publish', attempts + 1}
