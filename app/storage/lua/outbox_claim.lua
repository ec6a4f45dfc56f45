-- Relay: take the notices whose time has come, to publish, and put each a publish grace later,
-- so that it is published again only if no worker has taken it (removed it) by then.
-- KEYS: outbox
-- ARGV: now_ms, grace_ms (publish grace), limit (at most this many)
-- Returns the entries claimed, "<kind>:<request id>", earliest first.
local now = tonumber(ARG.now_ms)
local due = redis.call('ZRANGEBYSCORE', KEY.outbox, '-inf', now, 'LIMIT', 0, tonumber(ARG.limit))
local next_ms = now + tonumber(ARG.grace_ms)
for _, entry in ipairs(due) do
  redis.call('ZADD', KEY.outbox, next_ms, entry)
end
return due
