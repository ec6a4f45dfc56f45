-- Relay: wake what the gates let through now (_gates.lua), for gates whose check is due: a flow's
-- free slots, a closed destination's waiters, a half-open destination's probe. Whoever frees a
-- slot wakes a waiter at once; this catches the rest (an open breaker's cooldown ending, a slot
-- whose lease expired, a wake-up lost with a failed publish), each gate once a second at most.
--#include _gates.lua
-- ARGV: now_ms, limit (gates looked at)
-- Returns a flat list {id, attempt, due_ms, ...} of the requests woken, to publish.
local now, out = tonumber(ARG.now_ms), {}
local index = gate_key('gates', 'waiting')
for _, gate in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, tonumber(ARG.limit))) do
  if string.sub(gate, 1, 6) == 'flows:' then
    wake_flow(string.sub(gate, 7), now, out)
  else
    wake_destination(string.sub(gate, 7), now, out)
  end
  if redis.call('EXISTS', gate_key('waiting', gate)) == 1 then
    redis.call('ZADD', index, now + 1000, gate)
  else
    redis.call('ZREM', index, gate)
  end
end
return out
