-- Run a schedule whose target is a queue: claim the tick and push the message (as
-- queue_push.lua does, creating the queue if needed), in one script.
--#include _queue_common.lua
--#include _queue_push.lua
--#include _schedule_run.lua
-- KEYS: registry (set of queue names)
-- ARGV: queue (its name), channel (the queue's notify channel), id_suffix,
--       visibility_timeout_ms, max_receives, retention_ms, delay_ms (the defaults of a new queue),
--       lead_ms (how long before its tick the run is made: the message becomes available at
--       the tick, plus the queue's delay), body (stored)
-- Returns {"stale"} (nothing written) or {"pushed", message id}.
if not claimed() then return {'stale'} end
local lead = tonumber(ARG.lead_ms)
local delay = ''
if lead > 0 then
  delay = lead + (tonumber(redis.call('HGET', Q_CFG, 'delay_ms')) or tonumber(ARG.delay_ms))
end
local id = push_messages(tonumber(ARG.now_ms), ARG.queue, KEY.registry, ARG.channel, ARG.id_suffix,
                         {visibility_timeout_ms = ARG.visibility_timeout_ms, max_receives = ARG.max_receives,
                          retention_ms = ARG.retention_ms, delay_ms = ARG.delay_ms}, {delay, ARG.body, ''})
record_run(id)
return {'pushed', id}
