-- Push messages, creating the queue with the default config if it does not exist yet.
-- Ids are the queue's push counter (12 hex digits) plus a random suffix, so messages that become
-- available at the same millisecond sort in push order. A suffix shaped "-4xxx-yxxx-xxxxxxxxxxxx"
-- (hex, y one of 89ab) asks for the UUID layout: the counter split 8-4 ("xxxxxxxx-xxxx"), then it.
--#include _queue_common.lua
--#include _queue_push.lua
-- KEYS: (the queue's, see _queue_common.lua), registry (set of queue names)
-- ARGV: now_ms, name, channel (the queue's notify channel), id_suffix,
--       visibility_timeout_ms, max_receives, retention_ms, delay_ms (the defaults of a new queue),
--       existing ("1": push only to an existing queue, as SQS does; "" creates it),
--       ...messages (three per message: delay_ms, "" for the queue's delay; stored body;
--       attributes JSON, "" for none)
-- Returns the new ids in push order, joined by spaces (nil when `existing` and no such queue). PUBLISHes their number on the channel (delayed ones too:
-- a long poll then learns when they become visible).
if ARG.existing == '1' and redis.call('EXISTS', Q_CFG) == 0 then return false end
return push_messages(tonumber(ARG.now_ms), ARG.name, KEY.registry, ARG.channel, ARG.id_suffix,
                     {visibility_timeout_ms = ARG.visibility_timeout_ms, max_receives = ARG.max_receives,
                      retention_ms = ARG.retention_ms, delay_ms = ARG.delay_ms}, ARG.messages)
