-- Cancel a request that has not ended; one that was running or had sent an attempt owes a cancel
-- notice when its spec asks for one, recorded in the outbox in the same step.
--#include _request_status.lua
--#include _gates.lua
-- KEYS: request (hash), due, ended, outbox (notices owed, storage/outbox.py)
-- ARGV: id, now_ms, channel (notified of the end),
--       notice (the cancel notice's outbox entry; "" when the spec has no cancel_notify)
-- Returns {"missing"}, {"ended", status} (too late), {"already"} or {"canceled", previous status,
-- attempts started, 1 if a notice was recorded else 0}.
local id, now = ARG.id, tonumber(ARG.now_ms)
local fields = redis.call('HMGET', KEY.request, 'status', 'attempts')
local status = fields[1]
if not status then return {'missing'} end
if status == 'canceled' then return {'already'} end
if status == 'succeeded' or status == 'failed' then return {'ended', status} end
redis.call('ZREM', KEY.due, id)
-- A running attempt keeps its flow slot until it ends; a waiter it wakes otherwise is published
-- by the relay a publish grace later.
leave_gates(KEY.request, id, now, status == 'running', {})
end_request(KEY.request, id, status, 'canceled', now, ARG.channel)
local attempts, noticed = tonumber(fields[2]), 0
if ARG.notice ~= '' and (status == 'running' or attempts > 0) then
  redis.call('ZADD', KEY.outbox, now + tonumber(ARG.grace_ms), ARG.notice)
  noticed = 1
end
return {'canceled', status, attempts, noticed}
